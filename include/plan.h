/*
 * plan.h - what a run will ask for: request bodies, page sequences, worst cost.
 *
 * plan.c owns the paging rule and the provider's cost formula, so `plan`, the
 * scheduler and the cost ceiling all agree on them:
 *   - the first page of a set is offset 0; it tells total_count;
 *   - then offset += limit while offset < min(total_count, max_rows);
 *   - the last request's limit is trimmed so max_rows is never exceeded;
 *   - a short page does NOT end paging (total_count says more remains); an
 *     empty page does.
 * It needs no network and no database.
 */
#ifndef INTERSECT_PLAN_H
#define INTERSECT_PLAN_H

#include <stdio.h>

#include "job.h"

/* The provider's price: per request, plus per returned row (USD). */
#define PLAN_COST_PER_REQUEST 0.02
#define PLAN_COST_PER_ROW 0.00003

/* Path under base_url of the Domain Intersection live endpoint. */
const char *plan_endpoint_path(enum api_provider p);

/*
 * The request body for one page of a set, in the job's body form (one task
 * object, or a one-element array). Returns a string the caller frees.
 * Credentials are never part of a body.
 */
char *plan_request_body(const struct job *job, const struct target_set *set, long long offset,
			int limit);

/*
 * Limit for the page at `offset` given what is known: `known_total` < 0 while
 * the first page has not answered. Returns 0 when no page belongs at offset.
 */
int plan_page_limit(const struct target_set *set, long long offset, long long known_total);

/* Worst case for one set when total_count is unknown: max_rows rows. */
struct set_estimate {
	long long pages;    /* requests at most */
	long long rows;     /* rows at most */
	double cost_usd;    /* pages * per-request + rows * per-row */
};
void plan_estimate(const struct target_set *set, struct set_estimate *out);
double plan_cost(long long requests, long long rows);

/* Prints the plan of the whole job (or of the sets named in `only`) to out. */
void plan_print(const struct job *job, char *const *only, size_t n_only, FILE *out);

#endif

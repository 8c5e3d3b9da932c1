/*
 * plan.c - request bodies, the paging rule and the cost formula. See plan.h.
 */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

const char *plan_endpoint_path(enum api_provider p)
{
	return p == API_DATAFORSEO ? "/backlinks/domain_intersection/live"
				   : "/dataforseo/backlinks/domain_intersection/live";
}

char *plan_request_body(const struct job *job, const struct target_set *set, long long offset,
			int limit)
{
	json_object *task = NULL, *outer;
	char *body;

	/* A copy, because adding keys to the template itself would change the
	 * definition the loader records and hashes. */
	if (json_object_deep_copy(set->request, &task, NULL) != 0)
		abort();
	json_object_object_add(task, "offset", json_object_new_int64(offset));
	json_object_object_add(task, "limit", json_object_new_int(limit));
	if (job->api.body == BODY_ARRAY) {
		outer = json_object_new_array();
		json_object_array_add(outer, task);
	} else {
		outer = task;
	}
	body = xstrdup(json_object_to_json_string_ext(outer, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(outer);
	return body;
}

int plan_page_limit(const struct target_set *set, long long offset, long long known_total)
{
	long long end = set->max_rows;

	if (known_total >= 0 && known_total < end)
		end = known_total;
	if (offset == 0 && known_total < 0)
		return (int)(set->limit < set->max_rows ? set->limit : set->max_rows);
	if (offset >= end)
		return 0;
	return (int)(end - offset < set->limit ? end - offset : set->limit);
}

double plan_cost(long long requests, long long rows)
{
	return (double)requests * PLAN_COST_PER_REQUEST + (double)rows * PLAN_COST_PER_ROW;
}

void plan_estimate(const struct target_set *set, struct set_estimate *out)
{
	out->rows = set->max_rows;
	out->pages = (set->max_rows + set->limit - 1) / set->limit;
	out->cost_usd = plan_cost(out->pages, out->rows);
}

static int selected(const char *name, char *const *only, size_t n_only)
{
	size_t i;

	if (n_only == 0)
		return 1;
	for (i = 0; i < n_only; i++)
		if (strcmp(only[i], name) == 0)
			return 1;
	return 0;
}

void plan_print(const struct job *job, char *const *only, size_t n_only, FILE *out)
{
	long long pages = 0, rows = 0;
	double cost = 0;
	size_t i, n = 0;

	fprintf(out, "job %s: %s %s%s (%s body, concurrency %d, %d requests/min)\n", job->name,
		job_provider_name(job->api.provider), job->api.base_url,
		plan_endpoint_path(job->api.provider), job->api.body == BODY_ARRAY ? "array" : "object",
		job->api.concurrency, job->api.requests_per_minute);
	for (i = 0; i < job->n_sets; i++) {
		const struct target_set *set = &job->sets[i];
		struct set_estimate est;
		char *body;

		if (!selected(set->name, only, n_only))
			continue;
		plan_estimate(set, &est);
		body = plan_request_body(job, set, 0, plan_page_limit(set, 0, -1));
		fprintf(out, "\ntarget set %s (%zu targets, limit %d, max_rows %lld)\n", set->name,
			set->n_targets, set->limit, set->max_rows);
		fprintf(out, "  first request: %s\n", body);
		fprintf(out, "  at most: %lld requests, %lld rows, $%.4f\n", est.pages, est.rows,
			est.cost_usd);
		if (set->max_cost_usd > 0)
			fprintf(out, "  max_cost_usd $%.4f: %s\n", set->max_cost_usd,
				est.cost_usd > set->max_cost_usd
					? "below the worst case: the set may stop at its ceiling"
					: "covers the worst case");
		free(body);
		pages += est.pages;
		rows += est.rows;
		cost += est.cost_usd;
		n++;
	}
	fprintf(out, "\ntotal: %zu target set%s, at most %lld requests, %lld rows, $%.4f\n", n,
		n == 1 ? "" : "s", pages, rows, cost);
	if (job->max_cost_usd > 0)
		fprintf(out, "job max_cost_usd $%.4f: %s\n", job->max_cost_usd,
			cost > job->max_cost_usd
				? "below the worst case: the run may stop at the ceiling (exit 3)"
				: "covers the worst case");
}

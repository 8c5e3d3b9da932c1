/*
 * response.h - is an API answer a usable page, and what does it say?
 *
 * response.c parses a body (jsondoc.c, which refuses in the same pass what
 * PostgreSQL must not see and any object that repeats a key) and walks its
 * envelope in the order the API reports failure: the gateway's error object,
 * the top status_code, the first task's status_code and tasks_error, and
 * finally result[0]. What it finds decides what schedule.c does with the answer
 * (retry.c classifies it); transform.c makes the rows from the result.
 */
#ifndef INTERSECT_RESPONSE_H
#define INTERSECT_RESPONSE_H

#include <stddef.h>

#include "err.h"
#include "jsondoc.h"
#include "util.h"

/*
 * The largest cost accepted, top-level or task's: etl_page.cost_usd is
 * numeric(14,6). A page costs about $0.05; a negative cost would lower the
 * money spent and defeat max_cost_usd, so 0 is the floor.
 */
#define RESPONSE_MAX_COST_USD 99999999.999999

/* Why a response was not usable; retry.c decides from this what to retry. */
enum response_error {
	RESP_OK = 0,
	RESP_MALFORMED,   /* not JSON, truncated, or JSON of the wrong shape */
	RESP_API_STATUS,  /* top-level status_code is not 20000 */
	RESP_TASK_STATUS, /* tasks[0].status_code is not 20000 */
	RESP_GATEWAY,     /* the gateway's own {"error": {...}} object */
	RESP_OTHER_REQUEST, /* a usable answer, but it echoes another request
			       (response_match()): a cache or gateway mixed
			       answers up, so asking again may mend it */
};

struct api_response {
	struct jd_doc doc;          /* owned: the parsed body */
	const struct jd_node *root; /* doc's top value; NULL unless the body
				       is JSON (schedule.c records the API's
				       status only from a parsed body) */
	enum response_error error;  /* RESP_OK when usable */
	int status_code;            /* top-level status_code (0 if absent) */
	int task_status;            /* tasks[0].status_code (0 if absent) */
	const char *status_message; /* borrowed from doc: the most specific
				       message (task's, else top-level's, else
				       the gateway error's); may be NULL */
	const char *task_id;        /* borrowed from doc; may be NULL */
	double cost;                /* tasks[0].cost, else top-level cost;
				       0 <= cost <= RESPONSE_MAX_COST_USD */
	long long total_count;      /* result[0].total_count */
	size_t items;               /* doc's node of result[0].items (an
				       array), or JD_NONE for null or absent */
	size_t n_items;
	size_t task;                /* doc's node of tasks[0], or JD_NONE */
	size_t result;              /* doc's node of tasks[0].result[0], or JD_NONE */
	size_t body_len;            /* bytes of the body parsed */
};

/*
 * Parses a response body. Returns 0 with *out filled and out->error RESP_OK,
 * or ETL_EFAIL with out->error saying why and err a message that quotes the
 * API's status code and message. Either way the caller calls response_free().
 */
int response_parse(const char *body, size_t len, struct api_response *out,
		   struct etl_error *err) ETL_WUR;
void response_free(struct api_response *resp);

#endif

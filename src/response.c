/*
 * response.c - an API answer's envelope: usable, or why not (the contract is
 * in response.h).
 *
 * The walk follows the order in which the API reports failure: the
 * gateway's error object, the top status_code, the first task's status_code
 * and tasks_error, and finally result[0]. Each level's fields are checked
 * for type and range before they are believed, so a hostile envelope is a
 * malformed answer naming its path (e.g. tasks[0].cost), never a wrong
 * status, a wrong total or a wrong cost; a cost must fit etl_page.cost_usd.
 */
#include "response.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define STATUS_OK 20000

/* Either kind of integer node. */
static bool is_int(const struct jd_doc *d, size_t v)
{
	return jd_is(d, v, JD_INT) || jd_is(d, v, JD_UINT);
}

/* Sets out->error and err; a RESP_MALFORMED message gets its prefix here. */
static int resp_fail(struct api_response *out, struct etl_error *err, enum response_error why,
		     const char *fmt, ...) ETL_PRINTF(4, 5);

static int resp_fail(struct api_response *out, struct etl_error *err, enum response_error why,
		     const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;

	out->error = why;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return etl_fail(err, ETL_EFAIL, "%s%s", why == RESP_MALFORMED ? "malformed response: " : "",
			msg);
}

/* An integer node as a message shows it ("-12", "18446744073709551615"). */
static void int_text(const struct jd_doc *d, size_t v, char *dst, size_t dstsz)
{
	if (jd_type(d, v) == JD_UINT)
		snprintf(dst, dstsz, "%llu", (unsigned long long)jd_uint(d, v));
	else
		snprintf(dst, dstsz, "%lld", (long long)jd_int(d, v));
}

/*
 * Envelope accessors. Each takes the member key of obj at path (for the
 * message), treats JSON null like an absent member, and fails RESP_MALFORMED
 * on a value of the wrong type.
 */
static int env_int(size_t obj, const char *path, const char *key, long long lo, long long hi,
		   long long *val, bool *found, struct api_response *out, struct etl_error *err)
{
	const struct jd_doc *d = &out->doc;
	size_t v = jd_get(d, obj, key);
	char text[32];
	long long x;

	*found = false;
	if (v == JD_NONE)
		return 0;
	if (!is_int(d, v))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected an integer, got %s", path, key,
				 jd_type_name(d, v));
	x = (long long)jd_int(d, v);
	if (jd_type(d, v) == JD_UINT || x < lo || x > hi) {
		int_text(d, v, text, sizeof(text));
		return resp_fail(out, err, RESP_MALFORMED, "%s%s: %s is out of range", path, key,
				 text);
	}
	*val = x;
	*found = true;
	return 0;
}

/* A string member as a C string borrowed from out->doc (cut at a \u0000). */
static int env_str(size_t obj, const char *path, const char *key, const char **val,
		   struct api_response *out, struct etl_error *err)
{
	const struct jd_doc *d = &out->doc;
	size_t v = jd_get(d, obj, key);

	*val = NULL;
	if (v == JD_NONE)
		return 0;
	if (!jd_is(d, v, JD_STRING))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a string, got %s", path, key,
				 jd_type_name(d, v));
	*val = jd_str(d, v);
	return 0;
}

/* A number member; *found says whether there was one (not null). */
static int env_num(size_t obj, const char *path, const char *key, double *val, bool *found,
		   struct api_response *out, struct etl_error *err)
{
	const struct jd_doc *d = &out->doc;
	size_t v = jd_get(d, obj, key);

	*found = false;
	if (v == JD_NONE)
		return 0;
	switch (jd_type(d, v)) {
	case JD_INT:
	case JD_UINT:
	case JD_NUMBER:
		*val = jd_double(d, v);
		*found = true;
		return 0;
	default:
		return resp_fail(out, err, RESP_MALFORMED, "%s%s: expected a number, got %s",
				 path, key, jd_type_name(d, v));
	}
}

/*
 * A cost must fit etl_page.cost_usd, numeric(14,6), and may not be negative:
 * a negative cost would lower the money spent and defeat max_cost_usd. NaN
 * cannot come from JSON, but an overflowing token (1e400) reads as inf.
 */
static int check_cost(const char *path, double cost, struct api_response *out,
		      struct etl_error *err)
{
	if (cost >= 0 && cost <= RESPONSE_MAX_COST_USD)
		return 0;
	return resp_fail(out, err, RESP_MALFORMED,
			 "%scost: %g is not a cost in USD: expected 0 <= cost < 100000000", path,
			 cost);
}

/* A non-empty array's first element, which must be an object. */
static int env_first(size_t obj, const char *path, const char *key, size_t *first,
		     struct api_response *out, struct etl_error *err)
{
	const struct jd_doc *d = &out->doc;
	size_t v = jd_get(d, obj, key);

	if (!jd_is(d, v, JD_ARRAY))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a non-empty array, got %s", path,
				 key, jd_type_name(d, v));
	if (jd_len(d, v) == 0)
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a non-empty array, got an empty one",
				 path, key);
	*first = jd_nonnull(d, v + 1);
	if (!jd_is(d, *first, JD_OBJECT))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s[0]: expected an object, got %s", path, key,
				 jd_type_name(d, *first));
	return 0;
}

/*
 * The gateway's own {"error": {...}}: an error whatever its fields hold, so
 * they are read leniently and only for the message.
 */
static int gateway_error(size_t e, struct api_response *out, struct etl_error *err)
{
	const struct jd_doc *d = &out->doc;
	size_t code, type, msg, rid;
	const char *type_s = "", *rid_s = NULL;
	char code_s[64] = "", num[32];

	if (jd_is(d, e, JD_STRING)) {
		out->status_message = jd_str(d, e);
		return resp_fail(out, err, RESP_GATEWAY, "API gateway error: %s",
				 out->status_message);
	}
	if (!jd_is(d, e, JD_OBJECT))
		return resp_fail(out, err, RESP_MALFORMED,
				 "error: expected an object, got %s", jd_type_name(d, e));
	code = jd_get(d, e, "code");
	type = jd_get(d, e, "type");
	msg = jd_get(d, e, "message");
	rid = jd_get(d, e, "request_id");
	if (jd_is(d, msg, JD_STRING))
		out->status_message = jd_str(d, msg);
	if (is_int(d, code)) {
		int_text(d, code, num, sizeof(num));
		snprintf(code_s, sizeof(code_s), " %s", num);
	} else if (jd_is(d, code, JD_STRING)) {
		snprintf(code_s, sizeof(code_s), " %s", jd_str(d, code));
	}
	if (jd_is(d, type, JD_STRING))
		type_s = jd_str(d, type);
	if (jd_is(d, rid, JD_STRING))
		rid_s = jd_str(d, rid);
	return resp_fail(out, err, RESP_GATEWAY, "API gateway error%s%s%s: %s%s%s%s", code_s,
			 *type_s ? " " : "", type_s,
			 out->status_message ? out->status_message : "(no message)",
			 rid_s ? " (request_id " : "", rid_s ? rid_s : "", rid_s ? ")" : "");
}

/* The envelope checks, in the order the API reports failure. */
static int envelope(struct api_response *out, struct etl_error *err)
{
	const struct jd_doc *d = &out->doc;
	size_t root = 0, e, task, res0, items;
	const char *top_msg, *msg;
	long long x, tasks_error = 0, items_count = 0;
	double top_cost = 0, task_cost = 0;
	bool found, have_items_count, have_top_cost, have_task_cost;
	int rc;

	if (!jd_is(d, root, JD_OBJECT))
		return resp_fail(out, err, RESP_MALFORMED,
				 "expected a JSON object, got %s", jd_type_name(d, root));

	if ((e = jd_get(d, root, "error")) != JD_NONE)
		return gateway_error(e, out, err);

	if ((rc = env_num(root, "", "cost", &top_cost, &have_top_cost, out, err)) ||
	    (rc = env_str(root, "", "status_message", &top_msg, out, err)) ||
	    (rc = env_int(root, "", "status_code", INT32_MIN, INT32_MAX, &x, &found, out, err)))
		return rc;
	out->status_message = top_msg;
	if (!found)
		return resp_fail(out, err, RESP_MALFORMED, "status_code: missing");
	out->status_code = (int)x;
	if (x != STATUS_OK)
		return resp_fail(out, err, RESP_API_STATUS, "API error %d: %s", out->status_code,
				 top_msg ? top_msg : "(no message)");
	if ((rc = env_int(root, "", "tasks_error", 0, INT32_MAX, &tasks_error, &found, out, err)))
		return rc;

	if ((rc = env_first(root, "", "tasks", &task, out, err)) ||
	    (rc = env_str(task, "tasks[0].", "id", &out->task_id, out, err)) ||
	    (rc = env_str(task, "tasks[0].", "status_message", &msg, out, err)) ||
	    (rc = env_num(task, "tasks[0].", "cost", &task_cost, &have_task_cost, out, err)) ||
	    (rc = env_int(task, "tasks[0].", "status_code", INT32_MIN, INT32_MAX, &x, &found, out,
			  err)))
		return rc;
	if (msg)
		out->status_message = msg;
	if (!found)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].status_code: missing");
	out->task_status = (int)x;
	if (x != STATUS_OK)
		return resp_fail(out, err, RESP_TASK_STATUS, "API task error %d: %s",
				 out->task_status, msg ? msg : "(no message)");
	if (tasks_error > 0)
		return resp_fail(out, err, RESP_TASK_STATUS,
				 "API task error: tasks_error is %lld although tasks[0] has "
				 "status %d",
				 tasks_error, out->task_status);

	if (jd_get(d, task, "result") == JD_NONE)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result is null although the task's "
				 "status is %d",
				 out->task_status);
	if ((rc = env_first(task, "tasks[0].", "result", &res0, out, err)) ||
	    (rc = env_int(res0, "tasks[0].result[0].", "total_count", 0, INT64_MAX,
			  &out->total_count, &found, out, err)))
		return rc;
	if (!found)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result[0].total_count: missing");
	if ((rc = env_int(res0, "tasks[0].result[0].", "items_count", 0, INT64_MAX, &items_count,
			  &have_items_count, out, err)))
		return rc;
	/* "items": null (or absent) comes with total_count 0: no items */
	if ((items = jd_get(d, res0, "items")) != JD_NONE) {
		if (!jd_is(d, items, JD_ARRAY))
			return resp_fail(out, err, RESP_MALFORMED,
					 "tasks[0].result[0].items: expected an array, got %s",
					 jd_type_name(d, items));
		out->items = items;
		out->n_items = jd_len(d, items);
	}
	if (have_items_count && (unsigned long long)items_count != out->n_items)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result[0].items_count is %lld but items "
				 "holds %zu",
				 items_count, out->n_items);
	/* judged only now: a failed task's status says more than its cost */
	if ((have_top_cost && (rc = check_cost("", top_cost, out, err))) ||
	    (have_task_cost && (rc = check_cost("tasks[0].", task_cost, out, err))))
		return rc;
	out->cost = have_task_cost ? task_cost : top_cost;
	out->task = task;
	out->result = res0;
	out->error = RESP_OK;
	return 0;
}

int response_parse(const char *body, size_t len, struct api_response *out,
		   struct etl_error *err)
{
	char msg[sizeof(err->msg)];

	memset(out, 0, sizeof(*out));
	out->items = JD_NONE;
	out->task = JD_NONE;
	out->result = JD_NONE;
	out->body_len = body ? len : 0;
	if (jd_parse(&out->doc, body ? body : "", body ? len : 0, msg, sizeof(msg)) != 0)
		return resp_fail(out, err, RESP_MALFORMED, "%s", msg);
	out->root = out->doc.nodes;
	return envelope(out, err);
}

void response_free(struct api_response *resp)
{
	if (!resp)
		return;
	jd_free(&resp->doc);
	memset(resp, 0, sizeof(*resp));
	resp->items = JD_NONE;
	resp->task = JD_NONE;
	resp->result = JD_NONE;
}

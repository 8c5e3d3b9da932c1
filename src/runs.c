/*
 * runs.c - `intersect-etl runs`: recent runs, and one run's sets and failed
 * pages. See runs.h.
 */
#include "runs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "job.h"
#include "migrate.h"

/*
 * The columns every run is read with, list or detail. Timestamps twice: for
 * the table (UTC, to the second; db_connect sets the session to UTC) and
 * ISO 8601 for JSON. Money as float8 text: the shortest exact digits.
 */
#define RUN_COLUMNS                                                                        \
	"SELECT run_id, job, snapshot_date::text, status,\n"                                   \
	"       to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'),\n"                               \
	"       to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS'),\n"                              \
	"       round(duration_seconds::numeric, 3)::float8::text,\n"                          \
	"       pages, failed_pages, rows, sets_complete, sets_failed,\n"                      \
	"       cost_usd::float8::text, error, replay_of,\n"                                   \
	"       to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"                      \
	"       to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"                     \
	"       attempts, attempt_statuses, last_failure\n"                                   \
	"FROM etl_run_summary\n"

enum {
	R_ID, R_JOB, R_DATE, R_STATUS, R_STARTED, R_FINISHED, R_DURATION, R_PAGES, R_FAILED_PAGES,
	R_ROWS, R_SETS_COMPLETE, R_SETS_FAILED, R_COST, R_ERROR, R_REPLAY_OF, R_STARTED_ISO,
	R_FINISHED_ISO, R_ATTEMPTS, R_ATTEMPT_STATUSES, R_LAST_FAILURE
};

/* Every attempt of one run (sql/012_run_attempts.sql), oldest first. */
static const char attempts_sql[] =
	"SELECT attempt, status, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'),\n"
	"       round(extract(epoch FROM finished_at - started_at), 3)::float8::text,\n"
	"       pages, failed_pages, rows, cost_usd::float8::text, error,\n"
	"       to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
	"       to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')\n"
	"FROM etl_run_attempt WHERE run_id = $1::bigint ORDER BY attempt";
enum {
	A_NO, A_STATUS, A_STARTED, A_DURATION, A_PAGES, A_FAILED, A_ROWS, A_COST, A_ERROR,
	A_STARTED_ISO, A_FINISHED_ISO
};

static const char list_sql[] = RUN_COLUMNS
	"WHERE ($1::text IS NULL OR job = $1) AND ($3::text IS NULL OR status = $3)\n"
	"  AND ($4::date IS NULL OR snapshot_date >= $4::date)\n"
	"ORDER BY started_at DESC, run_id DESC\n"
	"LIMIT $2::int";

static const char run_sql[] = RUN_COLUMNS
	"WHERE run_id = $1::bigint AND ($2::text IS NULL OR job = $2)";

static const char sets_sql[] =
	"SELECT t.name, s.status, s.total_count, s.pages, s.rows, s.cost_usd::float8::text,\n"
	"       s.error, to_char(s.finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')\n"
	"FROM etl_run_set s JOIN target_set t USING (target_set_id)\n"
	"WHERE s.run_id = $1::bigint\n"
	"ORDER BY t.name COLLATE \"C\"";
enum { S_NAME, S_STATUS, S_TOTAL, S_PAGES, S_ROWS, S_COST, S_ERROR, S_FINISHED_ISO };

static const char pages_sql[] =
	"SELECT t.name, p.page_offset, p.page_limit, p.attempts, p.http_status,\n"
	"       p.api_status_code, p.api_status_message, p.error,\n"
	"       to_char(p.finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')\n"
	"FROM etl_page p JOIN target_set t USING (target_set_id)\n"
	"WHERE p.run_id = $1::bigint AND p.status = 'failed'\n"
	"ORDER BY t.name COLLATE \"C\", p.page_offset";
enum { P_SET, P_OFFSET, P_LIMIT, P_ATTEMPTS, P_HTTP, P_CODE, P_MESSAGE, P_ERROR, P_FINISHED_ISO };

int runs_valid_status(const char *s)
{
	static const char *const statuses[] = {"running", "succeeded",   "partial",
					       "failed",  "interrupted", "abandoned"};

	for (size_t i = 0; i < ETL_ARRAY_LEN(statuses); i++)
		if (strcmp(s, statuses[i]) == 0)
			return 1;
	return 0;
}

int runs_parse_id(const char *s, long long *id)
{
	char *end;
	long long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end || v <= 0)
		return -1;
	*id = v;
	return 0;
}

static const char *cell(const PGresult *r, int row, int col)
{
	if (!r || row >= PQntuples(r) || PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

/* "4.2s", "12m05s", "3h07m"; "-" while a run has no end. */
static void format_duration(char *buf, size_t size, const char *text)
{
	double s;
	long long whole;

	if (!text) {
		snprintf(buf, size, "-");
		return;
	}
	s = strtod(text, NULL);
	whole = (long long)(s + 0.5);
	if (s < 59.95)
		snprintf(buf, size, "%.1fs", s < 0 ? 0.0 : s);
	else if (whole < 3600)
		snprintf(buf, size, "%lldm%02llds", whole / 60, whole % 60);
	else
		snprintf(buf, size, "%lldh%02lldm", whole / 3600, whole % 3600 / 60);
}

/* One run as a JSON object (the caller owns it). */
static json_object *run_json(const PGresult *r, int i)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "run_id", report_json_int(cell(r, i, R_ID)));
	json_object_object_add(o, "job", report_json_string(cell(r, i, R_JOB)));
	json_object_object_add(o, "snapshot_date", report_json_string(cell(r, i, R_DATE)));
	json_object_object_add(o, "status", report_json_string(cell(r, i, R_STATUS)));
	json_object_object_add(o, "started_at", report_json_string(cell(r, i, R_STARTED_ISO)));
	json_object_object_add(o, "finished_at", report_json_string(cell(r, i, R_FINISHED_ISO)));
	json_object_object_add(o, "duration_seconds", report_json_number(cell(r, i, R_DURATION)));
	json_object_object_add(o, "pages", report_json_int(cell(r, i, R_PAGES)));
	json_object_object_add(o, "failed_pages", report_json_int(cell(r, i, R_FAILED_PAGES)));
	json_object_object_add(o, "rows", report_json_int(cell(r, i, R_ROWS)));
	json_object_object_add(o, "sets_complete", report_json_int(cell(r, i, R_SETS_COMPLETE)));
	json_object_object_add(o, "sets_failed", report_json_int(cell(r, i, R_SETS_FAILED)));
	json_object_object_add(o, "cost_usd", report_json_number(cell(r, i, R_COST)));
	json_object_object_add(o, "error", report_json_string(cell(r, i, R_ERROR)));
	json_object_object_add(o, "replay_of", report_json_int(cell(r, i, R_REPLAY_OF)));
	json_object_object_add(o, "attempts", report_json_int(cell(r, i, R_ATTEMPTS)));
	json_object_object_add(o, "attempt_statuses",
			       report_json_string(cell(r, i, R_ATTEMPT_STATUSES)));
	json_object_object_add(o, "last_failure", report_json_string(cell(r, i, R_LAST_FAILURE)));
	return o;
}

/*
 * The ATTEMPTS cell: "1", or with more than one the outcomes in order,
 * "2 (failed, succeeded)": a run mended by a later attempt shows its failure.
 */
static void format_attempts(char *buf, size_t size, const PGresult *r, int i)
{
	const char *n = cell(r, i, R_ATTEMPTS), *st = cell(r, i, R_ATTEMPT_STATUSES);

	if (!n || strcmp(n, "0") == 0)
		snprintf(buf, size, "-");
	else if (strcmp(n, "1") == 0 || !st)
		snprintf(buf, size, "%s", n);
	else
		snprintf(buf, size, "%s (%s)", n, st);
}

static void print_list_table(const PGresult *r, FILE *out)
{
	static const char *const head[] = {"RUN",	    "JOB",	 "SNAPSHOT", "STATUS",
					   "ATTEMPTS",	    "STARTED (UTC)", "DURATION", "SETS",
					   "PAGES",	    "FAILED",	 "ROWS",     "COST",
					   "ERROR"};
	static const enum report_align align[] = {
		REPORT_RIGHT, REPORT_LEFT,  REPORT_LEFT,  REPORT_LEFT,	REPORT_LEFT,
		REPORT_LEFT,  REPORT_RIGHT, REPORT_RIGHT, REPORT_RIGHT, REPORT_RIGHT,
		REPORT_RIGHT, REPORT_RIGHT, REPORT_LEFT};
	struct report_table *t = report_table_new(ETL_ARRAY_LEN(head), head, align);
	char buf[256];
	int i;

	for (i = 0; i < PQntuples(r); i++) {
		long long done = strtoll(PQgetvalue(r, i, R_SETS_COMPLETE), NULL, 10);
		long long failed = strtoll(PQgetvalue(r, i, R_SETS_FAILED), NULL, 10);

		report_table_cell(t, cell(r, i, R_ID));
		report_table_cell(t, cell(r, i, R_JOB));
		report_table_cell(t, cell(r, i, R_DATE));
		report_table_cell(t, cell(r, i, R_STATUS));
		format_attempts(buf, sizeof(buf), r, i);
		report_table_cell(t, buf);
		report_table_cell(t, cell(r, i, R_STARTED));
		format_duration(buf, sizeof(buf), cell(r, i, R_DURATION));
		report_table_cell(t, buf);
		report_table_cellf(t, "%lld/%lld", done, done + failed);
		report_table_cell(t, cell(r, i, R_PAGES));
		report_table_cell(t, cell(r, i, R_FAILED_PAGES));
		report_table_cell(t, cell(r, i, R_ROWS));
		report_format_cost(buf, sizeof(buf), cell(r, i, R_COST));
		report_table_cell(t, buf);
		report_table_cell(t, cell(r, i, R_ERROR) ? cell(r, i, R_ERROR) : "");
	}
	if (PQntuples(r) == 0)
		fputs("no runs\n", out);
	else
		report_table_print(t, out);
	report_table_free(t);
}

static int show_list(PGconn *conn, const struct runs_options *opt, const char *job, FILE *out,
		     struct etl_error *err)
{
	PGresult *r = NULL;
	char limit[16];
	const char *params[4] = {job, limit, opt->status, opt->since};
	json_object *doc, *arr;
	int rc, i;

	snprintf(limit, sizeof(limit), "%d", opt->limit);
	if ((rc = db_query(conn, list_sql, 4, params, &r, err)) != 0)
		return rc;
	if (opt->format == REPORT_JSON) {
		doc = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(doc, "runs", arr);
		for (i = 0; i < PQntuples(r); i++)
			json_object_array_add(arr, run_json(r, i));
		report_json_print(doc, out);
		json_object_put(doc);
	} else {
		print_list_table(r, out);
	}
	PQclear(r);
	return 0;
}

/* A header value: "-" for SQL NULL. */
static const char *field(const PGresult *r, int col)
{
	const char *v = cell(r, 0, col);

	return v ? v : "-";
}

/* The run's own facts, one "key  value" line each. */
static void print_run_header(const PGresult *r, FILE *out)
{
	char dur[64], cost[64];
	char *job = report_safe_text(field(r, R_JOB));
	const char *v;

	format_duration(dur, sizeof(dur), cell(r, 0, R_DURATION));
	report_format_cost(cost, sizeof(cost), cell(r, 0, R_COST));
	fprintf(out, "run %s of job %s: %s", field(r, R_ID), job, field(r, R_STATUS));
	if ((v = cell(r, 0, R_REPLAY_OF)))
		fprintf(out, " (replay of run %s)", v);
	fprintf(out, "\nsnapshot  %s\n", field(r, R_DATE));
	fprintf(out, "started   %s UTC\n", field(r, R_STARTED));
	if ((v = cell(r, 0, R_FINISHED)))
		fprintf(out, "finished  %s UTC (%s)\n", v, dur);
	else
		fputs("finished  -\n", out);
	fprintf(out, "sets      %s complete, %s failed\n", field(r, R_SETS_COMPLETE),
		field(r, R_SETS_FAILED));
	fprintf(out, "pages     %s (%s failed)\n", field(r, R_PAGES), field(r, R_FAILED_PAGES));
	fprintf(out, "rows      %s\n", field(r, R_ROWS));
	fprintf(out, "cost      %s\n", cost);
	v = cell(r, 0, R_ATTEMPTS);
	if (v && strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
		fprintf(out, "attempts  %s: %s\n", v, field(r, R_ATTEMPT_STATUSES));
	if ((v = cell(r, 0, R_ERROR))) {
		char *safe = report_safe_text(v);

		fprintf(out, "error     %s\n", safe);
		free(safe);
	}
	free(job);
}

/* A run's attempts, when there was more than one: which failed before which succeeded. */
static void print_attempts_table(const PGresult *att, FILE *out)
{
	static const char *const head[] = {"ATTEMPT", "STATUS", "STARTED (UTC)", "DURATION",
					   "PAGES",   "FAILED", "ROWS",		 "COST",
					   "ERROR"};
	static const enum report_align align[] = {REPORT_RIGHT, REPORT_LEFT,  REPORT_LEFT,
						  REPORT_RIGHT, REPORT_RIGHT, REPORT_RIGHT,
						  REPORT_RIGHT, REPORT_RIGHT, REPORT_LEFT};
	struct report_table *t;
	char buf[64];
	int i;

	if (PQntuples(att) < 2)
		return;
	t = report_table_new(ETL_ARRAY_LEN(head), head, align);
	for (i = 0; i < PQntuples(att); i++) {
		report_table_cell(t, cell(att, i, A_NO));
		report_table_cell(t, cell(att, i, A_STATUS));
		report_table_cell(t, cell(att, i, A_STARTED));
		format_duration(buf, sizeof(buf), cell(att, i, A_DURATION));
		report_table_cell(t, buf);
		report_table_cell(t, cell(att, i, A_PAGES));
		report_table_cell(t, cell(att, i, A_FAILED));
		report_table_cell(t, cell(att, i, A_ROWS));
		report_format_cost(buf, sizeof(buf), cell(att, i, A_COST));
		report_table_cell(t, buf);
		report_table_cell(t, cell(att, i, A_ERROR) ? cell(att, i, A_ERROR) : "");
	}
	fputc('\n', out);
	report_table_print(t, out);
	report_table_free(t);
}

static json_object *attempts_json(const PGresult *att)
{
	json_object *arr = json_object_new_array();
	int i;

	for (i = 0; i < PQntuples(att); i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "attempt", report_json_int(cell(att, i, A_NO)));
		json_object_object_add(o, "status", report_json_string(cell(att, i, A_STATUS)));
		json_object_object_add(o, "started_at",
				       report_json_string(cell(att, i, A_STARTED_ISO)));
		json_object_object_add(o, "finished_at",
				       report_json_string(cell(att, i, A_FINISHED_ISO)));
		json_object_object_add(o, "duration_seconds",
				       report_json_number(cell(att, i, A_DURATION)));
		json_object_object_add(o, "pages", report_json_int(cell(att, i, A_PAGES)));
		json_object_object_add(o, "failed_pages", report_json_int(cell(att, i, A_FAILED)));
		json_object_object_add(o, "rows", report_json_int(cell(att, i, A_ROWS)));
		json_object_object_add(o, "cost_usd", report_json_number(cell(att, i, A_COST)));
		json_object_object_add(o, "error", report_json_string(cell(att, i, A_ERROR)));
		json_object_array_add(arr, o);
	}
	return arr;
}

static void print_detail_table(const PGresult *run, const PGresult *att, const PGresult *sets,
			       const PGresult *pages, FILE *out)
{
	static const char *const sh[] = {"TARGET SET", "STATUS", "TOTAL", "PAGES", "ROWS",
					 "COST", "ERROR"};
	static const enum report_align sa[] = {REPORT_LEFT,  REPORT_LEFT,  REPORT_RIGHT, REPORT_RIGHT,
					       REPORT_RIGHT, REPORT_RIGHT, REPORT_LEFT};
	static const char *const ph[] = {"TARGET SET", "OFFSET", "LIMIT", "ATTEMPTS", "HTTP",
					 "API CODE", "API MESSAGE", "ERROR"};
	static const enum report_align pa[] = {REPORT_LEFT,  REPORT_RIGHT, REPORT_RIGHT,
					       REPORT_RIGHT, REPORT_RIGHT, REPORT_RIGHT,
					       REPORT_LEFT,  REPORT_LEFT};
	struct report_table *t;
	char cost[64];
	int i;

	print_run_header(run, out);
	print_attempts_table(att, out);
	fputc('\n', out);
	t = report_table_new(ETL_ARRAY_LEN(sh), sh, sa);
	for (i = 0; i < PQntuples(sets); i++) {
		report_table_cell(t, cell(sets, i, S_NAME));
		report_table_cell(t, cell(sets, i, S_STATUS));
		report_table_cell(t, cell(sets, i, S_TOTAL));
		report_table_cell(t, cell(sets, i, S_PAGES));
		report_table_cell(t, cell(sets, i, S_ROWS));
		report_format_cost(cost, sizeof(cost), cell(sets, i, S_COST));
		report_table_cell(t, cost);
		report_table_cell(t, cell(sets, i, S_ERROR) ? cell(sets, i, S_ERROR) : "");
	}
	if (PQntuples(sets) == 0)
		fputs("no target sets\n", out);
	else
		report_table_print(t, out);
	report_table_free(t);
	if (PQntuples(pages) == 0)
		return;
	fprintf(out, "\n%d failed page%s\n", PQntuples(pages), PQntuples(pages) == 1 ? "" : "s");
	t = report_table_new(ETL_ARRAY_LEN(ph), ph, pa);
	for (i = 0; i < PQntuples(pages); i++) {
		int k;

		for (k = P_SET; k <= P_ERROR; k++)
			report_table_cell(t, cell(pages, i, k));
	}
	report_table_print(t, out);
	report_table_free(t);
}

static void print_detail_json(const PGresult *run, const PGresult *att, const PGresult *sets,
			      const PGresult *pages, FILE *out)
{
	json_object *doc = json_object_new_object();
	json_object *sarr = json_object_new_array();
	json_object *parr = json_object_new_array();
	int i;

	json_object_object_add(doc, "run", run_json(run, 0));
	json_object_object_add(doc, "attempts", attempts_json(att));
	json_object_object_add(doc, "target_sets", sarr);
	json_object_object_add(doc, "failed_pages", parr);
	for (i = 0; i < PQntuples(sets); i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "name", report_json_string(cell(sets, i, S_NAME)));
		json_object_object_add(o, "status", report_json_string(cell(sets, i, S_STATUS)));
		json_object_object_add(o, "total_count", report_json_int(cell(sets, i, S_TOTAL)));
		json_object_object_add(o, "pages", report_json_int(cell(sets, i, S_PAGES)));
		json_object_object_add(o, "rows", report_json_int(cell(sets, i, S_ROWS)));
		json_object_object_add(o, "cost_usd", report_json_number(cell(sets, i, S_COST)));
		json_object_object_add(o, "error", report_json_string(cell(sets, i, S_ERROR)));
		json_object_object_add(o, "finished_at",
				       report_json_string(cell(sets, i, S_FINISHED_ISO)));
		json_object_array_add(sarr, o);
	}
	for (i = 0; i < PQntuples(pages); i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "target_set", report_json_string(cell(pages, i, P_SET)));
		json_object_object_add(o, "offset", report_json_int(cell(pages, i, P_OFFSET)));
		json_object_object_add(o, "limit", report_json_int(cell(pages, i, P_LIMIT)));
		json_object_object_add(o, "attempts", report_json_int(cell(pages, i, P_ATTEMPTS)));
		json_object_object_add(o, "http_status", report_json_int(cell(pages, i, P_HTTP)));
		json_object_object_add(o, "api_status_code", report_json_int(cell(pages, i, P_CODE)));
		json_object_object_add(o, "api_status_message",
				       report_json_string(cell(pages, i, P_MESSAGE)));
		json_object_object_add(o, "error", report_json_string(cell(pages, i, P_ERROR)));
		json_object_object_add(o, "finished_at",
				       report_json_string(cell(pages, i, P_FINISHED_ISO)));
		json_object_array_add(parr, o);
	}
	report_json_print(doc, out);
	json_object_put(doc);
}

static int show_run(PGconn *conn, const struct runs_options *opt, const char *job,
		    const char *schema, FILE *out, struct etl_error *err)
{
	PGresult *run = NULL, *att = NULL, *sets = NULL, *pages = NULL;
	char id[24];
	const char *params[2] = {id, job};
	int rc;

	snprintf(id, sizeof(id), "%lld", opt->run_id);
	if ((rc = db_query(conn, run_sql, 2, params, &run, err)) != 0)
		goto out;
	if (PQntuples(run) == 0) {
		if (job)
			rc = etl_fail(err, ETL_EFAIL, "run %s: no such run of job %s in schema %s", id,
				      job, schema);
		else if (!opt->schema)
			/* the schema came from nowhere the user said: say so */
			rc = etl_fail(err, ETL_EFAIL,
				      "run %s: no such run in schema %s (the default: neither a JOB "
				      "file nor --schema was given)\nhint: name the JOB file (`runs "
				      "JOB %s`) or --schema SCHEMA to look where the job keeps its runs",
				      id, schema, id);
		else
			rc = etl_fail(err, ETL_EFAIL, "run %s: no such run in schema %s", id, schema);
		goto out;
	}
	if ((rc = db_query(conn, attempts_sql, 1, params, &att, err)) != 0)
		goto out;
	if ((rc = db_query(conn, sets_sql, 1, params, &sets, err)) != 0)
		goto out;
	if ((rc = db_query(conn, pages_sql, 1, params, &pages, err)) != 0)
		goto out;
	if (opt->format == REPORT_JSON)
		print_detail_json(run, att, sets, pages, out);
	else
		print_detail_table(run, att, sets, pages, out);
out:
	PQclear(run);
	PQclear(att);
	PQclear(sets);
	PQclear(pages);
	return rc;
}

int runs_show(const struct runs_options *opt, FILE *out, struct etl_error *err)
{
	struct job *job = NULL;
	PGconn *conn = NULL;
	const char *url, *schema, *name;
	int rc;

	/* the database's credentials only: runs never calls the API */
	if (opt->job_path && (rc = job_load_file_for(opt->job_path, JOB_NEED_DB, &job, err)) != 0)
		goto out;
	url = opt->database_url ? opt->database_url
	      : job		? job->db.url
	      : getenv("DATABASE_URL") ? getenv("DATABASE_URL")
				       : "";
	schema = opt->schema ? opt->schema : job ? job->db.schema : "dataforseo";
	name = opt->job ? opt->job : job ? job->name : NULL;
	if ((rc = db_connect(url, schema, 0, &conn, err)) != 0)
		goto out;
	if ((rc = migrate_check(conn, err)) != 0)
		goto out;
	if (opt->run_id > 0)
		rc = show_run(conn, opt, name, schema, out, err);
	else
		rc = show_list(conn, opt, name, out, err);
	if (rc == 0 && (fflush(out) != 0 || ferror(out)))
		rc = etl_fail(err, ETL_EFAIL, "writing the list of runs failed");
out:
	if (conn)
		PQfinish(conn);
	job_free(job);
	return rc;
}

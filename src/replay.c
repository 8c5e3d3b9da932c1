/*
 * replay.c - a run re-done from raw_page. See replay.h.
 */
#include "replay.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fetch.h"
#include "gzip.h"
#include "job.h"
#include "load.h"
#include "log.h"
#include "migrate.h"
#include "transform.h"

/* The original run as the ledger has it. */
struct replay_src {
	long long run_id;
	char job[128];
	char snapshot_date[16];
};

/* The targets of an archived request: its "targets" object, keys "1".."N". */
static int request_targets(const char *request, char ***out, size_t *n, struct etl_error *err)
{
	json_object *req = json_tokener_parse(request), *task = req, *targets;
	size_t i, count;

	*out = NULL;
	*n = 0;
	if (task && json_object_is_type(task, json_type_array))
		task = json_object_array_get_idx(task, 0);
	if (!task || !json_object_object_get_ex(task, "targets", &targets) ||
	    !json_object_is_type(targets, json_type_object)) {
		json_object_put(req);
		return etl_fail(err, ETL_EFAIL, "archived request has no targets object");
	}
	count = (size_t)json_object_object_length(targets);
	*out = xcalloc(count ? count : 1, sizeof(**out));
	for (i = 0; i < count; i++) {
		char key[24];
		json_object *t;

		snprintf(key, sizeof(key), "%zu", i + 1);
		if (!json_object_object_get_ex(targets, key, &t) ||
		    !json_object_is_type(t, json_type_string)) {
			for (size_t j = 0; j < i; j++)
				free((*out)[j]);
			free(*out);
			*out = NULL;
			json_object_put(req);
			return etl_fail(err, ETL_EFAIL, "archived request: targets has no key \"%s\"", key);
		}
		(*out)[i] = xstrdup(json_object_get_string(t));
	}
	*n = count;
	json_object_put(req);
	return 0;
}

static void free_targets(char **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

/*
 * Replays one set: every archived page of the original, transformed and
 * loaded under the replay's run, then published. *set_error is set (caller
 * frees) when the set cannot be replayed; the return is for database errors.
 */
static int replay_set(PGconn *conn, const struct replay_src *src, long long new_run,
		      long long set_id, const char *request_hash, long long total_count,
		      struct run_result *result, char **set_error, struct etl_error *err)
{
	char run[24], set[24];
	const char *params[2] = {run, set};
	struct set_start st;
	struct row_batch batch;
	struct strbuf body; /* one page's decoded body, reused */
	PGresult *res = NULL;
	int rc, i;

	*set_error = NULL;
	row_batch_init(&batch);
	sb_init(&body);
	snprintf(run, sizeof(run), "%lld", src->run_id);
	snprintf(set, sizeof(set), "%lld", set_id);
	rc = load_start_set(conn, new_run, set_id, src->snapshot_date, request_hash, &st, err);
	free(st.pages);
	if (rc != 0)
		return rc;
	/* The pages the original loaded (all of them have a body, or the set
	 * cannot be replayed); each body is read on its own, so memory holds one
	 * page at a time, as in a run. */
	rc = db_query(conn,
		      "SELECT p.page_offset, p.page_limit, r.page_offset IS NOT NULL"
		      " FROM etl_page p LEFT JOIN raw_page r USING (run_id, target_set_id, page_offset)"
		      " WHERE p.run_id = $1 AND p.target_set_id = $2 AND p.status = 'loaded'"
		      " ORDER BY p.page_offset",
		      2, params, &res, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < PQntuples(res) && !*set_error; i++) {
		const char *page_params[3] = {run, set, PQgetvalue(res, i, 0)};
		struct api_response resp;
		struct etl_error perr = {0, ""};
		struct page_record rec;
		struct transform_ctx tc;
		PGresult *page = NULL;
		char **targets = NULL;
		size_t n_targets = 0;

		memset(&resp, 0, sizeof(resp));
		if (strcmp(PQgetvalue(res, i, 2), "t") != 0) {
			*set_error = xasprintf("offset %s has no archived body", PQgetvalue(res, i, 0));
			break;
		}
		/* binary results: bytea as its bytes (text would double them as hex) */
		rc = db_query_bin(conn,
				  "SELECT request::text, body, body_gzip FROM raw_page"
				  " WHERE run_id = $1 AND target_set_id = $2 AND page_offset = $3",
				  3, page_params, NULL, NULL, 1, &page, err);
		if (rc != 0)
			break;
		sb_reset(&body);
		if (!PQgetisnull(page, 0, 2) &&
		    gunzip_all(PQgetvalue(page, 0, 2), (size_t)PQgetlength(page, 0, 2),
			       FETCH_MAX_RESPONSE_BYTES, &body, perr.msg, sizeof(perr.msg)) != 0) {
			*set_error = xasprintf("offset %s: archived gzip body: %s",
					       PQgetvalue(res, i, 0), perr.msg);
			PQclear(page);
			break;
		}
		if (PQgetisnull(page, 0, 2))
			sb_append(&body, PQgetvalue(page, 0, 1), (size_t)PQgetlength(page, 0, 1));
		if (request_targets(PQgetvalue(page, 0, 0), &targets, &n_targets, &perr) != 0 ||
		    response_parse(body.data ? body.data : "", body.len, &resp, &perr) != 0) {
			*set_error = xasprintf("offset %s: %s", PQgetvalue(res, i, 0), perr.msg);
			response_free(&resp);
			free_targets(targets, n_targets);
			PQclear(page);
			break;
		}
		tc.snapshot_date = src->snapshot_date;
		tc.target_set_id = set_id;
		tc.run_id = new_run;
		tc.offset = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		tc.limit = atoi(PQgetvalue(res, i, 1));
		tc.targets = targets;
		tc.n_targets = n_targets;
		row_batch_reset(&batch);
		if (transform_page(&resp, &tc, &batch, &perr) != 0) {
			*set_error = xasprintf("offset %lld: %s", tc.offset, perr.msg);
		} else {
			memset(&rec, 0, sizeof(rec));
			rec.run_id = new_run;
			rec.target_set_id = set_id;
			rec.offset = tc.offset;
			rec.limit = tc.limit;
			rec.attempts = 1;
			rec.http_status = 200;
			rec.api_status_code = resp.task_status;
			rec.api_status_message = resp.status_message;
			rec.task_id = resp.task_id;
			rec.items = (long long)resp.n_items;
			rec.rows = (long long)batch.n_rows;
			rec.total_count = resp.total_count;
			rec.cost_usd = 0; /* a replay pays nothing */
			rec.direct = st.direct;
			rc = load_page(conn, src->snapshot_date, &rec, &batch, err);
			result->pages++;
			result->rows += rec.rows;
		}
		response_free(&resp);
		free_targets(targets, n_targets);
		PQclear(page);
		if (rc != 0)
			break;
	}
	PQclear(res);
	row_batch_free(&batch);
	sb_free(&body);
	if (rc != 0)
		return rc;
	return load_finish_set(conn, new_run, set_id, src->snapshot_date, total_count, *set_error,
			       err);
}

int replay_run(const char *job_path, long long run_id, struct run_result *result,
	       struct etl_error *err)
{
	struct replay_src src;
	struct job *job = NULL;
	PGconn *conn = NULL;
	PGresult *res = NULL, *sets = NULL;
	char id[24];
	const char *params[1];
	long long new_run = 0;
	size_t failed = 0, done = 0;
	int rc, i;

	memset(result, 0, sizeof(*result));
	memset(&src, 0, sizeof(src));
	if ((rc = job_load_file(job_path, &job, err)) != 0)
		return rc;
	if ((rc = db_connect(job->db.url, job->db.schema, 0, &conn, err)) != 0)
		goto out;
	if ((rc = migrate_check(conn, err)) != 0)
		goto out;
	if ((rc = load_lock_job(conn, job->name, err)) != 0)
		goto out;
	if ((rc = load_prepare(conn, err)) != 0)
		goto out;
	snprintf(id, sizeof(id), "%lld", run_id);
	params[0] = id;
	rc = db_query(conn,
		      "SELECT job, snapshot_date, (SELECT count(*) FROM raw_page WHERE run_id = $1)"
		      " FROM etl_run WHERE run_id = $1",
		      1, params, &res, err);
	if (rc != 0)
		goto out;
	if (PQntuples(res) == 0) {
		rc = etl_fail(err, ETL_EFAIL, "replay: there is no run %lld", run_id);
		goto out;
	}
	src.run_id = run_id;
	snprintf(src.job, sizeof(src.job), "%s", PQgetvalue(res, 0, 0));
	snprintf(src.snapshot_date, sizeof(src.snapshot_date), "%s", PQgetvalue(res, 0, 1));
	if (strcmp(src.job, job->name) != 0) {
		rc = etl_fail(err, ETL_EUSAGE, "replay: run %lld belongs to job %s, not %s", run_id,
			      src.job, job->name);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "0") == 0) {
		rc = etl_fail(err, ETL_EFAIL,
			      "replay: run %lld has no archived pages\n"
			      "hint: it ran with archive: false, fetched nothing, or its archive was "
			      "removed by retention.keep_archive",
			      run_id);
		goto out;
	}
	PQclear(res);
	res = NULL;

	if ((rc = load_insert_run(conn, src.job, src.snapshot_date, run_id, &new_run, err)) != 0)
		goto out;
	result->run_id = new_run;
	if ((rc = load_ensure_partition(conn, src.snapshot_date, err)) != 0)
		goto out;
	log_info("run %lld: replay of run %lld (job %s, snapshot %s) from the archive", new_run,
		 run_id, src.job, src.snapshot_date);

	params[0] = id;
	rc = db_query(conn,
		      "SELECT rs.target_set_id, rs.request_hash, coalesce(rs.total_count, -1), t.name,"
		      " rs.status FROM etl_run_set rs JOIN target_set t USING (target_set_id)"
		      " WHERE rs.run_id = $1 ORDER BY t.name",
		      1, params, &sets, err);
	if (rc != 0)
		goto out;
	for (i = 0; i < PQntuples(sets); i++) {
		const char *name = PQgetvalue(sets, i, 3);
		char *set_error = NULL;

		if (strcmp(PQgetvalue(sets, i, 4), "complete") != 0) {
			log_warn("target set %s: not complete in run %lld (%s): nothing to replay", name,
				 run_id, PQgetvalue(sets, i, 4));
			continue;
		}
		rc = replay_set(conn, &src, new_run, strtoll(PQgetvalue(sets, i, 0), NULL, 10),
				PQgetvalue(sets, i, 1), strtoll(PQgetvalue(sets, i, 2), NULL, 10), result,
				&set_error, err);
		if (rc != 0) {
			free(set_error);
			goto out;
		}
		if (set_error) {
			log_warn("target set %s failed: %s", name, set_error);
			failed++;
		} else {
			log_info("target set %s: replayed", name);
			done++;
		}
		free(set_error);
	}
	result->sets_complete = done;
	result->sets_failed = failed;
	rc = load_finish_run(conn, new_run, failed == 0 ? "succeeded" : done ? "partial" : "failed",
			     failed ? "some target sets could not be replayed" : NULL, err);
	if (rc == 0 && failed)
		rc = etl_fail(err, done ? ETL_EPARTIAL : ETL_EFAIL,
			      "replay run %lld: %zu of %zu target sets could not be replayed", new_run,
			      failed, failed + done);
out:
	if (rc != 0)
		load_fail_run(conn, new_run, err->msg);
	PQclear(res);
	PQclear(sets);
	if (conn)
		PQfinish(conn);
	job_free(job);
	return rc;
}

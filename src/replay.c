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
#include "loader.h"
#include "log.h"
#include "migrate.h"
#include "transform.h"

/* Pages transformed and waiting for a loading thread, at most (as in a run). */
#define REPLAY_LOAD_QUEUE 2

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
 * The loading side of a replay: as in a run, pages are loaded on worker
 * threads with connections of their own (database.connections) while this
 * thread reads, decodes and transforms the next ones on its connection.
 */
struct replay_msg {
	struct loader_msg base;  /* first member: the loader's link and rc */
	struct page_record rec;  /* its strings point into the fields below */
	struct row_batch batch;
	char *status_message;    /* owned copies of what rec points at */
	char *task_id;
	struct etl_error err;    /* the outcome, when base.rc != 0 */
};

struct replay_loading {
	struct loader *loader;
	PGconn *conns[JOB_MAX_CONNECTIONS];
	int n_conns;
	const char *snapshot_date;
	struct replay_msg *spare;  /* completed messages, kept for their batches */
};

static int replay_exec(void *ctx, int worker, struct loader_msg *lm)
{
	struct replay_loading *rl = ctx;
	struct replay_msg *m = (struct replay_msg *)lm;

	int refused; /* a replay stops at any failure, refused or not */

	return load_page(rl->conns[worker], &m->rec, &m->batch, &refused, &m->err);
}

/* A completed message: counted (or its error kept in *err), then recycled. */
static int replay_done(struct replay_loading *rl, struct replay_msg *m, struct run_result *result,
		       int rc, struct etl_error *err)
{
	if (m->base.rc != 0 && rc == 0) {
		*err = m->err;
		etl_error_prefix(err, "loading offset %lld: ", m->rec.offset);
		rc = m->base.rc;
	} else if (m->base.rc == 0) {
		result->pages++;
		result->rows += m->rec.rows;
	}
	free(m->status_message);
	free(m->task_id);
	m->status_message = m->task_id = NULL;
	m->base.next = (struct loader_msg *)rl->spare;
	rl->spare = m;
	return rc;
}

/* Waits for every page handed to the loader; the first failure wins. */
static int replay_drain(struct replay_loading *rl, struct run_result *result, int rc,
			struct etl_error *err)
{
	struct loader_msg *lm;

	while ((lm = loader_wait(rl->loader)))
		rc = replay_done(rl, (struct replay_msg *)lm, result, rc, err);
	return rc;
}

/*
 * Reads the archived page (run, set, offset in page_params) and parses it:
 * its body decoded into `body`, the targets its request named into
 * *targets (caller frees with free_targets()). A page that cannot be read
 * back sets *set_error (caller frees); the return is for database errors.
 */
static int read_page(PGconn *conn, const char *const *page_params, struct strbuf *body,
		     char ***targets, size_t *n_targets, struct api_response *resp, char **set_error,
		     struct etl_error *err)
{
	struct etl_error perr = {0, ""};
	PGresult *page = NULL;
	int rc;

	/* binary results: bytea as its bytes (text would double them as hex) */
	rc = db_query_bin(conn,
			  "SELECT request::text, body, body_gzip FROM raw_page"
			  " WHERE run_id = $1 AND target_set_id = $2 AND page_offset = $3",
			  3, page_params, NULL, NULL, 1, &page, err);
	if (rc != 0)
		return rc;
	sb_reset(body);
	if (!PQgetisnull(page, 0, 2) &&
	    gunzip_all(PQgetvalue(page, 0, 2), (size_t)PQgetlength(page, 0, 2),
		       FETCH_MAX_RESPONSE_BYTES, body, perr.msg, sizeof(perr.msg)) != 0) {
		*set_error = xasprintf("offset %s: archived gzip body: %s", page_params[2], perr.msg);
		goto out;
	}
	if (PQgetisnull(page, 0, 2))
		sb_append(body, PQgetvalue(page, 0, 1), (size_t)PQgetlength(page, 0, 1));
	if (request_targets(PQgetvalue(page, 0, 0), targets, n_targets, &perr) != 0 ||
	    response_parse(body->data ? body->data : "", body->len, resp, &perr) != 0)
		*set_error = xasprintf("offset %s: %s", page_params[2], perr.msg);
out:
	PQclear(page);
	return 0;
}

/*
 * Transforms a parsed page into a message of the pool and hands it to the
 * loader threads, or sets *set_error (caller frees) when it does not
 * transform.
 */
static void submit_page(struct replay_loading *rl, const struct api_response *resp,
			const struct transform_ctx *tc, char **set_error)
{
	struct etl_error perr = {0, ""};
	struct replay_msg *m;
	struct page_record *rec;

	if ((m = rl->spare)) {
		rl->spare = (struct replay_msg *)m->base.next;
		row_batch_reset(&m->batch);
	} else {
		m = xcalloc(1, sizeof(*m));
		row_batch_init(&m->batch);
	}
	m->base.next = NULL;
	m->base.rc = 0;
	etl_error_clear(&m->err);
	if (transform_page(resp, tc, &m->batch, &perr) != 0) {
		*set_error = xasprintf("offset %lld: %s", tc->offset, perr.msg);
		m->base.next = (struct loader_msg *)rl->spare;
		rl->spare = m;
		return;
	}
	rec = &m->rec;
	memset(rec, 0, sizeof(*rec));
	rec->run_id = tc->run_id;
	rec->target_set_id = tc->target_set_id;
	rec->offset = tc->offset;
	rec->limit = tc->limit;
	rec->attempts = 1;
	rec->http_status = 200;
	rec->api_status_code = resp->task_status;
	m->status_message = resp->status_message ? xstrdup(resp->status_message) : NULL;
	m->task_id = resp->task_id ? xstrdup(resp->task_id) : NULL;
	rec->api_status_message = m->status_message;
	rec->task_id = m->task_id;
	rec->items = (long long)resp->n_items;
	rec->rows = (long long)m->batch.n_rows;
	rec->total_count = resp->total_count;
	rec->cost_usd = 0; /* a replay pays nothing */
	loader_submit(rl->loader, &m->base);
}

/*
 * Replays one set: every archived page of the original, transformed and
 * loaded under the replay's run, then published once all are loaded.
 * *set_error is set (caller frees) when the set cannot be replayed; the
 * return is for database errors.
 */
static int replay_set(PGconn *conn, struct replay_loading *rl, const struct replay_src *src,
		      long long new_run, long long set_id, const char *request_hash,
		      long long total_count, struct run_result *result, char **set_error,
		      struct etl_error *err)
{
	char run[24], set[24];
	const char *params[2] = {run, set};
	struct set_start st;
	struct set_outcome out;
	struct strbuf body; /* one page's decoded body, reused */
	PGresult *res = NULL;
	struct loader_msg *lm;
	int rc, i;

	*set_error = NULL;
	sb_init(&body);
	snprintf(run, sizeof(run), "%lld", src->run_id);
	snprintf(set, sizeof(set), "%lld", set_id);
	rc = load_start_set(conn, new_run, set_id, request_hash, &st, err);
	free(st.pages);
	free(st.refused);
	if (rc != 0)
		return rc;
	/* The pages the original loaded (all of them have a body, or the set
	 * cannot be replayed); each body is read on its own, so memory holds a
	 * few pages at a time, as in a run. */
	rc = db_query(conn,
		      "SELECT p.page_offset, p.page_limit, r.page_offset IS NOT NULL"
		      " FROM etl_page p LEFT JOIN raw_page r USING (run_id, target_set_id, page_offset)"
		      " WHERE p.run_id = $1 AND p.target_set_id = $2 AND p.status = 'loaded'"
		      " ORDER BY p.page_offset",
		      2, params, &res, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < PQntuples(res) && !*set_error && rc == 0; i++) {
		const char *page_params[3] = {run, set, PQgetvalue(res, i, 0)};
		struct transform_ctx tc = {src->snapshot_date, set_id, new_run,
					   strtoll(PQgetvalue(res, i, 0), NULL, 10),
					   atoi(PQgetvalue(res, i, 1)), NULL, 0, 0, NULL, 0};
		struct api_response resp;
		char **targets = NULL;
		size_t n_targets = 0;

		while ((lm = loader_poll(rl->loader)))
			rc = replay_done(rl, (struct replay_msg *)lm, result, rc, err);
		if (rc != 0)
			break;
		if (strcmp(PQgetvalue(res, i, 2), "t") != 0) {
			*set_error = xasprintf("offset %s has no archived body", PQgetvalue(res, i, 0));
			break;
		}
		memset(&resp, 0, sizeof(resp));
		rc = read_page(conn, page_params, &body, &targets, &n_targets, &resp, set_error, err);
		if (rc == 0 && !*set_error) {
			tc.targets = targets;
			tc.n_targets = n_targets;
			submit_page(rl, &resp, &tc, set_error);
		}
		response_free(&resp);
		free_targets(targets, n_targets);
	}
	PQclear(res);
	sb_free(&body);
	/* the set is published only once every page of it is in */
	rc = replay_drain(rl, result, rc, err);
	if (rc != 0)
		return rc;
	rc = load_finish_set(conn, new_run, set_id, src->snapshot_date, total_count, NULL, *set_error,
			     &out, err);
	if (rc == 0 && out.error) {
		*set_error = out.error;
		out.error = NULL;
	}
	return rc;
}

/* Opens the loading connections and starts their threads. */
static int replay_loading_start(const struct job *job, const char *snapshot_date,
				struct replay_loading *rl, struct etl_error *err)
{
	int rc;

	memset(rl, 0, sizeof(*rl));
	rl->snapshot_date = snapshot_date;
	if ((rc = load_open_connections(&job->db, rl->conns, &rl->n_conns, job->db.connections,
					err)) != 0)
		return rc;
	rl->loader = loader_start(REPLAY_LOAD_QUEUE, rl->n_conns, replay_exec, NULL, rl);
	return 0;
}

static void replay_loading_stop(struct replay_loading *rl)
{
	struct replay_msg *m;
	int i;

	if (rl->loader)
		loader_stop(rl->loader, NULL);
	rl->loader = NULL;
	while ((m = rl->spare)) {
		rl->spare = (struct replay_msg *)m->base.next;
		row_batch_free(&m->batch);
		free(m->status_message);
		free(m->task_id);
		free(m);
	}
	for (i = 0; i < rl->n_conns; i++)
		PQfinish(rl->conns[i]);
	rl->n_conns = 0;
}

int replay_run(const char *job_path, long long run_id, struct run_result *result,
	       struct etl_error *err)
{
	struct replay_src src;
	struct replay_loading rl;
	struct job *job = NULL;
	PGconn *conn = NULL;
	PGresult *res = NULL, *sets = NULL;
	char id[24];
	const char *params[1];
	long long new_run = 0;
	size_t failed = 0, done = 0;
	int rc, i, locked = 0;

	memset(result, 0, sizeof(*result));
	memset(&src, 0, sizeof(src));
	memset(&rl, 0, sizeof(rl));
	if ((rc = job_load_file(job_path, &job, err)) != 0)
		return rc;
	if ((rc = db_connect(job->db.url, job->db.schema, 0, &conn, err)) != 0)
		goto out;
	if ((rc = migrate_check(conn, err)) != 0)
		goto out;
	if ((rc = load_lock_job(conn, job->name, err)) != 0)
		goto out;
	locked = 1;
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
	log_info("run %lld: replay of run %lld (job %s, snapshot %s) from the archive", new_run,
		 run_id, src.job, src.snapshot_date);
	if ((rc = replay_loading_start(job, src.snapshot_date, &rl, err)) != 0)
		goto out;

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
		rc = replay_set(conn, &rl, &src, new_run, strtoll(PQgetvalue(sets, i, 0), NULL, 10),
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
	replay_loading_stop(&rl);
	if (rc != 0)
		load_fail_run(conn, new_run, err->msg);
	PQclear(res);
	PQclear(sets);
	if (conn && locked)
		load_unlock_job(conn, job->name);
	if (conn)
		PQfinish(conn);
	job_free(job);
	return rc;
}

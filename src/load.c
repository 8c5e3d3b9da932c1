/*
 * load.c - every statement that writes a run. See load.h for the contracts.
 *
 * Row identity in a snapshot is (target_set_id, snapshot_date,
 * referring_domain, target_key). Pages of a set are upserted into
 * domain_intersection_pending under the run's id; offset paging can show one
 * referring domain on two pages, and the first place in result order wins,
 * whichever page happens to load first. When the set completes, one
 * transaction turns the published snapshot into the pending one: rows the
 * answer lacks are deleted, new rows inserted, and a row is updated only when
 * one of its values changed, so `run_id` on a published row names the run
 * that inserted or last changed it, and an unchanged rerun leaves the table
 * byte for byte as it was.
 */
#include "load.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

/* Non-key columns of domain_intersection except run_id, as in TRANSFORM_COLUMNS. */
static const char *const data_columns[] = {
	"target", "position", "intersections_count", "type", "rank", "backlinks", "first_seen",
	"lost_date", "backlinks_spam_score", "broken_backlinks", "broken_pages", "referring_domains",
	"referring_domains_nofollow", "referring_main_domains", "referring_main_domains_nofollow",
	"referring_ips", "referring_subnets", "referring_pages", "referring_pages_nofollow",
	"referring_links_tld", "referring_links_types", "referring_links_attributes",
	"referring_links_platform_types", "referring_links_semantic_locations",
	"referring_links_countries", "extra",
};

/* The ledger row of a page; an earlier failed attempt of the same page is replaced. */
static const char ledger_sql[] =
	"INSERT INTO etl_page (run_id, target_set_id, page_offset, page_limit, status, attempts,"
	" http_status, api_status_code, api_status_message, task_id, items, rows, total_count,"
	" cost_usd, duration_ms, error)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
	" ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET"
	" page_limit = EXCLUDED.page_limit, status = EXCLUDED.status,"
	" attempts = etl_page.attempts + EXCLUDED.attempts, http_status = EXCLUDED.http_status,"
	" api_status_code = EXCLUDED.api_status_code,"
	" api_status_message = EXCLUDED.api_status_message, task_id = EXCLUDED.task_id,"
	" items = EXCLUDED.items, rows = EXCLUDED.rows, total_count = EXCLUDED.total_count,"
	" cost_usd = EXCLUDED.cost_usd, duration_ms = EXCLUDED.duration_ms,"
	" error = EXCLUDED.error, finished_at = now()"
	" WHERE etl_page.status <> 'loaded'";

/* The statements built from data_columns, once per process. */
static char *pending_upsert_sql, *direct_upsert_sql, *publish_sql;

/* "c = EXCLUDED.c, ..." for every data column, then run_id. */
static void append_update_set(struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(data_columns); i++)
		sb_printf(sb, "%s = EXCLUDED.%s, ", data_columns[i], data_columns[i]);
	sb_puts(sb, "run_id = EXCLUDED.run_id");
}

static void append_row(struct strbuf *sb, const char *alias)
{
	size_t i;

	sb_puts(sb, "ROW(");
	for (i = 0; i < ETL_ARRAY_LEN(data_columns); i++)
		sb_printf(sb, "%s%s.%s", i ? ", " : "", alias, data_columns[i]);
	sb_puts(sb, ")");
}

/*
 * The staged page into `table`, duplicates within it collapsed first and
 * a row met again keeping its first place in result order.
 */
static void append_stage_upsert(struct strbuf *sb, const char *table, const char *key)
{
	sb_printf(sb, "INSERT INTO %s AS d (" TRANSFORM_COLUMNS ") "
		      "SELECT DISTINCT ON (referring_domain, target_key) " TRANSFORM_COLUMNS
		      " FROM di_stage ORDER BY referring_domain, target_key, position "
		      "ON CONFLICT (%s) DO UPDATE SET ",
		  table, key);
	append_update_set(sb);
	sb_puts(sb, " WHERE EXCLUDED.position < d.position");
}

static void build_sql(void)
{
	struct strbuf sb;

	if (pending_upsert_sql)
		return;
	sb_init(&sb);
	append_stage_upsert(&sb, "domain_intersection_pending",
			    "run_id, target_set_id, referring_domain, target_key");
	pending_upsert_sql = sb_detach(&sb);
	append_stage_upsert(&sb, "domain_intersection",
			    "target_set_id, snapshot_date, referring_domain, target_key");
	direct_upsert_sql = sb_detach(&sb);

	sb_puts(&sb, "INSERT INTO domain_intersection AS d (" TRANSFORM_COLUMNS ") "
		     "SELECT " TRANSFORM_COLUMNS " FROM domain_intersection_pending "
		     "WHERE run_id = $1 AND target_set_id = $2 "
		     "ON CONFLICT (target_set_id, snapshot_date, referring_domain, target_key) "
		     "DO UPDATE SET ");
	append_update_set(&sb);
	sb_puts(&sb, " WHERE ");
	append_row(&sb, "d");
	sb_puts(&sb, " IS DISTINCT FROM ");
	append_row(&sb, "EXCLUDED");
	publish_sql = sb_detach(&sb);
}

int load_prepare(PGconn *conn, struct etl_error *err)
{
	build_sql();
	/* ON COMMIT DELETE ROWS empties it at every page's commit for free. */
	return db_exec(conn,
		       "CREATE TEMP TABLE IF NOT EXISTS di_stage "
		       "(LIKE domain_intersection INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
		       err);
}

int load_open_connections(const struct job_database *db, PGconn **conns, int *n, int want,
			  struct etl_error *err)
{
	while (*n < want) {
		PGconn *c = NULL;
		struct etl_error cerr;

		if (db_connect(db->url, db->schema, 0, &c, &cerr) != 0 || load_prepare(c, &cerr) != 0) {
			if (c)
				PQfinish(c);
			if (*n == 0) {
				*err = cerr;
				return cerr.code ? cerr.code : ETL_EFAIL;
			}
			/* e.g. the server's max_connections: slower, not wrong */
			log_warn("loading on %d connection%s, not %d: %s", *n, *n == 1 ? "" : "s",
				 want, cerr.msg);
			break;
		}
		conns[(*n)++] = c;
	}
	return 0;
}

int load_lock_job(PGconn *conn, const char *job, struct etl_error *err)
{
	const char *params[1] = {job};
	PGresult *res = NULL;
	int rc;

	/* Two int4 keys: a fixed class for this program, and the job's hash. */
	rc = db_query(conn, "SELECT pg_try_advisory_lock(1229866028, hashtext($1))", 1, params, &res,
		      err);
	if (rc != 0)
		return rc;
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		PQclear(res);
		return 0;
	}
	PQclear(res);
	rc = db_query(conn,
		      "SELECT run_id, snapshot_date, started_at, host, pid FROM etl_run "
		      "WHERE job = $1 AND status = 'running' ORDER BY run_id DESC LIMIT 1",
		      1, params, &res, err);
	if (rc != 0)
		return rc;
	if (PQntuples(res) == 1)
		etl_fail(err, ETL_ELOCKED,
			 "job %s is already running: run %s (snapshot %s, started %s, host %s, pid %s)",
			 job, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
			 PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
	else
		etl_fail(err, ETL_ELOCKED, "job %s is locked by another intersect-etl process", job);
	PQclear(res);
	return ETL_ELOCKED;
}

int load_register_sets(PGconn *conn, const struct job *job, long long *ids, struct etl_error *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < job->n_sets; i++) {
		const struct target_set *set = &job->sets[i];
		json_object *arr = json_object_new_array();
		char limit[16], max_rows[24];
		const char *params[6];
		PGresult *res = NULL;
		size_t t;

		for (t = 0; t < set->n_targets; t++)
			json_object_array_add(arr, json_object_new_string(set->targets[t]));
		snprintf(limit, sizeof(limit), "%d", set->limit);
		snprintf(max_rows, sizeof(max_rows), "%lld", set->max_rows);
		params[0] = job->name;
		params[1] = set->name;
		params[2] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
		params[3] = json_object_to_json_string_ext(set->request, JSON_C_TO_STRING_PLAIN);
		params[4] = limit;
		params[5] = max_rows;
		/* jsonb's text form is canonical (sorted keys), so its md5 changes
		 * exactly when the definition does. Page size and max_rows are part
		 * of it: they decide which offsets a run asks for and how many rows a
		 * snapshot can hold. */
		rc = db_query(conn,
			      "INSERT INTO target_set AS t (job, name, targets, request, request_hash,"
			      " page_limit, max_rows)"
			      " SELECT $1, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)),"
			      " $4::jsonb, md5(($4::jsonb || jsonb_build_object('page_limit', $5::int,"
			      "   'max_rows', $6::bigint))::text), $5, $6"
			      " ON CONFLICT (job, name) DO UPDATE SET targets = EXCLUDED.targets,"
			      " request = EXCLUDED.request, request_hash = EXCLUDED.request_hash,"
			      " page_limit = EXCLUDED.page_limit, max_rows = EXCLUDED.max_rows,"
			      " updated_at = CASE WHEN t.request_hash = EXCLUDED.request_hash"
			      " THEN t.updated_at ELSE now() END"
			      " RETURNING target_set_id",
			      6, params, &res, err);
		json_object_put(arr);
		if (rc != 0) {
			etl_error_prefix(err, "recording target set %s: ", set->name);
			return rc;
		}
		ids[i] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	return rc;
}

int load_insert_run(PGconn *conn, const char *job, const char *snapshot_date, long long replay_of,
		    long long *run_id, struct etl_error *err)
{
	char pid[16], host[256] = "", of[24];
	const char *params[6] = {job, snapshot_date, host, pid, ETL_VERSION, replay_of ? of : NULL};
	PGresult *res = NULL;
	int rc;

	gethostname(host, sizeof(host) - 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(of, sizeof(of), "%lld", replay_of);
	rc = db_query(conn,
		      "INSERT INTO etl_run (job, snapshot_date, host, pid, version, replay_of)"
		      " VALUES ($1, $2, $3, $4, $5, $6) RETURNING run_id",
		      6, params, &res, err);
	if (rc != 0)
		return rc;
	*run_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

void load_fail_run(PGconn *conn, long long run_id, const char *error)
{
	char id[24];
	const char *params[2] = {id, error};

	if (!conn || !run_id || PQstatus(conn) != CONNECTION_OK)
		return;
	snprintf(id, sizeof(id), "%lld", run_id);
	db_rollback(conn);
	PQclear(PQexecParams(conn,
			     "UPDATE etl_run SET status = 'failed', error = $2, finished_at = now()"
			     " WHERE run_id = $1 AND status = 'running'",
			     2, NULL, params, NULL, NULL, 0));
}

/*
 * Pending rows of this job's other runs can never be published: only the
 * latest unfinished run of a date is continued, and we hold the job's lock.
 * A run that succeeded published every set, which deleted its pending rows
 * in the same transaction, so only the others are looked at: the bench saw
 * this statement take 2 s at 1M rows going through the dead rows of runs
 * that had left nothing behind.
 */
static int drop_stale_pending(PGconn *conn, const char *job, long long run_id,
			      struct etl_error *err)
{
	char id[24];
	const char *params[2] = {job, id};

	snprintf(id, sizeof(id), "%lld", run_id);
	return db_query(conn,
			"DELETE FROM domain_intersection_pending p USING etl_run r"
			" WHERE p.run_id = r.run_id AND r.job = $1 AND r.run_id <> $2"
			" AND r.status <> 'succeeded'",
			2, params, NULL, err);
}

int load_start_run(PGconn *conn, const struct job *job, const char *snapshot_date, int fresh,
		   long long *run_id, int *resumed, struct etl_error *err)
{
	const char *params[2];
	PGresult *res = NULL;
	char pid[16];
	int rc;

	*resumed = 0;
	params[0] = job->name;
	params[1] = snapshot_date;
	if (!fresh) {
		/* The latest unfinished run of this date continues, unless a set it
		 * fetched has since changed its definition (its pages would mix two
		 * different answers). */
		rc = db_query(conn,
			      "SELECT r.run_id FROM etl_run r WHERE r.job = $1 AND r.snapshot_date = $2"
			      " AND r.status <> 'succeeded' AND r.replay_of IS NULL"
			      " AND r.run_id = (SELECT max(run_id) FROM etl_run"
			      "                 WHERE job = $1 AND snapshot_date = $2)"
			      " AND NOT EXISTS (SELECT 1 FROM etl_run_set rs JOIN target_set t"
			      "   USING (target_set_id) WHERE rs.run_id = r.run_id"
			      "   AND rs.request_hash <> t.request_hash)",
			      2, params, &res, err);
		if (rc != 0)
			return rc;
		if (PQntuples(res) == 1) {
			char id[24];

			snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
			PQclear(res);
			*run_id = strtoll(id, NULL, 10);
			*resumed = 1;
			snprintf(pid, sizeof(pid), "%d", (int)getpid());
			params[0] = pid;
			params[1] = id;
			rc = db_query(conn,
				      "UPDATE etl_run SET status = 'running', finished_at = NULL,"
				      " error = NULL, pid = $1 WHERE run_id = $2",
				      2, params, NULL, err);
			return rc ? rc : drop_stale_pending(conn, job->name, *run_id, err);
		}
		PQclear(res);
	}
	if ((rc = load_insert_run(conn, job->name, snapshot_date, 0, run_id, err)) != 0)
		return rc;
	return drop_stale_pending(conn, job->name, *run_id, err);
}

int load_start_set(PGconn *conn, long long run_id, long long set_id, const char *snapshot_date,
		   const char *request_hash, struct set_start *out, struct etl_error *err)
{
	char run[24], set[24];
	const char *params[4] = {run, set, request_hash, snapshot_date};
	PGresult *res = NULL;
	int rc, i;

	memset(out, 0, sizeof(*out));
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(set, sizeof(set), "%lld", set_id);
	/* direct is decided once, when the set first joins the run; a resumed
	 * run keeps it (its own rows would otherwise make it look like a rerun) */
	rc = db_query(conn,
		      "INSERT INTO etl_run_set AS rs (run_id, target_set_id, request_hash, direct)"
		      " SELECT $1, $2, coalesce($3, request_hash), NOT EXISTS ("
		      "   SELECT 1 FROM domain_intersection d WHERE d.target_set_id = $2"
		      "   AND d.snapshot_date = $4::date)"
		      " FROM target_set WHERE target_set_id = $2"
		      " ON CONFLICT (run_id, target_set_id) DO UPDATE SET"
		      "   status = CASE WHEN rs.status = 'complete' THEN 'complete' ELSE 'running' END,"
		      "   error = CASE WHEN rs.status = 'complete' THEN rs.error END"
		      " RETURNING status, direct",
		      4, params, &res, err);
	if (rc != 0)
		return rc;
	out->complete = strcmp(PQgetvalue(res, 0, 0), "complete") == 0;
	out->direct = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (out->complete)
		return 0;
	rc = db_query(conn,
		      "SELECT page_offset, items, coalesce(total_count, -1), coalesce(cost_usd, 0)"
		      " FROM etl_page"
		      " WHERE run_id = $1 AND target_set_id = $2 AND status = 'loaded'"
		      " ORDER BY page_offset",
		      2, params, &res, err);
	if (rc != 0)
		return rc;
	out->n_pages = (size_t)PQntuples(res);
	out->pages = xcalloc(out->n_pages ? out->n_pages : 1, sizeof(*out->pages));
	for (i = 0; i < PQntuples(res); i++) {
		out->pages[i].offset = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		out->pages[i].items = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		out->pages[i].total_count = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		out->pages[i].cost_usd = strtod(PQgetvalue(res, i, 3), NULL);
	}
	PQclear(res);
	return 0;
}

/* Binds a page_record as the 16 parameters of ledger_sql. */
static int write_ledger(PGconn *conn, const struct page_record *rec, struct etl_error *err)
{
	char v[12][32];
	const char *params[16];

	snprintf(v[0], sizeof(v[0]), "%lld", rec->run_id);
	snprintf(v[1], sizeof(v[1]), "%lld", rec->target_set_id);
	snprintf(v[2], sizeof(v[2]), "%lld", rec->offset);
	snprintf(v[3], sizeof(v[3]), "%d", rec->limit);
	snprintf(v[4], sizeof(v[4]), "%d", rec->attempts);
	snprintf(v[5], sizeof(v[5]), "%ld", rec->http_status);
	snprintf(v[6], sizeof(v[6]), "%d", rec->api_status_code);
	snprintf(v[7], sizeof(v[7]), "%lld", rec->items);
	snprintf(v[8], sizeof(v[8]), "%lld", rec->rows);
	snprintf(v[9], sizeof(v[9]), "%lld", rec->total_count);
	snprintf(v[10], sizeof(v[10]), "%.6f", rec->cost_usd);
	snprintf(v[11], sizeof(v[11]), "%d", rec->duration_ms);
	params[0] = v[0];
	params[1] = v[1];
	params[2] = v[2];
	params[3] = v[3];
	params[4] = rec->error ? "failed" : "loaded";
	params[5] = v[4];
	params[6] = rec->http_status ? v[5] : NULL;
	params[7] = rec->api_status_code ? v[6] : NULL;
	params[8] = rec->api_status_message;
	params[9] = rec->task_id;
	params[10] = rec->error ? NULL : v[7];
	params[11] = rec->error ? NULL : v[8];
	params[12] = rec->total_count >= 0 ? v[9] : NULL;
	params[13] = rec->error ? NULL : v[10];
	params[14] = v[11];
	params[15] = rec->error;
	return db_query(conn, ledger_sql, 16, params, NULL, err);
}

/*
 * The page's bodies, in the page's own transaction: archived exactly when
 * loaded. A gzip body goes in as received, as binary bytea (in text form it
 * would travel hex-encoded at twice its size); see sql/004_*.
 */
static int write_archive(PGconn *conn, const struct page_record *rec, struct etl_error *err)
{
	char v[4][24];
	int gz = rec->response_gzip != NULL;
	const char *params[7] = {v[0], v[1], v[2], v[3], rec->request_body,
				 gz ? NULL : rec->response_body,
				 gz ? (const char *)rec->response_gzip : NULL};
	int lengths[7] = {0, 0, 0, 0, 0, gz ? 0 : (int)rec->response_len,
			  gz ? (int)rec->response_gzip_len : 0};
	int formats[7] = {0, 0, 0, 0, 0, 1, 1};

	if ((gz ? rec->response_gzip_len : rec->response_len) > INT_MAX)
		return etl_fail(err, ETL_EFAIL, "a response body of %zu bytes is too large to archive",
				gz ? rec->response_gzip_len : rec->response_len);
	snprintf(v[0], sizeof(v[0]), "%lld", rec->run_id);
	snprintf(v[1], sizeof(v[1]), "%lld", rec->target_set_id);
	snprintf(v[2], sizeof(v[2]), "%lld", rec->offset);
	snprintf(v[3], sizeof(v[3]), "%d", rec->limit);
	/* text in binary format is its bytes: no copy to add a NUL */
	return db_query_bin(conn,
			    "INSERT INTO raw_page (run_id, target_set_id, page_offset, page_limit,"
			    " request, body, body_gzip)"
			    " VALUES ($1, $2, $3, $4, $5::jsonb, $6::text, $7::bytea)"
			    " ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET"
			    " page_limit = EXCLUDED.page_limit, request = EXCLUDED.request,"
			    " body = EXCLUDED.body, body_gzip = EXCLUDED.body_gzip, fetched_at = now()",
			    7, params, lengths, formats, 0, NULL, err);
}

#define COPY_PIECE (64u * 1024) /* bytes handed to PQputCopyData at a time */

/*
 * COPYs the batch into `table` (an identifier, already safe to splice).
 * Text format, not binary: measured side by side (200k rows of this table,
 * server-side COPY FROM a file into an empty copy of it with its indexes,
 * three times each), binary was no faster, as the server's work per row is
 * mostly the six jsonb maps, whose binary form is their text with a version
 * byte; and text is what the transformer writes once and a person can read
 * in a log.
 * *sqlstate (if not NULL) gets the server's error code on failure.
 */
static int copy_rows(PGconn *conn, const char *table, const struct row_batch *rows,
		     char *sqlstate, struct etl_error *err)
{
	PGresult *res;
	char *sql = xasprintf("COPY %s (" TRANSFORM_COLUMNS ") FROM STDIN", table);
	size_t off, piece = 0;
	int rc = 0;

	if (sqlstate)
		sqlstate[0] = '\0';
	res = PQexec(conn, sql);
	free(sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		etl_fail(err, ETL_EFAIL, "database error: cannot start COPY: %s",
			 PQresultErrorMessage(res));
		PQclear(res);
		return ETL_EFAIL;
	}
	PQclear(res);
	/* In pieces: libpq copies what it is given into its output buffer, which
	 * would otherwise grow to a whole page per connection and stay so. */
	for (off = 0; off < rows->copy.len && rc == 0; off += piece) {
		piece = rows->copy.len - off < COPY_PIECE ? rows->copy.len - off : COPY_PIECE;
		if (PQputCopyData(conn, rows->copy.data + off, (int)piece) != 1)
			rc = etl_fail(err, ETL_EFAIL, "database error: COPY failed: %s",
				      PQerrorMessage(conn));
	}
	if (PQputCopyEnd(conn, rc ? "intersect-etl: sending rows failed" : NULL) != 1 && !rc)
		rc = etl_fail(err, ETL_EFAIL, "database error: COPY failed: %s", PQerrorMessage(conn));
	while ((res = PQgetResult(conn))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !rc) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			db_note_sqlstate(res);
			rc = etl_fail(err, ETL_EFAIL, "database error: COPY failed: %s",
				      PQresultErrorMessage(res));
			if (sqlstate && state)
				snprintf(sqlstate, 6, "%s", state);
		}
		PQclear(res);
	}
	return rc;
}

/*
 * A first load of a snapshot cannot conflict with an earlier answer, so its
 * pages COPY straight into the date's partition: the fastest way in. Offset
 * paging can still repeat a referring domain on two pages (or the API one
 * within a page); then the page is redone, inside the same transaction,
 * through staging and an upsert that keeps the first result position.
 */
static int load_direct(PGconn *conn, const char *snapshot_date, const struct row_batch *rows,
		       struct etl_error *err)
{
	char part[64], state[6];
	int rc, i, j;

	/* the partition's name from a validated YYYY-MM-DD: digits only */
	for (i = 0, j = snprintf(part, sizeof(part), "domain_intersection_p"); snapshot_date[i] &&
	     j < (int)sizeof(part) - 1; i++)
		if (snapshot_date[i] >= '0' && snapshot_date[i] <= '9')
			part[j++] = snapshot_date[i];
	part[j] = '\0';
	if ((rc = db_exec(conn, "SAVEPOINT direct_copy", err)) != 0)
		return rc;
	rc = copy_rows(conn, part, rows, state, err);
	if (rc == 0 || strcmp(state, "23505") != 0)
		return rc;
	if ((rc = db_exec(conn, "ROLLBACK TO SAVEPOINT direct_copy", err)) != 0)
		return rc;
	if ((rc = copy_rows(conn, "di_stage", rows, NULL, err)) != 0)
		return rc;
	return db_exec(conn, direct_upsert_sql, err);
}

static int page_transaction(PGconn *conn, const char *snapshot_date, const struct page_record *rec,
			    const struct row_batch *rows, struct etl_error *err)
{
	int rc;

	if ((rc = db_exec(conn, "BEGIN", err)) != 0)
		return rc;
	if (rows->n_rows > 0 && rec->direct) {
		if ((rc = load_direct(conn, snapshot_date, rows, err)) != 0)
			goto failed;
	} else if (rows->n_rows > 0) {
		if ((rc = copy_rows(conn, "di_stage", rows, NULL, err)) != 0)
			goto failed;
		if ((rc = db_exec(conn, pending_upsert_sql, err)) != 0)
			goto failed;
	}
	if ((rc = write_ledger(conn, rec, err)) != 0)
		goto failed;
	if ((rec->response_body || rec->response_gzip) && (rc = write_archive(conn, rec, err)) != 0)
		goto failed;
	if ((rc = db_exec(conn, "COMMIT", err)) != 0)
		goto failed;
	return 0;
failed:
	db_rollback(conn);
	return rc;
}

int load_page(PGconn *conn, const char *snapshot_date, const struct page_record *rec,
	      const struct row_batch *rows, struct etl_error *err)
{
	int rc, tries = 0;

	/* Two connections loading pages that share a referring domain can
	 * deadlock; PostgreSQL cancels one, which is redone whole: the page's
	 * transaction rolled back, so nothing is lost or doubled. */
	do {
		db_clear_sqlstate();
		rc = page_transaction(conn, snapshot_date, rec, rows, err);
	} while (rc != 0 && strcmp(db_sqlstate(), "40P01") == 0 && ++tries <= LOAD_DEADLOCK_RETRIES);
	return rc;
}

int load_page_failed(PGconn *conn, const struct page_record *rec, struct etl_error *err)
{
	return write_ledger(conn, rec, err);
}

int load_finish_set(PGconn *conn, long long run_id, long long set_id, const char *snapshot_date,
		    long long total_count, const char *error, struct etl_error *err)
{
	char run[24], set[24], total[24];
	const char *del[3] = {run, set, snapshot_date};
	const char *upd[4] = {run, set, total_count >= 0 ? total : NULL, error};
	int rc;

	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(set, sizeof(set), "%lld", set_id);
	snprintf(total, sizeof(total), "%lld", total_count);
	if ((rc = db_exec(conn, "BEGIN", err)) != 0)
		return rc;
	if (!error) {
		PGresult *res = NULL;
		int direct;

		/* A direct set's rows are in place already: nothing to publish. */
		rc = db_query(conn,
			      "SELECT direct FROM etl_run_set WHERE run_id = $1 AND target_set_id = $2",
			      2, del, &res, err);
		if (rc != 0)
			goto failed;
		direct = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (direct)
			goto mark;
		/* Publish: the snapshot becomes exactly this run's answer. The rows
		 * to delete are found with EXCEPT, a hashed or sorted set
		 * difference whatever the statistics of the freshly filled pending
		 * table say (a NOT EXISTS anti-join was planned as a nested loop
		 * there and took minutes for 100k rows). Statistics can still be
		 * missing altogether: a rerun minutes after a first load meets a
		 * partition autovacuum has not analyzed yet, which the planner takes
		 * for one row, and joined the EXCEPT to it in a nested loop that
		 * rescanned its whole hash table per row (0.8 s for 10k rows, 11 s
		 * when every row went). These statements join whole snapshots, where
		 * a nested loop is never the right plan: it is switched off for
		 * this transaction. */
		rc = db_exec(conn, "SET LOCAL enable_nestloop = off", err);
		if (rc == 0)
			rc = db_query(conn,
				      "DELETE FROM domain_intersection d USING ("
				      "  SELECT referring_domain, target_key FROM domain_intersection"
				      "  WHERE target_set_id = $2 AND snapshot_date = $3"
				      "  EXCEPT"
				      "  SELECT referring_domain, target_key"
				      "  FROM domain_intersection_pending"
				      "  WHERE run_id = $1 AND target_set_id = $2) gone"
				      " WHERE d.target_set_id = $2 AND d.snapshot_date = $3"
				      " AND d.referring_domain = gone.referring_domain"
				      " AND d.target_key = gone.target_key",
				      3, del, NULL, err);
		if (rc == 0)
			rc = db_query(conn, publish_sql, 2, del, NULL, err);
		if (rc == 0)
			rc = db_query(conn,
				      "DELETE FROM domain_intersection_pending"
				      " WHERE run_id = $1 AND target_set_id = $2",
				      2, del, NULL, err);
		if (rc != 0)
			goto failed;
	}
mark:
	rc = db_query(conn,
		      "UPDATE etl_run_set rs SET status = CASE WHEN $4::text IS NULL"
		      "   THEN 'complete' ELSE 'failed' END,"
		      " error = $4, total_count = coalesce($3::bigint, rs.total_count),"
		      " finished_at = now(),"
		      " pages = p.pages, rows = p.rows, cost_usd = p.cost"
		      " FROM (SELECT count(*) FILTER (WHERE status = 'loaded') AS pages,"
		      "        coalesce(sum(rows), 0) AS rows, coalesce(sum(cost_usd), 0) AS cost"
		      "       FROM etl_page WHERE run_id = $1 AND target_set_id = $2) p"
		      " WHERE rs.run_id = $1 AND rs.target_set_id = $2",
		      4, upd, NULL, err);
	if (rc != 0)
		goto failed;
	if ((rc = db_exec(conn, "COMMIT", err)) != 0)
		goto failed;
	return 0;
failed:
	db_rollback(conn);
	return rc;
}

int load_finish_run(PGconn *conn, long long run_id, const char *status, const char *error,
		    struct etl_error *err)
{
	char run[24];
	const char *params[3] = {run, status, error};

	snprintf(run, sizeof(run), "%lld", run_id);
	return db_query(conn,
			"UPDATE etl_run r SET status = $2, error = $3, finished_at = now(),"
			" pages = p.pages, rows = p.rows, cost_usd = p.cost"
			" FROM (SELECT count(*) FILTER (WHERE status = 'loaded') AS pages,"
			"        coalesce(sum(rows), 0) AS rows, coalesce(sum(cost_usd), 0) AS cost"
			"       FROM etl_page WHERE run_id = $1) p"
			" WHERE r.run_id = $1",
			3, params, NULL, err);
}

int load_ensure_partition(PGconn *conn, const char *snapshot_date, struct etl_error *err)
{
	const char *params[1] = {snapshot_date};

	return db_query(conn, "SELECT ensure_partition($1::date)", 1, params, NULL, err);
}

int load_retention(PGconn *conn, const struct job *job, const char *snapshot_date, int *dropped,
		   struct etl_error *err)
{
	char days[16];
	const char *params[3] = {job->name, snapshot_date, days};
	PGresult *res = NULL;
	int rc = 0, i;

	if (dropped)
		*dropped = 0;
	if (job->keep_archive_days > 0) {
		snprintf(days, sizeof(days), "%d", job->keep_archive_days);
		rc = db_query(conn,
			      "DELETE FROM raw_page r USING etl_run e WHERE r.run_id = e.run_id"
			      " AND e.job = $1 AND e.snapshot_date <= $2::date - $3::int",
			      3, params, NULL, err);
		if (rc != 0)
			return rc;
	}
	if (job->keep_snapshots_days <= 0)
		return 0;
	snprintf(days, sizeof(days), "%d", job->keep_snapshots_days);
	/* Partitions whose whole range is past the limit; each says whether rows
	 * of other jobs share it (then only this job's rows go). */
	rc = db_query(conn,
		      "SELECT c.oid::regclass::text, p.lo,"
		      " EXISTS (SELECT 1 FROM domain_intersection d WHERE d.snapshot_date = p.lo"
		      "   AND d.target_set_id NOT IN (SELECT target_set_id FROM target_set WHERE job = $1))"
		      " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
		      " CROSS JOIN LATERAL (SELECT substring(pg_get_expr(c.relpartbound, c.oid)"
		      "   FROM 'FROM \\(''([0-9-]+)''\\)')::date AS lo) p"
		      " WHERE i.inhparent = 'domain_intersection'::regclass"
		      " AND p.lo <= $2::date - $3::int ORDER BY p.lo",
		      3, params, &res, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < PQntuples(res) && rc == 0; i++) {
		const char *part = PQgetvalue(res, i, 0);
		const char *del[2] = {job->name, PQgetvalue(res, i, 1)};

		if (strcmp(PQgetvalue(res, i, 2), "t") == 0) {
			rc = db_query(conn,
				      "DELETE FROM domain_intersection WHERE snapshot_date = $2::date"
				      " AND target_set_id IN (SELECT target_set_id FROM target_set"
				      " WHERE job = $1)",
				      2, del, NULL, err);
		} else {
			/* the name comes from pg_class as a quoted regclass: safe to splice */
			char *sql = xasprintf("DROP TABLE %s", part);

			rc = db_exec(conn, sql, err);
			free(sql);
		}
		if (rc == 0 && dropped)
			(*dropped)++;
	}
	PQclear(res);
	return rc;
}

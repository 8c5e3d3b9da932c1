/*
 * load.c - every statement that writes a run. See load.h for the contracts.
 *
 * Row identity in a snapshot is (target_set_id, snapshot_date,
 * referring_domain, target_key). Pages of a set are staged in
 * domain_intersection_pending under the run's id; offset paging can show one
 * referring domain on two pages, and the first place in result order wins,
 * whichever page happens to load first. Each page's ledger row says how many
 * rows it staged, so before publishing the staged rows are checked against
 * the ledger. When the set completes, one transaction (publish_snapshot(),
 * sql/005_*, sql/010_*) makes the staged answer the snapshot of its date in
 * the versioned history: only keys whose values changed get a new version, so
 * an unchanged night writes nothing there but its control row, and equal
 * neighbours stay one range whatever order dates are published in. That
 * transaction, a failure and a purge each take a sync number that follows
 * commit order (sync_seq_take()).
 */
#include "load.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "stage.h"

/* Non-key columns of a staged row except run_id, as in TRANSFORM_COLUMNS. */
static const char *const data_columns[] = {
	"target", "position", "intersections_count", "type", "rank", "backlinks", "first_seen",
	"lost_date", "backlinks_spam_score", "broken_backlinks", "broken_pages", "referring_domains",
	"referring_domains_nofollow", "referring_main_domains", "referring_main_domains_nofollow",
	"referring_ips", "referring_subnets", "referring_pages", "referring_pages_nofollow",
	"referring_links_tld", "referring_links_types", "referring_links_attributes",
	"referring_links_platform_types", "referring_links_semantic_locations",
	"referring_links_countries", "extra", "digest",
};

/* The ledger row of a page; an earlier failed or discarded attempt of the same page is replaced. */
static const char ledger_sql[] =
	"INSERT INTO etl_page (run_id, target_set_id, page_offset, page_limit, status, attempts,"
	" http_status, api_status_code, api_status_message, task_id, items, rows, total_count,"
	" cost_usd, duration_ms, error, staged, refused)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
	" ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET"
	" page_limit = EXCLUDED.page_limit, status = EXCLUDED.status,"
	" attempts = etl_page.attempts + EXCLUDED.attempts, http_status = EXCLUDED.http_status,"
	" api_status_code = EXCLUDED.api_status_code,"
	" api_status_message = EXCLUDED.api_status_message, task_id = EXCLUDED.task_id,"
	" items = EXCLUDED.items, rows = EXCLUDED.rows, total_count = EXCLUDED.total_count,"
	" cost_usd = coalesce(etl_page.cost_usd, 0) + EXCLUDED.cost_usd,"
	" duration_ms = EXCLUDED.duration_ms,"
	" error = EXCLUDED.error, staged = EXCLUDED.staged, refused = EXCLUDED.refused,"
	" finished_at = now()"
	" WHERE etl_page.status <> 'loaded'";

/* The staging upsert, built from data_columns once per process. */
static char *pending_upsert_sql;

/* "c = EXCLUDED.c, ..." for every data column, then run_id. */
static void append_update_set(struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(data_columns); i++)
		sb_printf(sb, "%s = EXCLUDED.%s, ", data_columns[i], data_columns[i]);
	sb_puts(sb, "run_id = EXCLUDED.run_id");
}

/*
 * The page in di_stage into the set's staged rows, duplicates within it
 * collapsed first and a row met again keeping its first place in result
 * order. Answers the rows it inserted (not those it updated): a row first
 * inserted has no xmax, a row updated (or locked) by ON CONFLICT has ours.
 */
static void build_sql(void)
{
	struct strbuf sb;

	if (pending_upsert_sql)
		return;
	sb_init(&sb);
	sb_puts(&sb, "WITH up AS (INSERT INTO domain_intersection_pending AS d (" TRANSFORM_COLUMNS
		     ") SELECT DISTINCT ON (referring_domain, target_key) " TRANSFORM_COLUMNS
		     " FROM pg_temp.di_stage ORDER BY referring_domain, target_key, position "
		     "ON CONFLICT (run_id, target_set_id, referring_domain, target_key) DO UPDATE SET ");
	append_update_set(&sb);
	sb_puts(&sb, " WHERE EXCLUDED.position < d.position RETURNING d.xmax = 0 AS inserted) "
		     "SELECT count(*) FILTER (WHERE inserted) FROM up");
	pending_upsert_sql = sb_detach(&sb);
}

int load_prepare(PGconn *conn, struct etl_error *err)
{
	build_sql();
	/* ON COMMIT DELETE ROWS empties it at every page's commit for free. */
	return db_exec(conn,
		       "CREATE TEMP TABLE IF NOT EXISTS pg_temp.di_stage "
		       "(LIKE domain_intersection_pending INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
		       err);
}

int load_open_connections(const struct job_database *db, PGconn **conns, int *n, int want,
			  struct etl_error *err)
{
	while (*n < want) {
		PGconn *c = NULL;
		struct etl_error cerr;

		if (db_connect(db->url, db->schema, 0, &c, &cerr) != 0 || load_prepare(c, &cerr) != 0 ||
		    load_lock_join(c, &cerr) != 0) {
			if (c)
				PQfinish(c);
			if (*n == 0 || cerr.code == ETL_ELOCKED) {
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

struct load_opener {
	pthread_t thread;
	const struct job_database *db;
	PGconn *conns[JOB_MAX_CONNECTIONS];
	int have, n, want, rc;
	struct etl_error err;
};

static void *opener_main(void *arg)
{
	struct load_opener *o = arg;

	o->rc = load_open_connections(o->db, o->conns, &o->n, o->want, &o->err);
	return NULL;
}

struct load_opener *load_open_start(const struct job_database *db, int have, int want)
{
	struct load_opener *o;

	if (have >= want)
		return NULL;
	o = xcalloc(1, sizeof(*o));
	o->db = db;
	o->have = o->n = have;
	o->want = want > JOB_MAX_CONNECTIONS ? JOB_MAX_CONNECTIONS : want;
	if (pthread_create(&o->thread, NULL, opener_main, o) != 0) {
		/* opened when the caller waits for it instead */
		o->have = -1;
	}
	return o;
}

int load_open_finish(struct load_opener *o, PGconn **conns, int *n, struct etl_error *err)
{
	int i, rc;

	if (!o)
		return 0;
	if (o->have < 0) {
		rc = load_open_connections(o->db, conns, n, o->want, err);
		free(o);
		return rc;
	}
	pthread_join(o->thread, NULL);
	for (i = o->have; i < o->n && *n < JOB_MAX_CONNECTIONS; i++)
		conns[(*n)++] = o->conns[i];
	rc = o->rc;
	if (rc != 0)
		*err = o->err;
	free(o);
	return rc;
}

/*
 * The job's lock is a row of etl_job_lock (sql/013_job_lock.sql) naming this process by
 * a random token; only roles that may write that table can take it. A
 * process runs one job, so the lock it holds is kept here: every connection
 * that writes for the run shows it (load_lock_join(), as the session settings
 * intersect_etl.job and intersect_etl.lock_token), and every write
 * transaction checks that the row still names it (fence()). A connection
 * that is new or came back after a restart has lost those settings, so it
 * cannot write until it has joined again.
 */
static char *lock_job;         /* owned: the job whose lock this process holds, or NULL */
static char lock_token[33];    /* its token, hex */

/*
 * Whether the holder of row `l` is alive. Its session (the backend it named)
 * is still there: same pid, user and (where this role may see it)
 * backend_start, on a server that has not restarted since. Or the server
 * restarted a moment ago (LOAD_LOCK_RESTART_GRACE): a restart ends every
 * session, but the holder's process is likely alive and reconnecting, and
 * answers it bought before the restart would otherwise be bought again by a
 * second run. A row with a column missing (written by hand) is not alive.
 */
#define LOCK_SESSION_ALIVE(l)                                                                   \
	"(" l ".server_start = pg_catalog.pg_postmaster_start_time() AND EXISTS (SELECT 1 FROM"   \
	" pg_catalog.pg_stat_activity a WHERE a.pid = " l ".backend_pid"                          \
	" AND a.usesysid = " l ".db_userid"                                                        \
	" AND (a.backend_start IS NULL OR a.backend_start = " l ".backend_start)))"
#define LOCK_RESTART_UNTIL "(pg_catalog.pg_postmaster_start_time() + interval '" LOAD_LOCK_RESTART_GRACE "')"
#define LOCK_ALIVE(l)                                                                           \
	"coalesce(" l ".token IS NOT NULL AND (" LOCK_SESSION_ALIVE(l) " OR (" l ".server_start IS"  \
	" DISTINCT FROM pg_catalog.pg_postmaster_start_time() AND pg_catalog.now() < "             \
	LOCK_RESTART_UNTIL ")), false)"

/* Takes the row when it is free or its holder is gone; *got says whether it did. */
static const char take_sql[] =
	"INSERT INTO etl_job_lock AS l (job, token, run_id, host, holder_pid, backend_pid,"
	" backend_start, server_start, db_user, db_userid, application, since, heartbeat)"
	" SELECT $1, $2, NULL, $3, $4::int, a.pid, a.backend_start,"
	" pg_catalog.pg_postmaster_start_time(), session_user, a.usesysid, a.application_name,"
	" pg_catalog.now(), pg_catalog.now()"
	" FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()"
	" ON CONFLICT (job) DO UPDATE SET token = EXCLUDED.token, run_id = NULL,"
	" host = EXCLUDED.host, holder_pid = EXCLUDED.holder_pid,"
	" backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start,"
	" server_start = EXCLUDED.server_start, db_user = EXCLUDED.db_user,"
	" db_userid = EXCLUDED.db_userid, application = EXCLUDED.application,"
	" since = EXCLUDED.since, heartbeat = EXCLUDED.heartbeat"
	" WHERE NOT " LOCK_ALIVE("l") " RETURNING 1";

/* Who holds the job's lock, for the message of a run that does not. */
static const char holder_sql[] =
	"SELECT l.run_id, r.snapshot_date, l.db_user, l.application, l.host, l.holder_pid,"
	" l.backend_pid, pg_catalog.to_char(l.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
	" " LOCK_SESSION_ALIVE("l") ","
	" pg_catalog.to_char(" LOCK_RESTART_UNTIL " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
	" FROM etl_job_lock l LEFT JOIN etl_run r ON r.run_id = l.run_id"
	" WHERE l.job = $1 AND l.token IS NOT NULL";

/*
 * Says in err who holds job's lock (ETL_ELOCKED): `what` is how the message
 * starts ("job J is already running" or the like).
 */
static int name_holder(PGconn *conn, const char *job, const char *what, struct etl_error *err)
{
	const char *params[1] = {job};
	PGresult *res = NULL;
	struct etl_error qerr;
	const char *run;

	if (db_query(conn, holder_sql, 1, params, &res, &qerr) != 0 || PQntuples(res) != 1) {
		PQclear(res);
		return etl_fail(err, ETL_ELOCKED, "%s (its holder has just let go of it)", what);
	}
	run = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
	etl_fail(err, ETL_ELOCKED,
		 "%s%s%s%s%s%s: its lock is held by database user %s, application %s, host %s, "
		 "pid %s (server pid %s), since %s UTC%s%s%s",
		 what, run ? ": run " : "", run ? run : "", run ? " (snapshot " : "",
		 run ? PQgetvalue(res, 0, 1) : "", run ? ")" : "", PQgetvalue(res, 0, 2),
		 PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5),
		 PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 7),
		 strcmp(PQgetvalue(res, 0, 8), "t") == 0 ? ""
		 : "\ndetail: its session ended when the database server restarted; it may "
		   "reconnect until ",
		 strcmp(PQgetvalue(res, 0, 8), "t") == 0 ? "" : PQgetvalue(res, 0, 9),
		 strcmp(PQgetvalue(res, 0, 8), "t") == 0 ? "" : " UTC, when the lock is free");
	PQclear(res);
	return ETL_ELOCKED;
}

/* A fresh random token, from the kernel's generator. */
static void new_token(char *out)
{
	unsigned char raw[16];
	size_t i;
	FILE *f = fopen("/dev/urandom", "rb");

	if (!f || fread(raw, 1, sizeof(raw), f) != sizeof(raw)) {
		fprintf(stderr, "intersect-etl: cannot read /dev/urandom\n");
		abort();
	}
	fclose(f);
	for (i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/*
 * The lock of a process that just exited stays held until its backend has
 * noticed the disconnect, which can take a moment after the process is gone
 * (a backfill loop starting the next date at once met it). So a lock that is
 * taken is tried again for up to LOAD_LOCK_WAIT_MS before giving up; a run
 * that is really alive holds it longer than that.
 */
static int try_lock(PGconn *conn, const char *job, const char *token, int *got,
		    struct etl_error *err)
{
	char host[256] = "", pid[16];
	const char *params[4] = {job, token, host, pid};
	PGresult *res = NULL;
	int waited, rc = 0;

	gethostname(host, sizeof(host) - 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	*got = 0;
	for (waited = 0; rc == 0; waited += 100) {
		struct timespec ts = {0, 100 * 1000000L};

		rc = db_query(conn, take_sql, 4, params, &res, err);
		if (rc != 0)
			break;
		*got = PQntuples(res) == 1;
		PQclear(res);
		if (*got || waited >= LOAD_LOCK_WAIT_MS)
			break;
		nanosleep(&ts, NULL);
	}
	return rc;
}

/* Session settings a connection shows the lock with; set_config() is not transactional here. */
static const char join_sql[] =
	"WITH claim AS (UPDATE etl_job_lock l SET backend_pid = a.pid,"
	"   backend_start = a.backend_start, server_start = pg_catalog.pg_postmaster_start_time(),"
	"   db_userid = a.usesysid, heartbeat = pg_catalog.now()"
	"   FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()"
	"   AND l.job = $1 AND l.token = $2 AND NOT " LOCK_SESSION_ALIVE("l") " RETURNING 1)"
	" SELECT pg_catalog.set_config('intersect_etl.job', $1, false),"
	" pg_catalog.set_config('intersect_etl.lock_token', $2, false),"
	" EXISTS (SELECT 1 FROM etl_job_lock WHERE job = $1 AND token = $2),"
	" (SELECT count(*) FROM claim)";

/* The lock row no longer names this process: who has it now. */
static int lost_lock(PGconn *conn, struct etl_error *err)
{
	int rc = name_holder(conn, lock_job, "this run lost the job's lock to another process", err);

	etl_error_prefix(err, "job %s: ", lock_job);
	return rc;
}

int load_lock_join(PGconn *conn, struct etl_error *err)
{
	const char *params[2] = {lock_job, lock_token};
	PGresult *res = NULL;
	int rc, held;

	if (!lock_job)
		return 0; /* nothing to show: this process takes no lock */
	if ((rc = db_query(conn, join_sql, 2, params, &res, err)) != 0)
		return rc;
	held = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	if (held && strcmp(PQgetvalue(res, 0, 3), "1") == 0)
		log_debug("the job's lock is vouched for by server pid %d now", PQbackendPID(conn));
	PQclear(res);
	return held ? 0 : lost_lock(conn, err);
}

int load_fence(PGconn *conn, struct etl_error *err)
{
	PGresult *res = NULL;
	int rc, held;

	if (!lock_job)
		return 0;
	rc = db_query(conn,
		      "SELECT 1 FROM etl_job_lock"
		      " WHERE job = pg_catalog.current_setting('intersect_etl.job', true)"
		      " AND token = pg_catalog.current_setting('intersect_etl.lock_token', true)"
		      " FOR SHARE",
		      0, NULL, &res, err);
	if (rc != 0)
		return rc;
	held = PQntuples(res) == 1;
	PQclear(res);
	return held ? 0 : lost_lock(conn, err);
}

void load_unlock_job(PGconn *conn, const char *job)
{
	const char *params[2] = {job, lock_token};

	if (!lock_job)
		return;
	if (conn && PQstatus(conn) == CONNECTION_OK) {
		db_rollback(conn);
		PQclear(PQexecParams(conn,
				     "UPDATE etl_job_lock SET token = NULL, backend_pid = NULL"
				     " WHERE job = $1 AND token = $2",
				     2, NULL, params, NULL, NULL, 0));
	}
	free(lock_job);
	lock_job = NULL;
	explicit_bzero(lock_token, sizeof(lock_token));
}

int load_lock_job(PGconn *conn, const char *job, struct etl_error *err)
{
	char token[33];
	char *what;
	int rc, got;

	new_token(token);
	if ((rc = try_lock(conn, job, token, &got, err)) != 0) {
		if (strcmp(db_sqlstate(), "42501") == 0)
			etl_error_prefix(err, "job %s: cannot take the job's lock (its role may not "
					 "write etl_job_lock): ", job);
		return rc;
	}
	if (got) {
		free(lock_job);
		lock_job = xstrdup(job);
		memcpy(lock_token, token, sizeof(lock_token));
		return load_lock_join(conn, err);
	}
	what = xasprintf("job %s is already running", job);
	rc = name_holder(conn, job, what, err);
	free(what);
	return rc;
}

int load_lock_run(PGconn *conn, long long run_id, struct etl_error *err)
{
	char id[24];
	const char *params[3] = {lock_job, lock_token, id};

	if (!lock_job)
		return 0;
	snprintf(id, sizeof(id), "%lld", run_id);
	return db_query(conn, "UPDATE etl_job_lock SET run_id = $3 WHERE job = $1 AND token = $2", 3,
			params, NULL, err);
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
			      " page_limit = EXCLUDED.page_limit, max_rows = EXCLUDED.max_rows, retired_at = NULL,"
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
	struct etl_error fence = {0, ""};

	if (!conn || !run_id || PQstatus(conn) != CONNECTION_OK)
		return;
	snprintf(id, sizeof(id), "%lld", run_id);
	db_rollback(conn);
	/* a run whose lock another process took is that process's to record */
	if (load_fence(conn, &fence) != 0)
		return;
	PQclear(PQexecParams(conn,
			     "UPDATE etl_run SET status = 'failed', error = $2, finished_at = now()"
			     " WHERE run_id = $1 AND status = 'running'",
			     2, NULL, params, NULL, NULL, 0));
}

/*
 * Staged rows of this job's other runs are removed: only the latest
 * unfinished run of a date is continued, and we hold the job's lock. A run
 * that succeeded published every set, which deleted its staged rows in the
 * same transaction, so only the others are looked at (the bench saw this
 * statement take 2 s at 1M rows going through the dead rows of runs that had
 * left nothing behind). In the same statement the ledger pages of those sets
 * become 'discarded': a later resume of such a run (`run --snapshot-date` of
 * its date) fetches them again instead of trusting rows that are gone.
 */
static int drop_stale_pending(PGconn *conn, const char *job, long long run_id,
			      struct etl_error *err)
{
	char id[24];
	const char *params[2] = {job, id};

	snprintf(id, sizeof(id), "%lld", run_id);
	/* Versions and domain rows a run staged directly are those of its
	 * date, its run_id, open-ended, of a set it did not complete, at a date
	 * not complete: those runs are found first (`stale`, a handful), then
	 * their rows by index. Written as one join, the planner started from
	 * the versions: a scan of every current version each night (57 ms of
	 * a run's start at 80,000 rows, growing with the set). */
	return db_query(conn,
			"WITH stale AS MATERIALIZED ("
			"  SELECT rs.run_id, rs.target_set_id, r.snapshot_date"
			"  FROM etl_run r JOIN etl_run_set rs ON rs.run_id = r.run_id"
			"  WHERE r.job = $1 AND r.run_id <> $2 AND r.status <> 'succeeded'"
			"  AND rs.direct AND rs.status <> 'complete'"
			"  AND NOT EXISTS (SELECT 1 FROM etl_snapshot c WHERE c.target_set_id = rs.target_set_id"
			"    AND c.snapshot_date = r.snapshot_date AND c.status = 'complete')),"
			" gone AS ("
			"  DELETE FROM domain_intersection_pending p USING etl_run r"
			"  WHERE p.run_id = r.run_id AND r.job = $1 AND r.run_id <> $2"
			"  AND r.status <> 'succeeded' RETURNING p.run_id, p.target_set_id),"
			" vgone AS ("
			"  DELETE FROM domain_intersection_version v USING stale x"
			"  WHERE v.target_set_id = x.target_set_id AND v.valid_to = 'infinity'"
			"  AND v.valid_from = x.snapshot_date AND v.run_id = x.run_id"
			"  RETURNING v.run_id, v.target_set_id),"
			" dgone AS ("
			"  DELETE FROM domain_intersection_domain_version w USING stale x"
			"  WHERE w.target_set_id = x.target_set_id AND w.valid_to = 'infinity'"
			"  AND w.valid_from = x.snapshot_date AND w.run_id = x.run_id"
			"  RETURNING w.run_id, w.target_set_id),"
			" kgone AS ("
			"  DELETE FROM etl_page_keys k USING etl_run r"
			"  WHERE k.run_id = r.run_id AND r.job = $1 AND r.run_id <> $2"
			"  AND r.status <> 'succeeded' RETURNING k.run_id, k.target_set_id),"
			" sets AS (SELECT run_id, target_set_id FROM gone UNION SELECT run_id, target_set_id"
			"  FROM vgone UNION SELECT run_id, target_set_id FROM dgone"
			"  UNION SELECT run_id, target_set_id FROM kgone)"
			" UPDATE etl_page e SET status = 'discarded' FROM sets"
			" WHERE e.run_id = sets.run_id AND e.target_set_id = sets.target_set_id"
			" AND e.status = 'loaded'",
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

int load_start_set(PGconn *conn, long long run_id, long long set_id, const char *request_hash,
		   struct set_start *out, struct etl_error *err)
{
	char run[24], set[24];
	const char *params[3] = {run, set, request_hash};
	PGresult *res = NULL;
	int rc, i;

	memset(out, 0, sizeof(*out));
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(set, sizeof(set), "%lld", set_id);
	/* A direct load that may no longer be one (its date or a later one was
	 * published meanwhile, by a run that had to discard its rows anyway)
	 * goes on staged, its pages fetched again. */
	rc = db_query(conn,
		      "SELECT discard_staged($1, $2) FROM etl_run_set rs"
		      " WHERE rs.run_id = $1 AND rs.target_set_id = $2 AND rs.direct"
		      " AND rs.status <> 'complete' AND NOT direct_load_ok($1, $2)",
		      2, params, NULL, err);
	if (rc != 0)
		return rc;
	rc = db_query(conn,
		      "INSERT INTO etl_run_set AS rs (run_id, target_set_id, request_hash, direct)"
		      " SELECT $1, $2, coalesce($3, request_hash), direct_load_ok($1, $2)"
		      " FROM target_set WHERE target_set_id = $2"
		      " ON CONFLICT (run_id, target_set_id) DO UPDATE SET"
		      "   status = CASE WHEN rs.status = 'complete' THEN 'complete' ELSE 'running' END,"
		      "   error = CASE WHEN rs.status = 'complete' THEN rs.error END,"
		      "   direct = rs.direct AND (rs.status = 'complete' OR direct_load_ok($1, $2))"
		      " RETURNING status, direct, direct AND EXISTS ("
		      "   SELECT 1 FROM domain_intersection_version v, etl_run r"
		      "   WHERE r.run_id = $1 AND v.target_set_id = $2 AND v.valid_to = 'infinity'"
		      "   AND v.valid_from < r.snapshot_date),"
		      " NOT EXISTS ("
		      "   SELECT 1 FROM domain_intersection_domain_version w, etl_run r"
		      "   WHERE r.run_id = $1 AND w.target_set_id = $2"
		      "   AND (w.run_id <> $1 OR w.valid_from <> r.snapshot_date)),"
		      " coalesce((SELECT c.total_count FROM etl_snapshot c, etl_run r"
		      "   WHERE r.run_id = $1 AND c.target_set_id = $2 AND c.status = 'complete'"
		      "   AND c.purged_at IS NULL AND c.snapshot_date < r.snapshot_date"
		      "   AND c.request_hash = rs.request_hash"
		      "   ORDER BY c.snapshot_date DESC LIMIT 1), -1)",
		      3, params, &res, err);
	if (rc != 0)
		return rc;
	out->complete = strcmp(PQgetvalue(res, 0, 0), "complete") == 0;
	out->direct = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	out->lookup = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	/* a night, or a first load (no current version, no domain row but
	 * this run's): the loader writes the domain rows (publish_direct()
	 * judges whether they serve) */
	out->domains = out->direct && (out->lookup || strcmp(PQgetvalue(res, 0, 3), "t") == 0);
	out->expect_total = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	PQclear(res);
	if (out->complete)
		return 0;
	/* The pages loaded, and any the database refused: that one would be
	 * refused again, so the set fails without paying for it twice (`run
	 * --fresh` starts over). */
	rc = db_query(conn,
		      "SELECT page_offset, items, coalesce(total_count, -1), coalesce(cost_usd, 0),"
		      " refused, error, status FROM etl_page"
		      " WHERE run_id = $1 AND target_set_id = $2 ORDER BY page_offset",
		      2, params, &res, err);
	if (rc != 0)
		return rc;
	out->pages = xcalloc((size_t)PQntuples(res) + 1, sizeof(*out->pages));
	for (i = 0; i < PQntuples(res); i++) {
		struct loaded_page *lp = &out->pages[out->n_pages];

		/* every answer charged counts against the ceilings, kept or not */
		out->spent += strtod(PQgetvalue(res, i, 3), NULL);
		if (strcmp(PQgetvalue(res, i, 4), "t") == 0) {
			if (!out->refused)
				out->refused = xasprintf("offset %s: %s (refused by the database in an "
							 "earlier attempt of this run; `run --fresh` "
							 "fetches it again)",
							 PQgetvalue(res, i, 0), PQgetvalue(res, i, 5));
			continue;
		}
		if (strcmp(PQgetvalue(res, i, 6), "loaded") != 0)
			continue;
		lp->offset = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		lp->items = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		lp->total_count = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		lp->cost_usd = strtod(PQgetvalue(res, i, 3), NULL);
		out->n_pages++;
	}
	PQclear(res);
	return 0;
}

/* Binds a page_record and the rows it staged (< 0: none) as the parameters of ledger_sql. */
static int write_ledger(PGconn *conn, const struct page_record *rec, long long staged,
			struct etl_error *err)
{
	char v[13][32];
	const char *params[18];

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
	params[13] = v[10]; /* charged: a failed page's answers may have been too */
	params[14] = v[11];
	params[15] = rec->error;
	snprintf(v[12], sizeof(v[12]), "%lld", staged);
	params[16] = staged >= 0 ? v[12] : NULL;
	params[17] = rec->refused ? "t" : "f";
	return db_query(conn, ledger_sql, 18, params, NULL, err);
}

/* An integer of `size` bytes (2, 4, 8), in network order. */
static void co_int(struct db_copy *co, unsigned long long v, int size)
{
	unsigned char b[8];
	int i;

	for (i = 0; i < size; i++)
		b[i] = (unsigned char)(v >> (8 * (size - 1 - i)));
	db_copy_put(co, b, (size_t)size);
}

/* A field of the binary format: its length (-1: NULL), then its bytes. */
static void co_field(struct db_copy *co, const void *p, size_t len, const char *prefix)
{
	size_t pre = prefix ? strlen(prefix) : 0;

	if (!p) {
		co_int(co, 0xffffffffu, 4);
		return;
	}
	co_int(co, pre + len, 4);
	db_copy_put(co, prefix, pre);
	db_copy_put(co, p, len);
}

/*
 * The page's bodies, in the page's own transaction: archived exactly when
 * loaded. By COPY in pieces (struct db_copy), in COPY's binary format: a
 * body of a few hundred kB goes as its bytes, not as hex or escaped text
 * the server decodes again; a gzip body as the bytes received (sql/004_*).
 * An earlier attempt's row of the page is replaced.
 */
static int write_archive(PGconn *conn, const struct page_record *rec, struct etl_error *err)
{
	static const char header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	char v[3][24];
	const char *params[3] = {v[0], v[1], v[2]};
	struct db_copy co;
	int rc;

	snprintf(v[0], sizeof(v[0]), "%lld", rec->run_id);
	snprintf(v[1], sizeof(v[1]), "%lld", rec->target_set_id);
	snprintf(v[2], sizeof(v[2]), "%lld", rec->offset);
	if ((rc = db_query(conn,
			   "DELETE FROM raw_page WHERE run_id = $1 AND target_set_id = $2"
			   " AND page_offset = $3",
			   3, params, NULL, err)) != 0)
		return rc;
	if ((rc = db_copy_start(conn, "raw_page (run_id, target_set_id, page_offset, page_limit,"
				      " request, body, body_gzip) FROM STDIN (FORMAT binary)",
				&co, err)) != 0) {
		etl_error_prefix(err, "archiving the page: ");
		return rc;
	}
	db_copy_put(&co, header, sizeof(header) - 1); /* signature, flags, no extension */
	co_int(&co, 7, 2);
	co_int(&co, 8, 4);
	co_int(&co, (unsigned long long)rec->run_id, 8);
	co_int(&co, 8, 4);
	co_int(&co, (unsigned long long)rec->target_set_id, 8);
	co_int(&co, 8, 4);
	co_int(&co, (unsigned long long)rec->offset, 8);
	co_int(&co, 4, 4);
	co_int(&co, (unsigned long long)(unsigned)rec->limit, 4);
	co_field(&co, rec->request_body, strlen(rec->request_body), "\1"); /* jsonb: version 1 */
	if (rec->response_gzip) {
		co_field(&co, NULL, 0, NULL);
		co_field(&co, rec->response_gzip, rec->response_gzip_len, NULL);
	} else {
		co_field(&co, rec->response_body, rec->response_len, NULL);
		co_field(&co, NULL, 0, NULL);
	}
	co_int(&co, 0xffffu, 2); /* the trailer */
	if ((rc = db_copy_end(&co, NULL, err)) != 0)
		etl_error_prefix(err, "archiving the page: ");
	return rc;
}

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
	char *what = xasprintf("%s (" TRANSFORM_COLUMNS ") FROM STDIN", table);
	int rc = db_copy_data(conn, what, rows->copy.data, rows->copy.len, sqlstate, err);

	free(what);
	return rc;
}

/*
 * Stages a page's rows. Most pages repeat no row staged before, so they are
 * COPYed straight into the staging table: the fastest way in, and every row
 * of the batch is new (*staged = n_rows). Offset paging can still repeat a
 * referring domain on two pages (or the API one within a page); then the
 * page is redone, inside the same transaction, through di_stage and an
 * upsert that keeps the first result position and counts what it inserted.
 */
static int stage_rows(PGconn *conn, const struct row_batch *rows, long long *staged,
		      struct etl_error *err)
{
	PGresult *res = NULL;
	char state[6];
	int rc;

	*staged = 0;
	if ((rc = db_exec(conn, "SAVEPOINT stage_copy", err)) != 0)
		return rc;
	rc = copy_rows(conn, "domain_intersection_pending", rows, state, err);
	if (rc == 0) {
		*staged = (long long)rows->n_rows;
		return 0;
	}
	if (strcmp(state, "23505") != 0)
		return rc;
	if ((rc = db_exec(conn, "ROLLBACK TO SAVEPOINT stage_copy", err)) != 0)
		return rc;
	if ((rc = copy_rows(conn, "pg_temp.di_stage", rows, NULL, err)) != 0)
		return rc;
	if ((rc = db_query(conn, pending_upsert_sql, 0, NULL, &res, err)) != 0)
		return rc;
	*staged = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/*
 * A direct load's page commits without waiting for its WAL to reach disk
 * (synchronous_commit off, for its transaction alone): at a default server
 * each of a set's page commits waited for a flush that the plain COPY of the
 * same rows makes once. Nothing of a page is ever half there. A crash of
 * the server (not of this process), or a failover to a standby behind it,
 * can lose the pages committed in its last moments, whole, with their
 * ledger rows: the publish then finds fewer pages than the loader loaded
 * (struct loader_word) and refuses, and the run's next attempt fetches only
 * those again. The transactions that end a set or the run wait as the
 * server is set to, and so flush the pages' WAL before them.
 */
static int page_transaction(PGconn *conn, const struct page_record *rec,
			    const struct row_batch *rows, struct etl_error *err)
{
	long long staged = 0;
	int rc;

	rc = db_exec(conn, rec->direct ? "BEGIN; SET LOCAL synchronous_commit TO off" : "BEGIN",
		     err);
	if (rc != 0)
		return rc;
	/* first: a run that lost the job's lock must not stage anything */
	if ((rc = load_fence(conn, err)) != 0)
		goto failed;
	if (rows->n_rows > 0 &&
	    (rc = rec->direct ? stage_direct(conn, rec, rows, &staged, err)
			      : stage_rows(conn, rows, &staged, err)) != 0)
		goto failed;
	if ((rc = write_ledger(conn, rec, staged, err)) != 0)
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

int load_page(PGconn *conn, const struct page_record *rec, const struct row_batch *rows,
	      int *refused, struct etl_error *err)
{
	int rc, tries = 0;

	*refused = 0;
	/* Two connections loading pages that share a referring domain can
	 * deadlock; PostgreSQL cancels one, which is redone whole: the page's
	 * transaction rolled back, so nothing is lost or doubled. */
	do {
		db_clear_sqlstate();
		rc = page_transaction(conn, rec, rows, err);
	} while (rc != 0 && strcmp(db_sqlstate(), "40P01") == 0 && ++tries <= LOAD_DEADLOCK_RETRIES);
	/* Class 22 (data exception: a number out of range, a bad timestamp) is
	 * the page's data, not the database or the run: the caller fails the
	 * page and its set, and the others go on. */
	if (rc != 0 && strncmp(db_sqlstate(), "22", 2) == 0 && PQstatus(conn) == CONNECTION_OK)
		*refused = 1;
	return rc;
}

int load_page_failed(PGconn *conn, const struct page_record *rec, struct etl_error *err)
{
	int rc;

	if ((rc = db_exec(conn, "BEGIN", err)) != 0)
		return rc;
	if ((rc = load_fence(conn, err)) == 0 && (rc = write_ledger(conn, rec, -1, err)) == 0)
		rc = db_exec(conn, "COMMIT", err);
	if (rc != 0)
		db_rollback(conn);
	return rc;
}

/*
 * Publishes the set's staged rows (publish_snapshot(), sql/010_*), in the
 * caller's transaction. A set this run published already (the reply of an
 * earlier try was lost) is left alone; staged rows fewer than the ledger's
 * fail the set with *error_out (owned) saying so, and its pages are
 * discarded with what they staged, to be fetched again.
 */
static int publish(PGconn *conn, const char *const *params, const struct loader_word *word,
		   struct set_outcome *out, char **error_out, struct etl_error *err)
{
	PGresult *res = NULL;
	const char *outcome;
	char text[120];
	const char *wp[1] = {text};
	int rc;

	/* the loader's word (load.h), for this transaction only; read by loader_word() */
	if (word) {
		snprintf(text, sizeof(text), "%s/%s/%lld/%lld", params[0], params[1], word->pages,
			 word->distinct_items);
		rc = db_query(conn, "SELECT set_config('intersect_etl.loader_word', $1, true)", 1,
			      wp, NULL, err);
		if (rc != 0)
			return rc;
	}

	/* Planned at default settings: publish_snapshot() analyzes the keys it
	 * compares and reaches staged rows by their primary key (sql/010), so
	 * stale statistics of the staging table cannot pick a plan that
	 * rescans it per row. */
	rc = db_query(conn, "SELECT * FROM publish_snapshot($1, $2, $3::date, $4::bigint)", 4,
		      params, &res, err);
	if (rc != 0)
		return rc;
	outcome = PQgetvalue(res, 0, 0);
	if (strcmp(outcome, "already") == 0) {
		out->already = 1;
	} else if (strcmp(outcome, "short") == 0) {
		*error_out = xasprintf("%s rows staged, but its loaded pages staged %s: rows of "
				       "loaded pages are missing, so the answer is not published; "
				       "its pages are discarded\n"
				       "hint: running the date again fetches them again",
				       PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		PQclear(res);
		/* what is left cannot be trusted either: continuing the run
		 * fetches the whole set again instead of failing the same way */
		return db_query(conn, "SELECT discard_staged($1, $2)", 2, params, NULL, err);
	} else {
		out->published = 1;
		out->domains = PQgetisnull(res, 0, 3) ? -1 : strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		out->expected = PQgetisnull(res, 0, 4) ? -1 : strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	}
	PQclear(res);
	return 0;
}

int load_finish_set(PGconn *conn, long long run_id, long long set_id, const char *snapshot_date,
		    long long total_count, const struct loader_word *word, const char *error,
		    struct set_outcome *out, struct etl_error *err)
{
	char run[24], set[24], total[24], *short_error = NULL;
	const char *params[4] = {run, set, snapshot_date, total_count >= 0 ? total : NULL};
	const char *upd[4] = {run, set, params[3], error};
	const char *fail[4] = {run, set, snapshot_date, error};
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(set, sizeof(set), "%lld", set_id);
	snprintf(total, sizeof(total), "%lld", total_count);
	if ((rc = db_exec(conn, "BEGIN", err)) != 0)
		return rc;
	if ((rc = load_fence(conn, err)) != 0)
		goto failed;
	if (!error) {
		if ((rc = publish(conn, params, word, out, &short_error, err)) != 0)
			goto failed;
		if (out->already)
			goto commit;
		if (short_error)
			out->error = short_error;
		upd[3] = fail[3] = error = short_error;
	}
	if (error && (rc = db_query(conn, "SELECT fail_snapshot($1, $2, $3::date, $4)", 4, fail,
				    NULL, err)) != 0)
		goto failed;
	rc = db_query(conn,
		      "UPDATE etl_run_set rs SET status = CASE WHEN $4::text IS NULL"
		      "   THEN 'complete' ELSE 'failed' END,"
		      " error = $4, total_count = coalesce($3::bigint, rs.total_count),"
		      " finished_at = now(),"
		      " pages = p.pages, rows = p.rows, cost_usd = p.cost"
		      " FROM (SELECT count(*) FILTER (WHERE status = 'loaded') AS pages,"
		      "        coalesce(sum(rows) FILTER (WHERE status = 'loaded'), 0) AS rows,"
		      "        coalesce(sum(cost_usd), 0) AS cost"
		      "       FROM etl_page WHERE run_id = $1 AND target_set_id = $2) p"
		      " WHERE rs.run_id = $1 AND rs.target_set_id = $2",
		      4, upd, NULL, err);
	if (rc == 0)
		rc = db_query(conn, "SELECT snapshot_cost($1, $2::date)", 2, params + 1, NULL, err);
	if (rc != 0)
		goto failed;
commit:
	if ((rc = db_exec(conn, "COMMIT", err)) != 0)
		goto failed;
	return 0;
failed:
	db_rollback(conn);
	free(short_error);
	out->error = NULL;
	return rc;
}

int load_finish_run(PGconn *conn, long long run_id, const char *status, const char *error,
		    struct etl_error *err)
{
	char run[24];
	const char *params[3] = {run, status, error};

	int rc;

	snprintf(run, sizeof(run), "%lld", run_id);
	if ((rc = db_exec(conn, "BEGIN", err)) != 0)
		return rc;
	if ((rc = load_fence(conn, err)) != 0)
		goto failed;
	rc = db_query(conn,
			"UPDATE etl_run r SET status = $2, error = $3, finished_at = now(),"
			" pages = p.pages, rows = p.rows, cost_usd = p.cost"
			" FROM (SELECT count(*) FILTER (WHERE status = 'loaded') AS pages,"
			"        coalesce(sum(rows), 0) AS rows, coalesce(sum(cost_usd), 0) AS cost"
			"       FROM etl_page WHERE run_id = $1) p"
			" WHERE r.run_id = $1",
			3, params, NULL, err);
	if (rc == 0 && (rc = db_exec(conn, "COMMIT", err)) == 0)
		return 0;
failed:
	db_rollback(conn);
	return rc;
}

/*
 * Runs `sql` in a transaction of its own with a lock_timeout, again after a
 * lock timeout (SQLSTATE 55P03), up to LOAD_MAINT_TRIES times: maintenance
 * never queues behind a report's long transaction, and reports never queue
 * behind it.
 */
static int maintenance(PGconn *conn, const char *sql, int nparams, const char *const *params,
		       PGresult **res, struct etl_error *err)
{
	int rc, tries = 0;

	for (;;) {
		db_clear_sqlstate();
		rc = db_exec(conn, "BEGIN; SET LOCAL lock_timeout = '" LOAD_LOCK_TIMEOUT "'", err);
		if (rc == 0)
			rc = db_query(conn, sql, nparams, params, res, err);
		if (rc == 0 && (rc = db_exec(conn, "COMMIT", err)) == 0)
			return 0;
		db_rollback(conn);
		if (res && *res) {
			PQclear(*res);
			*res = NULL;
		}
		if (strcmp(db_sqlstate(), "55P03") != 0 || ++tries >= LOAD_MAINT_TRIES)
			return rc;
		log_warn("retention: %s; trying again", err->msg);
		sleep(1);
	}
}

int load_retention(PGconn *conn, const struct job *job, const char *snapshot_date, int *dropped,
		   struct etl_error *err)
{
	char days[16];
	const char *params[3] = {job->name, snapshot_date, days};
	PGresult *res = NULL;
	int rc = 0;

	if (dropped)
		*dropped = 0;
	/* Counted back from the earlier of the run's date and today (UTC): a
	 * mistyped future date or a wrong clock must not age the whole history
	 * out. */
	if (job->keep_archive_days > 0) {
		snprintf(days, sizeof(days), "%d", job->keep_archive_days);
		rc = maintenance(conn,
				 "DELETE FROM raw_page r USING etl_run e WHERE r.run_id = e.run_id"
				 " AND e.job = $1 AND e.snapshot_date <="
				 " least($2::date, (now() AT TIME ZONE 'UTC')::date) - $3::int",
				 3, params, NULL, err);
		if (rc != 0)
			return rc;
	}
	if (job->keep_snapshots_days <= 0)
		return 0;
	snprintf(days, sizeof(days), "%d", job->keep_snapshots_days);
	/* Per set of the job (never another job's), in one transaction: the
	 * set's newest complete snapshot is always kept. */
	rc = maintenance(conn,
			 "SELECT coalesce(sum(purge_snapshots(target_set_id,"
			 " least($2::date, (now() AT TIME ZONE 'UTC')::date) - $3::int + 1)), 0)"
			 " FROM target_set WHERE job = $1",
			 3, params, &res, err);
	if (rc != 0)
		return rc;
	if (dropped)
		*dropped = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

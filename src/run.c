/*
 * run.c - one run of a job from start to end (see run.h): the options, the
 * database and the job's lock, the run and this process's attempt, the sets
 * it joins, then the scheduler (schedule.c) until every set is settled, then
 * the outcome, retention and the metrics file.
 */
#include "run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "date.h"
#include "db.h"
#include "metrics.h"
#include "migrate.h"
#include "plan.h"
#include "report.h"
#include "schedule.h"
#include "signals.h"

static int selected(const struct run_options *opt, const char *name)
{
	size_t i;

	if (opt->n_only == 0)
		return 1;
	for (i = 0; i < opt->n_only; i++)
		if (strcmp(opt->only[i], name) == 0)
			return 1;
	return 0;
}

/* Everything the user can get wrong is checked before any connection. */
static int check_options(const struct run_options *opt, const struct job *job,
			 struct etl_error *err)
{
	char tomorrow[16];
	size_t i;

	char why[160];

	for (i = 0; i < opt->n_only; i++)
		if (!job_find_set(job, opt->only[i]))
			return job_no_such_set(job, "--only", opt->only[i], err);
	if (!opt->snapshot_date)
		return 0;
	if (!date_check(opt->snapshot_date, why, sizeof(why)))
		return etl_fail(err, ETL_EUSAGE, "--snapshot-date %s: %s", opt->snapshot_date, why);
	/* A date in the future is a typo or a wrong clock: its run would sort
	 * after every real night (retention counts from the earlier of the two
	 * anyway). One day ahead is allowed for time zones east of UTC. */
	date_utc(tomorrow, sizeof(tomorrow), 1);
	if (strcmp(opt->snapshot_date, tomorrow) > 0)
		return etl_fail(err, ETL_EUSAGE,
				"--snapshot-date %s: after tomorrow (%s, UTC)\n"
				"hint: snapshot dates are UTC dates of nights that have happened",
				opt->snapshot_date, tomorrow);
	return 0;
}

/*
 * Runs of this job still `running` while we hold its lock belong to
 * processes that are gone (SIGKILL, a crash): they become `abandoned`, their
 * counters taken from the ledger (sql/012_run_attempts.sql).
 */
static int abandon_dead_runs(struct run_ctx *rc, struct etl_error *err)
{
	const char *params[1] = {rc->job->name};
	PGresult *res = NULL;
	int ret, n;

	ret = db_query(rc->conn, "SELECT abandon_runs($1)", 1, params, &res, err);
	if (ret != 0)
		return ret;
	n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (n > 0)
		log_warn("%d earlier run%s of job %s marked abandoned: %s process ended without "
			 "recording an outcome (see `runs`)",
			 n, n == 1 ? "" : "s", rc->job->name, n == 1 ? "its" : "their");
	return 0;
}

/* Records this process as the run's next attempt. */
static int attempt_begin(struct run_ctx *rc, struct etl_error *err)
{
	char id[24], pid[16], host[256] = "";
	const char *params[3] = {id, host, pid};
	PGresult *res = NULL;
	int ret;

	snprintf(id, sizeof(id), "%lld", rc->run_id);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	gethostname(host, sizeof(host) - 1);
	ret = db_query(rc->conn, "SELECT begin_attempt($1, $2, $3)", 3, params, &res, err);
	if (ret != 0)
		return ret;
	rc->attempt = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/*
 * Ends this process's attempt with the run's status and error, its figures
 * from the ledger. Best effort: after a database failure the connection may
 * be gone, and the next run marks the attempt abandoned instead.
 */
static void attempt_end(struct run_ctx *rc, const char *status, const char *error)
{
	char id[24], n[16];
	const char *params[4] = {id, n, status, error};
	struct etl_error err = {0, ""};

	if (!rc->attempt || !rc->conn || PQstatus(rc->conn) != CONNECTION_OK)
		return;
	snprintf(id, sizeof(id), "%lld", rc->run_id);
	snprintf(n, sizeof(n), "%d", rc->attempt);
	db_rollback(rc->conn);
	if (db_query(rc->conn, "SELECT finish_attempt($1, $2, $3, $4)", 4, params, NULL, &err) != 0)
		log_warn("recording the end of attempt %d of run %lld: %s", rc->attempt, rc->run_id,
			 err.msg);
	rc->attempt = 0;
}

/* Connects, takes the job's lock, records its sets and starts (or resumes) the run. */
static int open_run(struct run_ctx *rc, const struct run_options *opt, long long *ids,
		    struct run_result *result, struct etl_error *err)
{
	const struct job *job = rc->job;
	int ret, applied = 0;

	if ((ret = db_connect(job->db.url, job->db.schema, opt->migrate, &rc->conn, err)) != 0)
		return ret;
	rc->conns[rc->n_conns++] = rc->conn;
	if (opt->migrate) {
		if ((ret = migrate_apply(rc->conn, &applied, err)) != 0)
			return ret;
		if (applied)
			log_info("applied %d migration%s", applied, applied == 1 ? "" : "s");
	}
	if ((ret = migrate_check(rc->conn, err)) != 0)
		return ret;
	if ((ret = load_lock_job(rc->conn, job->name, err)) != 0)
		return ret;
	rc->locked = 1;
	if ((ret = load_prepare(rc->conn, err)) != 0)
		return ret;
	/* the loaders' other connections open while this one starts the run
	 * (after load_prepare(), which builds the staging SQL every connection shares) */
	rc->opener = load_open_start(&job->db, rc->n_conns, job->db.connections);
	/* before a run is started or continued: drop_stale_pending() would
	 * discard what a dead run loaded before its counters are taken */
	if ((ret = abandon_dead_runs(rc, err)) != 0)
		return ret;
	if ((ret = load_register_sets(rc->conn, job, ids, err)) != 0)
		return ret;
	if ((ret = load_start_run(rc->conn, job, rc->snapshot_date, opt->fresh, &rc->run_id,
				  &result->resumed, err)) != 0)
		return ret;
	result->run_id = rc->run_id;
	if ((ret = load_lock_run(rc->conn, rc->run_id, err)) != 0)
		return ret;
	if ((ret = attempt_begin(rc, err)) != 0)
		return ret;
	log_set_context(job->name, rc->run_id);
	log_info("run %lld of job %s, snapshot %s%s", rc->run_id, job->name, rc->snapshot_date,
		 result->resumed ? " (continuing an unfinished run)" : "");
	return 0;
}

/* The selected sets joined to the run, with what an earlier process of it did. */
static int open_sets(struct run_ctx *rc, const struct run_options *opt, const long long *ids,
		     struct etl_error *err)
{
	const struct job *job = rc->job;
	size_t i;
	int ret;

	rc->sets = xcalloc(job->n_sets, sizeof(*rc->sets));
	for (i = 0; i < job->n_sets; i++) {
		struct set_state *s;
		struct set_start st;

		if (!selected(opt, job->sets[i].name))
			continue;
		s = &rc->sets[rc->n_sets++];
		s->def = &job->sets[i];
		s->id = ids[i];
		s->total = -1;
		ret = load_start_set(rc->conn, rc->run_id, s->id, NULL, &st, err);
		if (ret != 0)
			return ret;
		s->complete_before = st.complete;
		s->direct = st.direct;
		s->lookup = st.lookup;
		s->domains = st.domains;
		s->expect = st.expect_total;
		/* a night judges its rows against the current versions itself,
		 * read as the first pages come (schedule.c) */
		s->wants_map = s->direct && s->lookup && !st.complete;
		s->seen_all = 1;
		s->map_done = !s->wants_map;
		s->spent = st.spent;
		s->loaded = st.pages;
		s->n_loaded = st.n_pages;
		if (st.refused) {
			sched_set_fail(s, st.refused);
			free(st.refused);
		}
		sched_adopt_loaded(s);
		rc->spent += s->spent;
		if (s->n_loaded)
			log_set_msg(LOG_INFO, s->def->name, "%zu page%s already loaded by this run",
				    s->n_loaded, s->n_loaded == 1 ? "" : "s");
	}
	return 0;
}

/*
 * The run's pages loaded, rows and cost as its ledger sums them, every
 * process of the run included: the figures load_finish_run() writes into
 * etl_run, so the run's last line says what `runs` will.
 */
static int ledger_totals(struct run_ctx *rc, struct run_result *result, struct etl_error *err)
{
	char id[24];
	const char *params[1] = {id};
	PGresult *res = NULL;
	int ret;

	snprintf(id, sizeof(id), "%lld", rc->run_id);
	ret = db_query(rc->conn,
		       "SELECT count(*) FILTER (WHERE status = 'loaded'), coalesce(sum(rows), 0),"
		       " coalesce(sum(cost_usd), 0)::text FROM etl_page WHERE run_id = $1",
		       1, params, &res, err);
	if (ret != 0)
		return ret;
	result->pages = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	result->rows = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	result->cost_usd = strtod(PQgetvalue(res, 0, 2), NULL);
	result->counted = 1;
	result->duration_seconds = mono_now() - rc->t0;
	PQclear(res);
	return 0;
}

/* Ends the sets still open, then the run with its status; retention after a full success. */
static int finish_run(struct run_ctx *rc, struct run_result *result, struct etl_error *err)
{
	const struct job *job = rc->job;
	const char *status;
	size_t i, n_failed = 0, n_done = 0;
	char *msg = NULL;
	int ret, dropped = 0;

	/* Sets still open here were cut off by a run-wide stop. */
	for (i = 0; i < rc->n_sets; i++) {
		struct set_state *s = &rc->sets[i];

		if (!s->finished && !s->complete_before) {
			s->in_flight = 0;
			/* a set a ceiling stopped is judged by what it loaded */
			if (!s->error && (!s->stopped || rc->abort_msg))
				sched_set_fail(s, rc->abort_msg ? rc->abort_msg : "stopped before it finished");
			if ((ret = sched_finish_set(rc, s, err)) != 0)
				return ret;
		}
		if (s->error)
			n_failed++;
		else
			n_done++;
	}
	result->sets_complete = n_done;
	result->sets_failed = n_failed;
	/* The figures are the ledger's, as etl_run will hold them. */
	if ((ret = ledger_totals(rc, result, err)) != 0)
		return ret;
	/* README "Exit status": partial (3) when some set completed, failed (1)
	 * when none did or a run-wide error (credentials, payment) stopped it;
	 * a cost ceiling is no exception. */
	status = rc->interrupted                 ? "interrupted"
		 : n_failed == 0                 ? "succeeded"
		 : rc->abort_msg || n_done == 0 ? "failed"
						  : "partial";
	if (n_failed && rc->abort_msg) {
		msg = xstrdup(rc->abort_msg);
	} else if (n_failed && rc->ceiling_msg) {
		char cost[32];

		report_format_usd(cost, sizeof(cost), result->cost_usd);
		msg = xasprintf("%s: %s charged; %zu of %zu target set%s not finished",
				rc->ceiling_msg, cost, n_failed, rc->n_sets, rc->n_sets == 1 ? "" : "s");
	} else if (n_failed) {
		msg = xasprintf("%zu of %zu target set%s failed", n_failed, rc->n_sets,
				rc->n_sets == 1 ? "" : "s");
	}
	ret = load_finish_run(rc->conn, rc->run_id, status, msg, err);
	if (ret == 0)
		attempt_end(rc, status, msg);
	if (ret == 0 && rc->interrupted)
		ret = etl_fail(err, rc->interrupted == SIGINT ? ETL_ESIGINT : ETL_ESIGTERM,
			       "run %lld interrupted: %zu of %zu target set%s complete; pages loaded "
			       "are kept\nhint: `intersect-etl run %s --snapshot-date %s` continues it",
			       rc->run_id, n_done, rc->n_sets, rc->n_sets == 1 ? "" : "s",
			       rc->job->path, rc->snapshot_date);
	else if (ret == 0 && n_failed)
		ret = etl_fail(err, strcmp(status, "partial") == 0 ? ETL_EPARTIAL : ETL_EFAIL,
			       "run %lld %s: %s", rc->run_id, status, msg);
	/* Retention only after a run that published every set: a failing job
	 * must not eat its own history night after night. */
	if (ret == 0 && (job->keep_snapshots_days || job->keep_archive_days)) {
		ret = load_retention(rc->conn, job, rc->snapshot_date, &dropped, err);
		if (ret == 0 && dropped)
			log_info("retention: removed %d snapshot%s older than %d days", dropped,
				 dropped == 1 ? "" : "s", job->keep_snapshots_days);
	}
	free(msg);
	return ret;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The sets as the run's ledger has them (etl_run_set), with this process's requests. */
static void metrics_sets(struct run_ctx *rc, struct metrics_run *m)
{
	char id[24];
	const char *params[1] = {id};
	struct etl_error err = {0, ""};
	PGresult *res = NULL;
	int i;

	snprintf(id, sizeof(id), "%lld", rc->run_id);
	if (!rc->run_id || !rc->conn || PQstatus(rc->conn) != CONNECTION_OK ||
	    db_query(rc->conn,
		     "SELECT t.name, rs.status, rs.pages, rs.rows, rs.cost_usd FROM etl_run_set rs"
		     " JOIN target_set t USING (target_set_id) WHERE rs.run_id = $1"
		     " ORDER BY t.name COLLATE \"C\"",
		     1, params, &res, &err) != 0)
		return;
	m->sets = xcalloc((size_t)PQntuples(res) + 1, sizeof(*m->sets));
	for (i = 0; i < PQntuples(res); i++) {
		struct metrics_set *ms = &m->sets[m->n_sets++];

		ms->name = xstrdup(PQgetvalue(res, i, 0));
		ms->status = xstrdup(PQgetvalue(res, i, 1));
		ms->pages = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		ms->rows = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		ms->cost_usd = strtod(PQgetvalue(res, i, 4), NULL);
		for (size_t k = 0; k < rc->n_sets; k++)
			if (strcmp(rc->sets[k].def->name, ms->name) == 0) {
				ms->requests = rc->sets[k].requests;
				ms->retries = rc->sets[k].retries;
			}
	}
	PQclear(res);
}

/*
 * The metrics file, at the end of every run that read its job, a failed
 * one too (metrics.h). A file that cannot be written is a warning: the
 * run's own outcome stands, and a stale end time is what alerts then.
 */
static void write_metrics(struct run_ctx *rc, const char *path, struct run_result *result,
			  int ret)
{
	struct metrics_run m;
	struct etl_error err = {0, ""};

	memset(&m, 0, sizeof(m));
	m.job = rc->job->name;
	m.run_id = rc->run_id;
	m.snapshot_date = rc->snapshot_date;
	m.status = rc->interrupted       ? "interrupted"
		   : ret == 0            ? "succeeded"
		   : ret == ETL_EPARTIAL ? "partial"
					 : "failed";
	m.exit_status = ret;
	m.start_time = rc->wall0;
	if (!result->counted && rc->run_id && rc->conn && PQstatus(rc->conn) == CONNECTION_OK) {
		db_rollback(rc->conn);
		if (ledger_totals(rc, result, &err) != 0)
			result->counted = 0;
	}
	m.pages = result->pages;
	m.rows = result->rows;
	m.cost_usd = result->cost_usd;
	m.requests = rc->requests;
	m.retries = rc->retries;
	metrics_sets(rc, &m);
	m.end_time = wall_now();
	if (metrics_write(path, &m, &err) != 0)
		log_warn("%s", err.msg);
	else
		log_debug("metrics written to %s", path);
	metrics_free_sets(&m);
}

/* Frees what the run holds; the job's lock is released before its connection closes. */
static void run_free(struct run_ctx *rc)
{
	size_t i;

	sched_free(rc);
	free(rc->abort_msg);
	free(rc->ceiling_msg);
	if (rc->opener) { /* the run ended before it loaded anything */
		struct etl_error late;

		if (load_open_finish(rc->opener, rc->conns, &rc->n_conns, &late) != 0)
			log_debug("%s", late.msg);
		rc->opener = NULL;
	}
	for (i = 1; i < (size_t)rc->n_conns; i++)
		if (rc->conns[i])
			PQfinish(rc->conns[i]);
	if (rc->conn) {
		/* Explicitly: a backend notices a closed connection only a moment
		 * later, and until then a run started right after this one would
		 * find the lock taken. */
		if (rc->locked)
			load_unlock_job(rc->conn, rc->job->name);
		PQfinish(rc->conn);
	}
}

int run_job(const struct run_options *opt, struct run_result *result, struct etl_error *err)
{
	struct run_ctx rc;
	struct job *job = NULL;
	long long *ids = NULL;
	char today[16], *url = NULL;
	struct sigaction old_signals[2];
	size_t i;
	int ret;
	double started;

	memset(&rc, 0, sizeof(rc));
	memset(result, 0, sizeof(*result));
	rc.t0 = mono_now();
	rc.wall0 = wall_now();
	signals_catch(old_signals);
	if ((ret = job_load_file(opt->job_path, &job, err)) != 0)
		goto out;
	if ((ret = check_options(opt, job, err)) != 0)
		goto out;
	date_utc(today, sizeof(today), 0);
	rc.job = job;
	rc.snapshot_date = opt->snapshot_date ? opt->snapshot_date : today;
	rc.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	ids = xcalloc(job->n_sets, sizeof(*ids));
	if ((ret = open_run(&rc, opt, ids, result, err)) != 0)
		goto out;
	if ((ret = open_sets(&rc, opt, ids, err)) != 0)
		goto out;
	url = xasprintf("%s%s", job->api.base_url, plan_endpoint_path(job->api.provider));
	if ((ret = fetcher_new(&job->api, url, &rc.fetcher, err)) != 0)
		goto out;
	/* Sets with nothing left to do (empty, or finished by an earlier process). */
	for (i = 0; i < rc.n_sets; i++)
		if ((ret = sched_finish_set(&rc, &rc.sets[i], err)) != 0)
			goto out;
	started = mono_now();
	progress_start(60);
	if ((ret = sched_fetch_all(&rc, started, err)) != 0)
		goto out;
	{
		struct progress prog;

		sched_progress(&rc, started, &prog);
		progress_finish(&prog);
	}
	ret = finish_run(&rc, result, err);
out:
	/* not for a run that found the job locked: the holder writes its own */
	if (rc.job && ret != ETL_ELOCKED && (opt->metrics_file || job->metrics_file))
		write_metrics(&rc, opt->metrics_file ? opt->metrics_file : job->metrics_file, result,
			      ret);
	/* ETL_ELOCKED: the run is another process's now, or was never ours */
	if (ret != 0 && ret != ETL_ELOCKED) {
		load_fail_run(rc.conn, rc.run_id, err->msg);
		attempt_end(&rc, "failed", err->msg);
	}
	run_free(&rc);
	free(ids);
	free(url);
	job_free(job);
	signals_restore(old_signals);
	return ret;
}

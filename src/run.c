/*
 * run.c - the scheduler of one run. See run.h.
 *
 * Paging follows plan.c's rule. Each set is a small state machine: its first
 * page goes out alone (total_count is unknown until it answers), then its
 * remaining offsets are issued in order as capacity allows, several in flight
 * at once. A set ends when every issued page is settled and nothing remains
 * below min(total_count, max_rows) or a page came back empty. Work is picked
 * round-robin across sets so one large set does not starve the others.
 */
#include "run.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "date.h"
#include "db.h"
#include "fetch.h"
#include "job.h"
#include "load.h"
#include "loader.h"
#include "log.h"
#include "membudget.h"
#include "metrics.h"
#include "migrate.h"
#include "plan.h"
#include "report.h"
#include "retry.h"
#include "signals.h"
#include "stage.h"
#include "transform.h"

/* Reconnect attempts when the database goes away mid-run. */
#define RUN_DB_RETRIES 8
/*
 * Pages parsed and waiting for a loader thread, at most (besides the one
 * each loader is transforming and loading). Each is a page's parsed answer
 * (about twice its body: ~3 MB for 1000 items of 2 targets) held for nothing
 * when the loaders are the slower side; one keeps them busy (scripts/bench:
 * first loads and nights as fast with 1 as with 2, peak RSS at 100k rows
 * 29.2 MiB against 31.5).
 */
#define RUN_LOAD_QUEUE 1
/* A pooled batch keeps its COPY buffer up to this size; a larger one (a
 * hostile page) is freed with its message rather than held for nothing. */
#define RUN_BATCH_KEEP ((size_t)4 * 1024 * 1024)

struct set_state {
	const struct target_set *def;
	long long id;                 /* target_set_id */
	long long total;              /* total_count; -1 until the first page answers */
	long long expect;             /* the previous night's total_count, or -1 (expect_pages()) */
	long long next_offset;        /* next offset to consider issuing */
	int in_flight;                /* issued and not yet settled */
	int ended;                    /* an empty page was seen: issue nothing more */
	int complete_before;          /* this run finished the set in an earlier process */
	int finished;                 /* outcome recorded in the database */
	int finishing;                /* its outcome is on its way to the database */
	char *stopped;                /* owned: a cost ceiling's message: issue nothing more, end
				       * with what is loaded (complete if that is the whole answer) */
	char *error;                  /* owned: why the set failed, NULL if it did not */
	struct loaded_page *loaded;   /* owned: pages loaded by an earlier process */
	size_t n_loaded;
	long long pages, rows;        /* loaded by this process */
	long long items;              /* referring domains of those pages (max_rows counts these) */
	double cost;                  /* charged for the pages this process settled */
	double spent;                 /* charged for every answer of this run, earlier processes too */
	double reserved;              /* worst case of its pages in flight */
	long long requests, retries;  /* sent by this process, for the metrics file */
	int direct, lookup, domains;  /* how its pages load (struct set_start) */
	struct cur_map current;       /* direct: its current versions (curmap.h), read by a
				       loader thread (DB_CURRENT) while the first pages come */
	int wants_map;                /* its rows are judged against `current` */
	struct cur_map seen;          /* wants_map: the domains of the items this process
				       * loaded (cur_map_domain_fp()), on the fetching thread */
	int seen_all;                 /* every page it loaded added its items' to `seen` */
	int map_done;                 /* `current` is read (or failed): under map_lock */
};

/* map_done of every set: a page's transform waits for its set's (current_map()). */
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t map_read = PTHREAD_COND_INITIALIZER;

/* One page in flight; the fetch request's `user`. */
struct page_job {
	struct set_state *set;
	long long offset;
	int limit;
	int attempts;
	double first_start;
	double reserved;              /* its worst-case cost, held while it is asked */
	double paid;                  /* what its answers were charged, every attempt */
};

struct run_ctx {
	const struct job *job;
	const char *snapshot_date;
	PGconn *conn;                 /* the run's own: its lock, run and set rows */
	PGconn *conns[JOB_MAX_CONNECTIONS]; /* the loaders': conns[0] is conn */
	int n_conns;
	struct fetcher *fetcher;
	struct set_state *sets;
	size_t n_sets;
	size_t rr;                    /* round-robin cursor over sets */
	long long run_id;
	char *abort_msg;              /* owned: set when the whole run must stop */
	struct loader *loader;        /* the database thread, while fetching */
	struct db_msg *spare;         /* finished messages, their batches kept for reuse */
	unsigned seed;                /* jitter state */
	int ok_streak;                /* successes since the last slow-down */
	double spent, reserved;       /* the run's, as for a set */
	char *ceiling_msg;            /* owned: set when the job's cost ceiling stopped the run */
	int locked;                   /* conn holds the job's lock */
	int attempt;                  /* this process's etl_run_attempt, 0 until recorded */
	int interrupted;              /* the signal that stopped the run, 0 if none */
	double t0;                    /* when this process began the run (mono_now()) */
	double wall0;                 /* the same in seconds since the epoch, for metrics */
	long long requests, retries;  /* sent by this process */
	atomic_int unfenced;          /* connections lost and not yet back with the job's lock:
					 while any is, no request goes out */
};

/* Stops the run on a signal: nothing more is sent, what is loading commits. */
static void check_signal(struct run_ctx *rc)
{
	int sig = signals_pending();

	if (!sig || rc->interrupted)
		return;
	rc->interrupted = sig;
	if (!rc->abort_msg)
		rc->abort_msg = xasprintf("interrupted by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	log_warn("%s: stopping: no more requests; %zu in flight dropped, pages being loaded are "
		 "committed first; `run --snapshot-date %s` continues the run",
		 sig == SIGINT ? "SIGINT" : "SIGTERM",
		 fetcher_in_flight(rc->fetcher) + fetcher_queued(rc->fetcher), rc->snapshot_date);
}

static int is_loaded(const struct set_state *s, long long offset, const struct loaded_page **lp)
{
	size_t lo = 0, hi = s->n_loaded;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->loaded[mid].offset == offset) {
			if (lp)
				*lp = &s->loaded[mid];
			return 1;
		}
		if (s->loaded[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/*
 * Applies what an earlier process of this run already loaded: total_count
 * from the first page, and an empty page ending the set.
 */
static void adopt_loaded(struct set_state *s)
{
	size_t i;

	for (i = 0; i < s->n_loaded; i++) {
		if (s->loaded[i].offset == 0 && s->loaded[i].total_count >= 0)
			s->total = s->loaded[i].total_count;
		if (s->loaded[i].items == 0)
			s->ended = 1;
	}
}

/*
 * Before the first page tells total_count, the pages the set's previous
 * night had in full (its total_count, s->expect) go out beside it, so that
 * a night's first round of requests is whole instead of one page alone.
 * Only whole pages below that total: a set that shrank by less than a page
 * costs nothing more; one that shrank further pays for at most a round of
 * empty pages. Returns the next such page's limit, or 0.
 */
static int expect_pages(struct set_state *s, long long *offset)
{
	int limit;

	while (s->expect > 0 && s->next_offset + s->def->limit <= s->expect &&
	       (limit = plan_page_limit(s->def, s->next_offset, s->expect)) > 0) {
		*offset = s->next_offset;
		s->next_offset += s->def->limit;
		if (!is_loaded(s, *offset, NULL))
			return limit;
	}
	return 0;
}

/* The next page of s to issue, or 0 (limit) when s has nothing to issue now. */
static int next_page(struct set_state *s, long long *offset)
{
	if (s->finished || s->error || s->ended || s->complete_before)
		return 0;
	if (s->total < 0) {
		/* The first page, and what expect_pages() allows, before total_count is known. */
		if (is_loaded(s, 0, NULL))
			return 0;
		if (s->next_offset > 0)
			return expect_pages(s, offset);
		*offset = 0;
		s->next_offset = s->def->limit;
		return plan_page_limit(s->def, 0, -1);
	}
	for (;;) {
		int limit = plan_page_limit(s->def, s->next_offset, s->total);

		if (limit == 0)
			return 0;
		*offset = s->next_offset;
		s->next_offset += s->def->limit;
		if (!is_loaded(s, *offset, NULL))
			return limit;
	}
}

/* Holds (or, with a negative amount, releases) a request's worst case. */
static void reserve(struct run_ctx *rc, struct page_job *pj, double amount)
{
	pj->reserved += amount;
	pj->set->reserved += amount;
	rc->reserved += amount;
}

static void submit(struct run_ctx *rc, struct set_state *s, long long offset, int limit)
{
	struct page_job *pj = xcalloc(1, sizeof(*pj));
	struct fetch_req *req;

	pj->set = s;
	pj->offset = offset;
	pj->limit = limit;
	pj->attempts = 1;
	reserve(rc, pj, plan_cost(1, limit));
	req = fetch_req_new(plan_request_body(rc->job, s->def, offset, limit), pj);
	req->keep_wire = rc->job->archive;
	s->in_flight++;
	s->requests++;
	rc->requests++;
	log_set_msg(LOG_DEBUG, s->def->name, "request offset %lld limit %d", offset, limit);
	fetcher_add(rc->fetcher, req);
}

static void set_fail(struct set_state *s, const char *msg);

/*
 * What a set stopped by a cost ceiling leaves unfetched from `offset` on:
 * the pages below min(total_count, max_rows) not loaded (by this process or
 * an earlier one), counted as plan.c pages them. Owned by the caller.
 */
static char *unfetched(const struct set_state *s, long long offset)
{
	long long pages = 0, items = 0, o;
	int limit;

	if (s->total < 0)
		return xasprintf("left unfetched: the whole set (its total_count is unknown; "
				 "max_rows %lld)",
				 s->def->max_rows);
	for (o = offset; (limit = plan_page_limit(s->def, o, s->total)) > 0; o += s->def->limit)
		if (!is_loaded(s, o, NULL)) {
			pages++;
			items += limit;
		}
	return xasprintf("left unfetched: %lld page%s from offset %lld (%lld referring "
			 "domain%s of total_count %lld)",
			 pages, pages == 1 ? "" : "s", offset, items, items == 1 ? "" : "s", s->total);
}

/* Whether spent, the worst case held and `own` more would pass cap (0: none). */
static int over_ceiling(double cap, double spent, double reserved, double own)
{
	return cap > 0 && spent + reserved + own > cap + 1e-9;
}

/*
 * A ceiling stops a set from issuing: what is in flight still lands, and
 * maybe_finish_set() decides, once nothing is, whether what it has is the
 * whole answer (published) or not (failed, saying what is left).
 */
static void stop_set(struct set_state *s, const char *why)
{
	if (!s->stopped && !s->error && !s->finished && !s->complete_before)
		s->stopped = xstrdup(why);
}

/*
 * The cost ceilings: a page goes out only if what was spent, the worst case
 * of what is in flight and its own worst case stay within the job's and its
 * set's max_cost_usd. Returns 0 and stops the set (or every set, for the
 * job's ceiling) when they would not.
 */
static int within_budget(struct run_ctx *rc, struct set_state *s, int limit)
{
	double own = plan_cost(1, limit), cap;
	char spent[32], held[32], *msg;
	size_t i;

	cap = rc->job->max_cost_usd;
	if (over_ceiling(cap, rc->spent, rc->reserved, own)) {
		if (!rc->ceiling_msg) {
			rc->ceiling_msg = xasprintf("the job's cost ceiling max_cost_usd $%.4f stopped "
						    "the run",
						    cap);
			report_format_usd(spent, sizeof(spent), rc->spent);
			report_format_usd(held, sizeof(held), rc->reserved);
			log_warn("cost ceiling max_cost_usd $%.4f reached: %s charged, up to %s for "
				 "the requests in flight; no more requests are sent",
				 cap, spent, held);
		}
		for (i = 0; i < rc->n_sets; i++)
			stop_set(&rc->sets[i], rc->ceiling_msg);
		return 0;
	}
	cap = s->def->max_cost_usd;
	if (over_ceiling(cap, s->spent, s->reserved, own)) {
		if (!s->stopped) {
			report_format_usd(spent, sizeof(spent), s->spent);
			log_set_msg(LOG_WARN, s->def->name,
				    "cost ceiling max_cost_usd $%.4f of the set reached: %s charged; "
				    "no more requests for it",
				    cap, spent);
		}
		msg = xasprintf("the set's cost ceiling max_cost_usd $%.4f stopped it", cap);
		stop_set(s, msg);
		free(msg);
		return 0;
	}
	return 1;
}

/*
 * No request starts while the memory budget is spent (membudget.h), unless
 * nothing is in flight or loading that would give room back.
 */
static int room_for_requests(struct run_ctx *rc)
{
	return membudget_fits(0) ||
	       (fetcher_in_flight(rc->fetcher) + fetcher_queued(rc->fetcher) == 0 &&
		(!rc->loader || loader_outstanding(rc->loader) == 0));
}

/* Issues pages round-robin while the fetcher has room for more. */
static void fill(struct run_ctx *rc)
{
	size_t idle = 0;

	while (!rc->abort_msg && atomic_load(&rc->unfenced) == 0 && room_for_requests(rc) &&
	       fetcher_in_flight(rc->fetcher) + fetcher_queued(rc->fetcher) <
		       (size_t)fetcher_concurrency(rc->fetcher) &&
	       idle < rc->n_sets) {
		struct set_state *s = &rc->sets[rc->rr];
		long long offset;
		int limit;

		rc->rr = (rc->rr + 1) % rc->n_sets;
		limit = s->stopped ? 0 : next_page(s, &offset);
		if (limit == 0) {
			idle++;
			continue;
		}
		idle = 0;
		if (within_budget(rc, s, limit))
			submit(rc, s, offset, limit);
		else
			s->next_offset = offset; /* not issued: still to fetch */
	}
}

static void set_fail(struct set_state *s, const char *msg)
{
	if (!s->error)
		s->error = xstrdup(msg);
}

/*
 * A lost connection comes back with backoff, and with what the session had:
 * search_path, the job's lock (every writing connection shows it, and a
 * connection that finds it taken over ends the run: ETL_ELOCKED) and the
 * staging table.
 */
static int reconnect(struct run_ctx *rc, PGconn *conn, int *attempt, struct etl_error *err)
{
	char *ident, *sql;
	int r;

	/* *attempt counts across a step's reconnects: one budget of waiting */
	for (; *attempt < RUN_DB_RETRIES; (*attempt)++) {
		struct timespec ts = {1 << (*attempt < 4 ? *attempt : 4), 0};

		nanosleep(&ts, NULL);
		PQreset(conn);
		if (PQstatus(conn) == CONNECTION_OK)
			break;
	}
	if (PQstatus(conn) != CONNECTION_OK)
		return ETL_EFAIL;
	ident = PQescapeIdentifier(conn, rc->job->db.schema, strlen(rc->job->db.schema));
	sql = xasprintf(DB_SESSION_SQL, ident ? ident : "public");
	r = db_exec(conn, sql, err);
	PQfreemem(ident);
	free(sql);
	if (r == 0)
		r = load_lock_join(conn, err);
	if (r == 0)
		r = load_prepare(conn, err);
	return r;
}

/*
 * Runs a message's database step on a loader's connection, and runs it
 * again after a lost connection (server restart, network), once reconnected:
 * each step is one transaction, so redoing it whole neither loses nor
 * duplicates anything. (A deadlock between two loaders is load_page()'s to
 * redo.)
 */
static int with_db(struct run_ctx *rc, int worker, int (*step)(struct run_ctx *, PGconn *, void *),
		   void *arg, struct etl_error *err)
{
	PGconn *conn = rc->conns[worker];
	int attempt = 0, ret = 0, r;

	for (;;) {
		ret = step(rc, conn, arg);
		if (ret == 0)
			return 0;
		if (PQstatus(conn) == CONNECTION_BAD && attempt < RUN_DB_RETRIES) {
			log_warn("database connection lost (%s); reconnecting", err->msg);
			/* the fetcher holds its requests until this connection
			 * shows again that the run holds the job's lock */
			atomic_fetch_add(&rc->unfenced, 1);
			r = reconnect(rc, conn, &attempt, err);
			atomic_fetch_sub(&rc->unfenced, 1);
			if (r != 0)
				return PQstatus(conn) == CONNECTION_OK ? r : ret;
			attempt++; /* a server that keeps dropping us runs the budget out */
			continue;
		}
		return ret;
	}
}

/*
 * One piece of database work. Pages are parsed on the fetching thread, then
 * transformed and loaded on a loader thread (loader.h): the transforms of
 * several pages run side by side, and beside the parsing of the next (with
 * one connection, the fetching thread transforms: see hand_over()). The
 * message owns everything the transform and the load need (the parsed
 * answer, the request), so the threads share nothing else but read-only
 * state of the set (its targets, its current versions) and the connection,
 * which only the loader thread uses while fetching goes on.
 */
enum db_op { DB_PAGE, DB_PAGE_FAILED, DB_FINISH_SET, DB_CURRENT };

struct db_msg {
	struct loader_msg base;   /* first member: the loader's link and rc */
	enum db_op op;
	struct set_state *s;      /* read only on the fetching thread (but its map: DB_CURRENT) */
	long long set_id;
	struct page_job *pj;      /* owned (DB_PAGE, DB_PAGE_FAILED) */
	struct fetch_req *req;    /* owned: the request (asked again if its answer does not
				   transform) and, archived, the response bodies */
	struct api_response resp; /* DB_PAGE: owned, parsed, until the loader transforms it */
	struct transform_ctx tc;  /* DB_PAGE: how */
	int transformed;          /* DB_PAGE: batch holds its rows */
	int untransformed;        /* DB_PAGE: the transform failed (err says why): not loaded */
	struct page_record rec;   /* its strings point into the owned fields */
	struct row_batch batch;   /* DB_PAGE: the rows */
	char *status_message;     /* owned copies of what rec points at */
	char *task_id;
	char *error;              /* DB_PAGE_FAILED: why; DB_FINISH_SET: the set's error or NULL;
				   DB_PAGE refused: why */
	int refused;              /* DB_PAGE: the database refused the page's data */
	struct set_outcome outcome; /* DB_FINISH_SET: what publishing did */
	long long total;          /* DB_FINISH_SET */
	struct loader_word word;  /* DB_FINISH_SET: the loader's, for a direct load (load.h) */
	size_t n_items;
	size_t budget;            /* bytes of its batch counted in the memory budget */
	struct etl_error err;     /* the outcome, when base.rc != 0 */
};

static struct db_msg *msg_new(struct run_ctx *rc, enum db_op op, struct set_state *s)
{
	struct db_msg *m = rc->spare;

	if (m) {
		rc->spare = (struct db_msg *)m->base.next;
		row_batch_reset(&m->batch);
	} else {
		m = xcalloc(1, sizeof(*m));
		row_batch_init(&m->batch);
	}
	m->base.next = NULL;
	m->base.rc = 0;
	m->op = op;
	m->s = s;
	m->set_id = s->id;
	m->refused = 0;
	memset(&m->rec, 0, sizeof(m->rec)); /* completed() adds its cost */
	memset(&m->outcome, 0, sizeof(m->outcome));
	etl_error_clear(&m->err);
	return m;
}

/* Frees what a message owns; its batch goes back to the pool. */
static void msg_done(struct run_ctx *rc, struct db_msg *m)
{
	membudget_release(m->budget);
	m->budget = 0;
	if (m->batch.copy.cap > RUN_BATCH_KEEP) {
		row_batch_free(&m->batch);
		row_batch_init(&m->batch);
	}
	if (m->req)
		fetch_req_free(m->req);
	response_free(&m->resp);
	m->transformed = m->untransformed = 0;
	free(m->pj);
	free(m->status_message);
	free(m->task_id);
	free(m->error);
	free(m->outcome.error);
	m->outcome.error = NULL;
	m->req = NULL;
	m->pj = NULL;
	m->status_message = m->task_id = m->error = NULL;
	m->base.next = (struct loader_msg *)rc->spare;
	rc->spare = m;
}

/*
 * A page whose data the database refused (a value out of a column's range)
 * becomes the page's failure: its ledger row says so (refused, so a resume
 * does not pay for it again) and completed() fails its set.
 */
static int load_or_refuse(PGconn *conn, struct db_msg *m)
{
	int refused, r;

	r = load_page(conn, &m->rec, &m->batch, &refused, &m->err);
	if (r == 0 || !refused)
		return r;
	free(m->error);
	m->error = xasprintf("offset %lld: the database refused the page's data: %s", m->rec.offset,
			     m->err.msg);
	m->rec.error = m->error;
	m->rec.refused = 1;
	etl_error_clear(&m->err);
	r = load_page_failed(conn, &m->rec, &m->err);
	m->refused = r == 0;
	return r;
}

static int step_load(struct run_ctx *rc, PGconn *conn, void *arg)
{
	struct db_msg *m = arg;

	switch (m->op) {
	case DB_PAGE:
		return load_or_refuse(conn, m);
	case DB_PAGE_FAILED:
		return load_page_failed(conn, &m->rec, &m->err);
	case DB_FINISH_SET:
		free(m->outcome.error);
		return load_finish_set(conn, rc->run_id, m->set_id, rc->snapshot_date, m->total,
				       m->word.pages >= 0 ? &m->word : NULL, m->error, &m->outcome,
				       &m->err);
	case DB_CURRENT:
		return stage_current_map(conn, m->set_id, rc->snapshot_date, &m->s->current, &m->err);
	}
	return ETL_EFAIL;
}

/*
 * The set's current versions to judge a page's rows against, once a loader
 * thread has read them (DB_CURRENT); NULL when they are not in a map (past
 * CUR_MAP_MAX_ROWS, or the read failed): the database judges the rows then.
 */
static const struct cur_map *current_map(struct set_state *s)
{
	pthread_mutex_lock(&map_lock);
	while (!s->map_done)
		pthread_cond_wait(&map_read, &map_lock);
	pthread_mutex_unlock(&map_lock);
	return s->current.ready ? &s->current : NULL;
}

/* The set's map is read, or will not be: its pages' transforms go on. */
static void map_finished(struct set_state *s)
{
	pthread_mutex_lock(&map_lock);
	s->map_done = 1;
	pthread_cond_broadcast(&map_read);
	pthread_mutex_unlock(&map_lock);
}

/*
 * A page's rows from its parsed answer, on a loader thread; the parsed
 * document goes as soon as they are made, and the budget counts the rows
 * instead. A page that does not transform is left for completed() to ask
 * again (its document kept for the ledger's status fields).
 */
static int transform_msg(struct db_msg *m)
{
	if (m->tc.current)
		m->tc.current = current_map(m->s);
	if (transform_page(&m->resp, &m->tc, &m->batch, &m->err) != 0) {
		m->untransformed = 1;
		return -1;
	}
	response_free(&m->resp);
	m->transformed = 1;
	m->rec.rows = (long long)m->batch.n_rows;
	membudget_release(m->budget);
	m->budget = m->batch.copy.cap;
	membudget_take(m->budget);
	return 0;
}

/* A loader thread's work: one message on the worker's own connection. */
static int exec_msg(void *ctx, int worker, struct loader_msg *lm)
{
	struct run_ctx *rc = ctx;
	struct db_msg *m = (struct db_msg *)lm;
	int ret;

	if (m->op == DB_PAGE && !m->transformed && !m->untransformed && transform_msg(m) != 0)
		return 0;
	ret = with_db(rc, worker, step_load, m, &m->err);
	if (m->op == DB_CURRENT)
		map_finished(m->s);
	return ret;
}

static void wake_fetcher(void *ctx)
{
	struct run_ctx *rc = ctx;

	fetcher_wakeup(rc->fetcher);
}

static int completed(struct run_ctx *rc, struct db_msg *m, struct etl_error *err);
static int page_error(struct run_ctx *rc, struct fetch_req *req, const struct api_response *resp,
		      const struct etl_error *perr, enum retry_verdict v, struct etl_error *err);

/* A page that did not transform is a page error: asked again, or failed. */
static int untransformed(struct run_ctx *rc, struct db_msg *m, struct etl_error *err)
{
	struct fetch_req *req = m->req;
	struct etl_error perr = m->err;
	int ret;

	m->req = NULL;
	m->pj = NULL; /* req->user: page_error() takes both */
	ret = page_error(rc, req, &m->resp, &perr, VERDICT_RETRY, err);
	msg_done(rc, m);
	return ret;
}

/*
 * Hands a message to the loader thread, or, when there is none (before and
 * after fetching), runs it here and now.
 */
static int db_submit(struct run_ctx *rc, struct db_msg *m, struct etl_error *err)
{
	if (rc->loader) {
		loader_submit(rc->loader, &m->base);
		return 0;
	}
	m->base.rc = exec_msg(rc, 0, &m->base);
	return completed(rc, m, err);
}

/*
 * A night's pages add their items' domains to the set's `seen` as they load
 * (completed()). The loader's word for the publish (load_finish_set()): the
 * items this process loaded when they are the whole answer (no page was
 * loaded by an earlier process) and no domain came twice; else -1. The
 * set's maps go: nothing of it is transformed any more.
 */
static long long distinct_items(struct set_state *s)
{
	long long n = -1;

	if (s->wants_map && s->seen_all && s->n_loaded == 0 && !s->error) {
		cur_map_free(&s->current);
		cur_map_seal(&s->seen);
		if (cur_map_distinct(&s->seen))
			n = (long long)s->seen.n;
	}
	cur_map_free(&s->seen);
	return n;
}

static void add_seen(struct set_state *s, const struct row_batch *b, size_t n_items)
{
	const struct cur_fp *fp = (const struct cur_fp *)b->item_fps.data;
	size_t i;

	if (!b->judged || b->item_fps.len != n_items * sizeof(*fp)) {
		s->seen_all = 0;
		return;
	}
	for (i = 0; i < n_items; i++)
		cur_map_add(&s->seen, fp[i].hi, fp[i].lo);
}

/* Records the set's outcome once nothing of it is in flight or left to issue. */
static int maybe_finish_set(struct run_ctx *rc, struct set_state *s, struct etl_error *err)
{
	struct db_msg *m;

	if (s->finished || s->finishing || s->complete_before || s->in_flight > 0)
		return 0;
	if (!s->error && !rc->abort_msg) {
		/* nothing more to issue? (next_page advances only past loaded pages) */
		long long save = s->next_offset, offset;
		int limit = next_page(s, &offset);

		s->next_offset = save;
		if (limit != 0 && !s->stopped)
			return 0;
		if (limit != 0) {
			/* a ceiling stopped it short of its whole answer */
			char *left = unfetched(s, offset), *msg, cost[32];

			report_format_usd(cost, sizeof(cost), s->spent);
			msg = xasprintf("%s: %s charged for this set; %s", s->stopped, cost, left);
			set_fail(s, msg);
			free(left);
			free(msg);
		}
	}
	if (rc->abort_msg && !s->error)
		set_fail(s, rc->abort_msg);
	s->finishing = 1;
	m = msg_new(rc, DB_FINISH_SET, s);
	m->total = s->total;
	m->word.pages = s->direct ? (long long)s->n_loaded + s->pages : -1;
	m->word.distinct_items = distinct_items(s);
	m->error = s->error ? xstrdup(s->error) : NULL;
	return db_submit(rc, m, err);
}

/* A set's line when it completes; its cost is what its ledger rows sum (spent). */
static void log_set_complete(const struct set_state *s)
{
	struct log_fields f = LOG_FIELDS_NONE;
	char cost[32];

	f.total_count = s->total;
	f.referring_domains = s->items;
	f.rows = s->rows;
	f.pages = s->pages;
	f.cost_usd = report_round_usd(s->spent);
	report_format_usd(cost, sizeof(cost), s->spent);
	log_fields_msg(LOG_INFO, s->def->name, &f,
		    "complete: total_count %lld; this process loaded %lld referring domain%s "
		    "(%lld table row%s) in %lld page%s, %s",
		    s->total, s->items, s->items == 1 ? "" : "s", s->rows, s->rows == 1 ? "" : "s",
		    s->pages, s->pages == 1 ? "" : "s", cost);
}

/*
 * What the fetching thread does when the database work of a message is done:
 * counts, the set's end, or (a database failure) the end of the run.
 */
static int completed(struct run_ctx *rc, struct db_msg *m, struct etl_error *err)
{
	struct set_state *s = m->s;
	int ret = m->base.rc;

	if (ret != 0) {
		*err = m->err;
		if (m->op == DB_CURRENT)
			etl_error_prefix(err, "reading the current versions of %s: ", s->def->name);
		else if (m->op != DB_FINISH_SET)
			etl_error_prefix(err, "loading %s offset %lld: ", s->def->name, m->rec.offset);
		msg_done(rc, m);
		return ret;
	}
	if (m->op == DB_PAGE && m->untransformed)
		return untransformed(rc, m, err);
	if (m->op != DB_FINISH_SET) {
		/* the page is settled; what it was charged was counted as
		 * spent when it answered (charge()) */
		s->in_flight--;
		s->cost += m->rec.cost_usd;
	}
	switch (m->op) {
	case DB_PAGE:
		if (m->refused) {
			log_set_msg(LOG_WARN, s->def->name, "%s", m->error);
			set_fail(s, m->error);
			break;
		}
		s->pages++;
		s->rows += m->rec.rows;
		s->items += (long long)m->n_items;
		if (s->wants_map)
			add_seen(s, &m->batch, m->n_items);
		log_set_msg(LOG_DEBUG, s->def->name, "offset %lld: %zu items, %zu rows loaded",
			    m->rec.offset, m->n_items, m->batch.n_rows);
		break;
	case DB_PAGE_FAILED:
	case DB_CURRENT:
		break;
	case DB_FINISH_SET:
		s->finished = 1;
		if (m->outcome.error)
			set_fail(s, m->outcome.error);
		if (m->outcome.published && m->outcome.expected >= 0 &&
		    m->outcome.domains < m->outcome.expected)
			log_set_msg(LOG_WARN, s->def->name,
				    "complete, but short: %lld distinct referring domains stored of "
				    "%lld expected (min of total_count and max_rows); the API "
				    "repeated some on several pages",
				    m->outcome.domains, m->outcome.expected);
		if (s->error) {
			struct log_fields f = LOG_FIELDS_NONE;

			f.pages = s->pages;
			f.rows = s->rows;
			f.cost_usd = report_round_usd(s->spent);
			log_fields_msg(LOG_WARN, s->def->name, &f, "failed: %s", s->error);
		}
		else
			log_set_complete(s);
		break;
	}
	{
		enum db_op op = m->op;

		msg_done(rc, m);
		return op == DB_FINISH_SET ? 0 : maybe_finish_set(rc, s, err);
	}
}

/* Fills m->rec from the request and its parsed answer (strings copied into m). */
static void page_record_init(struct run_ctx *rc, struct db_msg *m, const struct page_job *pj,
			     const struct fetch_req *req, const struct api_response *resp)
{
	struct page_record *rec = &m->rec;

	memset(rec, 0, sizeof(*rec));
	rec->run_id = rc->run_id;
	rec->target_set_id = pj->set->id;
	rec->snapshot_date = rc->snapshot_date;
	rec->direct = pj->set->direct;
	rec->lookup = pj->set->lookup;
	rec->offset = pj->offset;
	rec->limit = pj->limit;
	rec->attempts = pj->attempts;
	rec->http_status = req->http_status;
	rec->total_count = -1;
	rec->duration_ms = (int)((mono_now() - pj->first_start) * 1000);
	rec->cost_usd = pj->paid;
	if (resp && resp->root) {
		rec->api_status_code = resp->task_status ? resp->task_status : resp->status_code;
		m->status_message = resp->status_message ? xstrdup(resp->status_message) : NULL;
		m->task_id = resp->task_id ? xstrdup(resp->task_id) : NULL;
		rec->api_status_message = m->status_message;
		rec->task_id = m->task_id;
		if (resp->error == RESP_OK) {
			rec->total_count = resp->total_count;
			rec->items = (long long)resp->n_items;
		}
	}
}

/*
 * An answer is in: its worst case is no longer held, and what it was
 * charged (resp->cost: a task that completed, 0 otherwise) is spent, even
 * if it is retried, refused or fails later. Its page's ledger row records
 * what all its attempts cost.
 */
static void charge(struct run_ctx *rc, struct page_job *pj, const struct api_response *resp)
{
	reserve(rc, pj, -pj->reserved);
	pj->paid += resp->cost;
	pj->set->spent += resp->cost;
	rc->spent += resp->cost;
}

/*
 * Whether a page may be asked again: what was spent, with the worst case of
 * what is in flight (the page's own retry among it), stays within the job's
 * and the set's max_cost_usd. Answers retried were charged (charge()), so a
 * source of wrong answers cannot spend past a ceiling one retry at a time.
 */
static int retry_affordable(const struct run_ctx *rc, const struct page_job *pj)
{
	const struct set_state *s = pj->set;
	double own = plan_cost(1, pj->limit);

	return !over_ceiling(rc->job->max_cost_usd, rc->spent, rc->reserved, own) &&
	       !over_ceiling(s->def->max_cost_usd, s->spent, s->reserved, own);
}

/* The slow-down on rate limits, and the gradual way back. */
static void pace_on(struct run_ctx *rc, enum retry_verdict v)
{
	struct fetcher *f = rc->fetcher;

	if (v == VERDICT_RETRY_SLOW) {
		int c = fetcher_concurrency(f) / 2;
		double rate = fetcher_rate(f) / 2;

		fetcher_set_pace(f, c, rate);
		rc->ok_streak = 0;
		log_warn("rate-limited: now %d in flight, %.0f requests/min",
			 fetcher_concurrency(f), fetcher_rate(f));
	} else if (v == VERDICT_OK && ++rc->ok_streak >= 10 &&
		   (fetcher_concurrency(f) < rc->job->api.concurrency ||
		    fetcher_rate(f) < rc->job->api.requests_per_minute)) {
		fetcher_set_pace(f, fetcher_concurrency(f) + 1, fetcher_rate(f) * 1.25);
		rc->ok_streak = 0;
	}
}

static void describe_failure(const struct page_job *pj, const struct fetch_req *req,
			     const struct api_response *resp, const struct etl_error *perr,
			     char *buf, size_t len)
{
	if (req->curl_code != CURLE_OK)
		snprintf(buf, len, "offset %lld: network error: %s", pj->offset, req->errbuf);
	else if (perr->msg[0])
		snprintf(buf, len, "offset %lld: HTTP %ld: %s", pj->offset, req->http_status, perr->msg);
	else
		snprintf(buf, len, "offset %lld: HTTP %ld%s%s", pj->offset, req->http_status,
			 resp && resp->status_message ? ": " : "",
			 resp && resp->status_message ? resp->status_message : "");
}

/*
 * A page whose answer is not to be loaded (v says why it failed, perr or
 * resp what the answer said): asked again when the verdict, the attempts
 * left and the cost ceilings allow; else its ledger row records the
 * failure and the set (or run) fails. Takes req and the page; returns
 * non-zero only for database failures.
 */
static int page_error(struct run_ctx *rc, struct fetch_req *req, const struct api_response *resp,
		      const struct etl_error *perr, enum retry_verdict v, struct etl_error *err)
{
	struct page_job *pj = req->user;
	struct set_state *s = pj->set;
	struct db_msg *m;
	char why[sizeof(((struct etl_error *)0)->msg) + 80]; /* "offset N: HTTP S: " and its message */
	int retryable, more, affordable;

	describe_failure(pj, req, resp, perr, why, sizeof(why));
	retryable = v == VERDICT_RETRY || v == VERDICT_RETRY_SLOW;
	more = retryable && pj->attempts < rc->job->api.max_attempts;
	affordable = retry_affordable(rc, pj);
	if (more && affordable && !rc->abort_msg && !s->error) {
		double wait = retry_backoff(pj->attempts + 1, req->retry_after, &rc->seed);

		log_set_msg(LOG_WARN, s->def->name, "%s (attempt %d of %d; retrying in %.1f s)", why,
			    pj->attempts, rc->job->api.max_attempts, wait);
		pj->attempts++;
		s->requests++;
		s->retries++;
		rc->requests++;
		rc->retries++;
		reserve(rc, pj, plan_cost(1, pj->limit));
		req->not_before = mono_now() + wait;
		fetcher_add(rc->fetcher, req);
		return 0; /* the fetcher owns req again */
	}
	/* A page that failed for good: its ledger row, and the set (or run) fails. */
	m = msg_new(rc, DB_PAGE_FAILED, s);
	page_record_init(rc, m, pj, req, resp);
	m->error = xasprintf("%s%s", why,
			     !retryable ? ""
			     : more && !affordable ? " (not retried: a cost ceiling, max_cost_usd, is reached)"
			     : " (attempts exhausted)");
	m->rec.error = m->error;
	m->pj = pj;
	m->req = req;
	if (v == VERDICT_FAIL_RUN && !rc->abort_msg) {
		rc->abort_msg = xasprintf("%s %s", s->def->name, m->error);
	}
	set_fail(s, m->error);
	return db_submit(rc, m, err);
}

/*
 * A good page goes to the loader, its parsed answer with it: a loader
 * thread transforms it (transform_msg()) and loads the rows. The request
 * stays with the message so that a page that does not transform can be
 * asked again; its response bodies only when they are to be archived.
 */
static int hand_over(struct run_ctx *rc, struct fetch_req *req, struct api_response *resp,
		     const struct transform_ctx *tc, size_t body_len, struct etl_error *err)
{
	struct page_job *pj = req->user;
	struct db_msg *m = msg_new(rc, DB_PAGE, pj->set);

	page_record_init(rc, m, pj, req, resp);
	m->n_items = resp->n_items;
	if (rc->job->archive) {
		m->rec.request_body = req->body;
		if (req->gzipped) {
			m->rec.response_gzip = req->wire.data;
			m->rec.response_gzip_len = req->wire.len;
		} else {
			m->rec.response_body = req->response.data;
			m->rec.response_len = req->response.len;
		}
	} else {
		sb_free(&req->response);
		sb_free(&req->wire);
		fetch_req_account(req);
	}
	m->pj = pj;
	m->req = req;
	m->resp = *resp; /* the document's ownership moves to the message */
	memset(resp, 0, sizeof(*resp));
	m->tc = *tc;
	/* the parsed document until the transform, the rows after */
	m->budget = 2 * body_len;
	membudget_take(m->budget);
	/* With one loader thread, it would transform and COPY in turn: the
	 * transform runs here instead, beside the COPY of the page before. */
	if (rc->n_conns < 2 && transform_msg(m) != 0)
		return untransformed(rc, m, err);
	return db_submit(rc, m, err);
}

/*
 * Each night's set's current versions are read by a loader thread, first in
 * its queue, while the set's first pages are fetched and parsed: a page's
 * transform waits for them (current_map()), its fetching does not. Counted
 * in flight, so that the set does not finish before its map is in.
 */
static void read_current_maps(struct run_ctx *rc)
{
	struct etl_error unused = {0, ""};
	size_t i;

	for (i = 0; i < rc->n_sets; i++) {
		struct set_state *s = &rc->sets[i];
		struct db_msg *m;

		if (s->map_done || s->finishing || s->finished)
			continue;
		m = msg_new(rc, DB_CURRENT, s);
		s->in_flight++;
		(void)db_submit(rc, m, &unused); /* the loader runs: it only queues */
	}
}

/*
 * Handles one completed request: a good page is parsed here and handed to
 * the loader (hand_over()); a failed one is retried or recorded
 * (page_error()). Returns non-zero only for database failures.
 */
static int settle(struct run_ctx *rc, struct fetch_req *req, struct etl_error *err)
{
	struct page_job *pj = req->user;
	struct set_state *s = pj->set;
	struct api_response resp;
	struct etl_error perr = {0, ""};
	enum retry_verdict v;
	size_t body_len = req->response.len;
	int code = 0, ret;
	/* a first load sums its breakdown as it goes (breakdown.h) */
	struct transform_ctx tc = {rc->snapshot_date, s->id, rc->run_id, pj->offset,
				   pj->limit, s->def->targets, s->def->n_targets,
				   s->direct && !s->lookup, s->wants_map ? &s->current : NULL,
				   s->domains};

	memset(&resp, 0, sizeof(resp));
	/* A parse failure is kept in resp.error and classified below. */
	if (req->curl_code == CURLE_OK &&
	    response_parse(req->response.data ? req->response.data : "", req->response.len, &resp,
			   &perr) != 0)
		log_set_msg(LOG_DEBUG, s->def->name, "offset %lld: %s", pj->offset, perr.msg);
	charge(rc, pj, &resp);
	/* the parsed document owns its strings: a gzip body's decoded text is
	 * not needed any more (the archive takes the bytes as they came) */
	if (req->gzipped) {
		sb_free(&req->response);
		fetch_req_account(req);
	}
	v = retry_classify(req, req->curl_code == CURLE_OK ? &resp : NULL, &code);
	/* an answer to another request is a page error: retry it (checked
	 * here, not only by the transform, before it can end the paging) */
	if (v == VERDICT_OK && response_match(&resp, &tc, &perr) != 0)
		v = VERDICT_RETRY;
	pace_on(rc, v);
	if (v == VERDICT_OK) {
		/* What paging needs is known now; the counts follow the commit. */
		if (pj->offset == 0 && s->total < 0)
			s->total = resp.total_count;
		if (resp.n_items == 0)
			s->ended = 1;
		ret = hand_over(rc, req, &resp, &tc, body_len, err);
	} else {
		ret = page_error(rc, req, &resp, &perr, v, err);
	}
	response_free(&resp);
	return ret;
}

/*
 * A page that has arrived waits for room in the memory budget for its
 * transform (its COPY text and parsed document: about twice its body) while
 * loaded pages can give room back; with none outstanding it proceeds alone.
 */
static int wait_for_room(struct run_ctx *rc, const struct fetch_req *req, struct etl_error *err)
{
	struct loader_msg *lm;
	int ret;

	while (!membudget_fits(2 * req->response.len) && loader_outstanding(rc->loader) > 0)
		if ((lm = loader_wait(rc->loader)) &&
		    (ret = completed(rc, (struct db_msg *)lm, err)) != 0)
			return ret;
	return 0;
}

/* What the progress line shows, from the sets' state. */
static void progress_of(const struct run_ctx *rc, double started, struct progress *p)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	p->sets_total = rc->n_sets;
	p->in_flight = (int)fetcher_in_flight(rc->fetcher);
	p->cost_usd = report_round_usd(rc->spent); /* printed as the ledger's figure is */
	p->elapsed = mono_now() - started;
	for (i = 0; i < rc->n_sets; i++) {
		const struct set_state *s = &rc->sets[i];
		long long end = s->def->max_rows, done = (long long)s->n_loaded + s->pages;

		if (s->total >= 0 && s->total < end)
			end = s->total;
		p->pages_done += done;
		p->rows += s->rows;
		if (s->finished || s->complete_before || s->error || s->ended || s->stopped) {
			p->pages_planned += done + s->in_flight;
			p->sets_done += s->finished || s->complete_before;
		} else {
			/* total_count unknown: max_rows bounds it; a first page of 0 is 1 page */
			long long pages = (end + s->def->limit - 1) / s->def->limit;
			p->pages_planned += pages > done ? pages : done;
		}
	}
}

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
		 * read as the first pages come (read_current_maps()) */
		s->wants_map = s->direct && s->lookup && !st.complete;
		s->seen_all = 1;
		s->map_done = !s->wants_map;
		s->spent = st.spent;
		s->loaded = st.pages;
		s->n_loaded = st.n_pages;
		if (st.refused) {
			set_fail(s, st.refused);
			free(st.refused);
		}
		adopt_loaded(s);
		rc->spent += s->spent;
		if (s->n_loaded)
			log_set_msg(LOG_INFO, s->def->name, "%zu page%s already loaded by this run",
				    s->n_loaded, s->n_loaded == 1 ? "" : "s");
	}
	return 0;
}

/*
 * Fetches until every set is settled: answers are parsed here, transformed
 * and loaded on the loader threads. Returns non-zero only for a database or
 * internal failure.
 */
static int fetch_all(struct run_ctx *rc, double started, struct etl_error *err)
{
	struct loader_msg *lm;
	int ret = 0;

	/* From here until every answer is in, the run's connection is the
	 * loader's, with the others opened now (the job's lock stays with the
	 * run's own). */
	if ((ret = load_open_connections(&rc->job->db, rc->conns, &rc->n_conns,
					 rc->job->db.connections, err)) != 0)
		return ret; /* cannot be: the run's own connection is one */
	log_debug("loading on %d connection%s", rc->n_conns, rc->n_conns == 1 ? "" : "s");
	rc->loader = loader_start(RUN_LOAD_QUEUE, rc->n_conns, exec_msg, wake_fetcher, rc);
	read_current_maps(rc);
	/* a signal is looked at once per turn: at most the 500 ms of fetcher_next() */
	for (check_signal(rc); !rc->abort_msg; check_signal(rc)) {
		struct fetch_req *req;
		struct progress prog;

		while ((lm = loader_poll(rc->loader)))
			if ((ret = completed(rc, (struct db_msg *)lm, err)) != 0)
				goto stop_loader;
		progress_of(rc, started, &prog);
		progress_update(&prog);
		fill(rc);
		fetcher_hold(rc->fetcher, atomic_load(&rc->unfenced) > 0);
		req = fetcher_next(rc->fetcher, 500);
		if (req) {
			struct page_job *pj = req->user;

			if (!pj->first_start)
				pj->first_start = req->started;
			/* The next request goes out before this answer is parsed:
			 * parsing takes milliseconds a page, which would otherwise
			 * be added to every request's latency. */
			fill(rc);
			fetcher_start(rc->fetcher);
			if ((ret = wait_for_room(rc, req, err)) != 0) {
				free(req->user);
				fetch_req_free(req);
				goto stop_loader;
			}
			if ((ret = settle(rc, req, err)) != 0)
				goto stop_loader;
			continue;
		}
		if (fetcher_in_flight(rc->fetcher) + fetcher_queued(rc->fetcher) == 0) {
			/* nothing on the wire: wait for the database, or we are done */
			if (loader_outstanding(rc->loader) > 0) {
				if ((lm = loader_wait(rc->loader)) &&
				    (ret = completed(rc, (struct db_msg *)lm, err)) != 0)
					goto stop_loader;
				continue;
			}
			fill(rc);
			if (fetcher_in_flight(rc->fetcher) + fetcher_queued(rc->fetcher) == 0)
				break;
		}
	}
stop_loader:
	/* Take every answer still on its way (after a failure too: what was
	 * loaded is counted), then the connection is ours again. */
	while ((lm = loader_wait(rc->loader))) {
		struct etl_error later;
		int r = completed(rc, (struct db_msg *)lm, ret ? &later : err);

		if (r != 0 && ret == 0)
			ret = r;
	}
	loader_stop(rc->loader, NULL);
	rc->loader = NULL;
	log_debug("memory budget: at most %zu MiB of %zu MiB held for pages",
		  membudget_peak() >> 20, membudget_limit() >> 20);
	return ret;
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
				set_fail(s, rc->abort_msg ? rc->abort_msg : "stopped before it finished");
			if ((ret = maybe_finish_set(rc, s, err)) != 0)
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
	struct fetch_req *req;
	size_t i;

	if (rc->fetcher) {
		while ((req = fetcher_cancel_one(rc->fetcher))) {
			free(req->user);
			fetch_req_free(req);
		}
		fetcher_free(rc->fetcher);
	}
	for (i = 0; i < rc->n_sets; i++) {
		free(rc->sets[i].error);
		free(rc->sets[i].stopped);
		free(rc->sets[i].loaded);
		cur_map_free(&rc->sets[i].current);
		cur_map_free(&rc->sets[i].seen);
	}
	free(rc->sets);
	free(rc->abort_msg);
	free(rc->ceiling_msg);
	while (rc->spare) {
		struct db_msg *m = rc->spare;

		rc->spare = (struct db_msg *)m->base.next;
		row_batch_free(&m->batch);
		free(m);
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
		if ((ret = maybe_finish_set(&rc, &rc.sets[i], err)) != 0)
			goto out;
	started = mono_now();
	progress_start(60);
	if ((ret = fetch_all(&rc, started, err)) != 0)
		goto out;
	{
		struct progress prog;

		progress_of(&rc, started, &prog);
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

/*
 * schedule.c - the scheduler of one run (schedule.h; run.c starts and ends the run).
 *
 * Paging follows plan.c's rule. Each set is a small state machine: its first
 * page goes out alone (total_count is unknown until it answers), then its
 * remaining offsets are issued in order as capacity allows, several in flight
 * at once. A set ends when every issued page is settled and nothing remains
 * below min(total_count, max_rows) or a page came back empty. Work is picked
 * round-robin across sets so one large set does not starve the others.
 */
#include "schedule.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "loader.h"
#include "membudget.h"
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
/* An answer that took this long gives its place back as it lands, before
 * it is parsed (places_free()). */
#define PLACE_BACK_SECONDS 0.25

/* A pooled batch keeps its COPY buffer up to this size; a larger one (a
 * hostile page) is freed with its message rather than held for nothing. */
#define RUN_BATCH_KEEP ((size_t)4 * 1024 * 1024)

/* map_done of every set: a page's transform waits for its set's (current_map()). */
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t map_read = PTHREAD_COND_INITIALIZER;

/* Requests on the wire or queued to go. */
static size_t on_wire(const struct run_ctx *rc)
{
	return fetcher_in_flight(rc->fetcher) + fetcher_queued(rc->fetcher);
}

/* A request taken back unanswered, or its answer dropped unparsed. */
static void drop_req(struct fetch_req *req)
{
	free(req->user);
	fetch_req_free(req);
}

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
		 on_wire(rc) + rc->n_landed, rc->snapshot_date);
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
void sched_adopt_loaded(struct set_state *s)
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
 * sched_finish_set() decides, once nothing is, whether what it has is the
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
	       (!rc->landed && on_wire(rc) == 0 &&
		(!rc->loader || loader_outstanding(rc->loader) == 0));
}

/*
 * Whether another request may be issued: fewer than `concurrency` on the
 * wire or queued, with the answers in and not yet parsed (next_landed())
 * that hold their places. An answer that took PLACE_BACK_SECONDS or longer
 * gives its place back as it lands: where the API is the slow side, a
 * round of answers that landed together has its places refilled at once
 * rather than a parse apart; where the loaders are, answers come back
 * sooner and the fetching stays `concurrency` pages ahead of them. Never
 * more than twice `concurrency` pages wait or are on their way, and none
 * gives its place back while the memory budget is half spent (pages of a
 * normal size never come near it; maximal ones fetch no further ahead).
 */
static int places_free(struct run_ctx *rc)
{
	size_t c = (size_t)fetcher_concurrency(rc->fetcher);
	size_t out = on_wire(rc);

	return out + rc->n_held < c && out + rc->n_landed < 2 * c;
}

/* Issues pages round-robin while the fetcher has room for more. */
static void fill(struct run_ctx *rc)
{
	size_t idle = 0;

	while (!rc->abort_msg && atomic_load(&rc->unfenced) == 0 && room_for_requests(rc) &&
	       places_free(rc) && idle < rc->n_sets) {
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

void sched_set_fail(struct set_state *s, const char *msg)
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
	double took;              /* DB_CURRENT: seconds the read took */
	int kept;                 /* DB_CURRENT: the last publish's fingerprints (sql/024) */
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
		return stage_current_map(conn, m->set_id, rc->snapshot_date, &m->s->current, &m->kept,
					 &m->err);
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
	double t0;
	int ret;

	if (m->op == DB_PAGE && !m->transformed && !m->untransformed && transform_msg(m) != 0)
		return 0;
	t0 = mono_now();
	ret = with_db(rc, worker, step_load, m, &m->err);
	if (m->op == DB_CURRENT) {
		m->took = mono_now() - t0;
		map_finished(m->s);
	}
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
int sched_finish_set(struct run_ctx *rc, struct set_state *s, struct etl_error *err)
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
			sched_set_fail(s, msg);
			free(left);
			free(msg);
		}
	}
	if (rc->abort_msg && !s->error)
		sched_set_fail(s, rc->abort_msg);
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
			sched_set_fail(s, m->error);
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
		break;
	case DB_CURRENT:
		/* what a night's start waits for: its pages' rows are judged after */
		if (s->current.ready)
			log_set_msg(LOG_DEBUG, s->def->name,
				    "%zu current row digests read in %.0f ms%s: rows equal to them are "
				    "not sent", s->current.n, 1000 * m->took,
				    m->kept ? " (as the last publish kept them)" : "");
		else
			log_set_msg(LOG_DEBUG, s->def->name,
				    "more than %zu current row digests: the database judges the rows",
				    CUR_MAP_MAX_ROWS);
		break;
	case DB_FINISH_SET:
		s->finished = 1;
		if (m->outcome.error)
			sched_set_fail(s, m->outcome.error);
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
		return op == DB_FINISH_SET ? 0 : sched_finish_set(rc, s, err);
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
	sched_set_fail(s, m->error);
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
	/* a direct load sums its breakdown as it goes, a night's too (breakdown.h) */
	struct transform_ctx tc = {rc->snapshot_date, s->id, rc->run_id, pj->offset,
				   pj->limit, s->def->targets, s->def->n_targets,
				   s->direct, s->wants_map ? &s->current : NULL,
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

/* An answer that is in: parsed in turn (next_landed()). */
static void land(struct run_ctx *rc, struct fetch_req *req)
{
	struct page_job *pj = req->user;

	if (!pj->first_start)
		pj->first_start = req->started;
	req->next = NULL;
	if (rc->landed_tail)
		rc->landed_tail->next = req;
	else
		rc->landed = req;
	rc->landed_tail = req;
	rc->n_landed++;
	pj->holds_place = req->seconds < PLACE_BACK_SECONDS || !membudget_fits(membudget_limit() / 2);
	rc->n_held += (size_t)pj->holds_place;
}

/*
 * The oldest answer in, to parse now, or NULL. Every answer already in is
 * taken first, and the requests that take their places go out before any
 * of them is decoded or parsed (fetcher_body(), settle()): that takes
 * milliseconds a page, more while the loaders keep the cores busy, so
 * answers that land together (a round sent together) would otherwise have
 * their places refilled a parse apart, each round would go out more spread
 * than the one before, and the last round's answers would land up to a
 * round's parsing late. (The pace makes up the starts a parse made late,
 * fetch.c's PACE_MAKEUP.)
 */
static struct fetch_req *next_landed(struct run_ctx *rc)
{
	struct fetch_req *req;

	while ((req = fetcher_next(rc->fetcher, 0)))
		land(rc, req);
	if (!(req = rc->landed))
		return NULL;
	if (!(rc->landed = req->next))
		rc->landed_tail = NULL;
	req->next = NULL;
	rc->n_landed--;
	rc->n_held -= (size_t)((struct page_job *)req->user)->holds_place;
	fill(rc);
	fetcher_start(rc->fetcher);
	fetcher_body(req);
	return req;
}

/* What the progress line shows, from the sets' state. */
void sched_progress(const struct run_ctx *rc, double started, struct progress *p)
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

/*
 * Fetches until every set is settled: answers are parsed here, transformed
 * and loaded on the loader threads. Returns non-zero only for a database or
 * internal failure.
 */
int sched_fetch_all(struct run_ctx *rc, double started, struct etl_error *err)
{
	struct loader_msg *lm;
	int ret = 0;

	/* From here until every answer is in, the run's connection is the
	 * loader's, with the others (opening since the run took the job's
	 * lock, run.c; the lock stays with the run's own). */
	ret = load_open_finish(rc->opener, rc->conns, &rc->n_conns, err);
	rc->opener = NULL;
	if (ret != 0)
		return ret; /* the lock was lost meanwhile */
	log_debug("loading on %d connection%s", rc->n_conns, rc->n_conns == 1 ? "" : "s");
	rc->loader = loader_start(RUN_LOAD_QUEUE, rc->n_conns, exec_msg, wake_fetcher, rc);
	read_current_maps(rc);
	/* a signal is looked at once per turn: at most the 500 ms of fetcher_next() */
	for (check_signal(rc); !rc->abort_msg; check_signal(rc)) {
		struct fetch_req *req;
		struct progress prog;
		int room;

		while ((lm = loader_poll(rc->loader)))
			if ((ret = completed(rc, (struct db_msg *)lm, err)) != 0)
				goto stop_loader;
		sched_progress(rc, started, &prog);
		progress_update(&prog);
		fill(rc);
		fetcher_hold(rc->fetcher, atomic_load(&rc->unfenced) > 0);
		/* An answer is parsed when a loader can take its page at once:
		 * while loader_submit() would wait, the loop stays with the
		 * transfers (answers land, their places are refilled). */
		room = on_wire(rc) == 0 ||
		       loader_has_room(rc->loader);
		if ((!rc->landed || !room) && (req = fetcher_next(rc->fetcher, 500)))
			land(rc, req);
		if (room && (req = next_landed(rc))) {
			if ((ret = wait_for_room(rc, req, err)) != 0) {
				drop_req(req);
				goto stop_loader;
			}
			if ((ret = settle(rc, req, err)) != 0)
				goto stop_loader;
			continue;
		}
		if (rc->landed)
			continue; /* its page waits for a loader's room */
		if (on_wire(rc) == 0) {
			/* nothing on the wire: wait for the database, or we are done */
			if (loader_outstanding(rc->loader) > 0) {
				if ((lm = loader_wait(rc->loader)) &&
				    (ret = completed(rc, (struct db_msg *)lm, err)) != 0)
					goto stop_loader;
				continue;
			}
			fill(rc);
			if (on_wire(rc) == 0)
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

void sched_free(struct run_ctx *rc)
{
	struct fetch_req *req;
	size_t i;

	while ((req = rc->landed)) {
		rc->landed = req->next;
		drop_req(req);
	}
	rc->landed_tail = NULL;
	rc->n_landed = rc->n_held = 0;
	if (rc->fetcher) {
		while ((req = fetcher_cancel_one(rc->fetcher)))
			drop_req(req);
		fetcher_free(rc->fetcher);
		rc->fetcher = NULL;
	}
	for (i = 0; i < rc->n_sets; i++) {
		free(rc->sets[i].error);
		free(rc->sets[i].stopped);
		free(rc->sets[i].loaded);
		cur_map_free(&rc->sets[i].current);
		cur_map_free(&rc->sets[i].seen);
	}
	free(rc->sets);
	rc->sets = NULL;
	rc->n_sets = 0;
	while (rc->spare) {
		struct db_msg *m = rc->spare;

		rc->spare = (struct db_msg *)m->base.next;
		row_batch_free(&m->batch);
		free(m);
	}
}

/*
 * schedule.h - the run's state, shared by run.c and schedule.c (no one else).
 *
 * run.c takes a run from start to end: its options, the job's lock, the run
 * and attempt records, the sets it joins, the outcome, the metrics file.
 * schedule.c drives the pages in between: which to ask next, within the cost
 * ceilings and the provider's pace; what each answer becomes (parsed on the
 * fetching thread, transformed and loaded on the loader threads); when a set
 * is finished and published.
 */
#ifndef INTERSECT_SCHEDULE_H
#define INTERSECT_SCHEDULE_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stddef.h>

#include "curmap.h"
#include "err.h"
#include "fetch.h"
#include "job.h"
#include "load.h"
#include "log.h"

struct db_msg;
struct loader;

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

/* One page in flight; the fetch request's `user`. */
struct page_job {
	struct set_state *set;
	long long offset;
	int limit;
	int attempts;
	double first_start;
	double reserved;              /* its worst-case cost, held while it is asked */
	double paid;                  /* what its answers were charged, every attempt */
	int holds_place;              /* its answer waits to be parsed in a place (places_free()) */
};

struct run_ctx {
	const struct job *job;
	const char *snapshot_date;
	PGconn *conn;                 /* the run's own: its lock, run and set rows */
	PGconn *conns[JOB_MAX_CONNECTIONS]; /* the loaders': conns[0] is conn */
	int n_conns;
	struct load_opener *opener;   /* opening the others meanwhile (load.h), or NULL */
	struct fetcher *fetcher;
	struct fetch_req *landed;     /* answers in and not yet parsed, oldest first (next) */
	struct fetch_req *landed_tail;
	size_t n_landed, n_held;      /* of them; those holding a place (places_free()) */
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

/* Applies what an earlier process of this run loaded (s->loaded) to the set's paging. */
void sched_adopt_loaded(struct set_state *s);
/* Fails the set with msg (the first reason stays): it issues nothing more. */
void sched_set_fail(struct set_state *s, const char *msg);
/* Records the set's outcome (its publish, when complete) once nothing of it is in flight
 * or left to issue; before that, does nothing. */
int sched_finish_set(struct run_ctx *rc, struct set_state *s, struct etl_error *err) ETL_WUR;
/* Fetches until every set is settled. Non-zero only for a database or internal failure. */
int sched_fetch_all(struct run_ctx *rc, double started, struct etl_error *err) ETL_WUR;
/* What the progress line shows, from the sets' state. */
void sched_progress(const struct run_ctx *rc, double started, struct progress *p);
/* Frees what the scheduler holds: requests not answered, the sets' state, pooled messages. */
void sched_free(struct run_ctx *rc);

#endif

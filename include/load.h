/*
 * load.h - writing a run into PostgreSQL: target sets, the run, the page
 * ledger, and the versioned history of snapshots.
 *
 * load.c owns every statement that writes. Its contracts:
 *   - a page's staged rows and its etl_page ledger row (with the number of
 *     rows it staged) commit in one transaction, so a page is "loaded"
 *     exactly when its rows are staged; whoever removes staged rows marks
 *     their pages 'discarded' in the same statement;
 *   - a run whose date is after the set's latest complete snapshot loads
 *     it directly (sql/016_direct_load.sql): each page's new and changed
 *     rows are COPYed straight into domain_intersection_version as versions
 *     of its date, invisible until the publish, and rows equal to their
 *     key's current version are not sent at all; other runs (backfills,
 *     republishes, replays) stage rows in domain_intersection_pending by
 *     COPY, or when a page repeats rows staged before, by COPY into a
 *     temporary table and an upsert (the lowest result position wins);
 *   - a set is published only when its staged rows equal what its ledger
 *     says was staged, and in the transaction that marks it complete, so a
 *     snapshot always equals one complete answer; publishing twice is a
 *     no-op, and a failed set never changes a published snapshot.
 */
#ifndef INTERSECT_LOAD_H
#define INTERSECT_LOAD_H

#include <libpq-fe.h>

#include "job.h"
#include "transform.h"

/* What the ledger says of one page. */
struct page_record {
	long long run_id;
	long long target_set_id;
	long long offset;
	int limit;
	int attempts;
	long http_status;          /* 0 when no HTTP answer came */
	int api_status_code;       /* task's (or top-level) status code; 0 if none */
	const char *api_status_message;
	const char *task_id;
	long long items;           /* items in the response */
	long long rows;            /* rows the items became */
	long long total_count;     /* < 0 if unknown */
	double cost_usd;
	int duration_ms;
	const char *error;         /* NULL for a loaded page */
	int refused;               /* failed: the database refused its data (class 22) */
	/* the raw archive (all NULL when the job says archive: false): */
	const char *request_body;  /* the JSON sent (never holds credentials) */
	const char *response_body; /* the body received, response_len bytes */
	size_t response_len;
	const void *response_gzip; /* or else the gzip bytes it came as, when it did */
	size_t response_gzip_len;
	/* how its rows are loaded (struct set_start): */
	const char *snapshot_date; /* the run's date ("YYYY-MM-DD"); needed when direct */
	int direct;                /* straight into the versions (sql/016_direct_load.sql) */
	int lookup;                /* direct: send only rows whose current version differs */
};

/* A page already loaded by this run (for resuming). */
struct loaded_page {
	long long offset;
	long long items;
	long long total_count;
	double cost_usd;
};

/* Per connection: the temporary staging table. */
int load_prepare(PGconn *conn, struct etl_error *err) ETL_WUR;

/*
 * Opens loading connections until *n reach `want` (conns[0..*n) are open
 * already), each prepared as load_prepare() does. When the server refuses
 * one (max_connections, a role's limit) the caller loads on those it has:
 * a warning says so, and only having none at all is an error.
 */
int load_open_connections(const struct job_database *db, PGconn **conns, int *n, int want,
			  struct etl_error *err) ETL_WUR;

/*
 * load_open_connections() on a thread of its own, from `have` open to
 * `want`, while the caller goes on with its own connection (a run's
 * bookkeeping): opening one takes milliseconds that would otherwise come
 * before the first request. Call after load_lock_job(): the new
 * connections join the lock. NULL when there is nothing to open.
 */
struct load_opener *load_open_start(const struct job_database *db, int have, int want);

/*
 * Waits for the opener and adds what it opened to conns[*n..]; the result
 * load_open_connections() would have given. Frees o (NULL: nothing to do).
 */
int load_open_finish(struct load_opener *o, PGconn **conns, int *n,
		     struct etl_error *err) ETL_WUR;

/* How long a taken job lock is tried again before ETL_ELOCKED (see load.c). */
#define LOAD_LOCK_WAIT_MS 5000
/*
 * After a server restart, how long the holder of a job's lock is presumed
 * alive and reconnecting (its reconnects wait 1, 2, 4, 8 s ... see schedule.c),
 * though its sessions are gone.
 */
#define LOAD_LOCK_RESTART_GRACE "60 s"

/*
 * Takes the job's lock (the job's row of etl_job_lock, sql/013_job_lock.sql) for this
 * process, and shows it on conn as load_lock_join() does. ETL_ELOCKED, with
 * the holder (database user, application, host, pid, since when, its run)
 * in the message, if another process holds it; a role that may not write
 * etl_job_lock cannot take it at all. One job's lock per process.
 */
int load_lock_job(PGconn *conn, const char *job, struct etl_error *err) ETL_WUR;

/*
 * Shows the lock this process holds on another connection, or on one that
 * came back after losing the server: only such a connection passes
 * load_fence(). If the holder's session named in the row is gone (a server
 * restart), this one vouches for the process from now on. ETL_ELOCKED
 * (naming the new holder) when another process took the lock over meanwhile.
 * Does nothing when this process holds no lock.
 */
int load_lock_join(PGconn *conn, struct etl_error *err) ETL_WUR;

/*
 * In the caller's transaction: checks that the job's lock still names this
 * process, and keeps it so until the transaction ends (the row is locked FOR
 * SHARE, so no takeover commits in between). ETL_ELOCKED if it does not:
 * nothing may be written then. Every write of a run's pages and outcome
 * goes through it (load.c); nothing to check without a lock.
 */
int load_fence(PGconn *conn, struct etl_error *err) ETL_WUR;

/* Records the run the lock's holder runs, for the message of a run that finds it taken. */
int load_lock_run(PGconn *conn, long long run_id, struct etl_error *err) ETL_WUR;

/* Releases it (best effort), so a run started right after this one finds it free. */
void load_unlock_job(PGconn *conn, const char *job);

/* Records (or updates) each set's definition; ids[i] is set i's target_set_id. */
int load_register_sets(PGconn *conn, const struct job *job, long long *ids,
		       struct etl_error *err) ETL_WUR;

/*
 * Starts a run of the job for snapshot_date, or continues the latest
 * unfinished one of that date (unless `fresh`, or a set's definition
 * changed). *resumed says which.
 */
int load_start_run(PGconn *conn, const struct job *job, const char *snapshot_date, int fresh,
		   long long *run_id, int *resumed, struct etl_error *err) ETL_WUR;

/* Where a set stands in a run, as load_start_set finds it. */
struct set_start {
	int complete;               /* this run already finished the set */
	char *refused;              /* owned (free()): why a page of it was refused, or NULL */
	struct loaded_page *pages;  /* owned (free()): pages this run loaded */
	size_t n_pages;
	double spent;               /* what every page of the set in this run was charged, any status */
	int direct;                 /* its pages go straight into the versions (load.c) */
	int lookup;                 /* direct, and the set has current versions to compare with */
	int domains;                /* direct, and lookup or the set has no domain row but this
				       run's: the loader writes them (fold.h, sql/019, sql/021) */
	long long expect_total;     /* total_count of the set's latest complete snapshot before
				       the run's date, of the same request; -1 if none */
};

/* Records a new run (a replay when replay_of is not 0); *run_id is its id. */
int load_insert_run(PGconn *conn, const char *job, const char *snapshot_date, long long replay_of,
		    long long *run_id, struct etl_error *err) ETL_WUR;

/*
 * Best effort, for a run that died of a database or internal error: marks
 * it failed with `error` unless it already recorded its own outcome.
 */
void load_fail_run(PGconn *conn, long long run_id, const char *error);

/*
 * Joins a set to the run, recording the definition it fetches
 * (`request_hash`, or NULL for the set's current one), and reads the pages
 * this run loaded before.
 */
int load_start_set(PGconn *conn, long long run_id, long long set_id, const char *request_hash,
		   struct set_start *out, struct etl_error *err) ETL_WUR;

/* Maintenance statements wait this long for a lock, and are tried this often. */
#define LOAD_LOCK_TIMEOUT "2s"
#define LOAD_MAINT_TRIES 5

/*
 * Retention after a successful run of `job` for snapshot_date: snapshots
 * older than keep_snapshots_days and archived bodies of runs older than
 * keep_archive_days go (0 = keep), counted back from the earlier of
 * snapshot_date and today (UTC). A set's newest complete snapshot is never
 * removed; other jobs' sets are never touched. *dropped (if not NULL) counts
 * the (set, date) snapshots purged.
 */
int load_retention(PGconn *conn, const struct job *job, const char *snapshot_date,
		   int *dropped, struct etl_error *err) ETL_WUR;

/* A page transaction that lost a deadlock is redone up to this many times. */
#define LOAD_DEADLOCK_RETRIES 5

/*
 * Loads a page's rows and its ledger row (and archive row) in one
 * transaction, redone when it loses a deadlock to another connection.
 * *refused says a failure was the database refusing the page's data
 * (SQLSTATE class 22): the page's failure, not the run's.
 */
int load_page(PGconn *conn, const struct page_record *rec, const struct row_batch *rows,
	      int *refused, struct etl_error *err) ETL_WUR;

/* Records a page that failed for good (ledger only). */
int load_page_failed(PGconn *conn, const struct page_record *rec, struct etl_error *err) ETL_WUR;

/* What finishing a set did. */
struct set_outcome {
	int published;      /* the answer is now the date's snapshot */
	int already;        /* this run had published it before: nothing done */
	char *error;        /* owned (free()): why it failed at publishing, or NULL */
	long long domains;  /* published: distinct referring domains stored */
	long long expected; /* published: min(total_count, max_rows); -1 if unknown */
};

/*
 * What the loader tells the publish of a direct load (sql/022), for its
 * transaction only (the setting intersect_etl.loader_word).
 */
struct loader_word {
	long long pages;          /* pages of the answer loaded in this run, this process's
				   * and earlier ones': the ledger must hold as many */
	long long distinct_items; /* >= 0: this process loaded every page, that many items,
				   * and saw no referring domain among them twice
				   * (cur_map_distinct()); taken when the pages' items number
				   * as many. -1: it says nothing of them */
};

/*
 * Ends a set: complete (its staged answer published as the date's snapshot,
 * see load.c) or failed with `error` (the snapshot left as it was). word:
 * the loader's (NULL: none).
 */
int load_finish_set(PGconn *conn, long long run_id, long long set_id, const char *snapshot_date,
		    long long total_count, const struct loader_word *word, const char *error,
		    struct set_outcome *out, struct etl_error *err) ETL_WUR;

/* Ends the run with its status; pages, rows and cost are summed from the ledger. */
int load_finish_run(PGconn *conn, long long run_id, const char *status, const char *error,
		    struct etl_error *err) ETL_WUR;

#endif

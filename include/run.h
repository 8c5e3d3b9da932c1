/*
 * run.h - one run of a job: the scheduler that drives fetch -> transform ->
 * load for every target set and records the outcome.
 *
 * run.c owns the order of work: validate the job, connect, check (or apply)
 * the schema, lock the job, record the sets and the run; then its scheduler
 * (schedule.c) keeps up to `concurrency` page requests in flight across all
 * sets (a set's later pages go out once its first page has told
 * total_count), classifies each answer with the retry policy, and loads each
 * good page in its own transaction. The page ledger in the database is the
 * source of truth for progress, so a run that was killed continues where it
 * stopped.
 */
#ifndef INTERSECT_RUN_H
#define INTERSECT_RUN_H

#include <stddef.h>

#include "err.h"

struct run_options {
	const char *job_path;
	const char *snapshot_date; /* "YYYY-MM-DD", or NULL for today (UTC) */
	char **only;               /* set names to run (all when n_only is 0) */
	size_t n_only;
	int migrate;               /* apply missing migrations first */
	int fresh;                 /* start a new run even if one can continue */
	const char *metrics_file;  /* --metrics-file: overrides the job's metrics_file */
};

/* Summary of a finished run, for the caller's last line and for tests. */
struct run_result {
	long long run_id;
	int resumed;
	size_t sets_complete, sets_failed;
	long long pages, rows;     /* the run's, as its ledger sums them (every process) */
	double cost_usd;
	int counted;               /* the figures above were read from the ledger */
	double duration_seconds;   /* this process's working time on the run */
};

/*
 * Runs the job. Returns ETL_OK, ETL_EPARTIAL (some sets failed), ETL_EFAIL,
 * ETL_EUSAGE (bad job or options), ETL_ELOCKED or ETL_ESCHEMA; err says why.
 */
int run_job(const struct run_options *opt, struct run_result *result, struct etl_error *err) ETL_WUR;

#endif

/*
 * metrics.h - a run's outcome in the Prometheus text format, for the node
 * exporter's textfile collector (or any scraper of a file).
 *
 * metrics.c owns the file: written at the end of every run that got as far
 * as reading its job, also one that failed, as PATH.tmp.PID in PATH's
 * directory and then renamed over PATH, so a scrape never reads half a file.
 * Every series is labelled etl_job (the scrape's own `job` label would
 * clash); per-set series with target_set too. The figures are the run's ledger's (as `runs` shows them), except
 * requests and retries, which are this process's.
 */
#ifndef INTERSECT_METRICS_H
#define INTERSECT_METRICS_H

#include <stddef.h>

#include "err.h"

struct metrics_set {
	char *name;            /* owned */
	char *status;          /* owned: complete, failed (etl_run_set.status) */
	long long pages, rows; /* loaded, the run's ledger */
	double cost_usd;       /* charged, the run's ledger */
	long long requests, retries; /* sent by this process */
};

struct metrics_run {
	const char *job;
	long long run_id;      /* 0 when the run never got one (e.g. no database) */
	const char *snapshot_date; /* or NULL */
	const char *status;    /* succeeded, partial, failed, interrupted */
	int exit_status;
	double start_time, end_time; /* seconds since the epoch */
	long long pages, rows;
	double cost_usd;
	long long requests, retries;
	struct metrics_set *sets;
	size_t n_sets;
};

/* Writes m to path atomically (tmp + rename). ETL_EFAIL on an I/O error. */
int metrics_write(const char *path, const struct metrics_run *m, struct etl_error *err) ETL_WUR;

/* Frees what the sets own (the array too); m itself is the caller's. */
void metrics_free_sets(struct metrics_run *m);

#endif

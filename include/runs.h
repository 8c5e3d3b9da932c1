/*
 * runs.h - `intersect-etl runs`: the history of runs, and one run in detail.
 *
 * runs.c owns reading the run history for an operator: the recent runs of a
 * job (or of every job in a schema) from the etl_run_summary view, newest
 * first, and for one run its target sets (etl_run_set) and the pages that
 * failed for good with the error each one ended with (etl_page). It prints
 * through report.c's table and JSON writers and never writes to the
 * database.
 */
#ifndef INTERSECT_RUNS_H
#define INTERSECT_RUNS_H

#include <stdio.h>

#include "err.h"
#include "report.h"

#define RUNS_DEFAULT_LIMIT 20
#define RUNS_MAX_LIMIT 100000

struct runs_options {
	const char *job_path;      /* a job file naming database, schema and job; or NULL */
	const char *job;           /* only runs of this job (--job, else the job file's) */
	const char *database_url;  /* --database-url; else the job's, else DATABASE_URL */
	const char *schema;        /* --schema; else the job's, else "dataforseo" */
	long long run_id;          /* > 0: show this run in detail instead of a list */
	int limit;                 /* runs listed at most, 1..RUNS_MAX_LIMIT */
	const char *status;        /* --status: only runs with this status, or NULL */
	const char *since;         /* --since YYYY-MM-DD: only snapshot dates on or after it */
	enum report_format format; /* REPORT_TABLE or REPORT_JSON */
};

/*
 * Prints the list or the one run to out. ETL_EFAIL for an unknown run id
 * ("run N: no such run in schema S") and database errors; ETL_EUSAGE for a
 * bad job file; ETL_ESCHEMA when the database is not at this binary's
 * schema version.
 */
int runs_show(const struct runs_options *opt, FILE *out, struct etl_error *err) ETL_WUR;

/* Whether s is a run status (running, succeeded, partial, failed, interrupted, abandoned). */
int runs_valid_status(const char *s);
#define RUNS_STATUSES "running, succeeded, partial, failed, interrupted, abandoned"

/* Parses a RUN_ID argument: digits only, 1..2^63-1. Returns 0 and sets *id, or -1. */
int runs_parse_id(const char *s, long long *id) ETL_WUR;

#endif

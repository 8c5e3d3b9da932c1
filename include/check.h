/*
 * check.h - `intersect-etl check JOB`: is everything a run needs there,
 * without loading anything?
 *
 * check.c owns the three questions, each answered on a line of its own: the
 * job file (valid, every credential present), the database (reachable, the
 * schema at this binary's version, the rights a run uses: its tables, its
 * functions, temporary tables), and the API (the credentials accepted, by
 * one GET of the provider's free account endpoint, appendix/user_data,
 * which "will not be charged"). It never sends a charged request and never
 * writes to the database.
 */
#ifndef INTERSECT_CHECK_H
#define INTERSECT_CHECK_H

#include <stdio.h>

#include "err.h"

/* The free endpoint, after the job's base_url, per provider. */
#define CHECK_USER_DATA_AISA "/dataforseo/appendix/user_data"
#define CHECK_USER_DATA_DATAFORSEO "/appendix/user_data"

/*
 * Checks the job at path, a line per part to out. Returns 0 when all three
 * pass, else the status of the first part that failed: ETL_EUSAGE (job
 * file), ETL_ECHECK_DB (database unreachable or a right missing),
 * ETL_ESCHEMA (schema not at this version), ETL_ECHECK_API (credentials
 * refused, or not shown to be accepted); err says why.
 */
int check_job(const char *path, FILE *out, struct etl_error *err) ETL_WUR;

#endif

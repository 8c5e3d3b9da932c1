/*
 * err.h - the project's one error type and its exit statuses.
 *
 * Functions that can fail return an int status (0 = ok, otherwise one of
 * enum etl_exit) and fill a struct etl_error whose message a person reads:
 * what failed and where, with an optional hint on its own line. main() maps
 * the status straight to the process exit status, so the numbers below are
 * the documented interface (README "Exit status", --help).
 */
#ifndef INTERSECT_ERR_H
#define INTERSECT_ERR_H

#include "util.h"

enum etl_exit {
	ETL_OK = 0,       /* everything asked for was done */
	ETL_EFAIL = 1,    /* a failure: network, API, database, I/O */
	ETL_EUSAGE = 2,   /* bad command line or job file; nothing was started */
	ETL_EPARTIAL = 3, /* the run finished, but some target sets failed */
	ETL_ELOCKED = 4,  /* another run of this job holds its lock */
	ETL_ESCHEMA = 5,  /* the database schema is not at this binary's version */
	ETL_ECHECK_DB = 6,  /* check: the database is unreachable or lacks a right a run uses */
	ETL_ECHECK_API = 7, /* check: the API refused the credentials, or did not show them accepted */
	/* a run stopped by a signal, as a shell reports one (128 + the signal's
	 * number): the run said so, recorded itself `interrupted`, and exited */
	ETL_ESIGINT = 130,
	ETL_ESIGTERM = 143,
};

struct etl_error {
	int code;        /* one of enum etl_exit; 0 while no error is set */
	char msg[2048];  /* primary line, then optional "\nhint: ..." lines */
};

/* Sets err (if not NULL) and returns code, so callers can `return etl_fail(...)`. */
int etl_fail(struct etl_error *err, int code, const char *fmt, ...) ETL_PRINTF(3, 4);
/* Prefixes the existing message with context ("loading page 3: "). */
void etl_error_prefix(struct etl_error *err, const char *fmt, ...) ETL_PRINTF(2, 3);
void etl_error_clear(struct etl_error *err);
const char *etl_exit_name(int code);

#endif

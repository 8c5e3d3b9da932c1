/*
 * migrate.h - the schema migrations carried inside the binary.
 *
 * sql/NNN_name.sql files are embedded at build time (cmake/embed_sql.cmake)
 * into the `migrations` array, in file-name order. migrate.c applies the ones
 * a database lacks, each in its own transaction with its row in
 * schema_migrations (name and md5 checksum), and refuses a database whose
 * applied migrations were edited or come from a newer binary.
 */
#ifndef INTERSECT_MIGRATE_H
#define INTERSECT_MIGRATE_H

#include <libpq-fe.h>

#include "err.h"

struct migration {
	const char *name; /* file name, e.g. "001_initial.sql" */
	const char *sql;  /* its exact bytes */
	const char *md5;  /* md5 of those bytes, hex, taken at build time */
};

/* Terminated by an entry whose name is NULL. Generated at build time. */
extern const struct migration migrations[];

/*
 * Applies every missing migration. *applied (if not NULL) is set to how many
 * were applied now. Returns ETL_ESCHEMA when an applied migration was edited
 * or the database knows one this binary does not.
 */
int migrate_apply(PGconn *conn, int *applied, struct etl_error *err) ETL_WUR;

/*
 * Checks that the database is at exactly this binary's schema version;
 * ETL_ESCHEMA with a hint to run `intersect-etl migrate` if not.
 */
int migrate_check(PGconn *conn, struct etl_error *err) ETL_WUR;

#endif

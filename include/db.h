/*
 * db.h - the PostgreSQL connection and small helpers around libpq.
 *
 * db.c owns connecting (with the schema on search_path after pg_catalog,
 * quoted with PQescapeIdentifier, so every statement elsewhere names tables
 * unqualified), with every wait bounded (connect, keepalives, statements),
 * running statements with bound parameters, and turning libpq errors into
 * struct etl_error messages. Every SQL value goes through parameters or COPY;
 * nothing is spliced into SQL text except the quoted schema identifier.
 */
#ifndef INTERSECT_DB_H
#define INTERSECT_DB_H

#include <libpq-fe.h>

#include "err.h"
#include "util.h"

/*
 * The bounds on every wait (see db.c's bounds[]): seconds to connect, and
 * how long one of the ETL's statements may run. 30 minutes is about 100
 * times the longest statement README "Performance" reports for a 1M-row run
 * (publish_snapshot(), 15 s), so it ends a hung night, not a big one.
 */
#define DB_CONNECT_TIMEOUT "10"
#define DB_STATEMENT_TIMEOUT "30min"

/*
 * What every session of the ETL's sets first, %s the quoted schema:
 * built-in names resolve in pg_catalog before anything in the job's schema,
 * temporary objects last (functions are pinned to the same order by
 * migrate.c); and DB_STATEMENT_TIMEOUT unless the session already has a
 * statement_timeout (from the connection string's options, PGOPTIONS, or
 * ALTER ROLE/DATABASE ... SET), which is the override. A SET rather than a
 * startup option, which poolers such as PgBouncer refuse. Dates in UTC. And
 * jit off: the ETL's statements are index reads and writes of one set,
 * whose cost estimates (jsonb_each is guessed at 100 rows a map, see
 * sql/014) can cross jit_above_cost: compiling took 166 ms of a 255 ms
 * breakdown total (and 200 ms of a publish when it ran with nested loops
 * off, before sql/010). Readers get no such setting from us.
 */
#define DB_SESSION_SQL                                                          \
	"SET search_path TO pg_catalog, %s, pg_temp; "                          \
	"SELECT set_config('statement_timeout', '" DB_STATEMENT_TIMEOUT "', false) " \
	"WHERE current_setting('statement_timeout') = '0'; "                    \
	"SET timezone TO 'UTC'; SET jit TO off"

/*
 * Connects with `conninfo` ("" = libpq's PG* environment) and sets
 * search_path to `schema` (created first when create_schema is set). On
 * success *out is a connection the caller closes with PQfinish().
 */
int db_connect(const char *conninfo, const char *schema, int create_schema, PGconn **out,
	       struct etl_error *err) ETL_WUR;

/* Runs a statement with no result rows wanted (may be several statements). */
int db_exec(PGconn *conn, const char *sql, struct etl_error *err) ETL_WUR;

/*
 * Runs one statement with text parameters (NULL entries are SQL NULL). On
 * success *res (if res is not NULL) is a result the caller PQclear()s.
 */
int db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
	     PGresult **res, struct etl_error *err) ETL_WUR;

/*
 * db_query() with PQexecParams' lengths and formats (1 = binary) for the
 * parameters, and result_format for the result: for bytea, which in text
 * form would travel hex-encoded at twice its size.
 */
int db_query_bin(PGconn *conn, const char *sql, int nparams, const char *const *params,
		 const int *lengths, const int *formats, int result_format, PGresult **res,
		 struct etl_error *err) ETL_WUR;

/*
 * The SQLSTATE of the calling thread's last statement that failed in db.c
 * (or was passed to db_note_sqlstate()), "" if the failure had none (e.g. a
 * lost connection) or after db_clear_sqlstate(): for telling a deadlock,
 * which is worth redoing the transaction for, from a real error.
 */
const char *db_sqlstate(void);
void db_clear_sqlstate(void);
void db_note_sqlstate(const PGresult *res);

/* Rolls back an open transaction, ignoring errors (for cleanup paths). */
void db_rollback(PGconn *conn);

/* Bytes of COPY data gathered before they go to PQputCopyData. */
#define DB_COPY_PIECE (64u * 1024)

/*
 * A COPY ... FROM STDIN being written, sent in pieces of DB_COPY_PIECE:
 * libpq copies what it is given into its output buffer, which never
 * shrinks, so a page or an archived body of 60 MiB sent whole would stay
 * held by that connection for the rest of the run (bench/hostile.py
 * --overlap).
 */
struct db_copy {
	PGconn *conn;
	struct strbuf sb;    /* gathered, not yet sent */
	int failed;          /* a piece was not taken: db_copy_end() says so */
};

/* Starts "COPY <what>" (e.g. "t (a, b) FROM STDIN", safe to splice) into co. */
int db_copy_start(PGconn *conn, const char *what, struct db_copy *co,
		  struct etl_error *err) ETL_WUR;
/* Adds bytes to the COPY's data (a large run goes out without a copy). */
void db_copy_put(struct db_copy *co, const void *p, size_t len);
/*
 * Sends the rest and ends the COPY; *sqlstate (if not NULL: 6 bytes) gets
 * the server's error code on failure, else "".
 */
int db_copy_end(struct db_copy *co, char *sqlstate, struct etl_error *err) ETL_WUR;
/* One COPY of data[0..len) (COPY text, whole lines): start, put, end, as above. */
int db_copy_data(PGconn *conn, const char *what, const void *data, size_t len, char *sqlstate,
		 struct etl_error *err) ETL_WUR;

#endif

/*
 * db.c - connecting to PostgreSQL and running statements. See db.h.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpq messages end in a newline; ours do not. */
static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/*
 * libpq's connection errors span lines (one per address tried, and a tab-
 * indented hint); a cron mail or a log collector wants one line.
 */
static void one_line(char *s, size_t size)
{
	struct strbuf sb;
	const char *r;

	chomp(s);
	sb_init(&sb);
	for (r = s; *r; r++) {
		if (*r != '\n') {
			sb_putc(&sb, *r);
			continue;
		}
		while (r[1] == '\t' || r[1] == ' ' || r[1] == '\n')
			r++;
		sb_puts(&sb, "; ");
	}
	snprintf(s, size, "%s", sb.data ? sb.data : ""); /* "; " may be longer than "\n" */
	sb_free(&sb);
}

/* The SQLSTATE of this thread's last failed statement: see db_sqlstate(). */
static _Thread_local char last_sqlstate[6];

void db_note_sqlstate(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", state ? state : "");
}

const char *db_sqlstate(void)
{
	return last_sqlstate;
}

void db_clear_sqlstate(void)
{
	last_sqlstate[0] = '\0';
}

static int result_error(PGconn *conn, PGresult *res, const char *sql, struct etl_error *err)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	char first[128];
	size_t n = strcspn(sql, "\n");

	db_note_sqlstate(res);
	if (n >= sizeof(first))
		n = sizeof(first) - 1;
	memcpy(first, sql, n);
	first[n] = '\0';
	etl_fail(err, ETL_EFAIL, "database error: %s%s%s\ncontext: %s", msg && *msg ? msg : "unknown error",
		 detail ? "\ndetail: " : "", detail ? detail : "", first);
	chomp(err->msg);
	return ETL_EFAIL;
}

int db_connect(const char *conninfo, const char *schema, int create_schema, PGconn **out,
	       struct etl_error *err)
{
	/* application_name lets a DBA see who holds a lock; fallback only. */
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {conninfo ? conninfo : "", "intersect-etl", NULL};
	PGconn *conn;
	char *ident = NULL, *sql = NULL;
	int rc = ETL_EFAIL;

	*out = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		etl_fail(err, ETL_EFAIL, "cannot connect to the database: %s",
			 conn ? PQerrorMessage(conn) : "out of memory");
		one_line(err->msg, sizeof(err->msg));
		goto failed;
	}
	if (PQsetClientEncoding(conn, "UTF8") != 0) {
		etl_fail(err, ETL_EFAIL, "cannot set client encoding UTF8: %s", PQerrorMessage(conn));
		chomp(err->msg);
		goto failed;
	}
	ident = PQescapeIdentifier(conn, schema, strlen(schema));
	if (!ident) {
		etl_fail(err, ETL_EFAIL, "cannot quote schema name: %s", PQerrorMessage(conn));
		goto failed;
	}
	if (db_exec(conn, "SET client_min_messages TO warning", err) != 0)
		goto failed;
	if (create_schema) {
		sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s", ident);
		if (db_exec(conn, sql, err) != 0)
			goto failed;
		free(sql);
		sql = NULL;
	}
	/* pg_temp last keeps temporary tables from shadowing ours. */
	sql = xasprintf("SET search_path TO %s, pg_catalog, pg_temp", ident);
	if (db_exec(conn, sql, err) != 0)
		goto failed;
	/* jit off: the views prune partitions only at run time, so every plan
	 * names every partition and looks costly enough to JIT-compile, which
	 * costs seconds for queries that read one partition in milliseconds. */
	if (db_exec(conn, "SET timezone TO 'UTC'; SET jit TO off", err) != 0)
		goto failed;
	*out = conn;
	conn = NULL;
	rc = 0;
failed:
	if (ident)
		PQfreemem(ident);
	free(sql);
	if (conn)
		PQfinish(conn);
	return rc;
}

int db_exec(PGconn *conn, const char *sql, struct etl_error *err)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = result_error(conn, res, sql, err);
	PQclear(res);
	return rc;
}

int db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
	     PGresult **res, struct etl_error *err)
{
	return db_query_bin(conn, sql, nparams, params, NULL, NULL, 0, res, err);
}

int db_query_bin(PGconn *conn, const char *sql, int nparams, const char *const *params,
		 const int *lengths, const int *formats, int result_format, PGresult **res,
		 struct etl_error *err)
{
	PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, lengths, formats,
				   result_format);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (res)
		*res = NULL;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = result_error(conn, r, sql, err);
		PQclear(r);
		return rc;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

void db_rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

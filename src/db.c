/*
 * db.c - connecting to PostgreSQL and running statements. See db.h.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

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

/*
 * A statement cancelled by statement_timeout (or by an administrator: the
 * same SQLSTATE): which database, and how to give the ETL's statements more
 * time.
 */
static void timeout_hint(PGconn *conn, struct etl_error *err)
{
	size_t n = strlen(err->msg);

	snprintf(err->msg + n, sizeof(err->msg) - n,
		 "\nhint: the database (host %s, port %s, database %s) cancelled the statement; "
		 "the ETL's statements may take %s unless the session says otherwise: ALTER ROLE "
		 "... SET statement_timeout = '2h', or options=-c%%20statement_timeout%%3D2h in the "
		 "connection URL",
		 PQhost(conn), PQport(conn), PQdb(conn), DB_STATEMENT_TIMEOUT);
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
	if (strcmp(db_sqlstate(), "57014") == 0)
		timeout_hint(conn, err);
	/* a server's message may quote any value it was sent */
	redact_str(err->msg);
	return ETL_EFAIL;
}

/*
 * The connection string is not valid. libpq's message quotes the string or
 * the part it choked on, which may be the password ("invalid percent-encoded
 * token: "pa%zzss""): every quoted part is dropped, and when the string
 * itself holds a '"' (so quotes in the message no longer pair) everything
 * from the first quote on. The program never calls setlocale(), so these
 * are libpq's English messages with their ASCII quotes.
 */
static void parse_error(const char *conninfo, const char *msg, struct etl_error *err)
{
	struct strbuf sb;
	const char *q, *close;

	sb_init(&sb);
	if (strchr(conninfo, '"')) {
		sb_append(&sb, msg, strcspn(msg, "\""));
	} else {
		for (; (q = strchr(msg, '"')) != NULL; msg = close + 1) {
			sb_append(&sb, msg, (size_t)(q - msg));
			sb_puts(&sb, "\"...\"");
			if (!(close = strchr(q + 1, '"')))
				break;
		}
		if (!q)
			sb_puts(&sb, msg);
	}
	if (sb.data)
		chomp(sb.data);
	etl_fail(err, ETL_EFAIL, "cannot connect to the database: the connection string is not "
		 "valid: %s\nhint: the URI form is postgresql://USER:PASSWORD@HOST:PORT/DATABASE, "
		 "special characters percent-encoded", sb.data ? sb.data : "");
	sb_free(&sb);
}

/* libpq reads a dbname with '=' or a postgres[ql]:// prefix as a whole connection string. */
static int is_conninfo(const char *s)
{
	return strchr(s, '=') || strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

/* An option's value from PQconninfoParse(), NULL if unset or empty. */
static const char *option(const PQconninfoOption *opts, const char *key)
{
	for (; opts && opts->keyword; opts++)
		if (strcmp(opts->keyword, key) == 0)
			return opts->val && *opts->val ? opts->val : NULL;
	return NULL;
}

/* Wipes what the parsed options hold, the password among them, and frees them. */
static void options_free(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (o->val)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

/* "(default)" for what neither the string nor libpq's PG* variables set. */
static const char *shown(const char *from_string, const char *effective)
{
	return from_string ? from_string : effective && *effective ? effective : "(default)";
}

/*
 * A failed connection, named by host, port, user and database only. libpq
 * names the server it tried and the server the user or database it refused,
 * but a message from a server (or another libpq) might quote any option:
 * the password, from the string or from PGPASSWORD or ~/.pgpass (PQpass()),
 * is registered as a credential and cut out of the message like any other.
 */
static void connect_error(PGconn *conn, const PQconninfoOption *opts, struct etl_error *err)
{
	const char *host = option(opts, "host") ? option(opts, "host") : option(opts, "hostaddr");

	redact_add(option(opts, "password"));
	redact_add(conn ? PQpass(conn) : NULL);
	etl_fail(err, ETL_EFAIL,
		 "cannot connect to the database (host %s, port %s, user %s, database %s): %s",
		 shown(host, conn ? PQhost(conn) : NULL),
		 shown(option(opts, "port"), conn ? PQport(conn) : NULL),
		 shown(option(opts, "user"), conn ? PQuser(conn) : NULL),
		 shown(option(opts, "dbname"), conn ? PQdb(conn) : NULL),
		 conn ? PQerrorMessage(conn) : "out of memory");
	redact_str(err->msg);
	one_line(err->msg, sizeof(err->msg));
}

/*
 * Every wait on the database is bounded, by connection parameters so that
 * they hold after PQreset() too: a server that accepts and never answers
 * fails the connection after connect_timeout; one that vanishes is noticed
 * by TCP keepalives within about 2 minutes when idle, and by
 * tcp_user_timeout when data it never acknowledges is waiting. (A statement
 * of the ETL's own is bounded by statement_timeout: DB_SESSION_SQL.) Each
 * is a default: the connection string's own value replaces it, and so does
 * PGCONNECT_TIMEOUT.
 */
static const struct {
	const char *key, *val, *env;
} bounds[] = {
	{"connect_timeout", DB_CONNECT_TIMEOUT, "PGCONNECT_TIMEOUT"},
	{"keepalives", "1", NULL},
	{"keepalives_idle", "60", NULL},
	{"keepalives_interval", "10", NULL},
	{"keepalives_count", "6", NULL},
	{"tcp_user_timeout", "120000", NULL},
};

int db_connect(const char *conninfo, const char *schema, int create_schema, PGconn **out,
	       struct etl_error *err)
{
	const char *keys[ETL_ARRAY_LEN(bounds) + 3], *vals[ETL_ARRAY_LEN(bounds) + 3];
	const char *cs = conninfo ? conninfo : "";
	PQconninfoOption *opts = NULL;
	PGconn *conn = NULL;
	char *ident = NULL, *sql = NULL, *perr = NULL;
	int rc = ETL_EFAIL;
	size_t i, n = 0;

	*out = NULL;
	/* Parsed first, so that no error of libpq's quotes the string itself. */
	if (is_conninfo(cs) && !(opts = PQconninfoParse(cs, &perr))) {
		parse_error(cs, perr ? perr : "out of memory", err);
		goto failed;
	}
	/* The bounds first: the connection string's own values (later) win. */
	for (i = 0; i < ETL_ARRAY_LEN(bounds); i++) {
		if (bounds[i].env && getenv(bounds[i].env))
			continue;
		keys[n] = bounds[i].key;
		vals[n++] = bounds[i].val;
	}
	keys[n] = "dbname";
	vals[n++] = cs;
	/* application_name lets a DBA see who holds a lock; fallback only. */
	keys[n] = "fallback_application_name";
	vals[n++] = "intersect-etl";
	keys[n] = vals[n] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		connect_error(conn, opts, err);
		goto failed;
	}
	/* from now on a server's message quoting it has it cut (result_error) */
	redact_add(PQpass(conn));
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
	/* pg_catalog first: an object someone put in the job's schema (a
	 * function, an operator) can never stand in for a built-in one; pg_temp
	 * last keeps temporary tables from shadowing ours. DB_SESSION_SQL. */
	sql = xasprintf(DB_SESSION_SQL, ident);
	if (db_exec(conn, sql, err) != 0)
		goto failed;
	*out = conn;
	conn = NULL;
	rc = 0;
failed:
	options_free(opts);
	if (perr)
		PQfreemem(perr);
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

int db_copy_start(PGconn *conn, const char *what, struct db_copy *co, struct etl_error *err)
{
	char *sql = xasprintf("COPY %s", what);
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	free(sql);
	memset(co, 0, sizeof(*co));
	co->conn = conn;
	if (PQresultStatus(res) != PGRES_COPY_IN)
		rc = etl_fail(err, ETL_EFAIL, "database error: cannot start COPY: %s",
			      PQresultErrorMessage(res));
	PQclear(res);
	return rc;
}

static void copy_send(struct db_copy *co, const char *p, size_t len)
{
	if (!co->failed && PQputCopyData(co->conn, p, (int)len) != 1)
		co->failed = 1;
}

void db_copy_put(struct db_copy *co, const void *p, size_t len)
{
	const char *s = p;
	size_t n;

	while (len) {
		if (!co->sb.len && len >= DB_COPY_PIECE) {
			n = DB_COPY_PIECE; /* a whole piece: straight from the caller */
			copy_send(co, s, n);
		} else {
			n = DB_COPY_PIECE - co->sb.len < len ? DB_COPY_PIECE - co->sb.len : len;
			sb_append(&co->sb, s, n);
			if (co->sb.len == DB_COPY_PIECE) {
				copy_send(co, co->sb.data, co->sb.len);
				sb_reset(&co->sb);
			}
		}
		s += n;
		len -= n;
	}
}

int db_copy_data(PGconn *conn, const char *what, const void *data, size_t len, char *sqlstate,
		 struct etl_error *err)
{
	struct db_copy co;
	int rc;

	if (sqlstate)
		sqlstate[0] = '\0';
	if ((rc = db_copy_start(conn, what, &co, err)) != 0)
		return rc;
	db_copy_put(&co, data, len);
	return db_copy_end(&co, sqlstate, err);
}

int db_copy_end(struct db_copy *co, char *sqlstate, struct etl_error *err)
{
	PGconn *conn = co->conn;
	PGresult *res;
	int rc = 0;

	if (sqlstate)
		sqlstate[0] = '\0';
	if (co->sb.len)
		copy_send(co, co->sb.data, co->sb.len);
	sb_free(&co->sb);
	if (co->failed)
		rc = etl_fail(err, ETL_EFAIL, "database error: COPY failed: %s", PQerrorMessage(conn));
	if (PQputCopyEnd(conn, rc ? "intersect-etl: sending rows failed" : NULL) != 1 && !rc)
		rc = etl_fail(err, ETL_EFAIL, "database error: COPY failed: %s", PQerrorMessage(conn));
	while ((res = PQgetResult(conn))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !rc) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			db_note_sqlstate(res);
			rc = etl_fail(err, ETL_EFAIL, "database error: COPY failed: %s",
				      PQresultErrorMessage(res));
			if (sqlstate && state)
				snprintf(sqlstate, 6, "%s", state);
		}
		PQclear(res);
	}
	return rc;
}

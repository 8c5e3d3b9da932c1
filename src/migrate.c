/*
 * migrate.c - applies the embedded sql/ migrations. See migrate.h.
 *
 * Checksums are md5 over the exact embedded bytes, computed by the server so
 * the binary needs no hashing code. Concurrent `migrate` calls serialize on a
 * lock of schema_migrations (the first one of a schema on an advisory lock)
 * and each re-reads what is applied.
 */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

/* Advisory lock key shared by every migrate of any job: "ietl-mig". */
#define MIGRATE_LOCK_KEY "7586121645963454823"
/* How long a migration's statement waits for a lock, and how often it is tried. */
#define MIGRATE_LOCK_TIMEOUT "10s"
#define MIGRATE_TRIES 4

static const char create_table_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" name text PRIMARY KEY,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now())";

static int migration_count(void)
{
	int n = 0;

	while (migrations[n].name)
		n++;
	return n;
}

/*
 * Compares the applied migrations with the embedded ones. Sets *missing to
 * the index of the first embedded migration not yet applied (count if none).
 */
static int compare_applied(PGconn *conn, int *missing, struct etl_error *err)
{
	PGresult *res = NULL;
	int n = migration_count();
	int rc, i, j;

	*missing = n;
	rc = db_query(conn,
		      "SELECT name, checksum FROM schema_migrations ORDER BY name",
		      0, NULL, &res, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0);
		for (j = 0; j < n; j++)
			if (strcmp(migrations[j].name, name) == 0)
				break;
		if (j == n) {
			rc = etl_fail(err, ETL_ESCHEMA,
				      "the database has migration %s, which this binary does not know\n"
				      "hint: the schema was migrated by a newer intersect-etl; use that version",
				      name);
			goto done;
		}
	}
	for (j = 0; j < n; j++) {
		const char *params[1] = {migrations[j].sql};
		PGresult *sum = NULL;
		int found = -1;

		for (i = 0; i < PQntuples(res); i++)
			if (strcmp(PQgetvalue(res, i, 0), migrations[j].name) == 0)
				found = i;
		if (found < 0) {
			if (*missing == n)
				*missing = j;
			continue;
		}
		if (*missing != n) {
			rc = etl_fail(err, ETL_ESCHEMA,
				      "migration %s is applied but the earlier %s is not",
				      migrations[j].name, migrations[*missing].name);
			goto done;
		}
		rc = db_query(conn, "SELECT md5(convert_to($1, 'UTF8'))", 1, params, &sum, err);
		if (rc != 0)
			goto done;
		if (strcmp(PQgetvalue(sum, 0, 0), PQgetvalue(res, found, 1)) != 0) {
			rc = etl_fail(err, ETL_ESCHEMA,
				      "migration %s was changed after it was applied (checksum %s, applied %s)\n"
				      "hint: never edit an applied migration; add a new sql/NNN_*.sql instead",
				      migrations[j].name, PQgetvalue(sum, 0, 0),
				      PQgetvalue(res, found, 1));
			PQclear(sum);
			goto done;
		}
		PQclear(sum);
	}
done:
	PQclear(res);
	return rc;
}

/*
 * One try at applying what is missing. Every statement waits at most
 * MIGRATE_LOCK_TIMEOUT for a lock (a report's open transaction, a run's
 * session), so a migration never queues every later query of the tables it
 * alters behind it; migrate_apply() tries again.
 */
static int apply_once(PGconn *conn, int *applied, struct etl_error *err)
{
	int n = migration_count();
	PGresult *res = NULL;
	int missing, rc, i, fresh;

	if (applied)
		*applied = 0;
	if ((rc = db_exec(conn, "BEGIN; SET LOCAL lock_timeout = '" MIGRATE_LOCK_TIMEOUT "'", err)) != 0)
		return rc;
	if ((rc = db_query(conn, "SELECT to_regclass('schema_migrations') IS NULL", 0, NULL, &res,
			   err)) != 0)
		goto failed;
	fresh = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	/* Only the first migrate of a schema serializes on the advisory key
	 * (two of them creating the table at once would collide); any login
	 * role can take that key, so once the table exists a lock on it is the
	 * one to wait for: SHARE ROW EXCLUSIVE conflicts with itself, and only
	 * a role that may write the table can take it. */
	if (fresh && (rc = db_exec(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", err)) != 0)
		goto failed;
	if ((rc = db_exec(conn, create_table_sql, err)) != 0)
		goto failed;
	if ((rc = db_exec(conn, "LOCK TABLE schema_migrations IN SHARE ROW EXCLUSIVE MODE", err)) != 0)
		goto failed;
	if ((rc = compare_applied(conn, &missing, err)) != 0)
		goto failed;
	/* One transaction for all: a failed migration leaves nothing half-done. */
	for (i = missing; i < n; i++) {
		const char *params[2] = {migrations[i].name, migrations[i].sql};

		if ((rc = db_exec(conn, migrations[i].sql, err)) != 0) {
			etl_error_prefix(err, "migration %s: ", migrations[i].name);
			goto failed;
		}
		rc = db_query(conn,
			      "INSERT INTO schema_migrations (name, checksum) "
			      "VALUES ($1, md5(convert_to($2, 'UTF8')))",
			      2, params, NULL, err);
		if (rc != 0)
			goto failed;
		if (applied)
			(*applied)++;
	}
	if ((rc = db_exec(conn, "COMMIT", err)) != 0)
		goto failed;
	return 0;
failed:
	db_rollback(conn);
	if (applied)
		*applied = 0;
	return rc;
}

int migrate_apply(PGconn *conn, int *applied, struct etl_error *err)
{
	int rc, tries = 0;

	for (;;) {
		db_clear_sqlstate();
		rc = apply_once(conn, applied, err);
		if (rc == 0 || strcmp(db_sqlstate(), "55P03") != 0 || ++tries >= MIGRATE_TRIES)
			return rc;
		log_warn("%s; trying again in %d s", err->msg, tries * 5);
		sleep((unsigned)tries * 5);
	}
}

int migrate_check(PGconn *conn, struct etl_error *err)
{
	PGresult *res = NULL;
	int missing, rc;

	rc = db_query(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &res, err);
	if (rc != 0)
		return rc;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		return etl_fail(err, ETL_ESCHEMA,
				"the database schema is not set up\n"
				"hint: run `intersect-etl migrate JOB`, or `run --migrate`");
	}
	PQclear(res);
	if ((rc = compare_applied(conn, &missing, err)) != 0)
		return rc;
	if (migrations[missing].name)
		return etl_fail(err, ETL_ESCHEMA,
				"the database schema is behind this binary: migration %s is not applied\n"
				"hint: run `intersect-etl migrate JOB`, or `run --migrate`",
				migrations[missing].name);
	return 0;
}

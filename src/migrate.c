/*
 * migrate.c - applies the embedded sql/ migrations. See migrate.h.
 *
 * Checksums are md5 over the exact embedded bytes, computed by the server so
 * the binary needs no hashing code; the build takes them too (cmake's
 * file(MD5)), and a check compares those first: it asks the server only for
 * a migration whose checksum differs. Concurrent `migrate` calls serialize on a
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

/*
 * The job's schema: the first on the session's path other than pg_catalog
 * (DB_SESSION_SQL puts it second; a migration first), absent while the
 * schema does not exist. The checks run with pg_catalog first, so their
 * built-in names are the built-ins.
 */
#define JOB_SCHEMA \
	"(SELECT x FROM unnest(current_schemas(false)) WITH ORDINALITY u(x, i)" \
	" WHERE x <> 'pg_catalog' ORDER BY i LIMIT 1)"

/*
 * Who besides the owner may plant objects in the schema: roles (PUBLIC
 * among them) with CREATE on it that are neither its owner, the ETL's role
 * nor a superuser; and a function or operator in it owned by such a role
 * (planted while it could). Extension members are the extension's.
 */
static const char unsafe_sql[] =
	"WITH s AS (SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace n"
	"           WHERE n.nspname = " JOB_SCHEMA "),"
	" trusted AS (SELECT oid FROM pg_roles"
	"             WHERE rolsuper OR oid = (SELECT nspowner FROM s) OR rolname = current_user),"
	" objs AS (SELECT p.oid, 'pg_proc'::regclass AS cls, p.proowner AS owner,"
	"                 format('function %I.%I(%s)', (SELECT nspname FROM s), p.proname,"
	"                        pg_get_function_identity_arguments(p.oid)) AS what"
	"          FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM s)"
	"          UNION ALL"
	"          SELECT o.oid, 'pg_operator'::regclass, o.oprowner,"
	"                 format('operator %I.%s(%s, %s)', (SELECT nspname FROM s), o.oprname,"
	"                        o.oprleft::regtype, o.oprright::regtype)"
	"          FROM pg_operator o WHERE o.oprnamespace = (SELECT oid FROM s))"
	" SELECT s.nspname,"
	"  (SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, ', ')"
	"   FROM aclexplode(s.nspacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee"
	"   WHERE a.privilege_type = 'CREATE' AND a.grantee NOT IN (SELECT oid FROM trusted)),"
	"  (SELECT format('%s owned by %s', objs.what, quote_ident(r.rolname))"
	"   FROM objs JOIN pg_roles r ON r.oid = objs.owner"
	"   WHERE objs.owner NOT IN (SELECT oid FROM trusted)"
	"     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = objs.cls"
	"                     AND d.objid = objs.oid AND d.deptype = 'e')"
	"   ORDER BY 1 LIMIT 1)"
	" FROM s";

/*
 * Refuses a schema in which other roles may create objects, or did: one of
 * them could define a function or operator that the ETL's statements or
 * functions call with the ETL's rights (a PostgreSQL 14 database's
 * "public", where PUBLIC may CREATE). ETL_EFAIL with how to fix it.
 */
static int check_schema_safe(PGconn *conn, struct etl_error *err)
{
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(conn, unsafe_sql, 0, NULL, &res, err)) != 0)
		return rc;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)) {
		rc = etl_fail(err, ETL_EFAIL,
			      "schema %s: roles other than its owner may create objects in it (%s), "
			      "which the ETL would then run with its own rights\n"
			      "hint: REVOKE CREATE ON SCHEMA %s FROM %s; or give the job a schema of its own "
			      "(database.schema)",
			      PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0),
			      PQgetvalue(res, 0, 1));
	} else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 2)) {
		rc = etl_fail(err, ETL_EFAIL,
			      "schema %s holds %s, a role that is not its owner, which the ETL could "
			      "end up running with its own rights\n"
			      "hint: drop it (or change its owner) after checking what it does",
			      PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return rc;
}

/*
 * After migrations: every function of the ETL's in the schema resolves
 * names with pg_catalog first, whatever path its migration captured (a
 * migration runs with the schema first, so that its unqualified CREATEs land
 * there, and `SET search_path FROM CURRENT` captures that), and PUBLIC may
 * not EXECUTE it (PostgreSQL grants that to every new function): a role that
 * needs one gets it by name (sql/bi_readonly.sql). Generic, so a later
 * migration's functions are covered without a list.
 */
static const char secure_functions_sql[] =
	"DO $$\n"
	"DECLARE\n"
	"    nsp name := " JOB_SCHEMA ";\n"
	"    pinned text := format('pg_catalog, %I, pg_temp', " JOB_SCHEMA ");\n"
	"    f regprocedure;\n"
	"BEGIN\n"
	"    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p\n"
	"             WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace\n"
	"                                     WHERE nspname = nsp) AND p.prokind IN ('f', 'p')\n"
	"               AND p.proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)\n"
	"               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d\n"
	"                               WHERE d.classid = 'pg_catalog.pg_proc'::regclass\n"
	"                                 AND d.objid = p.oid AND d.deptype = 'e') LOOP\n"
	"        EXECUTE format('ALTER ROUTINE %s SET search_path = %s', f, pinned);\n"
	"        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', f);\n"
	"    END LOOP;\n"
	"END $$";

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
		if (strcmp(migrations[j].md5, PQgetvalue(res, found, 1)) == 0)
			continue;
		/* the server's word decides (the build's is only a shortcut) */
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
	/* no statement_timeout: a migration over years of history may take its
	 * time (an index build took 19 min); its lock waits stay bounded */
	if ((rc = db_exec(conn, "BEGIN; SET LOCAL lock_timeout = '" MIGRATE_LOCK_TIMEOUT "'; "
			  "SET LOCAL statement_timeout = 0", err)) != 0)
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
	if ((rc = check_schema_safe(conn, err)) != 0)
		goto failed;
	/* The migrations name what they create unqualified, so the schema must
	 * be first (with pg_catalog first, CREATE would aim at pg_catalog): safe
	 * now that nobody else can have put anything in it. */
	if ((rc = db_exec(conn,
			  "SELECT set_config('search_path', format('%I, pg_catalog, pg_temp', "
			  JOB_SCHEMA "), true)", err)) != 0)
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
	/* back to pg_catalog first for what follows */
	if ((rc = db_exec(conn,
			  "SELECT set_config('search_path', format('pg_catalog, %I, pg_temp', "
			  JOB_SCHEMA "), true)", err)) != 0)
		goto failed;
	if (missing < n && (rc = db_exec(conn, secure_functions_sql, err)) != 0) {
		etl_error_prefix(err, "pinning the functions' search_path: ");
		goto failed;
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

	if ((rc = check_schema_safe(conn, err)) != 0)
		return rc;
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

-- bi_readonly.sql - a login role for BI tools that can read the report views
-- of one schema (listed in the GRANT at the end) and nothing else.
--
-- Not a migration (no NNN_ prefix: the binary does not carry it). An admin
-- runs it with psql, connected to the ETL's database as a superuser, or as
-- a role with CREATEROLE that owns the schema and its views (the role that
-- ran `migrate`) and the database (to revoke PUBLIC's TEMPORARY on it):
--
--   psql -v schema=dataforseo -v role=intersect_bi -v password="'s3cret'" -f sql/bi_readonly.sql
--
-- password is an SQL literal, quotes included (double any ' inside it); leave
-- it out to keep the role's current password, or to use another
-- authentication method. Running it again is safe: it brings the role back
-- to exactly these rights.
--
-- The views run with their owner's rights, so SELECT on a view is all the
-- role needs; it gets no right on any table, sequence or function of the
-- schema (the views call no function of it). It can create nothing: besides its own role, the script revokes
-- from PUBLIC what no per-role REVOKE can take away from one role: CREATE
-- on the ETL's schema and EXECUTE on its functions (publish_snapshot and
-- friends), TEMPORARY and CREATE on the database, and CREATE on "public"
-- (PUBLIC's in databases created before PostgreSQL 15). TEMPORARY goes back
-- by name to the schema's owner, which runs the ETL; another role of the
-- database that creates temporary tables needs it granted by name too. The
-- script ends by checking that the role can create nothing, and fails
-- (changing nothing) if a REVOKE was beyond its runner's rights. Its
-- sessions are read-only by default as well.
--
-- Each session of the role also gets limits, so a dashboard can neither hold
-- locks the nightly run waits for nor run away: statement_timeout (5 min),
-- idle_in_transaction_session_timeout (1 min), and TimeZone UTC, the zone
-- snapshot dates are in.

\set ON_ERROR_STOP on
\if :{?schema}
\else
  DO $$ BEGIN RAISE EXCEPTION 'bi_readonly.sql: -v schema=NAME is required'; END $$;
\endif
\if :{?role}
\else
  DO $$ BEGIN RAISE EXCEPTION 'bi_readonly.sql: -v role=NAME is required'; END $$;
\endif

BEGIN;

SELECT format('CREATE ROLE %I', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec

-- A plain login: no inherited rights, no memberships it could SET ROLE to.
-- SUPERUSER, REPLICATION and BYPASSRLS are named only when the role has
-- them: PostgreSQL lets only a superuser write those three, even to say no,
-- and a role with CREATEROLE should be able to run this script.
SELECT format('ALTER ROLE %I WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT%s%s%s', :'role',
              CASE WHEN rolsuper THEN ' NOSUPERUSER' END,
              CASE WHEN rolreplication THEN ' NOREPLICATION' END,
              CASE WHEN rolbypassrls THEN ' NOBYPASSRLS' END)
FROM pg_catalog.pg_roles WHERE rolname = :'role' \gexec
\if :{?password}
ALTER ROLE :"role" WITH PASSWORD :password;
\endif
SELECT format('REVOKE %I FROM %I', g.rolname, :'role')
FROM pg_auth_members m
JOIN pg_roles g ON g.oid = m.roleid
JOIN pg_roles r ON r.oid = m.member
WHERE r.rolname = :'role' \gexec

-- Read-only sessions by default, a second line behind the privileges. No
-- JIT: the views' queries are short index reads, for which compiling code
-- costs more than it saves (and the history views' cost estimates can be
-- large enough to trigger it). The limits said at the top.
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET jit = off;
ALTER ROLE :"role" SET statement_timeout = '5min';
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = '1min';
ALTER ROLE :"role" SET TimeZone = 'UTC';

GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
GRANT USAGE ON SCHEMA :"schema" TO :"role";

-- Nothing else in the schema, whatever was granted before.
REVOKE CREATE ON SCHEMA :"schema" FROM PUBLIC, :"role";
REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA :"schema" FROM :"role";
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA :"schema" FROM PUBLIC, :"role";
SELECT 'REVOKE CREATE ON SCHEMA public FROM ' || quote_ident(:'role')
WHERE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') \gexec

-- Nothing it can create, temporary tables included: read-only is only its
-- sessions' default (BEGIN READ WRITE undoes it). TEMPORARY on a database
-- and CREATE on "public" (before PostgreSQL 15) are PUBLIC's, which no
-- per-role REVOKE takes away: they are revoked from PUBLIC, and TEMPORARY
-- given back by name to the schema's owner, which runs the ETL (its loads
-- stage pages in temporary tables). Another role of this database that
-- creates temporary tables needs GRANT TEMPORARY ON DATABASE ... TO it.
REVOKE TEMPORARY, CREATE ON DATABASE :"DBNAME" FROM PUBLIC, :"role";
SELECT format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), nspowner::regrole)
FROM pg_catalog.pg_namespace WHERE nspname = :'schema' \gexec
SELECT 'REVOKE CREATE ON SCHEMA public FROM PUBLIC'
WHERE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') \gexec
-- A REVOKE its runner had no right to make is only a warning: check.
SELECT set_config('bi_readonly.role', :'role', true) AS bi_readonly_role \gset
DO $$
DECLARE
    r name := current_setting('bi_readonly.role');
    what text;
BEGIN
    SELECT string_agg(x, ', ') INTO what FROM (
        SELECT format('TEMPORARY on database %I', current_database()) AS x
        WHERE pg_catalog.has_database_privilege(r, current_database(), 'TEMPORARY')
        UNION ALL
        SELECT format('CREATE on database %I', current_database())
        WHERE pg_catalog.has_database_privilege(r, current_database(), 'CREATE')
        UNION ALL
        SELECT format('CREATE on schema %I', n.nspname) FROM pg_catalog.pg_namespace n
        WHERE pg_catalog.has_schema_privilege(r, n.oid, 'CREATE')) q;
    IF what IS NOT NULL THEN
        RAISE EXCEPTION 'bi_readonly.sql: role % could still create objects: %', r, what
            USING HINT = 'run the script as the database''s owner (or a superuser), or REVOKE '
                         'these rights from PUBLIC yourself and run it again';
    END IF;
END $$;

SET LOCAL search_path = pg_catalog;
GRANT SELECT ON
    :"schema".domain_intersection_latest,
    :"schema".domain_intersection_changes,
    :"schema".domain_intersection_daily,
    :"schema".domain_intersection_breakdown,
    :"schema".domain_intersection_history,
    :"schema".etl_run_summary,
    -- sql/011_bi_reads.sql: past snapshots, the per-domain grain, the sets,
    -- per-set outcomes (views that read the tables with their owner's rights)
    :"schema".domain_intersection,
    :"schema".domain_intersection_snapshot,
    :"schema".domain_intersection_snapshot_breakdown,
    :"schema".domain_intersection_domains,
    :"schema".domain_intersection_domain_series,
    :"schema".etl_target_set,
    :"schema".etl_run_set_summary,
    -- sql/010_exact_history.sql: what a republish or purge removed, for sync
    :"schema".domain_intersection_deleted,
    -- sql/014_breakdown_totals.sql: each snapshot's breakdown summed
    :"schema".domain_intersection_breakdown_totals,
    -- sql/017_domain_versions.sql: the latest snapshot at the domain grain
    :"schema".domain_intersection_latest_domains
TO :"role";
-- the sync cursor's high-water mark (README "Incremental sync"): one number
GRANT SELECT ON :"schema".etl_sync_counter TO :"role";

COMMIT;

\echo role :role can read the report views of schema :schema in database :DBNAME

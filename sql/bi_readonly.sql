-- bi_readonly.sql - a login role for BI tools that can read the six report
-- views of one schema and nothing else.
--
-- Not a migration (no NNN_ prefix: the binary does not carry it). An admin
-- runs it with psql, connected to the ETL's database as a superuser or as
-- the owner of the schema and of the views (the role that ran `migrate`):
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
-- schema but EXECUTE on snapshot_rows(), through which the views read a
-- snapshot. The script changes only what concerns its own role: rights given
-- to PUBLIC (which other roles of the database may rely on) are left as
-- they are, except on the ETL's own schema, where CREATE and EXECUTE on its
-- functions (publish_snapshot and friends) are revoked from PUBLIC as
-- migrate never meant to grant them. Against a PUBLIC right elsewhere (CREATE
-- on "public" in databases created before PostgreSQL 15, TEMPORARY on the
-- database) the role's sessions are read-only by default, which stops a
-- CREATE TABLE or CREATE TEMP TABLE a tool might try.
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
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
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
    :"schema".etl_run_set_summary
TO :"role";

COMMIT;

\echo role :role can read the six report views of schema :schema in database :DBNAME

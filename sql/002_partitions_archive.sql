-- 002_partitions_archive.sql - history that stays fast as it grows, and the
-- raw archive.
--
-- domain_intersection becomes a table partitioned by snapshot_date, one
-- partition per snapshot date (domain_intersection_pYYYYMMDD). Daily,
-- because a nightly job writes exactly one date, so a partition is exactly
-- one night of history: retention drops whole partitions (no DELETE, no
-- bloat), and a query for a date or the latest snapshot touches one. The
-- loader creates the partition of the date it writes (ensure_partition
-- below) instead of pg_partman: no extension to install or schedule, and
-- partitions exist exactly for the dates that have data.

ALTER TABLE domain_intersection RENAME TO domain_intersection_unpartitioned;
ALTER INDEX domain_intersection_pkey RENAME TO domain_intersection_unpartitioned_pkey;
ALTER INDEX domain_intersection_snapshot RENAME TO domain_intersection_unpartitioned_snapshot;

CREATE TABLE domain_intersection (
    LIKE domain_intersection_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
) PARTITION BY RANGE (snapshot_date);
ALTER TABLE domain_intersection
    ADD PRIMARY KEY (target_set_id, snapshot_date, referring_domain, target_key);
-- Within a partition (one date) the primary key already leads with
-- target_set_id; this serves "the rows of one run" for replay and audits.
CREATE INDEX domain_intersection_run ON domain_intersection (run_id);

-- Creates the partition for one snapshot date if it is missing. Concurrent
-- callers for the same date serialize on an advisory lock. search_path is
-- pinned to this schema, so it works from any session.
CREATE FUNCTION ensure_partition(d date) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    part text := 'domain_intersection_p' || to_char(d, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(part)) IS NULL THEN
        PERFORM pg_advisory_xact_lock(1229866029, to_char(d, 'YYYYMMDD')::int);
        IF to_regclass(quote_ident(part)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF domain_intersection FOR VALUES FROM (%L) TO (%L)',
                           part, d, d + 1);
        END IF;
    END IF;
    RETURN part;
END $$;

DO $$
DECLARE
    d date;
BEGIN
    FOR d IN SELECT DISTINCT snapshot_date FROM domain_intersection_unpartitioned LOOP
        PERFORM ensure_partition(d);
    END LOOP;
END $$;
INSERT INTO domain_intersection SELECT * FROM domain_intersection_unpartitioned;
DROP TABLE domain_intersection_unpartitioned;

-- The raw archive: every fetched response body as it came, so a fix to the
-- transformer never means paying for the data again (`intersect-etl replay`).
-- PostgreSQL compresses the body (TOAST); lz4 where the server has it.
CREATE TABLE raw_page (
    run_id         bigint      NOT NULL REFERENCES etl_run ON DELETE CASCADE,
    target_set_id  bigint      NOT NULL REFERENCES target_set,
    page_offset    bigint      NOT NULL,
    page_limit     integer     NOT NULL,
    request        jsonb       NOT NULL,   -- the body sent (targets included; never credentials)
    body           text        NOT NULL,   -- the response body as received
    fetched_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, target_set_id, page_offset)
);
DO $$
BEGIN
    ALTER TABLE raw_page ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL; -- a server built without lz4 keeps the default (pglz)
END $$;

-- Which run a replay re-did; NULL for runs that fetched from the API.
ALTER TABLE etl_run ADD COLUMN replay_of bigint REFERENCES etl_run;

-- How a run loads a set: direct when the set had no rows for that date when
-- the run began (a first load: pages COPY straight into the partition, since
-- there is no published answer to protect), else through
-- domain_intersection_pending and one publishing transaction at the end.
ALTER TABLE etl_run_set ADD COLUMN direct boolean NOT NULL DEFAULT false;

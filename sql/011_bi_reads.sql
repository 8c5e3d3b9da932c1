-- 011_bi_reads.sql - snapshot reads planned right at default settings, and
-- what a BI tool reads beside the six report views.
--
-- Until here every snapshot went through snapshot_rows(), a SECURITY DEFINER
-- function planned with enable_nestloop = off. The disabled node's cost
-- (about 1e10) crossed every JIT threshold, so each reader with jit on (the
-- default) compiled code for every query: 0.3 s for one set's `latest`, 2.7 s
-- for the README's example. The views below read the tables themselves, in
-- a shape whose plan does not hang on estimates: the control rows first,
-- then per (set, date) one short index range of versions, each looking its
-- position up in a jsonb object (domain -> position) built once per
-- snapshot from the order row covering the date (O(n log n) for n domains).
-- Joined to the order array's unnest instead, the plan depended on the
-- estimates: right after a night, before autovacuum analyzed it, the
-- planner took the versions for one row and rescanned the unnest for each
-- of them (minutes for 100k domains; tests/integration/test_views.py). No
-- function stands between a view and its tables, so nothing is planned
-- blind, and the views need no right but SELECT on themselves (a view reads
-- its tables with its owner's rights; an inlined function's tables would be
-- checked as the caller).
--
-- Added for BI (sql/bi_readonly.sql grants them):
--   domain_intersection_snapshot      any complete snapshot by date, per target key
--   domain_intersection_domains       any complete snapshot by date, one row per referring domain
--   domain_intersection_domain_series one referring domain over time, one row per date
--   domain_intersection_snapshot_breakdown  the breakdown of any date
--   etl_target_set                    the target sets: targets, exclusions, filters, retired or not
--   etl_run_set_summary               per set and run: the outcome
-- and target_set.retired_at (`intersect-etl retire JOB SET`): a retired set
-- leaves `latest` and `breakdown`; its history stays.

SET LOCAL lock_timeout = '10s';

-- ---------------------------------------------------------------------------
-- Retiring a set

ALTER TABLE target_set ADD COLUMN retired_at timestamptz;
COMMENT ON COLUMN target_set.retired_at IS
    'When the set was retired (`intersect-etl retire JOB SET`: removed from its job file for good); '
    'NULL while it is in use. A retired set leaves domain_intersection_latest and '
    'domain_intersection_breakdown; its snapshots and history stay. A run of a job file that names '
    'the set again sets it back to NULL.';

-- ---------------------------------------------------------------------------
-- The rows of every complete snapshot (the old table's name and columns)

CREATE OR REPLACE VIEW domain_intersection AS
SELECT s.snapshot_date, s.target_set_id, d.referring_domain, d.target_key, d.target, d.position,
       d.intersections_count, d.type, d.rank, d.backlinks, d.first_seen, d.lost_date,
       d.backlinks_spam_score, d.broken_backlinks, d.broken_pages, d.referring_domains,
       d.referring_domains_nofollow, d.referring_main_domains, d.referring_main_domains_nofollow,
       d.referring_ips, d.referring_subnets, d.referring_pages, d.referring_pages_nofollow,
       d.referring_links_tld, d.referring_links_types, d.referring_links_attributes,
       d.referring_links_platform_types, d.referring_links_semantic_locations,
       d.referring_links_countries, d.extra, d.run_id
FROM etl_snapshot s
CROSS JOIN LATERAL (
    SELECT v.referring_domain, v.target_key, v.target,
           ((SELECT jsonb_object(r.domains, r.positions::text[])
             FROM domain_intersection_order r
             WHERE r.target_set_id = s.target_set_id AND r.valid_from <= s.snapshot_date
               AND r.valid_to > s.snapshot_date) ->> v.referring_domain)::integer AS position,
           v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
           v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
           v.referring_domains_nofollow, v.referring_main_domains, v.referring_main_domains_nofollow,
           v.referring_ips, v.referring_subnets, v.referring_pages, v.referring_pages_nofollow,
           v.referring_links_tld, v.referring_links_types, v.referring_links_attributes,
           v.referring_links_platform_types, v.referring_links_semantic_locations,
           v.referring_links_countries, v.extra, v.run_id
    FROM domain_intersection_version v
    WHERE v.target_set_id = s.target_set_id AND v.valid_from <= s.snapshot_date
      AND v.valid_to > s.snapshot_date
    OFFSET 0
) d
WHERE s.status = 'complete' AND s.purged_at IS NULL;

-- Kept for queries written against it; the views no longer call it. Plain
-- SQL read with the caller's rights (no SECURITY DEFINER, no planner
-- setting of its own); `migrate` then pins its search_path like every
-- function of the schema (src/migrate.c), which keeps the planner from
-- inlining it: the views are the fast way to a snapshot.
CREATE OR REPLACE FUNCTION snapshot_rows(p_set bigint, p_date date)
RETURNS TABLE (referring_domain text, target_key smallint, target text, "position" integer,
               intersections_count integer, type text, rank integer, backlinks bigint,
               first_seen timestamptz, lost_date timestamptz, backlinks_spam_score integer,
               broken_backlinks bigint, broken_pages bigint, referring_domains bigint,
               referring_domains_nofollow bigint, referring_main_domains bigint,
               referring_main_domains_nofollow bigint, referring_ips bigint,
               referring_subnets bigint, referring_pages bigint, referring_pages_nofollow bigint,
               referring_links_tld jsonb, referring_links_types jsonb,
               referring_links_attributes jsonb, referring_links_platform_types jsonb,
               referring_links_semantic_locations jsonb, referring_links_countries jsonb,
               extra jsonb, run_id bigint)
LANGUAGE sql STABLE SECURITY INVOKER ROWS 2000 AS $$
    SELECT v.referring_domain, v.target_key, v.target,
           ((SELECT jsonb_object(r.domains, r.positions::text[])
             FROM domain_intersection_order r
             WHERE r.target_set_id = p_set AND r.valid_from <= p_date AND r.valid_to > p_date)
            ->> v.referring_domain)::integer,
           v.intersections_count, v.type,
           v.rank, v.backlinks, v.first_seen, v.lost_date, v.backlinks_spam_score,
           v.broken_backlinks, v.broken_pages, v.referring_domains, v.referring_domains_nofollow,
           v.referring_main_domains, v.referring_main_domains_nofollow, v.referring_ips,
           v.referring_subnets, v.referring_pages, v.referring_pages_nofollow,
           v.referring_links_tld, v.referring_links_types, v.referring_links_attributes,
           v.referring_links_platform_types, v.referring_links_semantic_locations,
           v.referring_links_countries, v.extra, v.run_id
    FROM domain_intersection_version v
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
$$;
-- CREATE OR REPLACE keeps the old SET clause unless told otherwise.
ALTER FUNCTION snapshot_rows(bigint, date) RESET ALL;

-- ---------------------------------------------------------------------------
-- Latest and breakdown: same columns as in 006; a retired set is left out

-- Each set's latest complete snapshot: its versions are exactly the ones
-- with valid_to = 'infinity' (every range ends at the next complete snapshot
-- date), and so is its order row. Said that way, with a constant, the
-- planner estimates the rows from the column's statistics; through
-- domain_intersection the date is a parameter, estimated at a third of the
-- set's versions for each bound, a cost that grew with the nights kept and
-- crossed jit_above_cost at about 370 nights of a 10,000-domain set.
CREATE OR REPLACE VIEW domain_intersection_latest AS
SELECT t.job, t.name AS target_set, t.target_set_id, l.snapshot_date,
       d.referring_domain, d.target_key, d.target, d.position, d.intersections_count, d.type,
       d.rank, d.backlinks, d.first_seen, d.lost_date, d.backlinks_spam_score,
       d.broken_backlinks, d.broken_pages, d.referring_domains, d.referring_domains_nofollow,
       d.referring_main_domains, d.referring_main_domains_nofollow, d.referring_ips,
       d.referring_subnets, d.referring_pages, d.referring_pages_nofollow,
       d.referring_links_tld, d.referring_links_types, d.referring_links_attributes,
       d.referring_links_platform_types, d.referring_links_semantic_locations,
       d.referring_links_countries, d.extra, d.run_id
FROM target_set t
CROSS JOIN LATERAL (
    SELECT max(c.snapshot_date) AS snapshot_date FROM etl_snapshot c
    WHERE c.target_set_id = t.target_set_id AND c.status = 'complete' AND c.purged_at IS NULL
) l
CROSS JOIN LATERAL (
    SELECT v.referring_domain, v.target_key, v.target,
           ((SELECT jsonb_object(r.domains, r.positions::text[])
             FROM domain_intersection_order r
             WHERE r.target_set_id = t.target_set_id AND r.valid_to = 'infinity'
               AND r.valid_from <= l.snapshot_date) ->> v.referring_domain)::integer AS position,
           v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
           v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
           v.referring_domains_nofollow, v.referring_main_domains, v.referring_main_domains_nofollow,
           v.referring_ips, v.referring_subnets, v.referring_pages, v.referring_pages_nofollow,
           v.referring_links_tld, v.referring_links_types, v.referring_links_attributes,
           v.referring_links_platform_types, v.referring_links_semantic_locations,
           v.referring_links_countries, v.extra, v.run_id
    FROM domain_intersection_version v
    WHERE v.target_set_id = t.target_set_id AND v.valid_to = 'infinity'
      AND v.valid_from <= l.snapshot_date
    OFFSET 0
) d
WHERE t.retired_at IS NULL;

-- The dimensions are a list of names crossed with the row, each picking its
-- map: as a VALUES list of (name, map) built from each row, the planner put
-- a Memoize keyed on all six maps above it (jsonb_each is estimated at 100
-- rows a call, so caching looked worth it): every row hashed six maps and
-- missed, 2.5x slower than this for one set's countries.
CREATE OR REPLACE VIEW domain_intersection_breakdown AS
SELECT l.job, l.target_set, l.target_set_id, l.snapshot_date, l.referring_domain, l.target_key,
       l.target, m.dimension, e.key,
       CASE WHEN jsonb_typeof(e.value) = 'number' THEN (e.value)::numeric::bigint END AS links
FROM domain_intersection_latest l
CROSS JOIN (VALUES ('tld'), ('link_type'), ('attribute'), ('platform'), ('semantic_location'),
                   ('country')) m (dimension)
CROSS JOIN LATERAL (
    SELECT CASE m.dimension WHEN 'tld' THEN l.referring_links_tld
                            WHEN 'link_type' THEN l.referring_links_types
                            WHEN 'attribute' THEN l.referring_links_attributes
                            WHEN 'platform' THEN l.referring_links_platform_types
                            WHEN 'semantic_location' THEN l.referring_links_semantic_locations
                            WHEN 'country' THEN l.referring_links_countries END AS map
) x
CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(x.map) = 'object' THEN x.map END) e;

-- ---------------------------------------------------------------------------
-- Past snapshots, for BI

CREATE VIEW domain_intersection_snapshot AS
SELECT t.job, t.name AS target_set, d.*
FROM domain_intersection d
JOIN target_set t USING (target_set_id);

CREATE VIEW domain_intersection_snapshot_breakdown AS
SELECT d.job, d.target_set, d.target_set_id, d.snapshot_date, d.referring_domain, d.target_key,
       d.target, m.dimension, e.key,
       CASE WHEN jsonb_typeof(e.value) = 'number' THEN (e.value)::numeric::bigint END AS links
FROM domain_intersection_snapshot d
CROSS JOIN (VALUES ('tld'), ('link_type'), ('attribute'), ('platform'), ('semantic_location'),
                   ('country')) m (dimension)
CROSS JOIN LATERAL (
    SELECT CASE m.dimension WHEN 'tld' THEN d.referring_links_tld
                            WHEN 'link_type' THEN d.referring_links_types
                            WHEN 'attribute' THEN d.referring_links_attributes
                            WHEN 'platform' THEN d.referring_links_platform_types
                            WHEN 'semantic_location' THEN d.referring_links_semantic_locations
                            WHEN 'country' THEN d.referring_links_countries END AS map
) x
CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(x.map) = 'object' THEN x.map END) e;

-- One row per referring domain: the target keys folded the way the README's
-- reports fold them. GROUP BY keeps a filter on set and date below the
-- grouping, so it reads one snapshot; the nearly unique key leads it, so a
-- sort for the grouping compares one column, not five.
CREATE VIEW domain_intersection_domains AS
SELECT t.job, t.name AS target_set, d.target_set_id, d.snapshot_date, d.referring_domain,
       min(d.position) AS position, count(*) AS target_keys,
       max(d.intersections_count) AS intersections_count, min(d.rank) AS min_rank,
       sum(d.backlinks) AS backlinks, max(d.first_seen) AS links_to_all_since,
       max(d.backlinks_spam_score) AS max_spam_score, sum(d.referring_pages) AS referring_pages,
       max(d.run_id) AS run_id
FROM domain_intersection d
JOIN target_set t USING (target_set_id)
GROUP BY d.referring_domain, d.snapshot_date, d.target_set_id, t.job, t.name;

-- The same grain, driven by one domain's versions (primary key: set,
-- referring domain) and the complete dates each covers: fast when filtered
-- by set and referring domain, over any span of dates.
CREATE VIEW domain_intersection_domain_series AS
SELECT t.job, t.name AS target_set, v.target_set_id, s.snapshot_date, v.referring_domain,
       count(*) AS target_keys, max(v.intersections_count) AS intersections_count,
       min(v.rank) AS min_rank, sum(v.backlinks) AS backlinks,
       max(v.first_seen) AS links_to_all_since, max(v.backlinks_spam_score) AS max_spam_score,
       sum(v.referring_pages) AS referring_pages, max(v.run_id) AS run_id
FROM domain_intersection_version v
JOIN etl_snapshot s
  ON s.target_set_id = v.target_set_id AND s.snapshot_date >= v.valid_from
 AND s.snapshot_date < v.valid_to AND s.status = 'complete' AND s.purged_at IS NULL
JOIN target_set t ON t.target_set_id = v.target_set_id
GROUP BY s.snapshot_date, v.referring_domain, v.target_set_id, t.job, t.name;

-- ---------------------------------------------------------------------------
-- The sets and their outcomes

CREATE VIEW etl_target_set AS
SELECT t.job, t.name AS target_set, t.target_set_id, t.targets,
       coalesce(ARRAY(SELECT jsonb_array_elements_text(t.request -> 'exclude_targets')), '{}')
           AS exclude_targets,
       t.request -> 'filters' AS filters, t.request, t.request_hash, t.page_limit, t.max_rows,
       t.retired_at IS NULL AS in_use, t.retired_at, t.created_at, t.updated_at
FROM target_set t;

CREATE VIEW etl_run_set_summary AS
SELECT r.job, t.name AS target_set, rs.target_set_id, rs.run_id, r.snapshot_date, rs.status,
       rs.request_hash, rs.total_count, rs.pages, rs.rows, rs.cost_usd, rs.error, r.started_at,
       rs.finished_at, extract(epoch FROM rs.finished_at - r.started_at) AS duration_seconds,
       r.replay_of
FROM etl_run_set rs
JOIN etl_run r USING (run_id)
JOIN target_set t ON t.target_set_id = rs.target_set_id;

-- ---------------------------------------------------------------------------
-- Comments

COMMENT ON VIEW domain_intersection IS
    'The rows of every complete snapshot not purged, one per (snapshot_date, target_set_id, '
    'referring_domain, target_key), with the columns of the old table of that name: the versions '
    'valid on the date with the positions of the order row valid on it. A filter on target_set_id '
    'and snapshot_date reads that snapshot only. domain_intersection_snapshot adds job and set names.';
COMMENT ON FUNCTION snapshot_rows(bigint, date) IS
    'snapshot_rows(p_set, p_date): the rows of set p_set''s snapshot of p_date as the old table''s '
    'columns (no check that the date is a complete snapshot). Kept for old queries; plain SQL '
    'read with the caller''s rights. The views do not use it: domain_intersection_snapshot is faster.';
COMMENT ON VIEW domain_intersection_latest IS
    'One row per (target set, referring domain, target key) of each set''s latest complete snapshot '
    'not purged; retired sets (target_set.retired_at) are left out. COUNT(*) counts a referring '
    'domain once per target key: count referring domains in domain_intersection_domains.';
COMMENT ON VIEW domain_intersection_breakdown IS
    'One row per latest row (domain_intersection_latest) x dimension x key of its referring_links_* '
    'map; domain_intersection_snapshot_breakdown has the same for any date.';
COMMENT ON VIEW domain_intersection_snapshot IS
    'Any complete snapshot not purged, one row per (set, snapshot_date, referring domain, target key): '
    'domain_intersection with the job and set names. Filter on job and target_set (or '
    'target_set_id) and snapshot_date: that reads one snapshot.';
COMMENT ON VIEW domain_intersection_snapshot_breakdown IS
    'The breakdown of any complete snapshot: one row per domain_intersection_snapshot row x '
    'dimension x key of its referring_links_* map. Filter on the set and snapshot_date.';
COMMENT ON VIEW domain_intersection_domains IS
    'Any complete snapshot not purged, one row per (set, snapshot_date, referring domain): the '
    'target keys folded. The grain to count referring domains in. Filter on the set and snapshot_date.';
COMMENT ON VIEW domain_intersection_domain_series IS
    'The grain of domain_intersection_domains (set x snapshot_date x referring domain) read from one '
    'domain''s versions: one point per complete date, for a chart. Filter on the set and '
    'referring_domain (and a span of snapshot_date).';
COMMENT ON VIEW etl_target_set IS
    'One row per target set ever registered: its job, name, definition and whether it is still in use.';
COMMENT ON VIEW etl_run_set_summary IS
    'One row per (run, target set): the set''s outcome in that run (complete, failed, or running '
    'while the run is at it).';

-- The per-row columns mean what they mean in domain_intersection and in
-- the breakdown of 006: their comments are copied, not restated.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT a.attrelid::regclass AS rel, a.attname,
               col_description(src, (SELECT b.attnum FROM pg_attribute b
                                     WHERE b.attrelid = src AND b.attname = a.attname)) AS txt
        FROM (VALUES ('domain_intersection_snapshot'::regclass, 'domain_intersection_latest'::regclass),
                     ('domain_intersection_snapshot_breakdown', 'domain_intersection_breakdown')) m (dst, src)
        JOIN pg_attribute a ON a.attrelid = m.dst AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', c.rel, c.attname, c.txt);
    END LOOP;
END $$;
COMMENT ON COLUMN domain_intersection_snapshot.snapshot_date IS
    'The snapshot''s date (the UTC night the data is for): any complete date not purged.';
COMMENT ON COLUMN domain_intersection_snapshot_breakdown.snapshot_date IS
    'The snapshot''s date: any complete date not purged.';

COMMENT ON COLUMN domain_intersection_domains.job IS 'The job.';
COMMENT ON COLUMN domain_intersection_domains.target_set IS 'The target set''s name.';
COMMENT ON COLUMN domain_intersection_domains.target_set_id IS 'The target set.';
COMMENT ON COLUMN domain_intersection_domains.snapshot_date IS 'The snapshot''s date.';
COMMENT ON COLUMN domain_intersection_domains.referring_domain IS 'The referring domain.';
COMMENT ON COLUMN domain_intersection_domains.position IS 'Its position in the API''s result order.';
COMMENT ON COLUMN domain_intersection_domains.target_keys IS 'How many target keys (rows) it has.';
COMMENT ON COLUMN domain_intersection_domains.intersections_count IS
    'How many of the targets it links to (the largest over its rows).';
COMMENT ON COLUMN domain_intersection_domains.min_rank IS 'The lowest rank over its target keys.';
COMMENT ON COLUMN domain_intersection_domains.backlinks IS 'Backlinks summed over its target keys.';
COMMENT ON COLUMN domain_intersection_domains.links_to_all_since IS
    'The latest first_seen over its target keys: since when it links to all of them.';
COMMENT ON COLUMN domain_intersection_domains.max_spam_score IS
    'The largest backlinks_spam_score over its target keys.';
COMMENT ON COLUMN domain_intersection_domains.referring_pages IS
    'referring_pages summed over its target keys.';
COMMENT ON COLUMN domain_intersection_domains.run_id IS 'The latest run that published one of its rows.';

COMMENT ON COLUMN domain_intersection_domain_series.job IS 'The job.';
COMMENT ON COLUMN domain_intersection_domain_series.target_set IS 'The target set''s name.';
COMMENT ON COLUMN domain_intersection_domain_series.target_set_id IS 'The target set.';
COMMENT ON COLUMN domain_intersection_domain_series.snapshot_date IS
    'A complete snapshot date not purged that has the domain.';
COMMENT ON COLUMN domain_intersection_domain_series.referring_domain IS 'The referring domain.';
COMMENT ON COLUMN domain_intersection_domain_series.target_keys IS 'How many target keys (rows) it has.';
COMMENT ON COLUMN domain_intersection_domain_series.intersections_count IS
    'How many of the targets it links to (the largest over its rows).';
COMMENT ON COLUMN domain_intersection_domain_series.min_rank IS 'The lowest rank over its target keys.';
COMMENT ON COLUMN domain_intersection_domain_series.backlinks IS 'Backlinks summed over its target keys.';
COMMENT ON COLUMN domain_intersection_domain_series.links_to_all_since IS
    'The latest first_seen over its target keys.';
COMMENT ON COLUMN domain_intersection_domain_series.max_spam_score IS
    'The largest backlinks_spam_score over its target keys.';
COMMENT ON COLUMN domain_intersection_domain_series.referring_pages IS
    'referring_pages summed over its target keys.';
COMMENT ON COLUMN domain_intersection_domain_series.run_id IS
    'The latest run that published one of its rows.';

COMMENT ON COLUMN etl_target_set.job IS 'The job (the job file''s `job`).';
COMMENT ON COLUMN etl_target_set.target_set IS 'The set''s name in the job file.';
COMMENT ON COLUMN etl_target_set.target_set_id IS 'The target set.';
COMMENT ON COLUMN etl_target_set.targets IS 'The targets, in key order (target_key 1 is the first).';
COMMENT ON COLUMN etl_target_set.exclude_targets IS 'The exclude_targets of the request; empty if none.';
COMMENT ON COLUMN etl_target_set.filters IS 'The filters of the request as sent (jsonb); NULL if none.';
COMMENT ON COLUMN etl_target_set.request IS
    'The request as the last run sent it, minus offset and limit; never credentials.';
COMMENT ON COLUMN etl_target_set.request_hash IS
    'md5 of the definition (request, page_limit, max_rows); a change restarts comparisons.';
COMMENT ON COLUMN etl_target_set.page_limit IS 'Rows asked for per page.';
COMMENT ON COLUMN etl_target_set.max_rows IS 'The most rows a snapshot of the set fetches.';
COMMENT ON COLUMN etl_target_set.in_use IS
    'false once retired (`intersect-etl retire`); a run of a job file naming it makes it true again.';
COMMENT ON COLUMN etl_target_set.retired_at IS 'When it was retired; NULL while in use.';
COMMENT ON COLUMN etl_target_set.created_at IS 'When a run first registered it.';
COMMENT ON COLUMN etl_target_set.updated_at IS 'When its definition last changed.';

COMMENT ON COLUMN etl_run_set_summary.job IS 'The job.';
COMMENT ON COLUMN etl_run_set_summary.target_set IS 'The target set''s name.';
COMMENT ON COLUMN etl_run_set_summary.target_set_id IS 'The target set.';
COMMENT ON COLUMN etl_run_set_summary.run_id IS 'The run.';
COMMENT ON COLUMN etl_run_set_summary.snapshot_date IS 'The date the run was for.';
COMMENT ON COLUMN etl_run_set_summary.status IS
    'running, complete (its snapshot was published) or failed (its earlier snapshot untouched).';
COMMENT ON COLUMN etl_run_set_summary.request_hash IS 'The definition this run fetched.';
COMMENT ON COLUMN etl_run_set_summary.total_count IS 'total_count as the API reported on the first page.';
COMMENT ON COLUMN etl_run_set_summary.pages IS 'Pages loaded.';
COMMENT ON COLUMN etl_run_set_summary.rows IS 'Rows loaded.';
COMMENT ON COLUMN etl_run_set_summary.cost_usd IS 'Cost the API reported for the set''s pages, USD.';
COMMENT ON COLUMN etl_run_set_summary.error IS 'Why it failed; NULL otherwise.';
COMMENT ON COLUMN etl_run_set_summary.started_at IS 'When the run started.';
COMMENT ON COLUMN etl_run_set_summary.finished_at IS 'When the set finished; NULL while running.';
COMMENT ON COLUMN etl_run_set_summary.duration_seconds IS 'finished_at - started_at, seconds.';
COMMENT ON COLUMN etl_run_set_summary.replay_of IS 'The run this one replayed; NULL for a fetch.';

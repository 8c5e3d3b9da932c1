-- 006_history_views.sql - the report views over the versioned history.
--
-- The interface BI tools and reports bind to (sql/bi_readonly.sql grants a
-- read-only role exactly these):
--
--   view                            grain (one row per ...)
--   domain_intersection_latest      set x referring domain x target key, of the set's latest
--                                   complete snapshot
--   domain_intersection_changes     set x complete snapshot date x referring domain new or lost
--                                   since the previous complete snapshot
--   domain_intersection_daily       set x snapshot date that a run finished (complete or failed)
--   domain_intersection_breakdown   latest row x dimension x map key of the referring_links_* maps
--   domain_intersection_history     set x referring domain x target key x run of nights with
--                                   identical values (position aside)
--   etl_run_summary                 run (as in sql/003_views.sql)
--
-- snapshot_date is a UTC calendar date (the night the data is for). Every
-- view reads the control rows (etl_snapshot) first and the large tables by
-- short index ranges of one set, so a query's cost does not grow with the
-- number of nights kept (bench/history.py measures it).
--
-- Incremental sync: etl_snapshot.published_at (daily.published_at) moves
-- each time a (set, date) is published again (a rerun or replay); its rows in
-- latest/changes are then replaced as a whole. A tool that syncs changes or
-- daily keeps the greatest published_at (and purged_at) it has seen and
-- re-reads every (set, date) whose published_at or purged_at is later. (A
-- republished date changes the comparison of the next complete date after
-- it, whose published_at moves with it.)
-- Purged snapshots stay in daily (purged_at set, counts as published) and in
-- changes; their rows leave latest and history.

-- ---------------------------------------------------------------------------

CREATE VIEW domain_intersection_latest AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date,
       d.referring_domain, d.target_key, d.target, d.position, d.intersections_count, d.type,
       d.rank, d.backlinks, d.first_seen, d.lost_date, d.backlinks_spam_score,
       d.broken_backlinks, d.broken_pages, d.referring_domains, d.referring_domains_nofollow,
       d.referring_main_domains, d.referring_main_domains_nofollow, d.referring_ips,
       d.referring_subnets, d.referring_pages, d.referring_pages_nofollow,
       d.referring_links_tld, d.referring_links_types, d.referring_links_attributes,
       d.referring_links_platform_types, d.referring_links_semantic_locations,
       d.referring_links_countries, d.extra, d.run_id
FROM (
    SELECT DISTINCT ON (target_set_id) target_set_id, snapshot_date
    FROM etl_snapshot
    WHERE status = 'complete' AND purged_at IS NULL
    ORDER BY target_set_id, snapshot_date DESC
) s
JOIN target_set t USING (target_set_id)
CROSS JOIN LATERAL (
    SELECT * FROM domain_intersection d
    WHERE d.target_set_id = s.target_set_id AND d.snapshot_date = s.snapshot_date
) d;

-- ---------------------------------------------------------------------------

-- Driven by the control rows, each reading its own change rows: a filter on
-- snapshot_date then narrows the control rows first (joined the other way,
-- the date range did not reach etl_snapshot and every night of the set was
-- probed: bench/history.py saw it grow 3x from 30 to 367 nights).
CREATE VIEW domain_intersection_changes AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, s.previous_snapshot_date,
       c.change, c.referring_domain, c.intersections_count, c.min_rank, c.backlinks,
       s.published_at, s.run_id, s.purged_at
FROM etl_snapshot s
JOIN target_set t USING (target_set_id)
CROSS JOIN LATERAL (
    SELECT c.change, c.referring_domain, c.intersections_count, c.min_rank, c.backlinks
    FROM domain_intersection_change c
    WHERE c.target_set_id = s.target_set_id AND c.snapshot_date = s.snapshot_date
    OFFSET 0
) c;

-- ---------------------------------------------------------------------------

CREATE VIEW domain_intersection_daily AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, s.status,
       s.domains AS distinct_domains, s.new_domains, s.lost_domains, s.avg_rank,
       s.total_backlinks, s.cost_usd,
       coalesce(s.previous_request_hash <> s.request_hash, false) AS definition_changed,
       -- no comparison: the first snapshot, a changed definition, or the oldest
       -- one retention left; NULL where the measures are unknown (a snapshot
       -- purged before migration 005 computed them)
       CASE WHEN s.status = 'complete' AND s.domains IS NOT NULL
            THEN s.new_domains IS NULL END AS restart,
       s.previous_snapshot_date, s.total_count, s.expected_domains, s.rows, s.changed_rows,
       s.status = 'complete' AND s.domains < s.expected_domains AS short,
       s.published_at, s.run_id, s.purged_at, s.last_run_id, s.last_error
FROM etl_snapshot s
JOIN target_set t USING (target_set_id);

-- ---------------------------------------------------------------------------

CREATE VIEW domain_intersection_breakdown AS
SELECT l.job, l.target_set, l.target_set_id, l.snapshot_date, l.referring_domain, l.target_key,
       l.target, m.dimension, e.key,
       CASE WHEN jsonb_typeof(e.value) = 'number' THEN (e.value)::numeric::bigint END AS links
FROM domain_intersection_latest l
CROSS JOIN LATERAL (VALUES
    ('tld', l.referring_links_tld),
    ('link_type', l.referring_links_types),
    ('attribute', l.referring_links_attributes),
    ('platform', l.referring_links_platform_types),
    ('semantic_location', l.referring_links_semantic_locations),
    ('country', l.referring_links_countries)
) m (dimension, map)
CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(m.map) = 'object' THEN m.map END) e;

-- ---------------------------------------------------------------------------

CREATE VIEW domain_intersection_history AS
SELECT t.job, t.name AS target_set, v.target_set_id, v.referring_domain, v.target_key,
       v.valid_from,
       CASE WHEN v.valid_to <> 'infinity' THEN v.valid_to END AS valid_to,
       v.valid_to = 'infinity' AS is_current,
       (SELECT max(c.snapshot_date) FROM etl_snapshot c
        WHERE c.target_set_id = v.target_set_id AND c.snapshot_date < v.valid_to
          AND c.status = 'complete' AND c.purged_at IS NULL) AS last_snapshot_date,
       v.target, v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
       v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
       v.referring_domains_nofollow, v.referring_main_domains, v.referring_main_domains_nofollow,
       v.referring_ips, v.referring_subnets, v.referring_pages, v.referring_pages_nofollow,
       v.referring_links_tld, v.referring_links_types, v.referring_links_attributes,
       v.referring_links_platform_types, v.referring_links_semantic_locations,
       v.referring_links_countries, v.extra, v.run_id
FROM domain_intersection_version v
JOIN target_set t USING (target_set_id);

-- ---------------------------------------------------------------------------

-- As in 003, recreated: 005 widened etl_run.cost_usd under it.
CREATE VIEW etl_run_summary AS
SELECT r.run_id, r.job, r.snapshot_date, r.status, r.started_at, r.finished_at,
       extract(epoch FROM r.finished_at - r.started_at) AS duration_seconds,
       r.pages, p.failed_pages, r.rows, s.sets_complete, s.sets_failed, r.cost_usd, r.error,
       r.replay_of
FROM etl_run r
CROSS JOIN LATERAL (
    SELECT count(*) AS failed_pages FROM etl_page
    WHERE etl_page.run_id = r.run_id AND etl_page.status = 'failed'
) p
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE etl_run_set.status = 'complete') AS sets_complete,
           count(*) FILTER (WHERE etl_run_set.status = 'failed') AS sets_failed
    FROM etl_run_set WHERE etl_run_set.run_id = r.run_id
) s;

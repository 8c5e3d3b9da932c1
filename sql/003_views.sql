-- 003_views.sql - history, reports and dashboards.
--
-- Five views are the interface BI tools and reports bind to; like the
-- columns of domain_intersection, their columns are added to, never renamed
-- (sql/bi_readonly.sql grants a read-only role exactly these five):
--
--   domain_intersection_latest     the rows of each set's latest complete snapshot
--   domain_intersection_changes    referring domains new / lost between complete snapshots
--   domain_intersection_daily      one line per set and snapshot date: status, counts, cost
--   domain_intersection_breakdown  the six referring_links_* maps of the latest rows, long form
--   etl_run_summary                one line per run
--
-- What counts as a snapshot (etl_snapshot, internal to these views): the
-- latest run of a date that took up a set decides. If it completed the set,
-- the set's snapshot of that date is complete: domain_intersection holds
-- exactly that run's answer, made visible in the transaction that marked the
-- set complete. If it failed the set, the date is 'failed' and its rows, if
-- any, are not vouched for (a first load writes pages straight into the
-- partition, so a failed one can leave part of an answer there). While that
-- run is still fetching the set, or was killed doing so, the date has no
-- status yet and the views leave it out. So a failed or partial answer never
-- shows as a snapshot, and never as a collapse of the referring domains: the
-- views fall back to, and compare with, the last complete snapshot before.
-- A date whose partition is gone (retention dropped it) has nothing left to
-- show or compare with and is left out too.
--
-- Partition pruning: the dates a view needs come from the small control
-- tables (etl_run, etl_run_set); domain_intersection is then read in a
-- LATERAL subquery per (set, date), which an OFFSET 0 or a GROUP BY keeps
-- the planner from flattening into a hash join over every partition. Each
-- such subquery is a scan parameterized by the date, so only the partitions
-- of the dates asked for are executed (EXPLAIN ANALYZE shows the others as
-- "never executed"; tests/integration/test_views.py checks it). The price:
-- plans name every partition, and their cost estimates count each one, so
-- JIT (when on) may compile code for all of them; sql/bi_readonly.sql turns
-- it off for the BI role.

-- The control-table side of every view reads the runs of one set.
CREATE INDEX etl_run_set_target_set ON etl_run_set (target_set_id, run_id);

-- One row per (target set, snapshot date) whose latest run finished the set
-- and whose partition still exists, with the latest complete snapshot
-- before it.
-- Internal: the five views below are the interface; this one may change.
CREATE VIEW etl_snapshot AS
SELECT target_set_id, snapshot_date, run_id, status, request_hash, cost_usd,
       CASE WHEN status = 'complete'
            THEN lag(snapshot_date) OVER by_status
            WHEN completes > 0
            THEN first_value(snapshot_date) OVER by_segment
       END AS previous_snapshot_date,
       CASE WHEN status = 'complete'
            THEN lag(request_hash) OVER by_status
            WHEN completes > 0
            THEN first_value(request_hash) OVER by_segment
       END AS previous_request_hash
FROM (
    -- completes: complete snapshots up to and including this date. The rows
    -- sharing a value of it are one complete snapshot followed by the failed
    -- dates after it (its first row), hence by_segment below.
    SELECT o.*,
           count(*) FILTER (WHERE o.status = 'complete')
               OVER (PARTITION BY o.target_set_id ORDER BY o.snapshot_date) AS completes
    FROM (
        -- The latest run of each (set, date); what every run of the date
        -- spent on the set.
        SELECT DISTINCT ON (rs.target_set_id, r.snapshot_date)
               rs.target_set_id, r.snapshot_date, rs.run_id, rs.status, rs.request_hash,
               sum(rs.cost_usd) OVER (PARTITION BY rs.target_set_id, r.snapshot_date) AS cost_usd
        FROM etl_run_set rs
        JOIN etl_run r USING (run_id)
        ORDER BY rs.target_set_id, r.snapshot_date, rs.run_id DESC
    ) o
    JOIN (
        -- Dates whose partition exists (ensure_partition's names; the
        -- catalog only, no partition is read).
        SELECT CASE WHEN c.relname ~ '^domain_intersection_p[0-9]{8}$'
                    THEN to_date(substr(c.relname, 22), 'YYYYMMDD') END AS snapshot_date
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'domain_intersection'::regclass
    ) held USING (snapshot_date)
    WHERE o.status <> 'running'
) s
WINDOW by_status AS (PARTITION BY target_set_id, status ORDER BY snapshot_date),
       by_segment AS (PARTITION BY target_set_id, completes ORDER BY snapshot_date);

COMMENT ON VIEW etl_snapshot IS
    'Internal to the report views (not an interface; not granted to BI). Per target set and snapshot date '
    'whose latest run finished the set and whose partition exists: that run, its status (complete or '
    'failed) and request_hash; what all runs of the date cost for the set; the latest complete snapshot '
    'before that date and its request_hash.';

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
    WHERE status = 'complete'
    ORDER BY target_set_id, snapshot_date DESC
) s
JOIN target_set t USING (target_set_id)
CROSS JOIN LATERAL (
    SELECT * FROM domain_intersection d
    WHERE d.target_set_id = s.target_set_id AND d.snapshot_date = s.snapshot_date
    OFFSET 0  -- keeps the scan per (set, date): see the top of this file
) d;

COMMENT ON VIEW domain_intersection_latest IS
    'Per target set, the rows of its latest complete snapshot: one row per referring domain and target key. '
    'A set whose latest run failed keeps showing its previous complete snapshot, never a partial one.';
COMMENT ON COLUMN domain_intersection_latest.job IS 'Job name (target_set.job).';
COMMENT ON COLUMN domain_intersection_latest.target_set IS 'Target set name, unique within the job.';
COMMENT ON COLUMN domain_intersection_latest.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_latest.snapshot_date IS 'Date of the set''s latest complete snapshot.';
COMMENT ON COLUMN domain_intersection_latest.referring_domain IS
    'The referring domain (the API''s per-target "target" field).';
COMMENT ON COLUMN domain_intersection_latest.target_key IS 'Key of the target in the request (1..20).';
COMMENT ON COLUMN domain_intersection_latest.target IS 'The requested target of target_key.';
COMMENT ON COLUMN domain_intersection_latest.position IS
    'Place of the referring domain in the API''s result order (0-based).';
COMMENT ON COLUMN domain_intersection_latest.intersections_count IS
    'Targets this referring domain links to (the item''s summary); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection_latest.type IS 'The API''s item type.';
COMMENT ON COLUMN domain_intersection_latest.rank IS 'Rank of the referring domain (scale per rank_scale).';
COMMENT ON COLUMN domain_intersection_latest.backlinks IS
    'Backlinks from the referring domain to the target.';
COMMENT ON COLUMN domain_intersection_latest.first_seen IS
    'When the API first saw a link from the referring domain to the target.';
COMMENT ON COLUMN domain_intersection_latest.lost_date IS 'When the links were lost; NULL while live.';
COMMENT ON COLUMN domain_intersection_latest.backlinks_spam_score IS
    'Spam score of those backlinks (0..100).';
COMMENT ON COLUMN domain_intersection_latest.broken_backlinks IS 'Broken backlinks.';
COMMENT ON COLUMN domain_intersection_latest.broken_pages IS 'Broken pages linked to.';
COMMENT ON COLUMN domain_intersection_latest.referring_domains IS
    'The API''s referring_domains of this pair.';
COMMENT ON COLUMN domain_intersection_latest.referring_domains_nofollow IS
    'The API''s referring_domains_nofollow.';
COMMENT ON COLUMN domain_intersection_latest.referring_main_domains IS 'The API''s referring_main_domains.';
COMMENT ON COLUMN domain_intersection_latest.referring_main_domains_nofollow IS
    'The API''s referring_main_domains_nofollow.';
COMMENT ON COLUMN domain_intersection_latest.referring_ips IS 'The API''s referring_ips.';
COMMENT ON COLUMN domain_intersection_latest.referring_subnets IS 'The API''s referring_subnets.';
COMMENT ON COLUMN domain_intersection_latest.referring_pages IS 'The API''s referring_pages.';
COMMENT ON COLUMN domain_intersection_latest.referring_pages_nofollow IS
    'The API''s referring_pages_nofollow.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_tld IS
    'Links per TLD (jsonb object); long form in domain_intersection_breakdown.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_types IS 'Links per link type (jsonb object).';
COMMENT ON COLUMN domain_intersection_latest.referring_links_attributes IS
    'Links per link attribute (jsonb object).';
COMMENT ON COLUMN domain_intersection_latest.referring_links_platform_types IS
    'Links per platform type (jsonb object).';
COMMENT ON COLUMN domain_intersection_latest.referring_links_semantic_locations IS
    'Links per semantic location (jsonb object; "" = none).';
COMMENT ON COLUMN domain_intersection_latest.referring_links_countries IS
    'Links per country (jsonb object; "" = unknown).';
COMMENT ON COLUMN domain_intersection_latest.extra IS
    'Per-target fields the API added that this version does not know (jsonb).';
COMMENT ON COLUMN domain_intersection_latest.run_id IS 'The run that inserted or last changed the row.';

-- ---------------------------------------------------------------------------

CREATE VIEW domain_intersection_changes AS
-- A definition change, a set's first snapshot, or the oldest one retention
-- left: nothing to compare with, and the view says so in one row.
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, s.previous_snapshot_date,
       'restart'::text AS change, NULL::text AS referring_domain,
       NULL::integer AS intersections_count, NULL::integer AS min_rank, NULL::numeric AS backlinks
FROM etl_snapshot s
JOIN target_set t USING (target_set_id)
WHERE s.status = 'complete' AND s.previous_request_hash IS DISTINCT FROM s.request_hash
UNION ALL
SELECT t.job, t.name, s.target_set_id, s.snapshot_date, s.previous_snapshot_date,
       x.change, x.referring_domain, x.intersections_count, x.min_rank, x.backlinks
FROM etl_snapshot s
JOIN target_set t USING (target_set_id)
CROSS JOIN LATERAL (
    -- Per referring domain of each snapshot, then the ones only one side has.
    -- (The GROUP BYs keep each side a scan per (set, date), like OFFSET 0.)
    SELECT CASE WHEN p.referring_domain IS NULL THEN 'new' ELSE 'lost' END AS change,
           coalesce(c.referring_domain, p.referring_domain) AS referring_domain,
           coalesce(c.intersections_count, p.intersections_count) AS intersections_count,
           coalesce(c.min_rank, p.min_rank) AS min_rank,
           coalesce(c.backlinks, p.backlinks) AS backlinks
    FROM (
        SELECT d.referring_domain, max(d.intersections_count) AS intersections_count,
               min(d.rank) AS min_rank, sum(d.backlinks) AS backlinks
        FROM domain_intersection d
        WHERE d.target_set_id = s.target_set_id AND d.snapshot_date = s.snapshot_date
        GROUP BY d.referring_domain
    ) c
    FULL JOIN (
        SELECT d.referring_domain, max(d.intersections_count) AS intersections_count,
               min(d.rank) AS min_rank, sum(d.backlinks) AS backlinks
        FROM domain_intersection d
        WHERE d.target_set_id = s.target_set_id AND d.snapshot_date = s.previous_snapshot_date
        GROUP BY d.referring_domain
    ) p ON p.referring_domain = c.referring_domain
    WHERE c.referring_domain IS NULL OR p.referring_domain IS NULL
) x
WHERE s.status = 'complete' AND s.previous_request_hash = s.request_hash;

COMMENT ON VIEW domain_intersection_changes IS
    'Per target set and complete snapshot, the referring domains new since the previous complete snapshot '
    'of the same definition (change = ''new'') and those no longer there (''lost''). Comparisons never '
    'cross a change of definition: when the previous complete snapshot had another request_hash, or there '
    'is none (the first snapshot, or the first one retention left), the snapshot has one row with change = '
    '''restart'' and referring_domain NULL. Failed dates are skipped: the comparison is with the last '
    'complete snapshot before.';
COMMENT ON COLUMN domain_intersection_changes.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_changes.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_changes.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_changes.snapshot_date IS 'The complete snapshot compared.';
COMMENT ON COLUMN domain_intersection_changes.previous_snapshot_date IS
    'The complete snapshot before it (the one compared with unless change = ''restart''); NULL when '
    'there is none.';
COMMENT ON COLUMN domain_intersection_changes.change IS '''new'', ''lost'' or ''restart''.';
COMMENT ON COLUMN domain_intersection_changes.referring_domain IS
    'The referring domain that appeared or disappeared; NULL on restart.';
COMMENT ON COLUMN domain_intersection_changes.intersections_count IS
    'Its intersections_count (for ''lost'': in the previous snapshot).';
COMMENT ON COLUMN domain_intersection_changes.min_rank IS
    'Lowest rank over its target keys (for ''lost'': in the previous snapshot).';
COMMENT ON COLUMN domain_intersection_changes.backlinks IS
    'Backlinks summed over its target keys (for ''lost'': in the previous snapshot).';

-- ---------------------------------------------------------------------------

CREATE VIEW domain_intersection_daily AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, s.status,
       m.referring_domains,
       CASE WHEN s.previous_request_hash = s.request_hash THEN m.new_domains END AS new_domains,
       CASE WHEN s.previous_request_hash = s.request_hash THEN m.lost_domains END AS lost_domains,
       m.avg_rank, m.total_backlinks, s.cost_usd,
       coalesce(s.previous_request_hash <> s.request_hash, false) AS definition_changed
FROM etl_snapshot s
JOIN target_set t USING (target_set_id)
LEFT JOIN LATERAL (
    -- The same comparison as domain_intersection_changes, counted.
    SELECT count(c.referring_domain) AS referring_domains,
           count(*) FILTER (WHERE p.referring_domain IS NULL) AS new_domains,
           count(*) FILTER (WHERE c.referring_domain IS NULL) AS lost_domains,
           round(sum(c.rank_sum) / nullif(sum(c.rank_n), 0), 2) AS avg_rank,
           sum(c.backlinks) AS total_backlinks
    FROM (
        SELECT d.referring_domain, sum(d.rank) AS rank_sum, count(d.rank) AS rank_n,
               sum(d.backlinks) AS backlinks
        FROM domain_intersection d
        WHERE d.target_set_id = s.target_set_id AND d.snapshot_date = s.snapshot_date
          AND s.status = 'complete'
        GROUP BY d.referring_domain
    ) c
    FULL JOIN (
        SELECT DISTINCT d.referring_domain
        FROM domain_intersection d
        WHERE d.target_set_id = s.target_set_id AND d.snapshot_date = s.previous_snapshot_date
          AND s.status = 'complete' AND s.previous_request_hash = s.request_hash
    ) p ON p.referring_domain = c.referring_domain
    HAVING s.status = 'complete'  -- failed: no row, so NULL measures
) m ON true;

COMMENT ON VIEW domain_intersection_daily IS
    'One row per target set and snapshot date whose latest run finished the set (complete or '
    'failed): the size of the snapshot, what changed since the previous complete snapshot, and what '
    'the runs of that date spent on the set. Measures are NULL on failed dates; new/lost are NULL on '
    'restarts (see domain_intersection_changes).';
COMMENT ON COLUMN domain_intersection_daily.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_daily.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_daily.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_daily.snapshot_date IS 'The snapshot date.';
COMMENT ON COLUMN domain_intersection_daily.status IS
    '''complete'' or ''failed'': what the latest run of that date did with the set (a date whose '
    'latest run is still at it is not listed).';
COMMENT ON COLUMN domain_intersection_daily.referring_domains IS
    'Distinct referring domains in the snapshot; NULL when failed.';
COMMENT ON COLUMN domain_intersection_daily.new_domains IS
    'Referring domains new since the previous complete snapshot; NULL on restart or failed.';
COMMENT ON COLUMN domain_intersection_daily.lost_domains IS
    'Referring domains gone since the previous complete snapshot; NULL on restart or failed.';
COMMENT ON COLUMN domain_intersection_daily.avg_rank IS
    'Average rank over all rows (referring domain x target), 2 decimals; NULL when failed.';
COMMENT ON COLUMN domain_intersection_daily.total_backlinks IS
    'Backlinks summed over all rows; NULL when failed.';
COMMENT ON COLUMN domain_intersection_daily.cost_usd IS
    'What all runs of that date spent on the set, in USD (etl_run_set.cost_usd).';
COMMENT ON COLUMN domain_intersection_daily.definition_changed IS
    'True when the previous complete snapshot was fetched with another definition (targets, filters, '
    'limit or max_rows).';

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

COMMENT ON VIEW domain_intersection_breakdown IS
    'The six referring_links_* maps of domain_intersection_latest in long form, one row per '
    '(referring domain, target key, dimension, key), so a dashboard can group without JSON functions.';
COMMENT ON COLUMN domain_intersection_breakdown.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_breakdown.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_breakdown.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_breakdown.snapshot_date IS
    'Date of the set''s latest complete snapshot.';
COMMENT ON COLUMN domain_intersection_breakdown.referring_domain IS 'The referring domain.';
COMMENT ON COLUMN domain_intersection_breakdown.target_key IS 'Key of the target in the request (1..20).';
COMMENT ON COLUMN domain_intersection_breakdown.target IS 'The requested target of target_key.';
COMMENT ON COLUMN domain_intersection_breakdown.dimension IS
    '''tld'' (referring_links_tld), ''link_type'' (referring_links_types), ''attribute'' '
    '(referring_links_attributes), ''platform'' (referring_links_platform_types), '
    '''semantic_location'' (referring_links_semantic_locations) or ''country'' '
    '(referring_links_countries).';
COMMENT ON COLUMN domain_intersection_breakdown.key IS
    'The map''s key as the API gave it; "" (no semantic element, unknown country) is kept.';
COMMENT ON COLUMN domain_intersection_breakdown.links IS 'Links for that key.';

-- ---------------------------------------------------------------------------

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

COMMENT ON VIEW etl_run_summary IS
    'One row per run of any job: outcome, duration, pages, rows, sets and cost.';
COMMENT ON COLUMN etl_run_summary.run_id IS 'etl_run.run_id.';
COMMENT ON COLUMN etl_run_summary.job IS 'Job name.';
COMMENT ON COLUMN etl_run_summary.snapshot_date IS 'The snapshot date the run wrote.';
COMMENT ON COLUMN etl_run_summary.status IS
    '''running'', ''succeeded'', ''partial'' (some sets failed) or ''failed''.';
COMMENT ON COLUMN etl_run_summary.started_at IS 'When the run started (a resumed run keeps its first start).';
COMMENT ON COLUMN etl_run_summary.finished_at IS 'End of the run; NULL while running or when it was killed.';
COMMENT ON COLUMN etl_run_summary.duration_seconds IS
    'finished_at - started_at in seconds (a resumed run counts from its first start); NULL when not '
    'finished.';
COMMENT ON COLUMN etl_run_summary.pages IS 'Pages loaded (as recorded when the run finished).';
COMMENT ON COLUMN etl_run_summary.failed_pages IS
    'Pages that failed after all their attempts (the page ledger, etl_page).';
COMMENT ON COLUMN etl_run_summary.rows IS 'Rows loaded (as recorded when the run finished).';
COMMENT ON COLUMN etl_run_summary.sets_complete IS 'Target sets the run completed.';
COMMENT ON COLUMN etl_run_summary.sets_failed IS 'Target sets that failed in the run.';
COMMENT ON COLUMN etl_run_summary.cost_usd IS 'What the API reported the run cost, in USD.';
COMMENT ON COLUMN etl_run_summary.error IS 'Why the run failed or was partial; NULL on success.';
COMMENT ON COLUMN etl_run_summary.replay_of IS
    'The run a replay re-did from the raw archive; NULL for runs that fetched from the API.';

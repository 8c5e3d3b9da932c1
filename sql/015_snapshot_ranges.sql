-- intersect-etl migration 015: a snapshot of any date read through an index
-- of the versions' ranges, and planned as what it is (issue 15).
--
-- domain_intersection (and the views on it: _snapshot, _domains,
-- _snapshot_breakdown) reads the versions valid on a date given as a
-- parameter (the control row's snapshot_date). The planner estimates
-- "valid_from <= $1 AND valid_to > $1" at a third of the rows per bound, a
-- ninth of the set's versions whatever the date: at 1,097 nights of one
-- 10,000-domain set, 270,000 rows for 20,000, so it chose a sequential scan
-- of all 2.4 million versions and JIT-compiled it (700 ms to 1 s for a
-- snapshot 30 days back, as a role with PostgreSQL's default settings).
-- Now the versions of a date are read in two parts: the current ones
-- (valid_to = 'infinity', a constant the planner has statistics for, and an
-- exact range of the btree on (set, valid_to, valid_from)), and the closed
-- ones, whose condition is also said as a range containing the date, which
-- the planner estimates from the range operator's selectivity and a GiST
-- index of the closed ranges (only a GiST index gives it the expression's
-- statistics; extended statistics on the expression did not). Measured by
-- bench/history.py's queries at 1,097 nights: plan cost about 19,000, no JIT; a
-- snapshot 30 days back 75-85 ms, the latest 38-51 ms (see the README,
-- "Reading it as any role"). The ranges are never empty (valid_from <
-- valid_to).
--
-- The index is built here and holds off writes to the versions while it
-- builds (reports go on): 41 s for 2.4 million versions on two cores. Run
-- `migrate` outside the nightly window.

SET LOCAL lock_timeout = '10s';

CREATE INDEX domain_intersection_version_range
    ON domain_intersection_version USING gist (daterange(valid_from, valid_to))
    WHERE valid_to < 'infinity';

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
    FROM (SELECT c.* FROM domain_intersection_version c
          WHERE c.target_set_id = s.target_set_id AND c.valid_to = 'infinity'
            AND c.valid_from <= s.snapshot_date
          UNION ALL
          SELECT h.* FROM domain_intersection_version h
          WHERE h.target_set_id = s.target_set_id AND h.valid_to < 'infinity'
            AND h.valid_from <= s.snapshot_date AND h.valid_to > s.snapshot_date
            AND daterange(h.valid_from, h.valid_to) @> s.snapshot_date) v
    OFFSET 0
) d
WHERE s.status = 'complete' AND s.purged_at IS NULL;

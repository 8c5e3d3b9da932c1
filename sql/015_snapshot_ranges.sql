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
-- The same condition said as a range containing the date is estimated from
-- the range operator's selectivity (12,000 rows there), and a GiST index of
-- the ranges finds the versions of any date without reading those of the
-- dates after it (the btree on valid_to reads every version ending later):
-- 51 ms warm, plan cost 22,820, no JIT. The ranges are never empty
-- (valid_from < valid_to), and 'infinity' is a valid upper bound.
--
-- The index is built here, taking writes' lock on the versions while it
-- builds (reports go on): about a minute for 2.4 million versions on two
-- cores. Run `migrate` outside the nightly window.

SET LOCAL lock_timeout = '10s';

CREATE INDEX domain_intersection_version_range
    ON domain_intersection_version USING gist (daterange(valid_from, valid_to));

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
      AND daterange(v.valid_from, v.valid_to) @> s.snapshot_date
    OFFSET 0
) d
WHERE s.status = 'complete' AND s.purged_at IS NULL;

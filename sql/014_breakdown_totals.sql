-- intersect-etl migration 014: each snapshot's breakdown totals, computed
-- once, when the snapshot is published (issue 15).
--
-- "Countries now" or "link types a month ago" summed every referring_links_*
-- map of a whole snapshot per query: 20,000 rows and 72,000 map entries for
-- one 10,000-domain set, 87 ms and growing with the maps. The totals of a
-- snapshot only change when it is published again, so they are kept per
-- (set, date, dimension, key) and a report reads a few hundred rows.
--
-- Computed from the previous complete snapshot's totals (P, the one before
-- the date, not purged) and the versions that differ between the two:
-- ranges are maximal and begin and end at complete dates, so the rows of D
-- that P does not have are the versions starting at D, and the rows of P
-- that D does not have are the versions ending at D, and of a key in both
-- only one whose maps changed counts. A night costs what changed, not the
-- snapshot; the first snapshot of a set (or one with no P)
-- is summed whole. Every complete, unpurged snapshot has its totals (the
-- backfill below, then the trigger); a purged one loses them.

SET LOCAL lock_timeout = '10s';

CREATE TABLE domain_intersection_breakdown_total (
    target_set_id bigint  NOT NULL,
    snapshot_date date    NOT NULL,
    dimension     text    NOT NULL,
    key           text    NOT NULL,
    links         bigint  NOT NULL,
    target_rows   integer NOT NULL,
    PRIMARY KEY (target_set_id, snapshot_date, dimension, key),
    FOREIGN KEY (target_set_id, snapshot_date) REFERENCES etl_snapshot ON DELETE CASCADE
);

-- The map entries of versions, one row each: (dimension, key, links), links
-- 0 where the value is not a number (the breakdown view shows NULL there).
-- A view, not a function: migrate pins every function's search_path
-- (src/migrate.c), and a function with a setting of its own is not inlined,
-- which made it a call per version (73 ms for 2,200 versions).
CREATE VIEW domain_intersection_version_entries AS
SELECT v.target_set_id, v.referring_domain, v.target_key, v.valid_from, v.valid_to, m.dimension,
       e.key, CASE WHEN jsonb_typeof(e.value) = 'number' THEN (e.value)::numeric::bigint ELSE 0 END
           AS links
FROM domain_intersection_version v
CROSS JOIN (VALUES ('tld'), ('link_type'), ('attribute'), ('platform'), ('semantic_location'),
                   ('country')) m (dimension)
CROSS JOIN LATERAL (
    SELECT CASE m.dimension WHEN 'tld' THEN v.referring_links_tld
                            WHEN 'link_type' THEN v.referring_links_types
                            WHEN 'attribute' THEN v.referring_links_attributes
                            WHEN 'platform' THEN v.referring_links_platform_types
                            WHEN 'semantic_location' THEN v.referring_links_semantic_locations
                            WHEN 'country' THEN v.referring_links_countries END AS map
) x
CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(x.map) = 'object' THEN x.map END) e;

-- The totals of (p_set, p_date), a complete snapshot whose versions are in
-- place: from the previous complete snapshot's, or summed whole.
CREATE FUNCTION snapshot_breakdown(p_set bigint, p_date date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    prev date;
BEGIN
    DELETE FROM domain_intersection_breakdown_total
    WHERE target_set_id = p_set AND snapshot_date = p_date;
    SELECT max(snapshot_date) INTO prev FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date < p_date AND status = 'complete'
      AND purged_at IS NULL;
    IF prev IS NULL THEN
        INSERT INTO domain_intersection_breakdown_total
        SELECT p_set, p_date, e.dimension, e.key, sum(e.links), count(*)
        FROM domain_intersection_version_entries e
        WHERE e.target_set_id = p_set AND e.valid_from <= p_date AND e.valid_to > p_date
        GROUP BY e.dimension, e.key;
        RETURN;
    END IF;
    -- A key whose maps are the same at prev and p_date (only its counts
    -- changed, say) adds and takes away the same entries: skipped.
    INSERT INTO domain_intersection_breakdown_total
    SELECT p_set, p_date, dimension, key, sum(links), sum(target_rows)
    FROM (
        SELECT b.dimension, b.key, b.links, b.target_rows
        FROM domain_intersection_breakdown_total b
        WHERE b.target_set_id = p_set AND b.snapshot_date = prev
        UNION ALL
        SELECT e.dimension, e.key, d.sign * e.links, d.sign
        FROM (
            SELECT referring_domain, target_key, x.valid_from, x.sign
            FROM (SELECT v.referring_domain, v.target_key, v.valid_from,
                         ROW(v.referring_links_tld, v.referring_links_types,
                             v.referring_links_attributes, v.referring_links_platform_types,
                             v.referring_links_semantic_locations, v.referring_links_countries) AS maps
                  FROM domain_intersection_version v
                  WHERE v.target_set_id = p_set AND v.valid_to > p_date AND v.valid_from = p_date) n
            FULL JOIN
                 (SELECT w.referring_domain, w.target_key, w.valid_from,
                         ROW(w.referring_links_tld, w.referring_links_types,
                             w.referring_links_attributes, w.referring_links_platform_types,
                             w.referring_links_semantic_locations, w.referring_links_countries) AS maps
                  FROM domain_intersection_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = p_date) o
            USING (referring_domain, target_key)
            CROSS JOIN LATERAL (VALUES (n.valid_from, 1), (o.valid_from, -1)) x (valid_from, sign)
            WHERE n.maps IS DISTINCT FROM o.maps AND x.valid_from IS NOT NULL
        ) d
        JOIN domain_intersection_version_entries e
          ON e.target_set_id = p_set AND e.referring_domain = d.referring_domain
         AND e.target_key = d.target_key AND e.valid_from = d.valid_from
    ) t
    GROUP BY dimension, key
    HAVING sum(target_rows) <> 0;
END $$;

-- Every publish (publish_snapshot() sets published_at on the date and on
-- the next complete date, whose comparison it redoes) and every purge
-- (purged_at) goes through the control row, so the totals follow it there.
CREATE FUNCTION etl_snapshot_breakdown() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status = 'complete' AND NEW.purged_at IS NULL THEN
        PERFORM snapshot_breakdown(NEW.target_set_id, NEW.snapshot_date);
    ELSIF NEW.purged_at IS NOT NULL THEN
        DELETE FROM domain_intersection_breakdown_total
        WHERE target_set_id = NEW.target_set_id AND snapshot_date = NEW.snapshot_date;
    END IF;
    RETURN NULL;
END $$;

-- Backfill, oldest first per set: each date from the one before.
SELECT snapshot_breakdown(target_set_id, snapshot_date)
FROM (SELECT target_set_id, snapshot_date FROM etl_snapshot
      WHERE status = 'complete' AND purged_at IS NULL
      ORDER BY target_set_id, snapshot_date) s;

CREATE TRIGGER etl_snapshot_breakdown
    AFTER INSERT OR UPDATE OF published_at, purged_at ON etl_snapshot
    FOR EACH ROW EXECUTE FUNCTION etl_snapshot_breakdown();

CREATE VIEW domain_intersection_breakdown_totals AS
SELECT t.job, t.name AS target_set, b.target_set_id, b.snapshot_date, b.dimension, b.key,
       b.links, b.target_rows
FROM domain_intersection_breakdown_total b
JOIN target_set t USING (target_set_id);

COMMENT ON TABLE domain_intersection_breakdown_total IS
    'Per complete, unpurged snapshot and referring_links_* dimension and key: the links summed over the '
    'snapshot''s rows and how many rows have the key. Written by the trigger etl_snapshot_breakdown when '
    'the snapshot is published (from the previous snapshot''s totals and the versions that changed), '
    'deleted when it is purged.';
COMMENT ON COLUMN domain_intersection_breakdown_total.links IS
    'The key''s values summed over the snapshot''s rows (a value that is not a number counts 0).';
COMMENT ON COLUMN domain_intersection_breakdown_total.target_rows IS
    'How many rows of the snapshot (referring domain x target key) have the key in their map.';
COMMENT ON VIEW domain_intersection_version_entries IS
    'One row per entry of a version''s referring_links_* maps: the version''s key and range, dimension '
    '(tld, link_type, attribute, platform, semantic_location, country), key, links (0 where not a number). '
    'What snapshot_breakdown() sums; filter on target_set_id and the range.';
COMMENT ON COLUMN domain_intersection_version_entries.target_set_id IS 'The version''s target set.';
COMMENT ON COLUMN domain_intersection_version_entries.referring_domain IS 'The version''s referring domain.';
COMMENT ON COLUMN domain_intersection_version_entries.target_key IS 'The version''s target key.';
COMMENT ON COLUMN domain_intersection_version_entries.valid_from IS 'The version''s first snapshot date.';
COMMENT ON COLUMN domain_intersection_version_entries.valid_to IS 'The version''s end (exclusive).';
COMMENT ON COLUMN domain_intersection_version_entries.dimension IS
    'Which map: tld, link_type, attribute, platform, semantic_location or country.';
COMMENT ON COLUMN domain_intersection_version_entries.key IS 'A key of that map.';
COMMENT ON COLUMN domain_intersection_version_entries.links IS
    'The key''s value (0 where it is not a number).';
COMMENT ON FUNCTION snapshot_breakdown(bigint, date) IS
    'snapshot_breakdown(p_set, p_date): writes the breakdown totals of a complete snapshot whose versions '
    'are in place, from the previous complete snapshot''s totals and the versions starting or ending at '
    'p_date (or from all its rows when there is none).';
COMMENT ON VIEW domain_intersection_breakdown_totals IS
    'One row per (set, complete unpurged snapshot, dimension, key) of the referring_links_* maps: links '
    '(summed over the snapshot''s rows) and target_rows (rows with the key). Computed when the snapshot was '
    'published: filter on the set and snapshot_date for a few hundred rows. The same sums as '
    'domain_intersection_snapshot_breakdown grouped by dimension and key (0 for a value that is not a number).';
COMMENT ON COLUMN domain_intersection_breakdown_total.target_set_id IS 'The target set (target_set).';
COMMENT ON COLUMN domain_intersection_breakdown_total.snapshot_date IS
    'The snapshot (etl_snapshot, complete and not purged).';
COMMENT ON COLUMN domain_intersection_breakdown_total.dimension IS
    'Which map: tld, link_type, attribute, platform, semantic_location or country (referring_links_tld, '
    '_types, _attributes, _platform_types, _semantic_locations, _countries).';
COMMENT ON COLUMN domain_intersection_breakdown_total.key IS
    'A key of that map ("" kept: links outside any semantic element, unknown country).';
COMMENT ON FUNCTION etl_snapshot_breakdown() IS
    'Trigger of etl_snapshot: a control row published (complete, not purged) gets its breakdown totals '
    '(snapshot_breakdown()); a purged one loses them.';
COMMENT ON COLUMN domain_intersection_breakdown_totals.job IS 'The job of the target set.';
COMMENT ON COLUMN domain_intersection_breakdown_totals.target_set IS 'The target set''s name in its job.';
COMMENT ON COLUMN domain_intersection_breakdown_totals.target_set_id IS 'The target set (target_set).';
COMMENT ON COLUMN domain_intersection_breakdown_totals.snapshot_date IS
    'A complete snapshot not purged.';
COMMENT ON COLUMN domain_intersection_breakdown_totals.dimension IS
    'Which map: tld, link_type, attribute, platform, semantic_location or country.';
COMMENT ON COLUMN domain_intersection_breakdown_totals.key IS
    'A key of that map ("" kept: links outside any semantic element, unknown country).';
COMMENT ON COLUMN domain_intersection_breakdown_totals.links IS
    'The key''s values summed over the snapshot''s rows (a value that is not a number counts 0).';
COMMENT ON COLUMN domain_intersection_breakdown_totals.target_rows IS
    'How many rows of the snapshot (referring domain x target key) have the key in their map.';

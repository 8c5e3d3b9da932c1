-- intersect-etl migration 017: the per-domain grain kept as versions of its
-- own, written when a snapshot is published (issue 15).
--
-- domain_intersection_domains folded a snapshot's target keys per query: for
-- one 10,000-domain set, 20,000 versions read from 6,000 to 8,000 heap pages
-- (wide rows, six jsonb maps each, and the versions of one date were written
-- over many nights), 40 to 54 ms whatever the plan (bench/history.py at
-- 1,097 nights, as a role with PostgreSQL's default settings). The folded
-- values of a domain change only where one of its keys' versions begins or
-- ends, so they are kept like the versions: one narrow row per (set,
-- referring domain) and maximal run of complete snapshot dates with equal
-- folded values, and a whole snapshot is 10,000 rows of about 120 bytes.
--
-- Written at publish time by a trigger on the control row, as 014's totals
-- are (publish_snapshot() sets published_at on the date it publishes and on
-- the next complete date, whose comparison it redoes; purge_snapshots() sets
-- purged_at), from the versions covering complete dates only. A publish of
-- date D (P the complete date before it, N the one after) recomputes only
-- the domains with a key version beginning or ending at D, or a domain
-- version beginning or ending there: every other domain has the same keys
-- at D as at P, so its folded values there are already right. Its cost
-- follows what changed at D, not the snapshot's size. The domain versions
-- are then split and joined by the rule of publish_versions(): the range
-- covering D keeps its part before D and its part from N on, and new values
-- continue an equal version ending at D or take in one starting at N. So
-- the table is exact after any order of publishing (backfills, reruns of a
-- middle date, replays, retention), as tests/integration/test_differential.py
-- checks against its own model after every step.
--
-- Position is not here: it is per snapshot (domain_intersection_order), and
-- the views look it up as domain_intersection does.
--
-- The backfill below replays the kept snapshots oldest first; the two
-- indexes on the versions' valid_from are built here too. Run `migrate`
-- outside the nightly window (times for a large history in the README,
-- "Reading it as any role").

SET LOCAL lock_timeout = '10s';

CREATE TABLE domain_intersection_domain_version (
    target_set_id       bigint      NOT NULL,
    referring_domain    text        NOT NULL,
    valid_from          date        NOT NULL,
    valid_to            date        NOT NULL DEFAULT 'infinity',
    target_keys         integer     NOT NULL,
    key_mask            integer     NOT NULL,
    intersections_count integer,
    min_rank            integer,
    backlinks           numeric,
    links_to_all_since  timestamptz,
    max_spam_score      integer,
    referring_pages     numeric,
    run_id              bigint      NOT NULL,
    PRIMARY KEY (target_set_id, referring_domain, valid_from),
    CHECK (valid_from < valid_to)
);
-- The same three ways in as the versions (sql/015): current rows by
-- valid_to = 'infinity', closed ones by a range containing the date.
CREATE INDEX domain_intersection_domain_version_to
    ON domain_intersection_domain_version (target_set_id, valid_to, valid_from);
CREATE INDEX domain_intersection_domain_version_range
    ON domain_intersection_domain_version USING gist (daterange(valid_from, valid_to))
    WHERE valid_to < 'infinity';
-- What a publish of a date reads: the rows beginning there.
CREATE INDEX domain_intersection_domain_version_from
    ON domain_intersection_domain_version (target_set_id, valid_from);
CREATE INDEX domain_intersection_version_from
    ON domain_intersection_version (target_set_id, valid_from);

-- Work table of snapshot_domains(): one row per domain it recomputes.
-- (Created once per session; to_regclass, not IF NOT EXISTS, which would
-- send a notice on every publish.)
CREATE FUNCTION snapshot_domains(p_set bigint, p_date date, hi date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    prev date;
BEGIN
    IF to_regclass('pg_temp.snapshot_domain_work') IS NULL THEN
        CREATE TEMP TABLE snapshot_domain_work (
            referring_domain text, target_keys integer, key_mask integer,
            intersections_count integer, min_rank integer, backlinks numeric,
            links_to_all_since timestamptz, max_spam_score integer, referring_pages numeric,
            run_id bigint, cur_from date, cur_to date, same boolean, pred_from date,
            succ_to date) ON COMMIT DELETE ROWS;
    END IF;
    -- (called twice in a publish, and once a date by the backfill below)
    TRUNCATE snapshot_domain_work;
    SELECT max(snapshot_date) INTO prev FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date < p_date AND status = 'complete'
      AND purged_at IS NULL;

    -- The domains to recompute, and their folded values at p_date. A key of
    -- the domain at p_date either begins there (s) or held at prev already,
    -- so it is one of the keys of the domain's row at prev (key_mask); those
    -- are read one probe of the primary key each, the key's last version
    -- beginning by p_date, kept when it still holds there.
    WITH s AS (
        SELECT v.referring_domain, v.target_key, v.intersections_count, v.rank, v.backlinks,
               v.first_seen, v.backlinks_spam_score, v.referring_pages, v.run_id
        FROM domain_intersection_version v
        WHERE v.target_set_id = p_set AND v.valid_from = p_date),
    c AS (
        SELECT referring_domain, bit_or(bit) AS starting
        FROM (SELECT referring_domain, 1 << target_key AS bit FROM s
              UNION ALL
              SELECT v.referring_domain, 0 FROM domain_intersection_version v
              WHERE v.target_set_id = p_set AND v.valid_to = p_date
              UNION ALL
              SELECT w.referring_domain, 0 FROM domain_intersection_domain_version w
              WHERE w.target_set_id = p_set AND w.valid_to = p_date
              UNION ALL
              SELECT w.referring_domain, 0 FROM domain_intersection_domain_version w
              WHERE w.target_set_id = p_set AND w.valid_from = p_date) b
        GROUP BY referring_domain),
    k AS (
        SELECT v.referring_domain, v.target_key, v.intersections_count, v.rank, v.backlinks,
               v.first_seen, v.backlinks_spam_score, v.referring_pages, v.run_id
        FROM c
        CROSS JOIN LATERAL (
            SELECT w.key_mask, w.valid_to FROM domain_intersection_domain_version w
            WHERE w.target_set_id = p_set AND w.referring_domain = c.referring_domain
              AND w.valid_from <= prev
            ORDER BY w.valid_from DESC LIMIT 1) pm
        CROSS JOIN generate_series(1, 20) n
        CROSS JOIN LATERAL (
            SELECT v.* FROM domain_intersection_version v
            WHERE v.target_set_id = p_set AND v.referring_domain = c.referring_domain
              AND v.target_key = n AND v.valid_from <= p_date
            ORDER BY v.valid_from DESC LIMIT 1) v
        WHERE pm.valid_to > prev AND (pm.key_mask & ~c.starting & (1 << n)) <> 0
          AND v.valid_to > p_date),
    a AS (
        SELECT referring_domain, count(*) AS target_keys, bit_or(1 << target_key) AS key_mask,
               max(intersections_count) AS intersections_count, min(rank) AS min_rank,
               sum(backlinks) AS backlinks, max(first_seen) AS links_to_all_since,
               max(backlinks_spam_score) AS max_spam_score, sum(referring_pages) AS referring_pages,
               max(run_id) AS run_id
        FROM (SELECT * FROM s UNION ALL SELECT * FROM k) x
        GROUP BY referring_domain)
    INSERT INTO snapshot_domain_work
    SELECT c.referring_domain, a.target_keys, a.key_mask, a.intersections_count, a.min_rank,
           a.backlinks, a.links_to_all_since, a.max_spam_score, a.referring_pages, a.run_id,
           cur.valid_from, cur.valid_to,
           a.referring_domain IS NOT NULL AND cur.valid_from IS NOT NULL
           AND (cur.target_keys, cur.key_mask, cur.intersections_count, cur.min_rank,
                cur.backlinks, cur.links_to_all_since, cur.max_spam_score, cur.referring_pages,
                cur.run_id)
               IS NOT DISTINCT FROM
               (a.target_keys::integer, a.key_mask, a.intersections_count, a.min_rank,
                a.backlinks, a.links_to_all_since, a.max_spam_score, a.referring_pages, a.run_id)
    FROM c
    LEFT JOIN a USING (referring_domain)
    LEFT JOIN LATERAL (
        SELECT w.* FROM domain_intersection_domain_version w
        WHERE w.target_set_id = p_set AND w.referring_domain = c.referring_domain
          AND w.valid_from <= p_date
        ORDER BY w.valid_from DESC LIMIT 1) cur0 ON true
    -- (the last row beginning by p_date, kept when it covers p_date: a
    -- condition on valid_to inside would read the domain's whole past)
    LEFT JOIN LATERAL (SELECT cur0.* WHERE cur0.valid_to > p_date) cur ON true;
    DELETE FROM snapshot_domain_work WHERE same;
    ANALYZE snapshot_domain_work;

    -- The row covering p_date, when its values are not the new ones: the
    -- part from hi on is kept as a copy, the part before p_date by ending
    -- the range there (or the row goes, when it began there).
    INSERT INTO domain_intersection_domain_version
    SELECT w.target_set_id, w.referring_domain, hi, w.valid_to, w.target_keys, w.key_mask,
           w.intersections_count, w.min_rank, w.backlinks, w.links_to_all_since,
           w.max_spam_score, w.referring_pages, w.run_id
    FROM snapshot_domain_work g
    JOIN domain_intersection_domain_version w
      ON w.target_set_id = p_set AND w.referring_domain = g.referring_domain
     AND w.valid_from = g.cur_from
    WHERE hi < g.cur_to;
    DELETE FROM domain_intersection_domain_version w USING snapshot_domain_work g
    WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
      AND w.valid_from = g.cur_from AND g.cur_from = p_date;
    UPDATE domain_intersection_domain_version w SET valid_to = p_date FROM snapshot_domain_work g
    WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
      AND w.valid_from = g.cur_from AND g.cur_from < p_date;

    -- New values equal to the row ending at p_date continue it; equal to the
    -- one beginning at hi, they take it in.
    UPDATE snapshot_domain_work g SET
        pred_from = (
            SELECT (q.w).valid_from
            FROM (SELECT w FROM domain_intersection_domain_version w
                  WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
                    AND w.valid_from < p_date
                  ORDER BY w.valid_from DESC LIMIT 1) q
            WHERE (q.w).valid_to = p_date
              AND ((q.w).target_keys, (q.w).key_mask, (q.w).intersections_count, (q.w).min_rank,
                   (q.w).backlinks, (q.w).links_to_all_since, (q.w).max_spam_score,
                   (q.w).referring_pages, (q.w).run_id)
                  IS NOT DISTINCT FROM
                  (g.target_keys, g.key_mask, g.intersections_count, g.min_rank, g.backlinks,
                   g.links_to_all_since, g.max_spam_score, g.referring_pages, g.run_id)),
        succ_to = CASE WHEN hi < 'infinity' THEN (
            SELECT w.valid_to FROM domain_intersection_domain_version w
            WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
              AND w.valid_from = hi
              AND (w.target_keys, w.key_mask, w.intersections_count, w.min_rank, w.backlinks,
                   w.links_to_all_since, w.max_spam_score, w.referring_pages, w.run_id)
                  IS NOT DISTINCT FROM
                  (g.target_keys, g.key_mask, g.intersections_count, g.min_rank, g.backlinks,
                   g.links_to_all_since, g.max_spam_score, g.referring_pages, g.run_id)) END
    WHERE g.target_keys IS NOT NULL;
    DELETE FROM domain_intersection_domain_version w USING snapshot_domain_work g
    WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
      AND w.valid_from = hi AND g.succ_to IS NOT NULL;
    UPDATE domain_intersection_domain_version w SET valid_to = coalesce(g.succ_to, hi)
    FROM snapshot_domain_work g
    WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
      AND w.valid_from = g.pred_from AND g.pred_from IS NOT NULL;
    INSERT INTO domain_intersection_domain_version
    SELECT p_set, g.referring_domain, p_date, coalesce(g.succ_to, hi), g.target_keys, g.key_mask,
           g.intersections_count, g.min_rank, g.backlinks, g.links_to_all_since,
           g.max_spam_score, g.referring_pages, g.run_id
    FROM snapshot_domain_work g
    WHERE g.target_keys IS NOT NULL AND g.pred_from IS NULL;
END $$;

-- Retention: the rows only purged dates used go, those reaching past them
-- begin at the oldest date kept (what purge_snapshots() does to the
-- versions).
CREATE FUNCTION purge_domains(p_set bigint) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    keep date;
BEGIN
    SELECT min(snapshot_date) INTO keep FROM etl_snapshot
    WHERE target_set_id = p_set AND status = 'complete' AND purged_at IS NULL;
    DELETE FROM domain_intersection_domain_version
    WHERE target_set_id = p_set AND valid_to <= coalesce(keep, 'infinity');
    UPDATE domain_intersection_domain_version SET valid_from = keep
    WHERE target_set_id = p_set AND valid_from < keep;
END $$;

CREATE FUNCTION etl_snapshot_domains() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status = 'complete' AND NEW.purged_at IS NULL THEN
        PERFORM snapshot_domains(NEW.target_set_id, NEW.snapshot_date,
            coalesce((SELECT min(c.snapshot_date) FROM etl_snapshot c
                      WHERE c.target_set_id = NEW.target_set_id
                        AND c.snapshot_date > NEW.snapshot_date AND c.status = 'complete'
                        AND c.purged_at IS NULL), 'infinity'));
    ELSIF NEW.purged_at IS NOT NULL THEN
        PERFORM purge_domains(NEW.target_set_id);
    END IF;
    RETURN NULL;
END $$;

-- Backfill: per set, every kept complete date oldest first, each as if it
-- were the newest (hi = infinity), which is a night's publish.
-- (The table grows from nothing here: analyzed every 50 dates, so that
-- each statement keeps probing it by key rather than hashing all of it.)
DO $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT target_set_id, snapshot_date FROM etl_snapshot
             WHERE status = 'complete' AND purged_at IS NULL
             ORDER BY target_set_id, snapshot_date LOOP
        PERFORM snapshot_domains(r.target_set_id, r.snapshot_date, 'infinity');
        n := n + 1;
        IF n % 50 = 0 THEN
            ANALYZE domain_intersection_domain_version;
        END IF;
    END LOOP;
END $$;
ANALYZE domain_intersection_domain_version;

CREATE TRIGGER etl_snapshot_domains
    AFTER INSERT OR UPDATE OF published_at, purged_at ON etl_snapshot
    FOR EACH ROW EXECUTE FUNCTION etl_snapshot_domains();

-- ---------------------------------------------------------------------------
-- The views

-- Any complete snapshot at the domain grain: its rows of the domain
-- versions, read in the two parts of sql/015 (current by the btree, closed
-- by the range's GiST index), position looked up in the order row of the
-- date as domain_intersection does. The columns and their types are the
-- ones of 011's view.
CREATE OR REPLACE VIEW domain_intersection_domains AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, d.referring_domain,
       d.position, d.target_keys, d.intersections_count, d.min_rank, d.backlinks,
       d.links_to_all_since, d.max_spam_score, d.referring_pages, d.run_id
FROM etl_snapshot s
JOIN target_set t ON t.target_set_id = s.target_set_id
CROSS JOIN LATERAL (
    SELECT v.referring_domain,
           ((SELECT jsonb_object(r.domains, r.positions::text[])
             FROM domain_intersection_order r
             WHERE r.target_set_id = s.target_set_id AND r.valid_from <= s.snapshot_date
               AND r.valid_to > s.snapshot_date) ->> v.referring_domain)::integer AS position,
           v.target_keys::bigint AS target_keys, v.intersections_count, v.min_rank, v.backlinks,
           v.links_to_all_since, v.max_spam_score, v.referring_pages, v.run_id
    FROM (SELECT c.* FROM domain_intersection_domain_version c
          WHERE c.target_set_id = s.target_set_id AND c.valid_to = 'infinity'
            AND c.valid_from <= s.snapshot_date
          UNION ALL
          SELECT h.* FROM domain_intersection_domain_version h
          WHERE h.target_set_id = s.target_set_id AND h.valid_to < 'infinity'
            AND h.valid_from <= s.snapshot_date AND h.valid_to > s.snapshot_date
            AND daterange(h.valid_from, h.valid_to) @> s.snapshot_date) v
    OFFSET 0
) d
WHERE s.status = 'complete' AND s.purged_at IS NULL;

-- Each set's latest snapshot at the domain grain: its rows are the current
-- ones (valid_to = 'infinity', a constant the planner has statistics for),
-- as in domain_intersection_latest; retired sets are left out as there.
CREATE VIEW domain_intersection_latest_domains AS
SELECT t.job, t.name AS target_set, t.target_set_id, l.snapshot_date, d.referring_domain,
       d.position, d.target_keys, d.intersections_count, d.min_rank, d.backlinks,
       d.links_to_all_since, d.max_spam_score, d.referring_pages, d.run_id
FROM target_set t
CROSS JOIN LATERAL (
    SELECT max(c.snapshot_date) AS snapshot_date FROM etl_snapshot c
    WHERE c.target_set_id = t.target_set_id AND c.status = 'complete' AND c.purged_at IS NULL
) l
CROSS JOIN LATERAL (
    SELECT v.referring_domain,
           ((SELECT jsonb_object(r.domains, r.positions::text[])
             FROM domain_intersection_order r
             WHERE r.target_set_id = t.target_set_id AND r.valid_to = 'infinity'
               AND r.valid_from <= l.snapshot_date) ->> v.referring_domain)::integer AS position,
           v.target_keys::bigint AS target_keys, v.intersections_count, v.min_rank, v.backlinks,
           v.links_to_all_since, v.max_spam_score, v.referring_pages, v.run_id
    FROM domain_intersection_domain_version v
    WHERE v.target_set_id = t.target_set_id AND v.valid_to = 'infinity'
      AND v.valid_from <= l.snapshot_date
    OFFSET 0
) d
WHERE t.retired_at IS NULL;

-- ---------------------------------------------------------------------------
-- Comments

COMMENT ON TABLE domain_intersection_domain_version IS
    'The history at the domain grain (target keys folded, as domain_intersection_domains shows it): '
    'one row per (target set, referring domain) and run of consecutive complete snapshots with '
    'identical folded values, valid for the complete snapshot dates in [valid_from, valid_to). '
    'Written by the trigger etl_snapshot_domains when a snapshot is published (snapshot_domains(): '
    'only the domains whose versions begin or end at that date) and cut back when dates are purged '
    '(purge_domains()). Read it through domain_intersection_domains and '
    'domain_intersection_latest_domains.';
COMMENT ON COLUMN domain_intersection_domain_version.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_domain_version.referring_domain IS
    'The referring domain.';
COMMENT ON COLUMN domain_intersection_domain_version.valid_from IS
    'First complete snapshot date with these values (inclusive).';
COMMENT ON COLUMN domain_intersection_domain_version.valid_to IS
    'The complete snapshot date from which these values no longer hold (exclusive); ''infinity'' '
    'while current.';
COMMENT ON COLUMN domain_intersection_domain_version.target_keys IS
    'How many target keys (rows of the snapshot) the domain has.';
COMMENT ON COLUMN domain_intersection_domain_version.key_mask IS
    'Which target keys: bit k (1 << k) set for target_key k. What a publish of the next date '
    'reads the domain''s versions by.';
COMMENT ON COLUMN domain_intersection_domain_version.intersections_count IS
    'The highest intersections_count over the domain''s rows.';
COMMENT ON COLUMN domain_intersection_domain_version.min_rank IS
    'The lowest rank over the domain''s rows.';
COMMENT ON COLUMN domain_intersection_domain_version.backlinks IS
    'backlinks summed over the domain''s rows.';
COMMENT ON COLUMN domain_intersection_domain_version.links_to_all_since IS
    'The latest first_seen over the domain''s rows: since when it links to every target it has.';
COMMENT ON COLUMN domain_intersection_domain_version.max_spam_score IS
    'The highest backlinks_spam_score over the domain''s rows.';
COMMENT ON COLUMN domain_intersection_domain_version.referring_pages IS
    'referring_pages summed over the domain''s rows.';
COMMENT ON COLUMN domain_intersection_domain_version.run_id IS
    'The highest run_id of the domain''s rows (the run that last wrote one of them).';
COMMENT ON FUNCTION snapshot_domains(bigint, date, date) IS
    'snapshot_domains(p_set, p_date, hi): makes the domain versions of the complete snapshot '
    '(p_set, p_date), whose versions are in place, hold its folded values, recomputing only the '
    'domains with a version or domain version beginning or ending at p_date; hi is the next '
    'complete date (''infinity'' for the newest), whose values are kept. Equal neighbours are one '
    'range.';
COMMENT ON FUNCTION purge_domains(bigint) IS
    'purge_domains(p_set): retention for the domain versions of one target set: rows used only by '
    'purged dates are deleted, those reaching past them begin at the oldest date kept.';
COMMENT ON FUNCTION etl_snapshot_domains() IS
    'Trigger of etl_snapshot: a control row published (complete, not purged) gets its domain '
    'versions (snapshot_domains(), up to the next complete date); a purged one cuts them back '
    '(purge_domains()).';

COMMENT ON VIEW domain_intersection_domains IS
    'Any complete snapshot not purged, one row per (set, snapshot_date, referring domain): the '
    'target keys folded. The grain to count referring domains in. Filter on the set and '
    'snapshot_date: that reads the snapshot''s rows of domain_intersection_domain_version, one '
    'per domain, written when the snapshot was published.';
COMMENT ON VIEW domain_intersection_latest_domains IS
    'One row per (target set, referring domain) of each set''s latest complete snapshot not purged, '
    'the target keys folded (domain_intersection_domains of that date); retired sets are left out. '
    'COUNT(*) is the number of referring domains.';
COMMENT ON COLUMN domain_intersection_latest_domains.job IS 'Job name (target_set.job).';
COMMENT ON COLUMN domain_intersection_latest_domains.target_set IS
    'Target set name, unique within the job.';
COMMENT ON COLUMN domain_intersection_latest_domains.target_set_id IS 'The target set.';
COMMENT ON COLUMN domain_intersection_latest_domains.snapshot_date IS
    'The set''s latest complete snapshot date not purged.';
COMMENT ON COLUMN domain_intersection_latest_domains.referring_domain IS 'The referring domain.';
COMMENT ON COLUMN domain_intersection_latest_domains.position IS
    '0-based place in the API''s result order of that snapshot.';
COMMENT ON COLUMN domain_intersection_latest_domains.target_keys IS
    'How many target keys (rows of domain_intersection_latest) the domain has.';
COMMENT ON COLUMN domain_intersection_latest_domains.intersections_count IS
    'The highest intersections_count over its target keys.';
COMMENT ON COLUMN domain_intersection_latest_domains.min_rank IS
    'The lowest rank over its target keys.';
COMMENT ON COLUMN domain_intersection_latest_domains.backlinks IS
    'backlinks summed over its target keys.';
COMMENT ON COLUMN domain_intersection_latest_domains.links_to_all_since IS
    'The latest first_seen over its target keys: since when it links to every target it has.';
COMMENT ON COLUMN domain_intersection_latest_domains.max_spam_score IS
    'The highest backlinks_spam_score over its target keys.';
COMMENT ON COLUMN domain_intersection_latest_domains.referring_pages IS
    'referring_pages summed over its target keys.';
COMMENT ON COLUMN domain_intersection_latest_domains.run_id IS
    'The highest run_id of its rows (the run that last wrote one of them).';

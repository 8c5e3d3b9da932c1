-- intersect-etl migration 018: a set's first domain versions in one
-- statement (issue 18).
--
-- sql/017's snapshot_domains() is written for a publish between others: it
-- probes each recomputed domain's versions several times (the domain row at
-- the previous date, the row covering the date, the one ending there, the
-- one beginning at the next date). A set with no domain version yet has none
-- of those, and every domain of its first snapshot is recomputed: at
-- 1,000,000 rows (500,000 domains) those probes took 7.8 to 8.7 s of a
-- 28 s first load (scripts/bench, bench/results-018-direct-017.json).
--
-- With no domain version for the set, snapshot_domains() comes to this: the
-- domains whose versions begin at the date, their rows folded, one domain
-- version each up to the next complete date. first_domains() does that in
-- one grouped INSERT; the trigger takes it when the set has no domain
-- version. The differential test (tests/integration/test_differential.py)
-- compares the table with its model after every step as before.
--
-- Locks: none beyond replacing two functions.

SET LOCAL lock_timeout = '10s';

CREATE FUNCTION first_domains(p_set bigint, p_date date, hi date) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    INSERT INTO domain_intersection_domain_version
    SELECT p_set, v.referring_domain, p_date, hi, count(*), bit_or(1 << v.target_key),
           max(v.intersections_count), min(v.rank), sum(v.backlinks), max(v.first_seen),
           max(v.backlinks_spam_score), sum(v.referring_pages), max(v.run_id)
    FROM domain_intersection_version v
    WHERE v.target_set_id = p_set AND v.valid_from = p_date
    GROUP BY v.referring_domain;
$$;

CREATE OR REPLACE FUNCTION etl_snapshot_domains() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    hi date;
BEGIN
    IF NEW.status = 'complete' AND NEW.purged_at IS NULL THEN
        hi := coalesce((SELECT min(c.snapshot_date) FROM etl_snapshot c
                        WHERE c.target_set_id = NEW.target_set_id
                          AND c.snapshot_date > NEW.snapshot_date AND c.status = 'complete'
                          AND c.purged_at IS NULL), 'infinity');
        IF EXISTS (SELECT 1 FROM domain_intersection_domain_version w
                   WHERE w.target_set_id = NEW.target_set_id) THEN
            PERFORM snapshot_domains(NEW.target_set_id, NEW.snapshot_date, hi);
        ELSE
            PERFORM first_domains(NEW.target_set_id, NEW.snapshot_date, hi);
        END IF;
    ELSIF NEW.purged_at IS NOT NULL THEN
        PERFORM purge_domains(NEW.target_set_id);
    END IF;
    RETURN NULL;
END $$;

COMMENT ON FUNCTION first_domains(bigint, date, date) IS
    'first_domains(p_set, p_date, hi): the domain versions of (p_set, p_date) when the set has '
    'none yet: its versions beginning at p_date folded per referring domain, valid up to hi (the '
    'next complete date). What snapshot_domains() computes in that case, in one statement.';
COMMENT ON FUNCTION etl_snapshot_domains() IS
    'Trigger of etl_snapshot: a control row published (complete, not purged) gets its domain '
    'versions up to the next complete date (first_domains() when the set has none yet, else '
    'snapshot_domains()); a purged one cuts them back (purge_domains()).';

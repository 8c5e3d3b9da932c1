-- intersect-etl migration 024: a night's publish keeps the fingerprints of
-- the set's current versions; the next night takes them instead of reading
-- every current version.
--
-- 1. A night judges its rows against fingerprints of the set's current
-- versions (src/curmap.c: referring domain, target key and digest, 12
-- bytes), which it read from domain_intersection_version in one pass as its
-- first pages came: a read of every current version's heap row, 87 ms of a
-- 0.57 s unchanged night at 100,000 rows (`intersect-etl run -v` on the
-- benchmark's set), the night's pages waiting on it. The loader
-- fingerprints every row of a night's answer anyway, to judge it; each page
-- now keeps its rows' fingerprints with its keys (etl_page_keys.fps), and
-- the publish of an answer where no key came twice keeps them all: they are
-- then the fingerprints of the set's current versions, exactly, under the
-- sync number the publish took (etl_kept_digests, keep_digests()). The next
-- night takes them while that number is still the highest of the set's
-- control rows (any publish or failure of the set since moves it; other
-- runs' staged rows are dropped before a run reads, src/load.c), and reads
-- the versions as before otherwise. A purge moves the number too, but it
-- deletes ended versions and moves the current ones' valid_from only:
-- every current version's fingerprint stays, and purge_snapshots() carries
-- kept fingerprints that were valid forward to its own number. Counted as a
-- change, a job with retention (a date purged after every night) would
-- never take them. A first load keeps none: its rows
-- are not judged, and its first night reads the versions.
--
-- Locks: etl_page_keys (ADD COLUMN, nullable, no default: no rewrite; its
-- rows live from a page to its set's publish); a new table; replacing
-- functions.

SET LOCAL lock_timeout = '10s';

ALTER TABLE etl_page_keys ADD COLUMN fps bytea;
-- (written and deleted within a night, like its arrays: not compressed)
ALTER TABLE etl_page_keys ALTER COLUMN fps SET STORAGE EXTERNAL;
COMMENT ON COLUMN etl_page_keys.fps IS
    'On a night the loader judged: the fingerprint of each of the page''s rows, sent or not '
    '(src/curmap.c: 12 bytes, the 64-bit half then the 32-bit one, little-endian), in row '
    'order; NULL when the database judged the rows. keep_digests() keeps them at the publish.';

CREATE TABLE etl_kept_digests (
    target_set_id bigint PRIMARY KEY REFERENCES target_set,
    sync_seq      bigint NOT NULL,
    fps           bytea  NOT NULL CHECK (octet_length(fps) % 12 = 0)
);
-- (12 bytes of hash a row: nothing to compress)
ALTER TABLE etl_kept_digests ALTER COLUMN fps SET STORAGE EXTERNAL;
COMMENT ON TABLE etl_kept_digests IS
    'The fingerprints of a set''s current versions as the publish of a night left them, which '
    'the next night judges its rows against instead of reading the versions; the loader''s own, '
    'not for reading. A change to how src/curmap.c fingerprints a row must come with a migration '
    'that empties this table.';
COMMENT ON COLUMN etl_kept_digests.target_set_id IS 'The target set.';
COMMENT ON COLUMN etl_kept_digests.sync_seq IS
    'The sync number the publish that kept them took (or a purge since, which changes no current '
    'version''s fingerprint): they are the current versions'' while it is the highest of the '
    'set''s etl_snapshot rows.';
COMMENT ON COLUMN etl_kept_digests.fps IS
    'One fingerprint per current version, 12 bytes each as in etl_page_keys.fps, in no order.';

-- 1. As in sql/023, with the page's fingerprints.
DROP FUNCTION stage_page(bigint, bigint, bigint, date, boolean, text[], smallint[], integer[],
                         uuid[], text[], text[], bigint[], integer[], boolean[], text[], integer[]);
CREATE FUNCTION stage_page(p_run bigint, p_set bigint, p_offset bigint, p_date date,
                           p_lookup boolean, p_domains text[], p_keys smallint[],
                           p_positions integer[], p_digests uuid[], p_dims text[],
                           p_entry_keys text[], p_links bigint[], p_entries integer[],
                           p_sent boolean[], p_item_domains text[],
                           p_item_positions integer[], p_fps bytea) RETURNS SETOF integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    send   boolean[];
    i_dom  text[];
    i_pos  integer[];
    ends   tid[];      -- the current versions the sent rows replace (sql/023)
    legacy boolean;    -- one of them has no digest
    marker bigint;
BEGIN
    i_dom := p_item_domains;
    i_pos := p_item_positions;
    IF i_dom IS NULL OR i_pos IS NULL THEN
        SELECT coalesce(array_agg(x.d ORDER BY x.p), '{}'),
               coalesce(array_agg(x.p ORDER BY x.p), '{}')
        INTO i_dom, i_pos
        FROM (SELECT DISTINCT ON (u.p) u.d, u.p FROM unnest(p_domains, p_positions) u (d, p)
              ORDER BY u.p) x;
    END IF;
    IF p_lookup THEN
        SELECT array_agg(c.valid_to IS DISTINCT FROM 'infinity' OR c.digest IS DISTINCT FROM u.g
                         ORDER BY u.i),
               coalesce(array_agg(c.ctid) FILTER (WHERE c.valid_to = 'infinity'
                                                   AND c.digest IS DISTINCT FROM u.g), '{}'),
               coalesce(bool_or(c.valid_to = 'infinity' AND c.digest IS NULL), false)
        INTO send, ends, legacy
        FROM unnest(p_domains, p_keys, p_digests) WITH ORDINALITY u (d, k, g, i)
        LEFT JOIN LATERAL (
            SELECT v.ctid, v.valid_to, v.digest FROM domain_intersection_version v
            WHERE v.target_set_id = p_set AND v.referring_domain = u.d AND v.target_key = u.k
              AND v.valid_from < p_date
            ORDER BY v.valid_from DESC LIMIT 1) c ON true;
    ELSIF NOT true = ANY (p_sent) THEN
        ends := '{}';  -- (a page of unchanged rows: nothing to look up)
        legacy := false;
    ELSIF p_sent IS NOT NULL THEN
        -- (the loader judged the rows: a sent row's current version, if
        -- its key has one, differs from it; the rows not sent look up
        -- nothing)
        SELECT coalesce(array_agg(c.ctid) FILTER (WHERE c.valid_to = 'infinity'), '{}'),
               coalesce(bool_or(c.valid_to = 'infinity' AND c.digest IS NULL), false)
        INTO ends, legacy
        FROM unnest(p_domains, p_keys, p_sent) u (d, k, s)
        CROSS JOIN LATERAL (
            SELECT v.ctid, v.valid_to, v.digest FROM domain_intersection_version v
            WHERE v.target_set_id = p_set AND v.referring_domain = u.d AND v.target_key = u.k
              AND v.valid_from < p_date
            ORDER BY v.valid_from DESC LIMIT 1) c
        WHERE u.s;
    END IF;
    IF legacy THEN
        ends := NULL;
    ELSIF ends <> '{}' THEN  -- (a page with none to end needs no sync number)
        SELECT max(c.sync_seq) INTO marker FROM etl_snapshot c WHERE c.target_set_id = p_set;
    END IF;
    send := coalesce(send, p_sent, array_fill(true, ARRAY[cardinality(p_domains)]));
    INSERT INTO etl_page_keys AS k
    VALUES (p_run, p_set, p_offset, p_domains, p_keys, p_positions, send, p_dims, p_entry_keys,
            p_links, p_entries, i_dom, i_pos,
            (SELECT count(*) FROM unnest(send) b WHERE NOT b), ends, marker, p_fps)
    ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET
        domains = EXCLUDED.domains, keys = EXCLUDED.keys, positions = EXCLUDED.positions,
        sent = EXCLUDED.sent, dims = EXCLUDED.dims, entry_keys = EXCLUDED.entry_keys,
        links = EXCLUDED.links, entries = EXCLUDED.entries,
        item_domains = EXCLUDED.item_domains, item_positions = EXCLUDED.item_positions,
        kept = EXCLUDED.kept, ends = EXCLUDED.ends, ends_seq = EXCLUDED.ends_seq,
        fps = EXCLUDED.fps;
    RETURN QUERY SELECT s.i::integer FROM unnest(send) WITH ORDINALITY s (b, i) WHERE s.b;
END $$;

-- 1. What the publish of run p_run's answer for set p_set (sync number seq,
-- its control row written) leaves for the next night: every row's
-- fingerprint when each page kept them and they number the snapshot's rows
-- (no key came twice); else nothing, and the next night reads the versions.
CREATE FUNCTION keep_digests(p_run bigint, p_set bigint, seq bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    fps     bytea;
    missing bigint;
    n_rows  bigint;
    n_snap  bigint;
BEGIN
    DELETE FROM etl_kept_digests WHERE target_set_id = p_set;
    SELECT string_agg(k.fps, ''::bytea ORDER BY k.page_offset), count(*) - count(k.fps),
           sum(cardinality(k.keys))
    INTO fps, missing, n_rows
    FROM etl_page_keys k WHERE k.run_id = p_run AND k.target_set_id = p_set;
    SELECT c.rows INTO n_snap FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.sync_seq = seq AND c.status = 'complete';
    IF missing <> 0 OR n_rows IS DISTINCT FROM n_snap
       OR octet_length(fps) IS DISTINCT FROM 12 * n_rows THEN
        RETURN false;
    END IF;
    INSERT INTO etl_kept_digests VALUES (p_set, seq, fps);
    RETURN true;
END $$;

-- 1. As in sql/010, carrying kept fingerprints that held before the purge
-- forward to its sync number.
CREATE OR REPLACE FUNCTION purge_snapshots(p_set bigint, p_cutoff date) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    keep  date;
    n     integer;
    seq   bigint;
    wait  text;
    was   bigint;  -- the set's sync number before (sql/024)
BEGIN
    SELECT min(snapshot_date) INTO keep FROM etl_snapshot
    WHERE target_set_id = p_set AND status = 'complete' AND purged_at IS NULL
      AND snapshot_date >= least(p_cutoff, (SELECT max(snapshot_date) FROM etl_snapshot
                                           WHERE target_set_id = p_set AND status = 'complete'));
    IF keep IS NULL OR NOT EXISTS (
            SELECT 1 FROM etl_snapshot WHERE target_set_id = p_set AND snapshot_date < keep
                                         AND status = 'complete' AND purged_at IS NULL) THEN
        RETURN 0;  -- nothing to purge: the counter is not taken
    END IF;
    -- The counter is held only by writers of the ETL (a publish of another
    -- job, up to its commit), never by a report: worth waiting for longer
    -- than the maintenance lock_timeout meant for reports.
    SELECT max(c.sync_seq) INTO was FROM etl_snapshot c WHERE c.target_set_id = p_set;
    wait := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', '60s', true);
    seq := sync_seq_take();
    PERFORM set_config('lock_timeout', wait, true);
    UPDATE etl_snapshot SET purged_at = now(), sync_seq = seq
    WHERE target_set_id = p_set AND snapshot_date < keep AND status = 'complete'
      AND purged_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;

    -- Versions only purged dates used go; those reaching past them now start
    -- at keep (another key in the view: the old one is a deletion).
    WITH gone AS (
        DELETE FROM domain_intersection_version WHERE target_set_id = p_set AND valid_to <= keep
        RETURNING referring_domain, target_key, valid_from)
    INSERT INTO etl_sync_deleted (sync_seq, view_name, target_set_id, referring_domain, target_key,
                                  valid_from)
    SELECT seq, 'history', p_set, referring_domain, target_key, valid_from FROM gone;
    INSERT INTO etl_sync_deleted (sync_seq, view_name, target_set_id, referring_domain, target_key,
                                  valid_from)
    SELECT seq, 'history', p_set, referring_domain, target_key, valid_from
    FROM domain_intersection_version WHERE target_set_id = p_set AND valid_from < keep;
    UPDATE domain_intersection_version SET valid_from = keep, sync_seq = seq
    WHERE target_set_id = p_set AND valid_from < keep;
    DELETE FROM domain_intersection_order WHERE target_set_id = p_set AND valid_to <= keep;
    UPDATE domain_intersection_order SET valid_from = keep
    WHERE target_set_id = p_set AND valid_from < keep;

    PERFORM snapshot_stats(p_set, keep);
    -- no current version's fingerprint changed: kept ones that held still do
    UPDATE etl_kept_digests SET sync_seq = seq WHERE target_set_id = p_set AND sync_seq = was;
    PERFORM sync_tidy(seq);
    RETURN n;
END $$;

-- 1. As in sql/018, keeping a direct publish's fingerprints (keep_digests())
-- before its page keys go.
CREATE OR REPLACE FUNCTION publish_snapshot(p_run bigint, p_set bigint, p_date date, p_total bigint,
                                 OUT outcome text, OUT staged bigint, OUT ledger bigint,
                                 OUT domains bigint, OUT expected_domains bigint)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    st       text;
    hash     text;
    nxt      date;
    hi       date;
    verify   boolean;
    direct   boolean;
    latest   date;
    seq      bigint;
BEGIN
    SELECT rs.status, rs.request_hash, rs.direct INTO st, hash, direct FROM etl_run_set rs
    WHERE rs.run_id = p_run AND rs.target_set_id = p_set FOR UPDATE;
    IF st = 'complete' THEN
        outcome := 'already';
        RETURN;
    END IF;
    SELECT coalesce(sum(coalesce(e.staged, e.rows)), 0) INTO ledger FROM etl_page e
    WHERE e.run_id = p_run AND e.target_set_id = p_set AND e.status = 'loaded';
    SELECT r.replay_of IS NOT NULL INTO verify FROM etl_run r WHERE r.run_id = p_run;
    SELECT min(c.snapshot_date) INTO nxt FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.snapshot_date > p_date AND c.status = 'complete'
      AND c.purged_at IS NULL;
    hi := coalesce(nxt, 'infinity');
    SELECT max(c.snapshot_date) INTO latest FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.status = 'complete' AND c.purged_at IS NULL;
    IF hi = 'infinity' THEN
        -- (found by the runs, not by reading this run's own staged rows)
        PERFORM discard_staged(rs.run_id, p_set)
        FROM etl_run_set rs
        JOIN etl_run r ON r.run_id = rs.run_id
        WHERE rs.target_set_id = p_set AND rs.direct AND rs.run_id <> p_run
          AND rs.status <> 'complete'
          AND r.snapshot_date > coalesce(latest, '-infinity') AND r.snapshot_date <= p_date
          AND EXISTS (SELECT 1 FROM etl_page e
                      WHERE e.run_id = rs.run_id AND e.target_set_id = p_set
                        AND e.status = 'loaded');
    END IF;
    IF direct AND latest >= p_date THEN
        -- (never while the job's lock is held: a run of its date or a later
        -- one published in between) its rows are fetched again
        PERFORM discard_staged(p_run, p_set);
        outcome := 'short';
        staged := 0;
        RETURN;
    END IF;
    -- From here the counter is locked until commit (publishes queue here).
    seq := sync_seq_take();

    -- Undone when the staged rows are not what the ledger says: 'short'.
    BEGIN
        IF direct THEN
            staged := publish_direct(p_run, p_set, p_date, seq, ledger);
        ELSE
            PERFORM publish_versions(p_run, p_set, p_date, hi, verify, seq);
            PERFORM publish_order(p_run, p_set, p_date, hi);
            DELETE FROM domain_intersection_pending WHERE run_id = p_run AND target_set_id = p_set;
            GET DIAGNOSTICS staged = ROW_COUNT;
            IF staged <> ledger THEN
                RAISE EXCEPTION USING ERRCODE = 'ETL01', MESSAGE = 'staged rows differ from the ledger';
            END IF;
        END IF;
    EXCEPTION WHEN SQLSTATE 'ETL01' THEN
        outcome := 'short';
        IF direct THEN
            SELECT count(*) INTO staged FROM domain_intersection_version v
            WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from = p_date;
        END IF;
        RETURN;
    END;

    -- The control row: what readers see of this date from now on.
    SELECT t.max_rows INTO expected_domains FROM target_set t WHERE t.target_set_id = p_set;
    expected_domains := CASE WHEN p_total IS NOT NULL THEN least(p_total, expected_domains) END;
    INSERT INTO etl_snapshot AS c (target_set_id, snapshot_date, status, run_id,
                                   request_hash, total_count, expected_domains,
                                   published_at, purged_at, last_run_id, last_error, sync_seq)
    VALUES (p_set, p_date, 'complete', p_run, hash, p_total, expected_domains, now(), NULL,
            p_run, NULL, seq)
    ON CONFLICT (target_set_id, snapshot_date) DO UPDATE SET
        status = 'complete', run_id = p_run, request_hash = hash, total_count = p_total,
        expected_domains = EXCLUDED.expected_domains, published_at = now(), purged_at = NULL,
        last_run_id = p_run, last_error = NULL, sync_seq = seq;
    IF direct THEN
        PERFORM snapshot_stats_direct(p_set, p_date);
        PERFORM keep_digests(p_run, p_set, seq);
        DELETE FROM etl_page_keys WHERE run_id = p_run AND target_set_id = p_set;
    ELSE
        PERFORM snapshot_stats(p_set, p_date);
    END IF;
    IF nxt IS NOT NULL THEN
        -- it is now compared with this answer (rule 4)
        PERFORM snapshot_stats(p_set, nxt);
        UPDATE etl_snapshot SET published_at = now()
        WHERE target_set_id = p_set AND snapshot_date = nxt;
    END IF;
    PERFORM sync_tidy(seq);
    SELECT c.domains INTO domains FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.snapshot_date = p_date;
    outcome := 'published';
END $$;

COMMENT ON FUNCTION stage_page(bigint, bigint, bigint, date, boolean, text[], smallint[], integer[],
                               uuid[], text[], text[], bigint[], integer[], boolean[], text[],
                               integer[], bytea) IS
    'A page of a direct load: records its keys (etl_page_keys), with its rows'' fingerprints '
    'when the loader judged them (p_fps), and answers the ordinals of the rows to write: those '
    'whose key has no current version, or one with another digest (p_lookup), or those p_sent '
    'says (the loader judged them), or all of them.';
COMMENT ON FUNCTION purge_snapshots(bigint, date) IS
    'purge_snapshots(p_set, p_cutoff): retention for one target set. Complete snapshots before p_cutoff are '
    'purged (control rows kept, with purged_at, their measures and change rows as they were), except the '
    'set''s newest complete one, which is never removed. Versions and order rows only purged dates used are '
    'deleted; those reaching past them start at the oldest kept date, which then has nothing to compare with '
    'and is recomputed as a restart (its change rows go). Fingerprints kept for the next night '
    '(etl_kept_digests) that held before still hold, and take its sync number. Row locks only, no DDL; '
    'takes the sync number only when it purges. Returns the number of dates purged.';
COMMENT ON FUNCTION keep_digests(bigint, bigint, bigint) IS
    'keep_digests(p_run, p_set, seq): keeps, for the next night of set p_set, the fingerprints '
    'run p_run''s pages kept (etl_page_keys.fps) under the sync number seq of its publish, when '
    'every page kept them and they number the published snapshot''s rows; answers whether it '
    'did (else the set keeps none). Part of publish_snapshot().';

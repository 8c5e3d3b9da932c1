-- intersect-etl migration 018: less work per night (issue 18).
--
-- 1. A set's first domain versions in one statement.
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
-- 2. Keys repeated across pages found by the publish, not by the loader.
--
-- A direct load's publish takes the pages' counts and item orders as the
-- answer when no key came twice (offset paging can show a referring domain
-- on two pages when the ranking moves). Until here the loader kept a Bloom
-- filter of the set's keys to flag the pages that might repeat one
-- (etl_page_keys.maybe_dup): 5 MB at 1,000,000 rows, the one part of its
-- memory that grew with the set, and state every page's transform had to
-- share. The publish now looks for a repeated referring domain among the
-- pages' items itself, once, as it builds the result order from them (a
-- key repeats only where its domain does): a hash of the snapshot's domains,
-- and the key-by-key answer only when one repeats. A resumed run needs no
-- special case either: its earlier pages' items are in etl_page_keys.
--
-- 3. Staged versions of other runs found by the runs. Before a publish
-- brings a date into a complete range, versions other runs staged directly
-- there go (discard_staged()). They were found by reading every version
-- staged after the latest complete date, this run's own among them: all of
-- a first load's rows (95 ms at 100,000 rows). A run that staged versions
-- directly and did not publish them has loaded pages in the ledger until
-- they are discarded, so the runs are found there instead.
--
-- Locks: ACCESS EXCLUSIVE on etl_page_keys (a column dropped; the table is
-- emptied at every publish) and replacing functions.

SET LOCAL lock_timeout = '10s';

ALTER TABLE etl_page_keys DROP COLUMN maybe_dup;
DROP FUNCTION stage_page(bigint, bigint, bigint, date, boolean, text[], smallint[], integer[], uuid[],
                         text[], text[], bigint[], integer[], boolean, boolean[], text[], integer[]);

-- As in sql/016, without the loader's flag.
CREATE FUNCTION stage_page(p_run bigint, p_set bigint, p_offset bigint, p_date date,
                           p_lookup boolean, p_domains text[], p_keys smallint[],
                           p_positions integer[], p_digests uuid[], p_dims text[],
                           p_entry_keys text[], p_links bigint[], p_entries integer[],
                           p_sent boolean[], p_item_domains text[], p_item_positions integer[])
RETURNS SETOF integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    send  boolean[];
    i_dom text[];
    i_pos integer[];
BEGIN
    i_dom := p_item_domains;
    i_pos := p_item_positions;
    IF i_dom IS NULL OR i_pos IS NULL THEN
        SELECT coalesce(array_agg(x.d ORDER BY x.p), '{}'), coalesce(array_agg(x.p ORDER BY x.p), '{}')
        INTO i_dom, i_pos
        FROM (SELECT DISTINCT ON (u.p) u.d, u.p FROM unnest(p_domains, p_positions) u (d, p)
              ORDER BY u.p) x;
    END IF;
    IF p_lookup THEN
        SELECT array_agg(c.valid_to IS DISTINCT FROM 'infinity' OR c.digest IS DISTINCT FROM u.g
                         ORDER BY u.i)
        INTO send
        FROM unnest(p_domains, p_keys, p_digests) WITH ORDINALITY u (d, k, g, i)
        LEFT JOIN LATERAL (
            SELECT v.valid_to, v.digest FROM domain_intersection_version v
            WHERE v.target_set_id = p_set AND v.referring_domain = u.d AND v.target_key = u.k
              AND v.valid_from < p_date
            ORDER BY v.valid_from DESC LIMIT 1) c ON true;
    END IF;
    send := coalesce(send, p_sent, array_fill(true, ARRAY[cardinality(p_domains)]));
    INSERT INTO etl_page_keys AS k
    VALUES (p_run, p_set, p_offset, p_domains, p_keys, p_positions, send, p_dims, p_entry_keys,
            p_links, p_entries, i_dom, i_pos,
            (SELECT count(*) FROM unnest(send) b WHERE NOT b))
    ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET
        domains = EXCLUDED.domains, keys = EXCLUDED.keys, positions = EXCLUDED.positions,
        sent = EXCLUDED.sent, dims = EXCLUDED.dims, entry_keys = EXCLUDED.entry_keys,
        links = EXCLUDED.links, entries = EXCLUDED.entries,
        item_domains = EXCLUDED.item_domains, item_positions = EXCLUDED.item_positions,
        kept = EXCLUDED.kept;
    RETURN QUERY SELECT s.i::integer FROM unnest(send) WITH ORDINALITY s (b, i) WHERE s.b;
END $$;

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

-- As in sql/016, the repeated keys found here (see 2. above).
CREATE OR REPLACE FUNCTION publish_direct(p_run bigint, p_set bigint, p_date date, seq bigint, ledger bigint)
RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    staged    bigint;
    exact     boolean;  -- no domain came twice: the pages' counts and orders add up
    n_current bigint;
    n_kept    bigint;
    n_closed  bigint := 0;
    n_same    bigint;
    o_dom     text[];
    o_pos     integer[];
BEGIN
    SELECT count(*) INTO staged FROM domain_intersection_version v
    WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from = p_date;
    IF staged <> ledger THEN
        RAISE EXCEPTION USING ERRCODE = 'ETL01', MESSAGE = 'staged rows differ from the ledger';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS publish_answer (
        referring_domain text, target_key smallint, position integer, sent boolean, n integer)
        ON COMMIT DELETE ROWS;
    TRUNCATE pg_temp.publish_answer;
    -- The result order is the pages' items in page order, when no referring
    -- domain is among them twice (then no key can be).
    SELECT array_agg(u.d ORDER BY k.page_offset, u.i), array_agg(u.p ORDER BY k.page_offset, u.i)
    INTO o_dom, o_pos
    FROM etl_page_keys k
    CROSS JOIN LATERAL unnest(k.item_domains, k.item_positions) WITH ORDINALITY u (d, p, i)
    WHERE k.run_id = p_run AND k.target_set_id = p_set;
    exact := coalesce(cardinality(o_dom), 0)
             = (SELECT count(*) FROM (SELECT DISTINCT x.d FROM unnest(o_dom) x (d)) y);
    IF exact THEN
        SELECT coalesce(sum(k.kept), 0) INTO n_kept FROM etl_page_keys k
        WHERE k.run_id = p_run AND k.target_set_id = p_set;
    ELSE
        -- A key met more than once: the row of its first place in result
        -- order is the answer's (sql/001's rule), sent or not.
        PERFORM publish_answer_keys(p_run, p_set, true);
        DELETE FROM domain_intersection_version v USING pg_temp.publish_answer a
        WHERE a.n > 1 AND NOT a.sent AND v.target_set_id = p_set
          AND v.referring_domain = a.referring_domain AND v.target_key = a.target_key
          AND v.valid_from = p_date;
        SELECT count(*) INTO n_kept FROM pg_temp.publish_answer WHERE NOT sent;
        SELECT array_agg(d ORDER BY p, d), array_agg(p ORDER BY p, d) INTO o_dom, o_pos
        FROM (SELECT referring_domain AS d, min(position) AS p FROM pg_temp.publish_answer
              GROUP BY referring_domain) x;
    END IF;

    -- Every current version is one of the latest snapshot's rows.
    SELECT c.rows INTO n_current FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.snapshot_date < p_date AND c.status = 'complete'
      AND c.purged_at IS NULL
    ORDER BY c.snapshot_date DESC LIMIT 1;
    IF coalesce(n_current, 0) > 0 THEN
        -- Sent keys with a current version: values equal to it (a version
        -- written before row digests, or under another digest) continue it;
        -- others end it at p_date.
        CREATE TEMP TABLE IF NOT EXISTS publish_prior (
            referring_domain text, target_key smallint, valid_from date, same boolean, digest uuid)
            ON COMMIT DELETE ROWS;
        TRUNCATE pg_temp.publish_prior;
        INSERT INTO pg_temp.publish_prior
        SELECT n.referring_domain, n.target_key, (o.c).valid_from,
               (o.c).digest IS DISTINCT FROM n.digest AND same_version_values(o.c, n), n.digest
        FROM domain_intersection_version n
        CROSS JOIN LATERAL (
            SELECT c FROM domain_intersection_version c
            WHERE c.target_set_id = p_set AND c.referring_domain = n.referring_domain
              AND c.target_key = n.target_key AND c.valid_from < p_date
            ORDER BY c.valid_from DESC LIMIT 1) o
        WHERE n.target_set_id = p_set AND n.valid_to = 'infinity' AND n.valid_from = p_date
          AND (o.c).valid_to = 'infinity';
        WITH same AS (
            DELETE FROM domain_intersection_version v USING pg_temp.publish_prior g
            WHERE g.same AND v.target_set_id = p_set AND v.referring_domain = g.referring_domain
              AND v.target_key = g.target_key AND v.valid_from = p_date
            RETURNING v.referring_domain)
        SELECT count(*) INTO n_same FROM same;
        UPDATE domain_intersection_version v SET digest = g.digest FROM pg_temp.publish_prior g
        WHERE g.same AND v.target_set_id = p_set AND v.referring_domain = g.referring_domain
          AND v.target_key = g.target_key AND v.valid_from = g.valid_from;
        UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq
        FROM pg_temp.publish_prior g
        WHERE NOT g.same AND v.target_set_id = p_set AND v.referring_domain = g.referring_domain
          AND v.target_key = g.target_key AND v.valid_from = g.valid_from;
        GET DIAGNOSTICS n_closed = ROW_COUNT;
        n_closed := n_closed + n_same;
        -- Keys the answer lacks: only when the keys kept, continued and
        -- changed do not account for every current version.
        IF n_kept + n_closed < n_current THEN
            IF exact THEN
                PERFORM publish_answer_keys(p_run, p_set, false);
            END IF;
            UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq
            WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from < p_date
              AND NOT EXISTS (SELECT 1 FROM pg_temp.publish_answer a
                              WHERE a.referring_domain = v.referring_domain
                                AND a.target_key = v.target_key);
        END IF;
    END IF;
    PERFORM publish_order_arrays(p_set, p_date, 'infinity', coalesce(o_dom, '{}'),
                                 coalesce(o_pos, '{}'));
    RETURN staged;
END $$;

-- As in sql/016; the runs whose staged versions go are found by their
-- ledger (3. above).
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

COMMENT ON FUNCTION first_domains(bigint, date, date) IS
    'first_domains(p_set, p_date, hi): the domain versions of (p_set, p_date) when the set has '
    'none yet: its versions beginning at p_date folded per referring domain, valid up to hi (the '
    'next complete date). What snapshot_domains() computes in that case, in one statement.';
COMMENT ON FUNCTION etl_snapshot_domains() IS
    'Trigger of etl_snapshot: a control row published (complete, not purged) gets its domain '
    'versions up to the next complete date (first_domains() when the set has none yet, else '
    'snapshot_domains()); a purged one cuts them back (purge_domains()).';
COMMENT ON FUNCTION stage_page(bigint, bigint, bigint, date, boolean, text[], smallint[], integer[], uuid[], text[], text[], bigint[], integer[], boolean[], text[], integer[]) IS
    'A page of a direct load: records its keys (etl_page_keys) and answers the ordinals of the rows '
    'to write: those whose key has no current version, or one with another digest (p_lookup), or '
    'those p_sent says (the loader judged them), or all of them.';

-- intersect-etl migration 019: a first load's domain rows from the loader.
--
-- A set's first publish folded the night's versions into its domain
-- versions (sql/018's first_domains(): a scan of the date's versions, a
-- grouping by referring domain, an insert per domain): 0.35 s of a 100,000
-- row first load, all of it after the last page, while nothing else ran
-- (scripts/bench --only diag). The loader has each item's rows together:
-- it folds them itself (src/fold.c, the same aggregates) and COPYs one
-- domain row per item in the page's transaction, beside its versions, with
-- the run's id and the night's date, unseen by readers until the control
-- row says the date is complete (every view reads domain versions of
-- complete dates only), as the versions are.
--
-- The loader writes them only for a set whose direct load has no current
-- version and no domain row other than this run's of this date (the start
-- of the set says so, load_start_set()). The publish keeps them only when
-- they are exactly the answer's: one per item, no referring domain among the
-- items twice, and the set has no other domain row (staged_domains()); else
-- they go and the trigger folds the night in SQL as before. A page redone
-- through di_stage (a key repeated) sends none, so the count tells. The
-- trigger takes them as they are when the set's domain rows are this run's
-- of this date and nothing else.
--
-- A run's directly staged rows that are discarded (discard_staged(), and
-- the run start's cleanup in src/load.c) take its domain rows with them.
--
-- Locks: replacing functions only.

SET LOCAL lock_timeout = '10s';

-- As in sql/016, the run's domain rows too.
CREATE OR REPLACE FUNCTION discard_staged(p_run bigint, p_set bigint) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    DELETE FROM domain_intersection_pending WHERE run_id = p_run AND target_set_id = p_set;
    DELETE FROM domain_intersection_version v USING etl_run r
    WHERE r.run_id = p_run AND v.target_set_id = p_set AND v.valid_to = 'infinity'
      AND v.valid_from = r.snapshot_date AND v.run_id = p_run
      AND NOT EXISTS (SELECT 1 FROM etl_snapshot s
                      WHERE s.target_set_id = p_set AND s.snapshot_date = r.snapshot_date
                        AND s.status = 'complete');
    DELETE FROM domain_intersection_domain_version w USING etl_run r
    WHERE r.run_id = p_run AND w.target_set_id = p_set AND w.valid_to = 'infinity'
      AND w.valid_from = r.snapshot_date AND w.run_id = p_run
      AND NOT EXISTS (SELECT 1 FROM etl_snapshot s
                      WHERE s.target_set_id = p_set AND s.snapshot_date = r.snapshot_date
                        AND s.status = 'complete');
    DELETE FROM etl_page_keys WHERE run_id = p_run AND target_set_id = p_set;
    UPDATE etl_page SET status = 'discarded'
    WHERE run_id = p_run AND target_set_id = p_set AND status = 'loaded';
$$;

CREATE FUNCTION staged_domains(p_run bigint, p_set bigint, p_date date, p_items bigint)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM domain_intersection_domain_version w
    WHERE w.target_set_id = p_set AND w.valid_from = p_date AND w.run_id = p_run;
    IF n > 0 AND (p_items IS DISTINCT FROM n
                  OR EXISTS (SELECT 1 FROM domain_intersection_domain_version w
                             WHERE w.target_set_id = p_set
                               AND (w.valid_from <> p_date OR w.run_id <> p_run))) THEN
        DELETE FROM domain_intersection_domain_version w
        WHERE w.target_set_id = p_set AND w.valid_from = p_date AND w.run_id = p_run;
    END IF;
END $$;

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
                   WHERE w.target_set_id = NEW.target_set_id
                     AND (w.valid_from <> NEW.snapshot_date OR w.run_id <> NEW.run_id)) THEN
            PERFORM snapshot_domains(NEW.target_set_id, NEW.snapshot_date, hi);
        ELSIF NOT EXISTS (SELECT 1 FROM domain_intersection_domain_version w
                          WHERE w.target_set_id = NEW.target_set_id) THEN
            PERFORM first_domains(NEW.target_set_id, NEW.snapshot_date, hi);
        END IF;
        -- else the loader wrote them and staged_domains() kept them
    ELSIF NEW.purged_at IS NOT NULL THEN
        PERFORM purge_domains(NEW.target_set_id);
    END IF;
    RETURN NULL;
END $$;

-- As in sql/018, with the loader's domain rows judged (staged_domains()).
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
    -- Domain rows the loader wrote (a first load): kept when they are one per
    -- item of an answer without a repeated domain, else folded again.
    PERFORM staged_domains(p_run, p_set, p_date,
                           CASE WHEN exact THEN coalesce(cardinality(o_dom), 0) END);
    PERFORM publish_order_arrays(p_set, p_date, 'infinity', coalesce(o_dom, '{}'),
                                 coalesce(o_pos, '{}'));
    RETURN staged;
END $$;

COMMENT ON FUNCTION discard_staged(bigint, bigint) IS
    'Removes what a run staged for a set and never published (pending rows, directly staged '
    'versions and domain rows, page keys) and marks its loaded pages discarded, to be fetched again.';
COMMENT ON FUNCTION staged_domains(bigint, bigint, date, bigint) IS
    'staged_domains(p_run, p_set, p_date, p_items): the domain rows the loader wrote for a first load '
    '(sql/019) stay when they are p_items (the answer''s items, NULL when a referring domain came '
    'twice) and the set has no other domain row; otherwise they go, to be folded by the trigger. '
    'Part of publish_direct().';
COMMENT ON FUNCTION etl_snapshot_domains() IS
    'Trigger of etl_snapshot: a control row published (complete, not purged) gets its domain '
    'versions up to the next complete date (first_domains() when the set has none yet, none when '
    'its only ones are the publishing run''s of the date, which the loader wrote, else '
    'snapshot_domains()); a purged one cuts them back (purge_domains()).';

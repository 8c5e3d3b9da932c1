-- intersect-etl migration 021: a direct publish reads what it must, once.
--
-- On a night where a tenth of 100,000 rows changed, the publish took 0.62 s
-- of the night's 1.24 (scripts/bench --only diag), 0.29 s of it in two
-- statements (1., 2.); a first load's publish read its rows three times
-- (4.). Each step below was measured in a cluster of our own at defaults:
--
-- 1. Finding the current version of each sent key (publish_prior in
--    sql/016-019) compared the two versions' values column by column
--    (same_version_values()) wherever their digests differed: always, for a
--    key the loader sent because its digest differed. Digests are of the
--    values (src/transform.h): two digests compare as their values do. The
--    values are compared only where a digest is missing (a version written
--    before sql/009), and only then is the whole version read; 0.16 ->
--    0.05 s for 10,000 changed rows.
-- 2. Ending those versions joined them back by primary key, planned as a
--    hash join over every version of the set (the work table has no
--    statistics): a scan of the set per night. The versions found are kept
--    by their place (ctid) and ended by it: a tid scan each. Sound because
--    the publish holds the sync counter's lock (sync_seq_take()) from
--    before it reads them until it commits, and every writer of a set's
--    current versions (publishes, retention) takes it first; and checked:
--    the versions ended must be the versions found, or the publish fails
--    (and nothing of it stays).
-- 3. The result order was built by sorting every item of the answer (two
--    sorts of 50,000 rows in the aggregates, 63 ms); the pages are sorted
--    instead and their items taken in order (29 ms with the check).
-- 4. The staged rows were scanned three times: counted against the ledger,
--    summed for the date's measures (snapshot_stats_direct()), counted
--    again by the breakdown trigger to see whether the loader's page sums
--    could serve (30 ms each at 100,000 rows). The first scan takes the sums
--    too, and what it found is left for the other two (direct_facts()).
-- 5. Whether a referring domain came twice was a count of the distinct
--    domains of the answer (24 ms). On a first load the loader's domain
--    rows (sql/019) answer it: one per item, under a key of the domain.
-- 6. A date's result order is one row of two arrays (sql/015), TOASTed
--    with pglz: 20 ms to write the order of 50,000 domains, 0.28 s for a
--    million (scripts/bench --only diag), and read back whole by every view
--    that shows a position. lz4, where the server has it, as raw_page's body
--    (sql/002): 5 ms to write, reads 2.5 times as fast, 23% larger. Values
--    already stored keep their compression until rewritten.
-- 7. A night's domain versions come from the loader too, for the domains
--    whose rows changed (night_domains(), below).
--
-- If TRANSFORM_DIGEST_KEY or the digested text ever changes, the migration
-- that ships it sets the stored digests to NULL (their values are then
-- compared once, as before sql/009).
--
-- Locks: replacing functions; 6. takes domain_intersection_order's for a moment.

SET LOCAL lock_timeout = '10s';

-- 6. (the lock: a moment's, on a table a publish writes one row of)
DO $$
BEGIN
    ALTER TABLE domain_intersection_order
        ALTER COLUMN domains SET COMPRESSION lz4,
        ALTER COLUMN positions SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL; -- a server built without lz4 keeps the default (pglz)
END $$;

-- As in sql/019, but for the current versions of the sent keys (1., 2.), the
-- result order (3.), the staged rows' sums (4.) and the domain rows (5.;
-- staged_domains() is folded in).
CREATE OR REPLACE FUNCTION publish_direct(p_run bigint, p_set bigint, p_date date, seq bigint,
                                          ledger bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    staged    bigint;
    exact     boolean;  -- no domain came twice: the pages' counts and orders add up
    n_current bigint;
    n_kept    bigint;
    n_closed  bigint := 0;
    n_same    bigint;
    n_changed bigint;
    n_dom     bigint;   -- domain rows the loader wrote
    n_dom_all bigint;   -- domain rows of the date, any run's
    domains_done boolean := false;  -- the loader's domain rows are the date's
    o_dom     text[];
    o_pos     integer[];
    rank_sum  numeric;
    rank_n    bigint;
    links_sum numeric;
    links_n   bigint;
BEGIN
    -- (the one scan of the staged rows: the measures come with the count, 4.)
    SELECT count(*), sum(v.rank), count(v.rank), sum(v.backlinks), count(v.backlinks)
    INTO staged, rank_sum, rank_n, links_sum, links_n
    FROM domain_intersection_version v
    WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from = p_date;
    IF staged <> ledger THEN
        RAISE EXCEPTION USING ERRCODE = 'ETL01', MESSAGE = 'staged rows differ from the ledger';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS publish_answer (
        referring_domain text, target_key smallint, position integer, sent boolean, n integer)
        ON COMMIT DELETE ROWS;
    TRUNCATE pg_temp.publish_answer;
    -- The result order is the pages' items in page order, when no referring
    -- domain is among them twice (then no key can be). The pages are sorted,
    -- not their items (3.): a sorted subquery feeds an aggregate in its
    -- order, and each page's items are unnested in theirs. Checked: each
    -- page's first item is where the pages before it end (else sorted item
    -- by item).
    SELECT array_agg(u.d), array_agg(u.p) INTO o_dom, o_pos
    FROM (SELECT k.item_domains, k.item_positions FROM etl_page_keys k
          WHERE k.run_id = p_run AND k.target_set_id = p_set
          ORDER BY k.page_offset) k
    CROSS JOIN LATERAL unnest(k.item_domains, k.item_positions) u (d, p);
    IF NOT (SELECT coalesce(bool_and(o_pos[x.before + 1] = x.first), true)
            FROM (SELECT k.item_positions[1] AS first,
                         coalesce(sum(cardinality(k.item_positions))
                                  OVER (ORDER BY k.page_offset
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                             AS before
                  FROM etl_page_keys k
                  WHERE k.run_id = p_run AND k.target_set_id = p_set) x
            WHERE x.first IS NOT NULL) THEN
        SELECT array_agg(u.d ORDER BY u.p), array_agg(u.p ORDER BY u.p) INTO o_dom, o_pos
        FROM etl_page_keys k
        CROSS JOIN LATERAL unnest(k.item_domains, k.item_positions) u (d, p)
        WHERE k.run_id = p_run AND k.target_set_id = p_set;
    END IF;
    -- A domain row per item, under a key of (set, domain, date): no domain
    -- twice (5.). Else the items' domains are counted.
    SELECT count(*) FILTER (WHERE w.run_id = p_run), count(*) INTO n_dom, n_dom_all
    FROM domain_intersection_domain_version w
    WHERE w.target_set_id = p_set AND w.valid_from = p_date;
    exact := coalesce(cardinality(o_dom), 0) = n_dom AND n_dom > 0
             OR coalesce(cardinality(o_dom), 0)
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
        -- Sent keys with a current version: a version under another digest
        -- (written before row digests: NULL) continues when its values are
        -- the same; two digests compare as their values do (transform.h),
        -- so the values are read only then. Others end at p_date. Rows are
        -- met again by their place (tid): the publish holds the sync
        -- counter's lock, nothing else writes the set's versions meanwhile (2.).
        CREATE TEMP TABLE IF NOT EXISTS publish_closing (
            new_tid tid, old_tid tid, same boolean, digest uuid)
            ON COMMIT DELETE ROWS;
        TRUNCATE pg_temp.publish_closing;
        INSERT INTO pg_temp.publish_closing
        SELECT n.ctid, o.ctid,
               CASE WHEN o.digest IS NULL OR n.digest IS NULL
                    THEN same_version_values((SELECT c FROM domain_intersection_version c
                                              WHERE c.ctid = o.ctid), n)
                    ELSE o.digest = n.digest END,
               n.digest
        FROM domain_intersection_version n
        CROSS JOIN LATERAL (
            SELECT c.ctid, c.valid_to, c.digest FROM domain_intersection_version c
            WHERE c.target_set_id = p_set AND c.referring_domain = n.referring_domain
              AND c.target_key = n.target_key AND c.valid_from < p_date
            ORDER BY c.valid_from DESC LIMIT 1) o
        WHERE n.target_set_id = p_set AND n.valid_to = 'infinity' AND n.valid_from = p_date
          AND o.valid_to = 'infinity';
        SELECT count(*) FILTER (WHERE NOT g.same) INTO n_changed FROM pg_temp.publish_closing g;
        WITH same AS (
            DELETE FROM domain_intersection_version v USING pg_temp.publish_closing g
            WHERE g.same AND v.ctid = g.new_tid
            RETURNING 1)
        SELECT count(*) INTO n_same FROM same;
        UPDATE domain_intersection_version v SET digest = g.digest FROM pg_temp.publish_closing g
        WHERE g.same AND v.ctid = g.old_tid;
        UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq
        FROM pg_temp.publish_closing g
        WHERE NOT g.same AND v.ctid = g.old_tid;
        GET DIAGNOSTICS n_closed = ROW_COUNT;
        IF n_closed <> n_changed THEN
            RAISE EXCEPTION 'publish_direct: % of % changed versions of set % found to close',
                n_closed, n_changed, p_set;
        END IF;
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
    -- Domain rows the loader wrote: on a first load kept when they are one
    -- per item and the set has no other domain row (found by the index of
    -- valid_from, not by reading the date's); on a night when they are
    -- those of the changed domains (night_domains(), 7.); else they go and
    -- the trigger folds the date in SQL.
    IF n_dom > 0 AND coalesce(n_current, 0) > 0 THEN
        domains_done := night_domains(p_run, p_set, p_date, n_dom,
                                      exact AND coalesce(n_same, 0) = 0);
    ELSIF n_dom > 0 THEN
        domains_done := n_dom = coalesce(cardinality(o_dom), 0) AND n_dom_all = n_dom
            AND NOT EXISTS (SELECT 1 FROM domain_intersection_domain_version w
                            WHERE w.target_set_id = p_set AND w.valid_from < p_date)
            AND NOT EXISTS (SELECT 1 FROM domain_intersection_domain_version w
                            WHERE w.target_set_id = p_set AND w.valid_from > p_date);
        IF NOT domains_done THEN
            DELETE FROM domain_intersection_domain_version w
            WHERE w.target_set_id = p_set AND w.valid_from = p_date AND w.run_id = p_run;
        END IF;
    END IF;
    -- What the control row's triggers and measures may take from here (4.):
    -- the staged rows' sums hold when none of them went.
    PERFORM direct_facts_set(p_run, p_set, exact, domains_done,
                             CASE WHEN exact AND coalesce(n_same, 0) = 0 THEN
                                 ARRAY[staged, rank_sum, rank_n, links_sum, links_n,
                                       coalesce(n_changed, 0)] END);
    PERFORM publish_order_arrays(p_set, p_date, 'infinity', coalesce(o_dom, '{}'),
                                 coalesce(o_pos, '{}'));
    RETURN staged;
END $$;

-- 7. A night's domain versions (sql/017) were folded in SQL at the publish
-- (snapshot_domains(): 0.19 s of a 100,000-row night with a tenth changed,
-- after the last page). The loader folds every item with a row to write
-- into its domain row and COPYs it with the page (sql/019 did so for first
-- loads), unseen until the control row. At the publish they are the new
-- domain versions when they are exactly those of the domains whose rows
-- changed: the answer has no domain twice, no sent row turned out to equal
-- its version, one domain row per domain with a staged row, and every
-- domain that lost a key without sending a row lost all of them (its
-- version just ends). Then the current domain version of each of those
-- domains ends at the date, found and ended as the rows' are (2.). Else the
-- rows go and the trigger folds the date in SQL, as before.
CREATE FUNCTION night_domains(p_run bigint, p_set bigint, p_date date, p_n_dom bigint,
                              p_ok boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    n_found  bigint;
    n_closed bigint;
BEGIN
    p_ok := p_ok AND p_n_dom = (SELECT count(DISTINCT v.referring_domain)
                                FROM domain_intersection_version v
                                WHERE v.target_set_id = p_set AND v.valid_to = 'infinity'
                                  AND v.valid_from = p_date);
    CREATE TEMP TABLE IF NOT EXISTS night_domain_work (referring_domain text, gone boolean)
        ON COMMIT DELETE ROWS;
    TRUNCATE pg_temp.night_domain_work;
    IF p_ok THEN
        -- domains with a key that ended here and no domain row: all their
        -- keys must have ended (a set difference: rows just written have no
        -- statistics, and an anti-join planned for one row rescanned the
        -- domain rows for each, 1.8 s at 100,000 rows)
        INSERT INTO pg_temp.night_domain_work
        SELECT e.d, NOT EXISTS (SELECT 1 FROM domain_intersection_version c
                                WHERE c.target_set_id = p_set AND c.referring_domain = e.d
                                  AND c.valid_to = 'infinity')
        FROM (SELECT v.referring_domain AS d FROM domain_intersection_version v
              WHERE v.target_set_id = p_set AND v.valid_to = p_date
              EXCEPT
              SELECT w.referring_domain FROM domain_intersection_domain_version w
              WHERE w.target_set_id = p_set AND w.valid_from = p_date) e;
        p_ok := NOT EXISTS (SELECT 1 FROM pg_temp.night_domain_work g WHERE NOT g.gone);
    END IF;
    IF NOT p_ok THEN
        DELETE FROM domain_intersection_domain_version w
        WHERE w.target_set_id = p_set AND w.valid_from = p_date AND w.run_id = p_run;
        RETURN false;
    END IF;
    INSERT INTO pg_temp.night_domain_work
    SELECT w.referring_domain, false FROM domain_intersection_domain_version w
    WHERE w.target_set_id = p_set AND w.valid_from = p_date AND w.run_id = p_run;
    -- their current domain versions end here (by place, as in 2.)
    CREATE TEMP TABLE IF NOT EXISTS night_domain_closing (tid tid) ON COMMIT DELETE ROWS;
    TRUNCATE pg_temp.night_domain_closing;
    INSERT INTO pg_temp.night_domain_closing
    SELECT o.ctid FROM pg_temp.night_domain_work g
    CROSS JOIN LATERAL (
        SELECT w.ctid, w.valid_to FROM domain_intersection_domain_version w
        WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
          AND w.valid_from < p_date
        ORDER BY w.valid_from DESC LIMIT 1) o
    WHERE o.valid_to = 'infinity';
    GET DIAGNOSTICS n_found = ROW_COUNT;
    UPDATE domain_intersection_domain_version w SET valid_to = p_date
    FROM pg_temp.night_domain_closing g WHERE w.ctid = g.tid;
    GET DIAGNOSTICS n_closed = ROW_COUNT;
    IF n_closed <> n_found THEN
        RAISE EXCEPTION 'night_domains: % of % domain versions of set % found to close',
            n_closed, n_found, p_set;
    END IF;
    RETURN true;
END $$;

-- As in sql/019, but nothing when publish_direct() kept the loader's domain
-- rows (a first load's, or a night's through night_domains(), 7.).
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
        IF (direct_facts(NEW.run_id, NEW.target_set_id)).domains THEN
            NULL;  -- the loader's, kept by publish_direct()
        ELSIF EXISTS (SELECT 1 FROM domain_intersection_domain_version w
                   WHERE w.target_set_id = NEW.target_set_id
                     AND (w.valid_from <> NEW.snapshot_date OR w.run_id <> NEW.run_id)) THEN
            PERFORM analyze_if_stale('domain_intersection_domain_version');
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

-- What publish_direct() found, for the statements of the same transaction
-- after it (4.): whether the answer is exact (no referring domain twice) and,
-- when every staged row stayed, their count and sums (rows, sum and count of
-- rank, sum and count of backlinks). A transaction-local setting, as the
-- sync number's (sync_seq_take()); read back by direct_facts().
CREATE FUNCTION direct_facts_set(p_run bigint, p_set bigint, p_exact boolean,
                                 p_domains boolean, p_sums numeric[])
RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT set_config('intersect_etl.direct_facts',
                      format('%s/%s/%s/%s/%s', p_run, p_set, p_exact, p_domains,
                             coalesce(p_sums::text, '')),
                      true);
$$;

CREATE FUNCTION direct_facts(p_run bigint, p_set bigint, OUT exact boolean, OUT domains boolean,
                             OUT sums numeric[])
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT split_part(x.f, '/', 3)::boolean, split_part(x.f, '/', 4)::boolean,
           nullif(split_part(x.f, '/', 5), '')::numeric[]
    FROM (SELECT current_setting('intersect_etl.direct_facts', true) AS f) x
    WHERE x.f LIKE format('%s/%s/%%', p_run, p_set);
$$;

DROP FUNCTION staged_domains(bigint, bigint, date, bigint);

-- As in sql/016: the page sums whenever publish_direct() found the answer
-- exact, not only for a set's first snapshot (4.).
CREATE OR REPLACE FUNCTION etl_snapshot_breakdown() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status = 'complete' AND NEW.purged_at IS NULL THEN
        -- the loader's page sums are the answer's when every page has them
        -- and no referring domain came twice (publish_direct() says, 4.)
        IF (direct_facts(NEW.run_id, NEW.target_set_id)).exact
           AND NOT EXISTS (SELECT 1 FROM etl_page_keys k
                           WHERE k.run_id = NEW.run_id AND k.target_set_id = NEW.target_set_id
                             AND k.dims IS NULL)
           AND EXISTS (SELECT 1 FROM etl_page_keys k
                       WHERE k.run_id = NEW.run_id AND k.target_set_id = NEW.target_set_id)
        THEN
            DELETE FROM domain_intersection_breakdown_total
            WHERE target_set_id = NEW.target_set_id AND snapshot_date = NEW.snapshot_date;
            INSERT INTO domain_intersection_breakdown_total
            SELECT NEW.target_set_id, NEW.snapshot_date, u.dim, u.key, sum(u.links), sum(u.entries)
            FROM etl_page_keys k
            CROSS JOIN LATERAL unnest(k.dims, k.entry_keys, k.links, k.entries) u (dim, key, links, entries)
            WHERE k.run_id = NEW.run_id AND k.target_set_id = NEW.target_set_id
            GROUP BY u.dim, u.key;
        ELSE
            PERFORM snapshot_breakdown(NEW.target_set_id, NEW.snapshot_date);
        END IF;
    ELSIF NEW.purged_at IS NOT NULL THEN
        DELETE FROM domain_intersection_breakdown_total
        WHERE target_set_id = NEW.target_set_id AND snapshot_date = NEW.snapshot_date;
    END IF;
    RETURN NULL;
END $$;

-- As in sql/016, the staged rows' sums and changed keys from publish_direct()
-- (4.), and a night's new and lost domains from the loader's domain rows
-- (7.): the domains that changed, not the whole answer's order.
CREATE OR REPLACE FUNCTION snapshot_stats_direct(p_set bigint, p_date date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    p          etl_snapshot%ROWTYPE;
    my_hash    text;
    my_run     bigint;
    changed    bigint;
    loader_dom boolean;
    comparable boolean;
    seq        bigint := sync_seq_take();
    p_dom      text[];
    n_dom      text[];
    cand       text[];
    s_rows bigint; s_rsum numeric; s_rcnt bigint; s_bsum numeric; s_bcnt bigint;
    e_rows bigint; e_rsum numeric; e_rcnt bigint; e_bsum numeric; e_bcnt bigint;
BEGIN
    SELECT * INTO p FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date < p_date AND status = 'complete'
      AND purged_at IS NULL
    ORDER BY snapshot_date DESC LIMIT 1;
    IF FOUND AND p.rank_sum IS NULL AND p.rows > 0 THEN
        PERFORM snapshot_stats(p_set, p_date);
        RETURN;
    END IF;
    SELECT request_hash, run_id INTO my_hash, my_run FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date = p_date;
    comparable := p.snapshot_date IS NOT NULL AND p.request_hash = my_hash;
    SELECT r.domains INTO n_dom FROM domain_intersection_order r
    WHERE r.target_set_id = p_set AND r.valid_from <= p_date AND r.valid_to > p_date;

    -- (the staged rows' sums and the changed keys, when publish_direct()
    -- counted them, 4.; whether the domain rows are the loader's, 7.)
    SELECT f.sums[1], f.sums[2], f.sums[3], f.sums[4], f.sums[5], f.sums[6], f.domains
    INTO s_rows, s_rsum, s_rcnt, s_bsum, s_bcnt, changed, loader_dom
    FROM direct_facts(my_run, p_set) f;
    IF s_rows IS NULL THEN
        SELECT count(*), sum(rank), count(rank), sum(backlinks), count(backlinks)
        INTO s_rows, s_rsum, s_rcnt, s_bsum, s_bcnt
        FROM domain_intersection_version
        WHERE target_set_id = p_set AND valid_to = 'infinity' AND valid_from = p_date;
    END IF;
    SELECT count(*), sum(rank), count(rank), sum(backlinks), count(backlinks)
    INTO e_rows, e_rsum, e_rcnt, e_bsum, e_bcnt
    FROM domain_intersection_version
    WHERE target_set_id = p_set AND valid_to = p_date;

    WITH gone AS (
        DELETE FROM domain_intersection_change WHERE target_set_id = p_set AND snapshot_date = p_date
        RETURNING referring_domain)
    INSERT INTO etl_sync_deleted (sync_seq, view_name, target_set_id, snapshot_date, referring_domain)
    SELECT seq, 'changes', p_set, p_date, referring_domain FROM gone;
    IF comparable THEN
        SELECT r.domains INTO p_dom FROM domain_intersection_order r
        WHERE r.target_set_id = p_set AND r.valid_from <= p.snapshot_date
          AND r.valid_to > p.snapshot_date;
        -- new: all its rows start here, and it was not before; lost: all its
        -- rows end here, and it is not now
        -- (the candidates first, once: the versions just written have no
        -- statistics yet, and a plan that took them for one row rescanned
        -- the set difference for each, 52 s at 100,000 rows)
        -- (with the loader's domain rows of a night, 7., among the domains
        -- that changed: those whose domain version did not end here are new,
        -- those that ended without a row are lost)
        IF s_rows > 0 AND loader_dom THEN
            SELECT array_agg(x.d) INTO cand
            FROM (SELECT w.referring_domain AS d FROM domain_intersection_domain_version w
                  WHERE w.target_set_id = p_set AND w.valid_from = p_date
                  EXCEPT SELECT w.referring_domain FROM domain_intersection_domain_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = p_date) x;
        ELSIF s_rows > 0 THEN
            SELECT array_agg(x.d) INTO cand
            FROM (SELECT w.referring_domain AS d FROM domain_intersection_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = 'infinity' AND w.valid_from = p_date
                  EXCEPT SELECT unnest(p_dom)) x;
        END IF;
        IF s_rows > 0 THEN
            INSERT INTO domain_intersection_change
            SELECT p_set, p_date, v.referring_domain, 'new', max(v.intersections_count),
                   min(v.rank), sum(v.backlinks)
            FROM unnest(cand) c (d)
            JOIN domain_intersection_version v
              ON v.target_set_id = p_set AND v.referring_domain = c.d AND v.valid_from = p_date
            WHERE v.valid_to = 'infinity'
            GROUP BY v.referring_domain;
        END IF;
        IF e_rows > 0 AND loader_dom THEN
            SELECT array_agg(x.d) INTO cand
            FROM (SELECT w.referring_domain AS d FROM domain_intersection_domain_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = p_date
                  EXCEPT SELECT w.referring_domain FROM domain_intersection_domain_version w
                  WHERE w.target_set_id = p_set AND w.valid_from = p_date) x;
        ELSIF e_rows > 0 THEN
            SELECT array_agg(x.d) INTO cand
            FROM (SELECT w.referring_domain AS d FROM domain_intersection_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = p_date
                  EXCEPT SELECT unnest(n_dom)) x;
        END IF;
        IF e_rows > 0 THEN
            INSERT INTO domain_intersection_change
            SELECT p_set, p_date, v.referring_domain, 'lost', max(v.intersections_count),
                   min(v.rank), sum(v.backlinks)
            FROM unnest(cand) c (d)
            JOIN domain_intersection_version v
              ON v.target_set_id = p_set AND v.referring_domain = c.d
            WHERE v.valid_to = p_date
            GROUP BY v.referring_domain;
        END IF;
    END IF;

    UPDATE etl_snapshot s SET
        previous_snapshot_date = CASE WHEN comparable THEN p.snapshot_date END,
        previous_request_hash = p.request_hash,
        domains = coalesce(cardinality(n_dom), 0),
        rows = coalesce(p.rows, 0) - e_rows + s_rows,
        rank_sum = coalesce(p.rank_sum, 0) - coalesce(e_rsum, 0) + coalesce(s_rsum, 0),
        rank_count = coalesce(p.rank_count, 0) - e_rcnt + s_rcnt,
        backlinks_count = coalesce(p.backlinks_count, 0) - e_bcnt + s_bcnt,
        total_backlinks = CASE WHEN coalesce(p.backlinks_count, 0) - e_bcnt + s_bcnt > 0 THEN
            coalesce(p.total_backlinks, 0) - coalesce(e_bsum, 0) + coalesce(s_bsum, 0) END,
        new_domains = CASE WHEN comparable THEN ch.new_domains END,
        lost_domains = CASE WHEN comparable THEN ch.lost_domains END,
        -- (keys with a version ending and one starting here; as a set
        -- intersection, which no plan can turn into a rescan per row: a join
        -- of the two became a nested loop over an index of valid_from, 6 s
        -- for 100,000 rows with 10% changed)
        changed_rows = CASE WHEN comparable THEN coalesce(changed, (
            SELECT count(*) FROM (
                SELECT w.referring_domain, w.target_key FROM domain_intersection_version w
                WHERE w.target_set_id = p_set AND w.valid_to = p_date
                INTERSECT ALL
                SELECT v.referring_domain, v.target_key FROM domain_intersection_version v
                WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from = p_date) x))
            END,
        sync_seq = seq
    FROM (SELECT count(*) FILTER (WHERE change = 'new') AS new_domains,
                 count(*) FILTER (WHERE change = 'lost') AS lost_domains
          FROM domain_intersection_change
          WHERE target_set_id = p_set AND snapshot_date = p_date) ch
    WHERE s.target_set_id = p_set AND s.snapshot_date = p_date;
    UPDATE etl_snapshot SET avg_rank = round(rank_sum / nullif(rank_count, 0), 2)
    WHERE target_set_id = p_set AND snapshot_date = p_date;
END $$;

COMMENT ON FUNCTION direct_facts_set(bigint, bigint, boolean, boolean, numeric[]) IS
    'direct_facts_set(p_run, p_set, p_exact, p_domains, p_sums): what publish_direct() found, kept for '
    'the rest of the transaction (the setting intersect_etl.direct_facts): whether the answer is exact '
    '(no referring domain twice), whether the loader''s domain rows are the date''s (a first load''s '
    'kept, or a night''s through night_domains()), '
    'and the staged rows'' count, sum and count of rank, sum and count of backlinks when every staged '
    'row stayed (else NULL).';
COMMENT ON FUNCTION direct_facts(bigint, bigint) IS
    'direct_facts(p_run, p_set): what direct_facts_set() kept for run p_run and set p_set in this '
    'transaction (exact, domains, sums); NULLs when nothing was.';
COMMENT ON FUNCTION etl_snapshot_breakdown() IS
    'Trigger on etl_snapshot: the breakdown totals follow publishing (from the loader''s page sums '
    'when publish_direct() found the answer exact and every page has them) and purging.';
COMMENT ON FUNCTION night_domains(bigint, bigint, date, bigint, boolean) IS
    'night_domains(p_run, p_set, p_date, p_n_dom, p_ok): on a night, the domain rows the loader wrote '
    '(p_n_dom, for the items with a row written) become the date''s domain versions when p_ok (the '
    'answer has no domain twice and no sent row equalled its version) and they are those of every '
    'domain with a staged row, and every other domain that lost a key lost them all: then the current '
    'domain versions of those domains end at p_date and it answers true. Else the rows go (false), to '
    'be folded by the trigger. Part of publish_direct() (sql/021).';
COMMENT ON FUNCTION etl_snapshot_domains() IS
    'Trigger of etl_snapshot: a control row published (complete, not purged) gets its domain versions '
    'up to the next complete date (none when publish_direct() kept the loader''s, of a first load or '
    'of a night through night_domains(), or when its only ones are the publishing run''s of the date; '
    'first_domains() when the set has none yet; else snapshot_domains()); a purged one cuts them back '
    '(purge_domains()).';

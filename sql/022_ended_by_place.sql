-- intersect-etl migration 022: versions ended by their place, whatever the
-- history's length; the loader's word that no domain came twice, and how
-- many pages it loaded.
--
-- 1. sql/021 ended the versions a night replaces by their place (ctid), kept
-- in a work table and joined back to domain_intersection_version (and, for
-- a night's domain versions, to domain_intersection_domain_version). The
-- work table has no statistics: the planner took it for a few thousand rows
-- and hashed the whole versions table to join it, every version of every
-- set and night (auto_explain of a 100,000-row night with a tenth changed,
-- after two nights: a sequential scan of 110,000 versions, 45 of the
-- UPDATE's 183 ms; of 55,000 domain versions, 11 of 60). That grows with
-- the history, night after night, which a nightly write must not. The
-- places are now kept in arrays and the rows met by "ctid = ANY (array)",
-- the array read through a scalar subquery: given the array itself, the
-- planner priced each place as a random read and scanned the whole table
-- instead (22 ms of 110,000 rows to find 10,000, and more each night). A
-- tid scan reads the rows ended and nothing else, whatever the statistics
-- say. The same for the rare versions that continue (a digest
-- missing, sql/021 1.) and their sent rows. Checked as before: the rows
-- ended must be the rows found.
-- 2. Whether the answer is exact (no referring domain on two items) was, on
-- every night, a count of the distinct domains of the whole answer: 23 ms
-- at 100,000 rows, 0.39 s of a million-row night with nothing changed
-- (scripts/bench --only diag). The loader sees every item of a night's
-- answer (it judges each row against the current versions): when one
-- process loaded every page of the set and no domain fingerprint came twice
-- (src/curmap.c), it says so for the publish's transaction, with the number
-- of items it saw (the setting intersect_etl.loader_word, read by
-- loader_word()). The publish takes its word when the pages' items
-- number as many; else it counts (answer_distinct()). The word can only be
-- wrong the safe way: two domains that share a fingerprint make it silent.
-- 3. The loader's word also says how many pages of the answer the run
-- loaded, its earlier attempts' too, and the publish refuses (ETL02: the
-- transaction fails, nothing of it stays, the staged pages wait for the
-- run's next attempt) when the ledger holds fewer: the loader judges the
-- answer whole from what it loaded, and a page committed just before a
-- crash of the server, or a failover to a standby behind it, can be gone
-- when it publishes. A direct load's page commits without waiting for its
-- WAL flush (src/load.c): at a default server each of a set's page commits
-- waited for one that the plain COPY of the same rows makes once.
--
-- Locks: replacing functions; none on tables.

SET LOCAL lock_timeout = '10s';

-- 2., 3. The loader's word, for the transaction it set it in.
CREATE FUNCTION loader_word(p_run bigint, p_set bigint, OUT pages bigint, OUT distinct_items bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT split_part(x.w, '/', 3)::bigint, nullif(split_part(x.w, '/', 4)::bigint, -1)
    FROM (SELECT current_setting('intersect_etl.loader_word', true) AS w) x
    WHERE x.w LIKE format('%s/%s/%%', p_run, p_set);
$$;

-- 2. Else the domains are counted (a function of its own: plpgsql, so that
-- pg_stat_user_functions counts its calls with track_functions = pl).
CREATE FUNCTION answer_distinct(p_domains text[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
BEGIN
    RETURN coalesce(cardinality(p_domains), 0)
           = (SELECT count(*) FROM (SELECT DISTINCT x.d FROM unnest(p_domains) x (d)) y);
END $$;

-- As in sql/021, with the versions that end (and those that continue) kept
-- in arrays of their places.
CREATE OR REPLACE FUNCTION publish_direct(p_run bigint, p_set bigint, p_date date, seq bigint,
                                          ledger bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    staged    bigint;
    exact     boolean;  -- no domain came twice: the pages' counts and orders add up
    n_current bigint;
    n_kept    bigint;
    n_closed  bigint := 0;
    n_same    bigint := 0;
    w_pages   bigint;     -- the loader's word (2., 3.)
    w_items   bigint;
    n_pages   bigint;     -- the ledger's loaded pages (3.)
    t_end     tid[];      -- current versions that end here (1.)
    t_same_new tid[];     -- sent rows equal to their version (a digest missing)
    t_same_old tid[];     -- and those versions, which take the sent digest
    d_same    uuid[];
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
    -- (3.: every page the loader loaded is in the ledger)
    SELECT w.pages, w.distinct_items INTO w_pages, w_items FROM loader_word(p_run, p_set) w;
    IF w_pages IS NOT NULL THEN
        SELECT count(*) INTO n_pages FROM etl_page e
        WHERE e.run_id = p_run AND e.target_set_id = p_set AND e.status = 'loaded';
        IF n_pages <> w_pages THEN
            RAISE EXCEPTION USING ERRCODE = 'ETL02',
                MESSAGE = format('the ledger holds %s of the %s pages run %s loaded for this set: '
                                 'pages committed just before a crash of the server (or a '
                                 'failover) were lost; the answer is not published',
                                 n_pages, w_pages, p_run),
                HINT = 'running the date again continues the run and fetches only the pages lost';
        END IF;
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
    -- (or the loader saw every item and no domain twice: its word, 2.;
    -- else the domains are counted)
    exact := coalesce(cardinality(o_dom), 0) = n_dom AND n_dom > 0
             OR coalesce(cardinality(o_dom), 0) = coalesce(w_items, -1)
             OR answer_distinct(o_dom);
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
        SELECT count(*) FILTER (WHERE NOT x.same),
               array_agg(x.old_tid) FILTER (WHERE NOT x.same),
               array_agg(x.new_tid) FILTER (WHERE x.same),
               array_agg(x.old_tid) FILTER (WHERE x.same),
               array_agg(x.digest) FILTER (WHERE x.same)
        INTO n_changed, t_end, t_same_new, t_same_old, d_same
        FROM (SELECT n.ctid AS new_tid, o.ctid AS old_tid,
                     CASE WHEN o.digest IS NULL OR n.digest IS NULL
                          THEN same_version_values((SELECT c FROM domain_intersection_version c
                                                    WHERE c.ctid = o.ctid), n)
                          ELSE o.digest = n.digest END AS same,
                     n.digest
              FROM domain_intersection_version n
              CROSS JOIN LATERAL (
                  SELECT c.ctid, c.valid_to, c.digest FROM domain_intersection_version c
                  WHERE c.target_set_id = p_set AND c.referring_domain = n.referring_domain
                    AND c.target_key = n.target_key AND c.valid_from < p_date
                  ORDER BY c.valid_from DESC LIMIT 1) o
              WHERE n.target_set_id = p_set AND n.valid_to = 'infinity' AND n.valid_from = p_date
                AND o.valid_to = 'infinity'
              OFFSET 0) x;  -- (each row's verdict once, not once per aggregate)
        DELETE FROM domain_intersection_version v WHERE v.ctid = ANY ((SELECT t_same_new)::tid[]);
        GET DIAGNOSTICS n_same = ROW_COUNT;
        UPDATE domain_intersection_version v SET digest = g.digest
        FROM unnest(t_same_old, d_same) g (tid, digest)
        WHERE v.ctid = ANY ((SELECT t_same_old)::tid[]) AND v.ctid = g.tid;
        UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq
        WHERE v.ctid = ANY ((SELECT t_end)::tid[]);
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

-- As in sql/021, with the domain versions that end kept in an array.
CREATE OR REPLACE FUNCTION night_domains(p_run bigint, p_set bigint, p_date date, p_n_dom bigint,
                              p_ok boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    t_end    tid[];
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
    SELECT array_agg(o.ctid) INTO t_end FROM pg_temp.night_domain_work g
    CROSS JOIN LATERAL (
        SELECT w.ctid, w.valid_to FROM domain_intersection_domain_version w
        WHERE w.target_set_id = p_set AND w.referring_domain = g.referring_domain
          AND w.valid_from < p_date
        ORDER BY w.valid_from DESC LIMIT 1) o
    WHERE o.valid_to = 'infinity';
    UPDATE domain_intersection_domain_version w SET valid_to = p_date WHERE w.ctid = ANY ((SELECT t_end)::tid[]);
    GET DIAGNOSTICS n_closed = ROW_COUNT;
    IF n_closed <> coalesce(cardinality(t_end), 0) THEN
        RAISE EXCEPTION 'night_domains: % of % domain versions of set % found to close',
            n_closed, coalesce(cardinality(t_end), 0), p_set;
    END IF;
    RETURN true;
END $$;

COMMENT ON FUNCTION loader_word(bigint, bigint) IS
    'loader_word(p_run, p_set): what the loader told the publish of run p_run''s answer for set p_set, '
    'for its transaction (the setting intersect_etl.loader_word): the pages of the answer the run '
    'loaded (the ledger must hold as many), and the number of items when one process loaded every '
    'page and no referring domain came twice (else NULL); NULLs when it said nothing.';
COMMENT ON FUNCTION answer_distinct(text[]) IS
    'answer_distinct(p_domains): whether no referring domain is in p_domains twice (an answer''s '
    'items'' domains), counted; publish_direct() asks it when neither the loader''s domain rows nor '
    'its word (loader_word()) answer.';

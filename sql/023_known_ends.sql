-- intersect-etl migration 023: a night's pages find the versions their
-- rows replace; the publish ends them by those places.
--
-- 1. On a night the publish found, for each row the loader sent, the
-- current version of its key (a backward scan of the primary key and a
-- read of the version, about 6 us a row: 63 ms of a 100,000-row night with
-- a tenth changed, 0.39 s with every row changed, auto_explain at defaults),
-- one statement while the second core idled. Each page's stage_page() now
-- finds its sent rows' versions as it records the page's keys, on the
-- loader's connections beside the other pages (when the database judges
-- the rows, p_lookup, in the lookup it made already), and keeps their
-- places with the page (etl_page_keys.ends), with the sync number of the
-- set's control rows then (ends_seq). The publish ends those places
-- (publish_known_ends()) when the answer is exact, every page kept them
-- against the set's control rows as they still are (any publish, failure
-- or purge of the set since moves their sync number), and none of those
-- versions was written before row digests (their values are compared,
-- sql/021); and checked: every place must still hold a current version of
-- the set (else its row was moved, VACUUM FULL or CLUSTER), and the rows
-- kept, ended and lost must account for every current version (else a
-- version the pages did not see). A check that fails undoes that work
-- (a subtransaction) and the publish finds the versions itself, as before.
-- 2. etl_page_keys.dims: the loader sums the breakdown on a night too
-- (src/schedule.c, include/breakdown.h); its comment said first loads only.
--
-- Locks: etl_page_keys (ADD COLUMN, nullable, no default: no rewrite;
-- its rows live from a page to its set's publish); replacing functions.

SET LOCAL lock_timeout = '10s';

ALTER TABLE etl_page_keys ADD COLUMN ends tid[], ADD COLUMN ends_seq bigint;

COMMENT ON COLUMN etl_page_keys.ends IS
    'On a night: the places (ctid) of the current versions the page''s sent rows replace, as '
    'they were when it was staged, which the publish ends; NULL when not looked up (a first '
    'load) or not to be taken (one of them has no digest).';
COMMENT ON COLUMN etl_page_keys.ends_seq IS
    'With ends, when it holds a place: the highest sync_seq of the set''s etl_snapshot rows when '
    'they were found; the publish takes them only when it is still so.';
COMMENT ON COLUMN etl_page_keys.dims IS
    'With entry_keys, links and entries: the breakdown of the page''s rows (dimension, key, sum '
    'of links, map entries), summed by the loader on a direct load; NULL otherwise, or when a map '
    'repeats a key or a sum overflows.';

-- 1. As in sql/018, with the places of the versions the sent rows replace.
CREATE OR REPLACE FUNCTION stage_page(p_run bigint, p_set bigint, p_offset bigint, p_date date,
                                      p_lookup boolean, p_domains text[], p_keys smallint[],
                                      p_positions integer[], p_digests uuid[], p_dims text[],
                                      p_entry_keys text[], p_links bigint[], p_entries integer[],
                                      p_sent boolean[], p_item_domains text[],
                                      p_item_positions integer[]) RETURNS SETOF integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    send   boolean[];
    i_dom  text[];
    i_pos  integer[];
    ends   tid[];      -- the current versions the sent rows replace (1.)
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
            (SELECT count(*) FROM unnest(send) b WHERE NOT b), ends, marker)
    ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET
        domains = EXCLUDED.domains, keys = EXCLUDED.keys, positions = EXCLUDED.positions,
        sent = EXCLUDED.sent, dims = EXCLUDED.dims, entry_keys = EXCLUDED.entry_keys,
        links = EXCLUDED.links, entries = EXCLUDED.entries,
        item_domains = EXCLUDED.item_domains, item_positions = EXCLUDED.item_positions,
        kept = EXCLUDED.kept, ends = EXCLUDED.ends, ends_seq = EXCLUDED.ends_seq;
    RETURN QUERY SELECT s.i::integer FROM unnest(send) WITH ORDINALITY s (b, i) WHERE s.b;
END $$;


-- 1. The current versions the night's sent rows replace, found here (as
-- sql/022's publish_direct() did in place): a function of its own, so that
-- pg_stat_user_functions counts when the publish had to.
CREATE FUNCTION find_replaced_versions(p_set bigint, p_date date, OUT n_changed bigint,
                                       OUT t_end tid[], OUT t_same_new tid[],
                                       OUT t_same_old tid[], OUT d_same uuid[])
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
BEGIN
    -- Sent keys with a current version: a version under another digest
    -- (written before row digests: NULL) continues when its values are
    -- the same; two digests compare as their values do (transform.h),
    -- so the values are read only then. Others end at p_date. Rows are
    -- met again by their place (tid): the publish holds the sync
    -- counter's lock, nothing else writes the set's versions meanwhile
    -- (sql/021 2.).
    SELECT count(*) FILTER (WHERE NOT x.same),
           array_agg(x.old_tid) FILTER (WHERE NOT x.same),
           array_agg(x.new_tid) FILTER (WHERE x.same),
           array_agg(x.old_tid) FILTER (WHERE x.same),
           array_agg(x.digest) FILTER (WHERE x.same)
    INTO n_changed, t_end, t_same_new, t_same_old, d_same
    FROM (SELECT n.ctid AS new_tid, o.ctid AS old_tid,
                 CASE WHEN o.digest IS NULL OR n.digest IS NULL
                      THEN same_version_values(
                               (SELECT c FROM domain_intersection_version c
                                WHERE c.ctid = o.ctid), n)
                      ELSE o.digest = n.digest END AS same,
                 n.digest
          FROM domain_intersection_version n
          CROSS JOIN LATERAL (
              SELECT c.ctid, c.valid_to, c.digest FROM domain_intersection_version c
              WHERE c.target_set_id = p_set AND c.referring_domain = n.referring_domain
                AND c.target_key = n.target_key AND c.valid_from < p_date
              ORDER BY c.valid_from DESC LIMIT 1) o
          WHERE n.target_set_id = p_set AND n.valid_to = 'infinity'
            AND n.valid_from = p_date AND o.valid_to = 'infinity'
          OFFSET 0) x;  -- (each row's verdict once, not once per aggregate)
END $$;

-- 1. The keys the answer lacks end here: the versions current before
-- p_date whose key is not in pg_temp.publish_answer (filled first when
-- p_fill, as publish_direct() did in place). Answers how many ended.
CREATE FUNCTION end_lost_versions(p_run bigint, p_set bigint, p_date date, seq bigint,
                                  p_fill boolean) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n bigint;
BEGIN
    IF p_fill THEN
        PERFORM publish_answer_keys(p_run, p_set, false);
    END IF;
    UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq
    WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from < p_date
      AND NOT EXISTS (SELECT 1 FROM pg_temp.publish_answer a
                      WHERE a.referring_domain = v.referring_domain
                        AND a.target_key = v.target_key);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- 1. The versions an exact answer's pages found, ended by their places;
-- then the keys the answer lacks. NULL, with nothing of it done, when the
-- pages' places cannot be taken or do not add up.
CREATE FUNCTION publish_known_ends(p_run bigint, p_set bigint, p_date date, seq bigint,
                                   p_kept bigint, p_current bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    marker bigint;
    t_end  tid[];
    n_end  bigint;
    n_lost bigint := 0;
BEGIN
    SELECT max(c.sync_seq) INTO marker FROM etl_snapshot c WHERE c.target_set_id = p_set;
    IF NOT (SELECT coalesce(bool_and(coalesce(k.ends = '{}' OR k.ends_seq = marker, false)), false)
            FROM etl_page_keys k WHERE k.run_id = p_run AND k.target_set_id = p_set) THEN
        RETURN NULL;
    END IF;
    BEGIN
        SELECT array_agg(e.t) INTO t_end
        FROM etl_page_keys k CROSS JOIN LATERAL unnest(k.ends) e (t)
        WHERE k.run_id = p_run AND k.target_set_id = p_set;
        UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq
        WHERE v.ctid = ANY ((SELECT t_end)::tid[]) AND v.target_set_id = p_set
          AND v.valid_to = 'infinity' AND v.valid_from < p_date;
        GET DIAGNOSTICS n_end = ROW_COUNT;
        IF n_end <> coalesce(cardinality(t_end), 0) THEN
            RAISE EXCEPTION USING ERRCODE = 'ETL09', MESSAGE = 'a place moved';
        END IF;
        IF p_kept + n_end < p_current THEN
            n_lost := end_lost_versions(p_run, p_set, p_date, seq, true);
        END IF;
        IF p_kept + n_end + n_lost <> p_current THEN
            RAISE EXCEPTION USING ERRCODE = 'ETL09', MESSAGE = 'the versions do not add up';
        END IF;
    EXCEPTION WHEN SQLSTATE 'ETL09' THEN
        RETURN NULL;
    END;
    RETURN n_end;
END $$;

-- As in sql/022, with the versions the pages found (1.).
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
        -- The versions the sent keys replace, as their pages found them
        -- (1.); else found here.
        IF exact THEN
            n_changed := publish_known_ends(p_run, p_set, p_date, seq, n_kept, n_current);
        END IF;
        IF n_changed IS NULL THEN
            SELECT f.n_changed, f.t_end, f.t_same_new, f.t_same_old, f.d_same
            INTO n_changed, t_end, t_same_new, t_same_old, d_same
            FROM find_replaced_versions(p_set, p_date) f;
            DELETE FROM domain_intersection_version v
            WHERE v.ctid = ANY ((SELECT t_same_new)::tid[]);
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
                PERFORM end_lost_versions(p_run, p_set, p_date, seq, exact);
            END IF;
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

COMMENT ON FUNCTION find_replaced_versions(bigint, date) IS
    'find_replaced_versions(p_set, p_date): the current versions of set p_set that the rows staged '
    'for p_date replace, by place: those that end (t_end, n_changed), and where a version without '
    'a digest has the same values, the staged row that goes (t_same_new) and the version that '
    'continues with its digest (t_same_old, d_same). Part of publish_direct(), when the pages '
    'did not find them (publish_known_ends()).';
COMMENT ON FUNCTION end_lost_versions(bigint, bigint, date, bigint, boolean) IS
    'end_lost_versions(p_run, p_set, p_date, seq, p_fill): ends at p_date the versions of set '
    'p_set current before it whose key is not in the answer (pg_temp.publish_answer, filled from '
    'run p_run''s pages first when p_fill); answers how many. Part of publish_direct().';
COMMENT ON FUNCTION publish_known_ends(bigint, bigint, date, bigint, bigint, bigint) IS
    'publish_known_ends(p_run, p_set, p_date, seq, p_kept, p_current): ends the versions run '
    'p_run''s pages found for the rows they sent (etl_page_keys.ends), then those of the keys the '
    'answer lacks; answers how many the pages'' rows replaced, or NULL, having done nothing, when '
    'the places were not all found against the set as it is, one no longer holds a current '
    'version, or kept, ended and lost do not make p_current. Part of publish_direct().';

-- intersect-etl migration 016: a night writes once (issue 18).
--
-- Until here every row of every page was COPYed into
-- domain_intersection_pending, then copied again into the versions at
-- publish, and the staging table kept a snapshot's worth of dead rows
-- between nights. Now a run that publishes after the set's latest complete
-- snapshot (the nightly case and a set's first load: etl_run_set.direct)
-- writes each row once, where it stays:
--
-- 1. Pages COPY straight into domain_intersection_version, as versions
--    starting at the run's date and open-ended. They are invisible until the
--    publish: every reader reads versions through a complete snapshot date
--    inside their range, and the run's date is no complete snapshot yet (nor
--    any date after it: the run publishes after the latest). The history
--    view, which lists ranges, lists only those holding a complete date.
-- 2. Only new and changed rows are sent. Before a page's rows go, one
--    statement (stage_page()) compares each row's key and digest with the
--    key's current version (one backward probe of the primary key each) and
--    answers which rows differ; the others are not written at all. The
--    page's keys, result positions and which of its rows were sent are kept
--    in etl_page_keys, in the page's transaction, so a killed run resumes
--    knowing what its loaded pages held.
-- 3. The publish (publish_direct()) then only closes ranges: the current
--    versions of the keys sent (changed) and of the keys the answer lacks
--    (lost, found by counting first: an answer that kept every key skips the
--    search), builds the result order from the page keys, and the
--    snapshot's measures from the previous snapshot's and the versions that
--    start or end at the date (snapshot_stats_direct()): its cost follows
--    what changed, not the snapshot.
-- 4. A page that repeats a key another page sent (offset paging shows a
--    referring domain twice when the ranking moves) is staged through
--    stage_page_rows(): the first place in result order wins, sent or not,
--    as with the staging table.
--
-- Runs that publish a date before the latest (a backfill, a republish, a
-- replay) still stage in domain_intersection_pending and publish through
-- publish_versions(), which merges equal neighbours. Staged versions of a
-- run that never published (killed, failed) go when another run of the job
-- starts (src/load.c) or when a publish would reach their date.
--
-- Locks: ACCESS EXCLUSIVE on etl_snapshot (columns added, no rewrite) and
-- on the history view, replaced.

SET LOCAL lock_timeout = '10s';

-- The sums the snapshot's averages are taken of, so the next night's
-- measures are this night's plus what changed (NULL: computed before 016).
ALTER TABLE etl_snapshot ADD COLUMN rank_sum numeric, ADD COLUMN rank_count bigint,
    ADD COLUMN backlinks_count bigint;

CREATE TABLE etl_page_keys (
    run_id         bigint     NOT NULL,
    target_set_id  bigint     NOT NULL,
    page_offset    bigint     NOT NULL,
    domains        text[]     NOT NULL,
    keys           smallint[] NOT NULL,
    positions      integer[]  NOT NULL,
    sent           boolean[]  NOT NULL,
    -- the breakdown of the page's rows (a first load's: see snapshot_breakdown())
    dims           text[],
    entry_keys     text[],
    links          bigint[],
    entries        integer[],
    -- each item once: its referring domain and position, in result order
    item_domains   text[]     NOT NULL,
    item_positions integer[]  NOT NULL,
    kept           integer    NOT NULL,  -- rows not sent (equal to their current version)
    maybe_dup      boolean    NOT NULL,  -- a row may repeat a key of another page
    PRIMARY KEY (run_id, target_set_id, page_offset),
    FOREIGN KEY (run_id, target_set_id) REFERENCES etl_run_set ON DELETE CASCADE,
    CHECK (cardinality(keys) = cardinality(domains) AND cardinality(positions) = cardinality(domains)
           AND cardinality(sent) = cardinality(domains))
);

-- Written and deleted within a night: compressing its arrays is not worth
-- the CPU of every page.
ALTER TABLE etl_page_keys ALTER COLUMN domains SET STORAGE EXTERNAL,
    ALTER COLUMN keys SET STORAGE EXTERNAL, ALTER COLUMN positions SET STORAGE EXTERNAL,
    ALTER COLUMN sent SET STORAGE EXTERNAL, ALTER COLUMN item_domains SET STORAGE EXTERNAL,
    ALTER COLUMN item_positions SET STORAGE EXTERNAL;

-- Whether run p_run may load set p_set directly: it fetches from the API and
-- its date is after the set's latest complete snapshot, and it has staged
-- nothing the other way.
CREATE FUNCTION direct_load_ok(p_run bigint, p_set bigint) RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT r.replay_of IS NULL
       AND NOT EXISTS (SELECT 1 FROM etl_snapshot s
                       WHERE s.target_set_id = p_set AND s.snapshot_date >= r.snapshot_date
                         AND s.status = 'complete' AND s.purged_at IS NULL)
       AND NOT EXISTS (SELECT 1 FROM domain_intersection_pending p
                       WHERE p.run_id = p_run AND p.target_set_id = p_set)
    FROM etl_run r WHERE r.run_id = p_run;
$$;

-- What a run staged for a set and never published goes: its staged rows (in
-- either table) and page keys, and its loaded pages become 'discarded', to be
-- fetched again by a resume. Never a published version: those start at a
-- complete date.
CREATE FUNCTION discard_staged(p_run bigint, p_set bigint) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    DELETE FROM domain_intersection_pending WHERE run_id = p_run AND target_set_id = p_set;
    DELETE FROM domain_intersection_version v USING etl_run r
    WHERE r.run_id = p_run AND v.target_set_id = p_set AND v.valid_to = 'infinity'
      AND v.valid_from = r.snapshot_date AND v.run_id = p_run
      AND NOT EXISTS (SELECT 1 FROM etl_snapshot s
                      WHERE s.target_set_id = p_set AND s.snapshot_date = r.snapshot_date
                        AND s.status = 'complete');
    DELETE FROM etl_page_keys WHERE run_id = p_run AND target_set_id = p_set;
    UPDATE etl_page SET status = 'discarded'
    WHERE run_id = p_run AND target_set_id = p_set AND status = 'loaded';
$$;

-- A page of a direct load, before its rows go: keeps its keys (etl_page_keys)
-- and answers the ordinals (1-based) of the rows to send: with p_lookup,
-- those whose key has no current version or one with another digest; else
-- those p_sent says (the loader judged them against the current versions it
-- read, src/curmap.c), or all of them (the set has no current version).
CREATE FUNCTION stage_page(p_run bigint, p_set bigint, p_offset bigint, p_date date,
                           p_lookup boolean, p_domains text[], p_keys smallint[],
                           p_positions integer[], p_digests uuid[], p_dims text[],
                           p_entry_keys text[], p_links bigint[], p_entries integer[],
                           p_maybe_dup boolean, p_sent boolean[], p_item_domains text[],
                           p_item_positions integer[])
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
            (SELECT count(*) FROM unnest(send) b WHERE NOT b), p_maybe_dup)
    ON CONFLICT (run_id, target_set_id, page_offset) DO UPDATE SET
        domains = EXCLUDED.domains, keys = EXCLUDED.keys, positions = EXCLUDED.positions,
        sent = EXCLUDED.sent, dims = EXCLUDED.dims, entry_keys = EXCLUDED.entry_keys,
        links = EXCLUDED.links, entries = EXCLUDED.entries,
        item_domains = EXCLUDED.item_domains, item_positions = EXCLUDED.item_positions,
        kept = EXCLUDED.kept, maybe_dup = EXCLUDED.maybe_dup;
    RETURN QUERY SELECT s.i::integer FROM unnest(send) WITH ORDINALITY s (b, i) WHERE s.b;
END $$;

-- The sent rows of page p_offset, in pg_temp.di_stage, when they repeat a
-- key staged before (the COPY met the primary key): each key once, its
-- first place in result order winning over a row another page staged.
-- Answers the rows it inserted.
CREATE FUNCTION stage_page_rows(p_run bigint, p_set bigint, p_offset bigint, p_date date)
RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r      record;
    n      bigint := 0;
    before integer;
BEGIN
    FOR r IN SELECT DISTINCT ON (s.referring_domain, s.target_key) s.*
             FROM pg_temp.di_stage s
             ORDER BY s.referring_domain, s.target_key, s.position LOOP
        IF NOT EXISTS (SELECT 1 FROM domain_intersection_version v
                       WHERE v.target_set_id = p_set AND v.referring_domain = r.referring_domain
                         AND v.target_key = r.target_key AND v.valid_from = p_date) THEN
            INSERT INTO domain_intersection_version
            VALUES (p_set, r.referring_domain, r.target_key, p_date, 'infinity', r.target,
                    r.intersections_count, r.type, r.rank, r.backlinks, r.first_seen, r.lost_date,
                    r.backlinks_spam_score, r.broken_backlinks, r.broken_pages, r.referring_domains,
                    r.referring_domains_nofollow, r.referring_main_domains,
                    r.referring_main_domains_nofollow, r.referring_ips, r.referring_subnets,
                    r.referring_pages, r.referring_pages_nofollow, r.referring_links_tld,
                    r.referring_links_types, r.referring_links_attributes,
                    r.referring_links_platform_types, r.referring_links_semantic_locations,
                    r.referring_links_countries, r.extra, r.run_id, r.digest, 0);
            n := n + 1;
            CONTINUE;
        END IF;
        -- staged by another page: from its first place among those sent
        SELECT min(u.p) INTO before
        FROM etl_page_keys pk CROSS JOIN LATERAL unnest(pk.domains, pk.keys, pk.positions, pk.sent)
             u (d, k, p, s)
        WHERE pk.run_id = p_run AND pk.target_set_id = p_set AND pk.page_offset <> p_offset
          AND u.d = r.referring_domain AND u.k = r.target_key AND u.s;
        IF before IS NULL OR r.position < before THEN
            UPDATE domain_intersection_version v SET
                target = r.target, intersections_count = r.intersections_count, type = r.type,
                rank = r.rank, backlinks = r.backlinks, first_seen = r.first_seen,
                lost_date = r.lost_date, backlinks_spam_score = r.backlinks_spam_score,
                broken_backlinks = r.broken_backlinks, broken_pages = r.broken_pages,
                referring_domains = r.referring_domains,
                referring_domains_nofollow = r.referring_domains_nofollow,
                referring_main_domains = r.referring_main_domains,
                referring_main_domains_nofollow = r.referring_main_domains_nofollow,
                referring_ips = r.referring_ips, referring_subnets = r.referring_subnets,
                referring_pages = r.referring_pages,
                referring_pages_nofollow = r.referring_pages_nofollow,
                referring_links_tld = r.referring_links_tld,
                referring_links_types = r.referring_links_types,
                referring_links_attributes = r.referring_links_attributes,
                referring_links_platform_types = r.referring_links_platform_types,
                referring_links_semantic_locations = r.referring_links_semantic_locations,
                referring_links_countries = r.referring_links_countries, extra = r.extra,
                run_id = r.run_id, digest = r.digest
            WHERE v.target_set_id = p_set AND v.referring_domain = r.referring_domain
              AND v.target_key = r.target_key AND v.valid_from = p_date;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- Whether two versions hold the same values (as same_values(), sql/009).
CREATE FUNCTION same_version_values(a domain_intersection_version, b domain_intersection_version)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(a.target, a.intersections_count, a.type, a.rank, a.backlinks, a.first_seen,
               a.lost_date, a.backlinks_spam_score, a.broken_backlinks, a.broken_pages,
               a.referring_domains, a.referring_domains_nofollow, a.referring_main_domains,
               a.referring_main_domains_nofollow, a.referring_ips, a.referring_subnets,
               a.referring_pages, a.referring_pages_nofollow, a.referring_links_tld,
               a.referring_links_types, a.referring_links_attributes,
               a.referring_links_platform_types, a.referring_links_semantic_locations,
               a.referring_links_countries, a.extra)
           IS NOT DISTINCT FROM
           ROW(b.target, b.intersections_count, b.type, b.rank, b.backlinks, b.first_seen,
               b.lost_date, b.backlinks_spam_score, b.broken_backlinks, b.broken_pages,
               b.referring_domains, b.referring_domains_nofollow, b.referring_main_domains,
               b.referring_main_domains_nofollow, b.referring_ips, b.referring_subnets,
               b.referring_pages, b.referring_pages_nofollow, b.referring_links_tld,
               b.referring_links_types, b.referring_links_attributes,
               b.referring_links_platform_types, b.referring_links_semantic_locations,
               b.referring_links_countries, b.extra)
$$;

-- The result order of (p_set, p_date) becomes o_dom/o_pos: publish_order()'s
-- rule (sql/010), from arrays.
CREATE FUNCTION publish_order_arrays(p_set bigint, p_date date, hi date, o_dom text[],
                                     o_pos integer[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur domain_intersection_order%ROWTYPE;
    nb  domain_intersection_order%ROWTYPE;
    top date := hi;
BEGIN
    SELECT * INTO cur FROM domain_intersection_order
    WHERE target_set_id = p_set AND valid_from <= p_date AND valid_to > p_date;
    IF FOUND THEN
        IF cur.domains = o_dom AND cur.positions = o_pos THEN
            RETURN;
        END IF;
        IF hi < cur.valid_to THEN
            INSERT INTO domain_intersection_order VALUES (p_set, hi, cur.valid_to, cur.domains,
                                                          cur.positions);
        END IF;
        IF cur.valid_from = p_date THEN
            DELETE FROM domain_intersection_order WHERE target_set_id = p_set AND valid_from = p_date;
        ELSE
            UPDATE domain_intersection_order SET valid_to = p_date
            WHERE target_set_id = p_set AND valid_from = cur.valid_from;
        END IF;
    END IF;
    SELECT * INTO nb FROM domain_intersection_order WHERE target_set_id = p_set AND valid_from = hi;
    IF FOUND AND nb.domains = o_dom AND nb.positions = o_pos THEN
        top := nb.valid_to;
        DELETE FROM domain_intersection_order WHERE target_set_id = p_set AND valid_from = hi;
    END IF;
    UPDATE domain_intersection_order SET valid_to = top
    WHERE target_set_id = p_set AND valid_to = p_date AND domains = o_dom AND positions = o_pos;
    IF NOT FOUND THEN
        INSERT INTO domain_intersection_order VALUES (p_set, p_date, top, o_dom, o_pos);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION publish_order(p_run bigint, p_set bigint, p_date date, hi date)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    o_dom text[];
    o_pos integer[];
BEGIN
    SELECT array_agg(referring_domain ORDER BY position, referring_domain),
           array_agg(position ORDER BY position, referring_domain)
    INTO o_dom, o_pos
    FROM (SELECT referring_domain, min(position) AS position FROM domain_intersection_pending
          WHERE run_id = p_run AND target_set_id = p_set GROUP BY referring_domain) x;
    PERFORM publish_order_arrays(p_set, p_date, hi, coalesce(o_dom, '{}'), coalesce(o_pos, '{}'));
END $$;

-- The answer of a direct load, key by key, into pg_temp.publish_answer: with
-- firsts, each key once at its first place in result order and whether the
-- row there was sent (a key met on several pages); else every row as it is.
CREATE FUNCTION publish_answer_keys(p_run bigint, p_set bigint, firsts boolean) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
BEGIN
    IF firsts THEN
        INSERT INTO pg_temp.publish_answer
        SELECT u.d, u.k, min(u.p), bool_or(u.s), count(*)
        FROM etl_page_keys pk
        CROSS JOIN LATERAL unnest(pk.domains, pk.keys, pk.positions, pk.sent) u (d, k, p, s)
        WHERE pk.run_id = p_run AND pk.target_set_id = p_set
        GROUP BY u.d, u.k;
        UPDATE pg_temp.publish_answer a SET sent = w.s
        FROM (SELECT DISTINCT ON (u.d, u.k) u.d, u.k, u.s
              FROM etl_page_keys pk
              CROSS JOIN LATERAL unnest(pk.domains, pk.keys, pk.positions, pk.sent) u (d, k, p, s)
              JOIN pg_temp.publish_answer x ON x.referring_domain = u.d AND x.target_key = u.k
                                          AND x.n > 1
              WHERE pk.run_id = p_run AND pk.target_set_id = p_set
              ORDER BY u.d, u.k, u.p) w
        WHERE a.n > 1 AND a.referring_domain = w.d AND a.target_key = w.k;
    ELSE
        INSERT INTO pg_temp.publish_answer
        SELECT u.d, u.k, u.p, u.s, 1
        FROM etl_page_keys pk
        CROSS JOIN LATERAL unnest(pk.domains, pk.keys, pk.positions, pk.sent) u (d, k, p, s)
        WHERE pk.run_id = p_run AND pk.target_set_id = p_set;
    END IF;
    ANALYZE pg_temp.publish_answer;
END $$;

-- The staged versions of a direct load become (p_set, p_date): part of
-- publish_snapshot(), in its transaction, before the control row. When no
-- page may have repeated another's key (etl_page_keys.maybe_dup, from the
-- loader's filter), the pages' counts and item orders are the answer's and
-- an unchanged night reads nothing key by key. Raises ETL01 when the staged rows are not what the ledger says.
-- (work_mem: the answer's keys are hashed and sorted whole; at the default
-- 4 MB a 100,000-row answer spilled to disk. The ETL's own sessions only.)
CREATE FUNCTION publish_direct(p_run bigint, p_set bigint, p_date date, seq bigint, ledger bigint)
RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    staged    bigint;
    exact     boolean;  -- no key came twice: the pages' counts and orders add up
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
    exact := NOT EXISTS (SELECT 1 FROM etl_page_keys k
                         WHERE k.run_id = p_run AND k.target_set_id = p_set AND k.maybe_dup);
    CREATE TEMP TABLE IF NOT EXISTS publish_answer (
        referring_domain text, target_key smallint, position integer, sent boolean, n integer)
        ON COMMIT DELETE ROWS;
    TRUNCATE pg_temp.publish_answer;
    IF exact THEN
        SELECT coalesce(sum(k.kept), 0) INTO n_kept FROM etl_page_keys k
        WHERE k.run_id = p_run AND k.target_set_id = p_set;
        SELECT array_agg(u.d ORDER BY k.page_offset, u.i), array_agg(u.p ORDER BY k.page_offset, u.i)
        INTO o_dom, o_pos
        FROM etl_page_keys k
        CROSS JOIN LATERAL unnest(k.item_domains, k.item_positions) WITH ORDINALITY u (d, p, i)
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

-- The measures of (p_set, p_date) just published directly: the previous
-- complete snapshot's plus the versions starting at p_date minus those
-- ending there (ranges begin and end at complete dates, and nothing is
-- complete after p_date); the domains from the result orders, new ones among
-- those of the versions starting here, lost ones among those ending here.
-- As snapshot_stats() computes them whole, which it does when the previous
-- snapshot has no sums (measured before 016).
CREATE FUNCTION snapshot_stats_direct(p_set bigint, p_date date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    p          etl_snapshot%ROWTYPE;
    my_hash    text;
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
    SELECT request_hash INTO my_hash FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date = p_date;
    comparable := p.snapshot_date IS NOT NULL AND p.request_hash = my_hash;
    SELECT r.domains INTO n_dom FROM domain_intersection_order r
    WHERE r.target_set_id = p_set AND r.valid_from <= p_date AND r.valid_to > p_date;

    SELECT count(*), sum(rank), count(rank), sum(backlinks), count(backlinks)
    INTO s_rows, s_rsum, s_rcnt, s_bsum, s_bcnt
    FROM domain_intersection_version
    WHERE target_set_id = p_set AND valid_to = 'infinity' AND valid_from = p_date;
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
        IF s_rows > 0 THEN
            SELECT array_agg(x.d) INTO cand
            FROM (SELECT w.referring_domain AS d FROM domain_intersection_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = 'infinity' AND w.valid_from = p_date
                  EXCEPT SELECT unnest(p_dom)) x;
            INSERT INTO domain_intersection_change
            SELECT p_set, p_date, v.referring_domain, 'new', max(v.intersections_count),
                   min(v.rank), sum(v.backlinks)
            FROM unnest(cand) c (d)
            JOIN domain_intersection_version v
              ON v.target_set_id = p_set AND v.referring_domain = c.d AND v.valid_from = p_date
            WHERE v.valid_to = 'infinity'
            GROUP BY v.referring_domain;
        END IF;
        IF e_rows > 0 THEN
            SELECT array_agg(x.d) INTO cand
            FROM (SELECT w.referring_domain AS d FROM domain_intersection_version w
                  WHERE w.target_set_id = p_set AND w.valid_to = p_date
                  EXCEPT SELECT unnest(n_dom)) x;
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
        changed_rows = CASE WHEN comparable THEN (
            SELECT count(*) FROM (
                SELECT w.referring_domain, w.target_key FROM domain_intersection_version w
                WHERE w.target_set_id = p_set AND w.valid_to = p_date
                INTERSECT ALL
                SELECT v.referring_domain, v.target_key FROM domain_intersection_version v
                WHERE v.target_set_id = p_set AND v.valid_to = 'infinity' AND v.valid_from = p_date) x)
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

-- As in sql/010, keeping the sums the next direct publish starts from.
-- (whole: every version covering the date)
CREATE OR REPLACE FUNCTION snapshot_stats(p_set bigint, p_date date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    prev      date;
    prev_hash text;
    my_hash   text;
    comparable boolean;
    seq       bigint := sync_seq_take();
BEGIN
    SELECT request_hash INTO my_hash FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date = p_date;
    SELECT snapshot_date, request_hash INTO prev, prev_hash FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date < p_date AND status = 'complete'
      AND purged_at IS NULL
    ORDER BY snapshot_date DESC LIMIT 1;
    comparable := prev IS NOT NULL AND prev_hash = my_hash;

    WITH gone AS (
        DELETE FROM domain_intersection_change WHERE target_set_id = p_set AND snapshot_date = p_date
        RETURNING referring_domain)
    INSERT INTO etl_sync_deleted (sync_seq, view_name, target_set_id, snapshot_date, referring_domain)
    SELECT seq, 'changes', p_set, p_date, referring_domain FROM gone;
    IF comparable THEN
        INSERT INTO domain_intersection_change
        SELECT p_set, p_date, coalesce(c.referring_domain, p.referring_domain),
               CASE WHEN p.referring_domain IS NULL THEN 'new' ELSE 'lost' END,
               coalesce(c.ic, p.ic), coalesce(c.mr, p.mr), coalesce(c.bl, p.bl)
        FROM (SELECT referring_domain, max(intersections_count) AS ic, min(rank) AS mr,
                     sum(backlinks) AS bl
              FROM domain_intersection_version
              WHERE target_set_id = p_set AND valid_from <= p_date AND valid_to > p_date
              GROUP BY referring_domain) c
        FULL JOIN (SELECT referring_domain, max(intersections_count) AS ic, min(rank) AS mr,
                          sum(backlinks) AS bl
                   FROM domain_intersection_version
                   WHERE target_set_id = p_set AND valid_from <= prev AND valid_to > prev
                   GROUP BY referring_domain) p USING (referring_domain)
        WHERE c.referring_domain IS NULL OR p.referring_domain IS NULL;
    END IF;

    UPDATE etl_snapshot s SET
        previous_snapshot_date = CASE WHEN comparable THEN prev END,
        -- (kept when the definitions differ: daily.definition_changed)
        previous_request_hash = prev_hash,
        domains = m.domains, rows = m.rows, avg_rank = m.avg_rank,
        total_backlinks = m.total_backlinks, rank_sum = m.rank_sum, rank_count = m.rank_count,
        backlinks_count = m.backlinks_count,
        new_domains = CASE WHEN comparable THEN ch.new_domains END,
        lost_domains = CASE WHEN comparable THEN ch.lost_domains END,
        -- keys of both snapshots whose values differ: ranges are maximal and
        -- end at complete dates, so those are the keys with a version ending
        -- at p_date (it held at prev) and one starting there. Read from the
        -- versions ending at p_date (an index range): not from each key's
        -- past, which grows with the nights.
        -- (keys with a version ending and one starting here; as a set
        -- intersection, which no plan can turn into a rescan per row: a join
        -- of the two became a nested loop over an index of valid_from, 6 s
        -- for 100,000 rows with 10% changed)
        changed_rows = CASE WHEN comparable THEN (
            SELECT count(*) FROM (
                SELECT w.referring_domain, w.target_key FROM domain_intersection_version w
                WHERE w.target_set_id = p_set AND w.valid_to = p_date
                INTERSECT ALL
                SELECT v.referring_domain, v.target_key FROM domain_intersection_version v
                WHERE v.target_set_id = p_set AND v.valid_from = p_date) x)
            END,
        sync_seq = seq
    FROM (SELECT count(DISTINCT referring_domain) AS domains, count(*) AS rows,
                 round(sum(rank)::numeric / nullif(count(rank), 0), 2) AS avg_rank,
                 sum(backlinks) AS total_backlinks, sum(rank) AS rank_sum, count(rank) AS rank_count,
                 count(backlinks) AS backlinks_count
          FROM domain_intersection_version
          WHERE target_set_id = p_set AND valid_from <= p_date AND valid_to > p_date) m,
         (SELECT count(*) FILTER (WHERE change = 'new') AS new_domains,
                 count(*) FILTER (WHERE change = 'lost') AS lost_domains
          FROM domain_intersection_change
          WHERE target_set_id = p_set AND snapshot_date = p_date) ch
    WHERE s.target_set_id = p_set AND s.snapshot_date = p_date;
END $$;
-- Same call and outcomes as sql/010's. A direct load publishes through
-- publish_direct(); versions other runs staged directly at dates this publish
-- would bring into a complete range go first.
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
        PERFORM discard_staged(x.run_id, p_set)
        FROM (SELECT DISTINCT v.run_id FROM domain_intersection_version v
              WHERE v.target_set_id = p_set AND v.valid_to = 'infinity'
                AND v.valid_from > coalesce(latest, '-infinity') AND v.valid_from <= p_date
                AND v.run_id <> p_run) x;
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

-- A set's first snapshot loaded directly has its breakdown totals summed by
-- the loader page by page (etl_page_keys.dims ...), when every loaded page
-- has them and no key came twice: summing the maps of every row again here
-- cost more than loading them (2.7 s for 100,000 rows). Otherwise as in
-- sql/014.
CREATE OR REPLACE FUNCTION etl_snapshot_breakdown() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status = 'complete' AND NEW.purged_at IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM etl_snapshot c
                       WHERE c.target_set_id = NEW.target_set_id
                         AND c.snapshot_date < NEW.snapshot_date AND c.status = 'complete'
                         AND c.purged_at IS NULL)
           AND EXISTS (SELECT 1 FROM etl_run_set rs
                       WHERE rs.run_id = NEW.run_id AND rs.target_set_id = NEW.target_set_id
                         AND rs.direct)
           AND NOT EXISTS (SELECT 1 FROM etl_page_keys k
                           WHERE k.run_id = NEW.run_id AND k.target_set_id = NEW.target_set_id
                             AND k.dims IS NULL)
           AND (SELECT coalesce(sum(cardinality(k.domains)), 0) FROM etl_page_keys k
                WHERE k.run_id = NEW.run_id AND k.target_set_id = NEW.target_set_id)
               = (SELECT count(*) FROM domain_intersection_version v
                  WHERE v.target_set_id = NEW.target_set_id AND v.valid_to = 'infinity'
                    AND v.valid_from = NEW.snapshot_date)
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

-- As in sql/010, and only ranges that hold a complete snapshot: versions a
-- direct load staged are not history until their publish.
CREATE OR REPLACE VIEW domain_intersection_history AS
SELECT t.job, t.name AS target_set, v.target_set_id, v.referring_domain, v.target_key,
       v.valid_from,
       CASE WHEN v.valid_to <> 'infinity' THEN v.valid_to END AS valid_to,
       v.valid_to = 'infinity' AS is_current,
       (SELECT max(c.snapshot_date) FROM etl_snapshot c
        WHERE c.target_set_id = v.target_set_id AND c.snapshot_date < v.valid_to
          AND c.status = 'complete' AND c.purged_at IS NULL) AS last_snapshot_date,
       v.target, v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
       v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
       v.referring_domains_nofollow, v.referring_main_domains, v.referring_main_domains_nofollow,
       v.referring_ips, v.referring_subnets, v.referring_pages, v.referring_pages_nofollow,
       v.referring_links_tld, v.referring_links_types, v.referring_links_attributes,
       v.referring_links_platform_types, v.referring_links_semantic_locations,
       v.referring_links_countries, v.extra, v.run_id,
       greatest(v.sync_seq, (SELECT c.sync_seq FROM etl_snapshot c
                             WHERE c.target_set_id = v.target_set_id AND c.snapshot_date < v.valid_to
                               AND c.status = 'complete' AND c.purged_at IS NULL
                             ORDER BY c.snapshot_date DESC LIMIT 1)) AS sync_seq
FROM domain_intersection_version v
JOIN target_set t USING (target_set_id)
WHERE EXISTS (SELECT 1 FROM etl_snapshot c
              WHERE c.target_set_id = v.target_set_id AND c.snapshot_date >= v.valid_from
                AND c.snapshot_date < v.valid_to AND c.status = 'complete'
                AND c.purged_at IS NULL);

-- ---------------------------------------------------------------------------
-- Comments

COMMENT ON COLUMN etl_run_set.direct IS
    'How the run loads the set: true when its pages go straight into domain_intersection_version '
    '(the run''s date is after the set''s latest complete snapshot, and it fetches from the API; '
    'sql/016), false when they are staged in domain_intersection_pending and merged at publish '
    '(a backfill, a republish, a replay). Before 016 true meant a first load into a partition '
    '(sql/002, until 005).';
COMMENT ON COLUMN etl_snapshot.rank_sum IS
    'Sum of rank over the snapshot''s rows (avg_rank = rank_sum / rank_count): kept so the next '
    'night''s measures are these plus what changed. NULL for snapshots measured before sql/016.';
COMMENT ON COLUMN etl_snapshot.rank_count IS 'Rows of the snapshot with a rank (see rank_sum).';
COMMENT ON COLUMN etl_snapshot.backlinks_count IS
    'Rows of the snapshot with backlinks (total_backlinks is NULL when 0; see rank_sum).';
COMMENT ON TABLE etl_page_keys IS
    'Per page of a direct load (etl_run_set.direct), written in the page''s transaction: its rows'' '
    'keys and result positions, and which rows were sent (new or changed) rather than left to their '
    'current version. The publish builds the answer from them (keys kept, lost, result order), then '
    'deletes them. Internal to the loader.';
COMMENT ON COLUMN etl_page_keys.run_id IS 'The run.';
COMMENT ON COLUMN etl_page_keys.target_set_id IS 'The target set.';
COMMENT ON COLUMN etl_page_keys.page_offset IS 'The page''s offset (its etl_page row).';
COMMENT ON COLUMN etl_page_keys.domains IS 'Each row''s referring domain, in the page''s order.';
COMMENT ON COLUMN etl_page_keys.keys IS 'Each row''s target key.';
COMMENT ON COLUMN etl_page_keys.positions IS 'Each row''s position in the API''s result order.';
COMMENT ON COLUMN etl_page_keys.sent IS
    'Whether the row was written (its key had no current version, or one with another digest).';
COMMENT ON COLUMN etl_page_keys.dims IS
    'With entry_keys, links and entries: the breakdown of the page''s rows (dimension, key, sum of '
    'links, map entries), summed by the loader when the set had no current version; NULL otherwise.';
COMMENT ON COLUMN etl_page_keys.entry_keys IS 'The map keys of dims (see dims).';
COMMENT ON COLUMN etl_page_keys.links IS 'Sum of the entries'' numbers (null counts 0; see dims).';
COMMENT ON COLUMN etl_page_keys.entries IS 'How many map entries (see dims).';
COMMENT ON COLUMN etl_page_keys.item_domains IS 'Each item''s referring domain, in result order.';
COMMENT ON COLUMN etl_page_keys.item_positions IS 'Each item''s position in the API''s result order.';
COMMENT ON COLUMN etl_page_keys.kept IS 'Rows not sent: equal to their key''s current version.';
COMMENT ON COLUMN etl_page_keys.maybe_dup IS
    'Whether a row may repeat a key another page (or this one) had, by the loader''s filter: then '
    'the publish builds the answer key by key, the first place winning.';
COMMENT ON FUNCTION publish_answer_keys(bigint, bigint, boolean) IS
    'A direct load''s answer key by key, into the publishing session''s pg_temp.publish_answer. '
    'Part of publish_direct().';
COMMENT ON FUNCTION direct_load_ok(bigint, bigint) IS
    'Whether a run may load a set directly (sql/016): it fetches from the API, its date is after the '
    'set''s latest complete snapshot, and it staged nothing in domain_intersection_pending.';
COMMENT ON FUNCTION discard_staged(bigint, bigint) IS
    'Removes what a run staged for a set and never published (pending rows, directly staged '
    'versions, page keys) and marks its loaded pages discarded, to be fetched again.';
COMMENT ON FUNCTION stage_page(bigint, bigint, bigint, date, boolean, text[], smallint[], integer[], uuid[], text[], text[], bigint[], integer[], boolean, boolean[], text[], integer[]) IS
    'A page of a direct load: records its keys (etl_page_keys) and answers the ordinals of the rows '
    'to write: those whose key has no current version, or one with another digest.';
COMMENT ON FUNCTION stage_page_rows(bigint, bigint, bigint, date) IS
    'A direct load''s page whose rows (in pg_temp.di_stage) repeat keys staged before: each key once, '
    'the first place in result order winning. Answers the rows inserted.';
COMMENT ON FUNCTION same_version_values(domain_intersection_version, domain_intersection_version) IS
    'Whether two versions hold the same values (every column a version compares).';
COMMENT ON FUNCTION publish_order_arrays(bigint, date, date, text[], integer[]) IS
    'Makes the given order (referring domains and positions) the result order of the date, joined '
    'with an equal neighbour. Part of publishing.';
COMMENT ON FUNCTION publish_order(bigint, bigint, date, date) IS
    'Makes the staged result order the order of the date (publish_order_arrays()). Part of publishing.';
COMMENT ON FUNCTION publish_direct(bigint, bigint, date, bigint, bigint) IS
    'Publishes the versions a direct load staged: ends the ranges of changed and lost keys, drops '
    'rows a key''s first place did not send, writes the result order. Part of publish_snapshot().';
COMMENT ON FUNCTION snapshot_stats_direct(bigint, date) IS
    'The measures of a directly published date from the previous snapshot''s and the versions '
    'starting and ending at the date: cost follows the change. Part of publish_snapshot().';
COMMENT ON FUNCTION snapshot_stats(bigint, date) IS
    'Computes a (set, date) control row''s measures against the previous complete snapshot not '
    'purged (rule 2): domains, rows, averages and their sums, new/lost/changed, and its change rows.';
COMMENT ON FUNCTION publish_snapshot(bigint, bigint, date, bigint) IS
    'Publishes what a run loaded for a set as the snapshot of its date, in the caller''s transaction: '
    'directly staged versions through publish_direct(), staged rows through publish_versions(); '
    'answers published, already (a no-op), or short (staged rows differ from the ledger: nothing '
    'changed).';
COMMENT ON FUNCTION etl_snapshot_breakdown() IS
    'Trigger on etl_snapshot: the breakdown totals follow publishing (from the loader''s page sums for '
    'a first direct load) and purging.';

-- intersect-etl migration 010: one history whatever order dates are published
-- in, retention that restarts the comparison, and one sync cursor per view.
--
-- 1. Exact ranges (issue 15 item 1). Until here publish_snapshot() split the
--    ranges covering a republished or backfilled date and never joined a new
--    version with an equal neighbour: a backfill with the same answer showed
--    every key as two equal ranges, and changed_rows counted them as changed.
--    Now a version written for date D continues the version that ends at D
--    (its key's range over the previous complete snapshot) when their values
--    are equal, and swallows the version that starts at the next complete
--    snapshot after D when equal; so is the result order. Only the keys the
--    publish wrote are looked at, one index probe each: a night's cost does
--    not grow with the nights kept. Ranges are then maximal, and
--    snapshot_stats()'s count of the versions that start at D over a key of
--    the previous snapshot is the number of keys whose values differ.
--    Existing split ranges are joined below, and the dates they split
--    recounted.
-- 2. Retention (item 5): the oldest kept snapshot has nothing to compare with
--    once the dates before it are purged: purge_snapshots() recomputes it as a
--    restart (no change rows, new/lost/changed NULL), as the comments of
--    sql/007 said it would be.
-- 3. Sync (item 4): etl_sync_counter holds one number; every transaction that
--    publishes, fails, or purges takes the next one (sync_seq_take()) with a
--    row lock on the counter kept until it commits, so the numbers follow
--    commit order: once a reader sees number n, every number below n has
--    committed. The control rows (etl_snapshot) and the versions carry the
--    number of the transaction that last wrote them; rows a transaction
--    removes from domain_intersection_history or domain_intersection_changes
--    are written to etl_sync_deleted with its number. A reader of a view
--    keeps one cursor: the greatest sync_seq it has applied.
--
-- Locks taken by this migration: ACCESS EXCLUSIVE on etl_snapshot and
-- domain_intersection_version (a column added, no rewrite) and on the three
-- views replaced.

SET LOCAL lock_timeout = '10s';

-- ---------------------------------------------------------------------------
-- The sync counter

CREATE TABLE etl_sync_counter (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL
);
-- 1 is every row written before this migration.
INSERT INTO etl_sync_counter VALUES (true, 1);

-- The calling transaction's sync number: the next one on its first call
-- (locking the counter row until the transaction ends), the same one after.
-- The number is kept in a transaction-local setting, so it is forgotten with
-- the transaction (or the subtransaction that took it, with the counter's
-- update). Built with the schema's name in it: it is the default of two
-- columns, evaluated under whatever search_path the writer has.
DO $do$
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION %1$I.sync_seq_take() RETURNS bigint LANGUAGE plpgsql AS $b$
        DECLARE
            cur text := current_setting('intersect_etl.sync_seq', true);
            n   bigint;
        BEGIN
            IF cur IS NOT NULL AND cur <> '' THEN
                RETURN cur::bigint;
            END IF;
            UPDATE %1$I.etl_sync_counter SET seq = seq + 1 RETURNING seq INTO n;
            PERFORM set_config('intersect_etl.sync_seq', n::text, true);
            RETURN n;
        END $b$$f$, current_schema());
END $do$;

-- Fast defaults: the existing rows read 1 without a rewrite; rows written
-- later without a number (by hand) take their transaction's.
ALTER TABLE etl_snapshot ADD COLUMN sync_seq bigint NOT NULL DEFAULT 1;
ALTER TABLE etl_snapshot ALTER COLUMN sync_seq SET DEFAULT sync_seq_take();
ALTER TABLE domain_intersection_version ADD COLUMN sync_seq bigint NOT NULL DEFAULT 1;
ALTER TABLE domain_intersection_version ALTER COLUMN sync_seq SET DEFAULT sync_seq_take();
CREATE INDEX etl_snapshot_sync ON etl_snapshot (sync_seq);

CREATE TABLE etl_sync_deleted (
    sync_seq          bigint   NOT NULL,
    view_name         text     NOT NULL CHECK (view_name IN ('history', 'changes')),
    target_set_id     bigint   NOT NULL,
    snapshot_date     date,       -- changes: the row's snapshot_date
    referring_domain  text     NOT NULL,
    target_key        smallint,   -- history: the row's key with valid_from
    valid_from        date,
    CHECK ((view_name = 'changes') = (snapshot_date IS NOT NULL)),
    CHECK ((view_name = 'history') = (target_key IS NOT NULL AND valid_from IS NOT NULL))
);
CREATE INDEX etl_sync_deleted_seq ON etl_sync_deleted (sync_seq);

-- A row removed and written again by the same transaction was not removed:
-- its deletion row goes, so a number never holds both for one key.
CREATE FUNCTION sync_tidy(p_seq bigint) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    DELETE FROM etl_sync_deleted d
    WHERE d.sync_seq = p_seq
      AND CASE d.view_name
          WHEN 'history' THEN EXISTS (
              SELECT 1 FROM domain_intersection_version v
              WHERE v.target_set_id = d.target_set_id AND v.referring_domain = d.referring_domain
                AND v.target_key = d.target_key AND v.valid_from = d.valid_from)
          ELSE EXISTS (
              SELECT 1 FROM domain_intersection_change c
              WHERE c.target_set_id = d.target_set_id AND c.snapshot_date = d.snapshot_date
                AND c.referring_domain = d.referring_domain) END;
$$;

-- ---------------------------------------------------------------------------
-- Per (set, date) measures (rule 2 of the history: compared with the
-- previous complete snapshot not purged). As in sql/005, plus the sync
-- number and the deletion rows of change rows that go.

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
        total_backlinks = m.total_backlinks,
        new_domains = CASE WHEN comparable THEN ch.new_domains END,
        lost_domains = CASE WHEN comparable THEN ch.lost_domains END,
        -- keys of both snapshots whose values differ: ranges are maximal and
        -- end at complete dates, so those are the keys with a version ending
        -- at p_date (it held at prev) and one starting there. Read from the
        -- versions ending at p_date (an index range): not from each key's
        -- past, which grows with the nights.
        changed_rows = CASE WHEN comparable THEN (
            SELECT count(*) FROM domain_intersection_version w
            JOIN domain_intersection_version v
              ON v.target_set_id = p_set AND v.referring_domain = w.referring_domain
             AND v.target_key = w.target_key AND v.valid_from = p_date
            WHERE w.target_set_id = p_set AND w.valid_to = p_date) END,
        sync_seq = seq
    FROM (SELECT count(DISTINCT referring_domain) AS domains, count(*) AS rows,
                 round(sum(rank)::numeric / nullif(count(rank), 0), 2) AS avg_rank,
                 sum(backlinks) AS total_backlinks
          FROM domain_intersection_version
          WHERE target_set_id = p_set AND valid_from <= p_date AND valid_to > p_date) m,
         (SELECT count(*) FILTER (WHERE change = 'new') AS new_domains,
                 count(*) FILTER (WHERE change = 'lost') AS lost_domains
          FROM domain_intersection_change
          WHERE target_set_id = p_set AND snapshot_date = p_date) ch
    WHERE s.target_set_id = p_set AND s.snapshot_date = p_date;
END $$;

-- ---------------------------------------------------------------------------
-- Publishing (rule 1: one row per key and maximal run of equal values)

-- The versions of (p_set, p_date) become the rows run p_run staged; hi is the
-- next complete snapshot after p_date ('infinity' when none), where the new
-- values end unless an equal version starting there continues them. Part of
-- publish_snapshot(), in its transaction; seq is its sync number.
CREATE FUNCTION publish_versions(p_run bigint, p_set bigint, p_date date, hi date,
                                 verify boolean, seq bigint) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n_diff bigint;
    merge  boolean;
BEGIN
    -- New values can continue a neighbour only if a version already ended at
    -- p_date (it was a complete date before) or one starts at hi (a date is
    -- published before the set's latest): not on a night after the latest,
    -- whose versions ending at p_date are the ones this publish ends, as
    -- they differ from the answer.
    merge := hi < 'infinity' OR EXISTS (SELECT 1 FROM domain_intersection_version v
                                        WHERE v.target_set_id = p_set AND v.valid_to = p_date);
    -- A set's first answer after its latest date: nothing covers p_date,
    -- nothing ends there to continue, nothing follows: the answer goes in
    -- whole (a first load of 1M rows, in one statement).
    IF NOT merge AND NOT EXISTS (SELECT 1 FROM domain_intersection_version v
                                 WHERE v.target_set_id = p_set AND v.valid_to > p_date) THEN
        INSERT INTO domain_intersection_version
        SELECT p.target_set_id, p.referring_domain, p.target_key, p_date, hi, p.target,
               p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen, p.lost_date,
               p.backlinks_spam_score, p.broken_backlinks, p.broken_pages, p.referring_domains,
               p.referring_domains_nofollow, p.referring_main_domains,
               p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
               p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
               p.referring_links_types, p.referring_links_attributes,
               p.referring_links_platform_types, p.referring_links_semantic_locations,
               p.referring_links_countries, p.extra, p.run_id, p.digest, seq
        FROM domain_intersection_pending p
        WHERE p.run_id = p_run AND p.target_set_id = p_set;
        RETURN;
    END IF;

    -- The keys whose row may differ: in the versions covering p_date or in
    -- the answer but not both, or in both with digests that differ (or any,
    -- for a replay). Keys and digests only (sql/009). pred_from/succ_to: the
    -- equal neighbours the new values continue.
    CREATE TEMP TABLE IF NOT EXISTS publish_keys (
        referring_domain text, target_key smallint, valid_from date, valid_to date,
        digest uuid, staged boolean, same boolean, pred_from date, succ_to date)
        ON COMMIT DELETE ROWS;
    INSERT INTO publish_keys
    SELECT coalesce(v.referring_domain, p.referring_domain), coalesce(v.target_key, p.target_key),
           v.valid_from, v.valid_to, p.digest, p.referring_domain IS NOT NULL, false
    FROM (SELECT referring_domain, target_key, valid_from, valid_to, digest
          FROM domain_intersection_version
          WHERE target_set_id = p_set AND valid_from <= p_date AND valid_to > p_date) v
    FULL JOIN (SELECT referring_domain, target_key, digest FROM domain_intersection_pending
               WHERE run_id = p_run AND target_set_id = p_set) p
      ON p.referring_domain = v.referring_domain AND p.target_key = v.target_key
    WHERE v.referring_domain IS NULL OR p.referring_domain IS NULL OR verify
       OR v.digest IS NULL OR p.digest IS DISTINCT FROM v.digest;
    GET DIAGNOSTICS n_diff = ROW_COUNT;
    IF n_diff = 0 THEN
        RETURN;  -- an unchanged night: nothing here but the control rows
    END IF;
    -- Its size, so the joins below are planned for what it holds (a temporary
    -- table has no statistics until analyzed; taken for 1,000s of rows, a
    -- night of 5 keys read the whole snapshot).
    ANALYZE publish_keys;

    -- In both: the values decide, one key at a time by its primary keys.
    -- Equal values under another digest keep their version, which takes the
    -- answer's digest.
    UPDATE publish_keys g SET same = coalesce((
        SELECT same_values(v, p)
        FROM domain_intersection_version v, domain_intersection_pending p
        WHERE v.target_set_id = p_set AND v.referring_domain = g.referring_domain
          AND v.target_key = g.target_key AND v.valid_from = g.valid_from
          AND p.run_id = p_run AND p.target_set_id = p_set
          AND p.referring_domain = g.referring_domain AND p.target_key = g.target_key), false)
    WHERE g.staged AND g.valid_from IS NOT NULL;
    UPDATE domain_intersection_version v SET digest = g.digest FROM publish_keys g
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND v.referring_domain = g.referring_domain
      AND v.target_key = g.target_key AND v.valid_from = g.valid_from AND g.same
      AND g.digest IS NOT NULL AND v.digest IS DISTINCT FROM g.digest;

    -- Versions covering p_date whose key the answer lacks or whose values it
    -- changes: the part from hi on is kept as a copy, the part before p_date
    -- by ending the range there (or the version goes, when it started there).
    INSERT INTO domain_intersection_version
    SELECT v.target_set_id, v.referring_domain, v.target_key, hi, v.valid_to, v.target,
           v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
           v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
           v.referring_domains_nofollow, v.referring_main_domains,
           v.referring_main_domains_nofollow, v.referring_ips, v.referring_subnets,
           v.referring_pages, v.referring_pages_nofollow, v.referring_links_tld,
           v.referring_links_types, v.referring_links_attributes,
           v.referring_links_platform_types, v.referring_links_semantic_locations,
           v.referring_links_countries, v.extra, v.run_id, v.digest, seq
    FROM domain_intersection_version v
    JOIN publish_keys g USING (referring_domain, target_key, valid_from)
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND hi < v.valid_to AND NOT g.same;
    -- (Each statement names the range of p_date although publish_keys holds
    -- only versions covering it: without it the join is planned over every
    -- version the set ever had, and publishing slowed with each night.)
    WITH gone AS (
        DELETE FROM domain_intersection_version v USING publish_keys g
        WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
          AND v.referring_domain = g.referring_domain
          AND v.target_key = g.target_key AND v.valid_from = g.valid_from
          AND g.valid_from = p_date AND NOT g.same
        RETURNING v.referring_domain, v.target_key, v.valid_from)
    INSERT INTO etl_sync_deleted (sync_seq, view_name, target_set_id, referring_domain, target_key,
                                  valid_from)
    SELECT seq, 'history', p_set, referring_domain, target_key, valid_from FROM gone;
    UPDATE domain_intersection_version v SET valid_to = p_date, sync_seq = seq FROM publish_keys g
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND v.referring_domain = g.referring_domain
      AND v.target_key = g.target_key AND v.valid_from = g.valid_from
      AND g.valid_from < p_date AND NOT g.same;

    -- New values equal to the key's version just before (it ends at p_date:
    -- the previous complete snapshot had them) continue it; equal to the one
    -- starting at hi, they take it in. One backward probe of the primary key
    -- per key for the first (not the key's whole past), an exact one for the
    -- second.
    IF merge THEN
        UPDATE publish_keys g SET
            pred_from = (
                SELECT (q.v).valid_from
                FROM (SELECT v FROM domain_intersection_version v
                      WHERE v.target_set_id = p_set AND v.referring_domain = g.referring_domain
                        AND v.target_key = g.target_key AND v.valid_from < p_date
                      ORDER BY v.valid_from DESC LIMIT 1) q,
                     domain_intersection_pending p
                WHERE (q.v).valid_to = p_date
                  AND p.run_id = p_run AND p.target_set_id = p_set
                  AND p.referring_domain = g.referring_domain AND p.target_key = g.target_key
                  AND same_values(q.v, p)),
            succ_to = CASE WHEN hi < 'infinity' THEN (
                SELECT v.valid_to
                FROM domain_intersection_version v, domain_intersection_pending p
                WHERE v.target_set_id = p_set AND v.referring_domain = g.referring_domain
                  AND v.target_key = g.target_key AND v.valid_from = hi
                  AND p.run_id = p_run AND p.target_set_id = p_set
                  AND p.referring_domain = g.referring_domain AND p.target_key = g.target_key
                  AND same_values(v, p)) END
        WHERE g.staged AND NOT g.same;
        WITH gone AS (
            DELETE FROM domain_intersection_version v USING publish_keys g
            WHERE v.target_set_id = p_set AND v.referring_domain = g.referring_domain
              AND v.target_key = g.target_key AND v.valid_from = hi AND g.succ_to IS NOT NULL
            RETURNING v.referring_domain, v.target_key, v.valid_from)
        INSERT INTO etl_sync_deleted (sync_seq, view_name, target_set_id, referring_domain, target_key,
                                      valid_from)
        SELECT seq, 'history', p_set, referring_domain, target_key, valid_from FROM gone;
        -- (g.pred_from IS NOT NULL: the statistics, taken before it was set,
        -- then say few rows, and the versions are probed by key rather than all
        -- of the set's hashed.)
        UPDATE domain_intersection_version v SET valid_to = coalesce(g.succ_to, hi), sync_seq = seq
        FROM publish_keys g
        WHERE v.target_set_id = p_set AND v.referring_domain = g.referring_domain
          AND v.target_key = g.target_key AND v.valid_from = g.pred_from AND g.pred_from IS NOT NULL;
    END IF;

    -- What is left of the answer: its new keys and changed values, each
    -- staged row fetched by its primary key (OFFSET 0 keeps the probe: the
    -- staging table's statistics are whatever autovacuum last saw).
    INSERT INTO domain_intersection_version
    SELECT p.target_set_id, p.referring_domain, p.target_key, p_date, coalesce(g.succ_to, hi),
           p.target, p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen, p.lost_date,
           p.backlinks_spam_score, p.broken_backlinks, p.broken_pages, p.referring_domains,
           p.referring_domains_nofollow, p.referring_main_domains,
           p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
           p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
           p.referring_links_types, p.referring_links_attributes,
           p.referring_links_platform_types, p.referring_links_semantic_locations,
           p.referring_links_countries, p.extra, p.run_id, p.digest, seq
    FROM publish_keys g
    CROSS JOIN LATERAL (
        SELECT * FROM domain_intersection_pending p
        WHERE p.run_id = p_run AND p.target_set_id = p_set
          AND p.referring_domain = g.referring_domain AND p.target_key = g.target_key
        OFFSET 0) p
    WHERE g.staged AND NOT g.same AND g.pred_from IS NULL;
END $$;

-- The result order of (p_set, p_date) becomes the staged one, with the same
-- rule: an order equal to the one ending at p_date continues it, equal to
-- the one starting at hi takes it in. Part of publish_snapshot().
CREATE FUNCTION publish_order(p_run bigint, p_set bigint, p_date date, hi date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    o_dom    text[];
    o_pos    integer[];
    cur      domain_intersection_order%ROWTYPE;
    nb       domain_intersection_order%ROWTYPE;
    top      date := hi;
BEGIN
    SELECT array_agg(referring_domain ORDER BY position, referring_domain),
           array_agg(position ORDER BY position, referring_domain)
    INTO o_dom, o_pos
    FROM (SELECT referring_domain, min(position) AS position FROM domain_intersection_pending
          WHERE run_id = p_run AND target_set_id = p_set GROUP BY referring_domain) x;
    o_dom := coalesce(o_dom, '{}');
    o_pos := coalesce(o_pos, '{}');
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

-- Same call and outcomes as sql/009's; what it writes is rule 1 and 2 of the
-- history whatever the order of publishing.
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
    seq      bigint;
BEGIN
    SELECT rs.status, rs.request_hash INTO st, hash FROM etl_run_set rs
    WHERE rs.run_id = p_run AND rs.target_set_id = p_set FOR UPDATE;
    IF st = 'complete' THEN
        outcome := 'already';
        RETURN;
    END IF;
    SELECT coalesce(sum(coalesce(e.staged, e.rows)), 0) INTO ledger FROM etl_page e
    WHERE e.run_id = p_run AND e.target_set_id = p_set AND e.status = 'loaded';
    -- A replay is how rows are mended: it compares every value, digest or not.
    SELECT r.replay_of IS NOT NULL INTO verify FROM etl_run r WHERE r.run_id = p_run;
    -- Every boundary is a complete date not purged: the new values hold until
    -- the next one after p_date, and that one keeps its own.
    SELECT min(c.snapshot_date) INTO nxt FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.snapshot_date > p_date AND c.status = 'complete'
      AND c.purged_at IS NULL;
    hi := coalesce(nxt, 'infinity');
    -- From here the counter is locked until commit (publishes queue here).
    seq := sync_seq_take();

    -- Undone when the staged rows, counted as they are deleted at the end, are
    -- not what the ledger says: 'short'.
    BEGIN
        PERFORM publish_versions(p_run, p_set, p_date, hi, verify, seq);
        PERFORM publish_order(p_run, p_set, p_date, hi);
        DELETE FROM domain_intersection_pending WHERE run_id = p_run AND target_set_id = p_set;
        GET DIAGNOSTICS staged = ROW_COUNT;
        IF staged <> ledger THEN
            RAISE EXCEPTION USING ERRCODE = 'ETL01', MESSAGE = 'staged rows differ from the ledger';
        END IF;
    EXCEPTION WHEN SQLSTATE 'ETL01' THEN
        outcome := 'short';
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
    PERFORM snapshot_stats(p_set, p_date);
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

-- As in sql/005, numbered: a failed rerun of a complete date changes its
-- last_error, which a sync must see.
CREATE OR REPLACE FUNCTION fail_snapshot(p_run bigint, p_set bigint, p_date date, p_error text)
RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    INSERT INTO etl_snapshot AS c (target_set_id, snapshot_date, status, run_id,
                                   request_hash, last_run_id, last_error, sync_seq)
    SELECT p_set, p_date, 'failed', p_run, rs.request_hash, p_run, p_error, sync_seq_take()
    FROM etl_run_set rs WHERE rs.run_id = p_run AND rs.target_set_id = p_set
    ON CONFLICT (target_set_id, snapshot_date) DO UPDATE SET
        status = CASE WHEN c.status = 'complete' THEN 'complete' ELSE 'failed' END,
        run_id = CASE WHEN c.status = 'complete' THEN c.run_id ELSE p_run END,
        request_hash = CASE WHEN c.status = 'complete' THEN c.request_hash
                            ELSE EXCLUDED.request_hash END,
        last_run_id = p_run, last_error = p_error, sync_seq = EXCLUDED.sync_seq;
$$;

-- As in sql/005, numbered (daily.cost_usd moves).
CREATE OR REPLACE FUNCTION snapshot_cost(p_set bigint, p_date date) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE etl_snapshot c SET cost_usd = (
        SELECT coalesce(sum(rs.cost_usd), 0) FROM etl_run_set rs JOIN etl_run r USING (run_id)
        WHERE rs.target_set_id = p_set AND r.snapshot_date = p_date),
        sync_seq = sync_seq_take()
    WHERE c.target_set_id = p_set AND c.snapshot_date = p_date;
$$;

-- ---------------------------------------------------------------------------
-- Retention (rule 3): as in sql/005, and the oldest kept snapshot then has
-- nothing to compare with: it is recomputed as a restart.

CREATE OR REPLACE FUNCTION purge_snapshots(p_set bigint, p_cutoff date) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    keep  date;
    n     integer;
    seq   bigint;
    wait  text;
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
    PERFORM sync_tidy(seq);
    RETURN n;
END $$;

-- ---------------------------------------------------------------------------
-- The views, each with its sync number last (columns before it unchanged).

CREATE OR REPLACE VIEW domain_intersection_changes AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, s.previous_snapshot_date,
       c.change, c.referring_domain, c.intersections_count, c.min_rank, c.backlinks,
       s.published_at, s.run_id, s.purged_at, s.sync_seq
FROM etl_snapshot s
JOIN target_set t USING (target_set_id)
CROSS JOIN LATERAL (
    SELECT c.change, c.referring_domain, c.intersections_count, c.min_rank, c.backlinks
    FROM domain_intersection_change c
    WHERE c.target_set_id = s.target_set_id AND c.snapshot_date = s.snapshot_date
    OFFSET 0
) c;

CREATE OR REPLACE VIEW domain_intersection_daily AS
SELECT t.job, t.name AS target_set, s.target_set_id, s.snapshot_date, s.status,
       s.domains AS distinct_domains, s.new_domains, s.lost_domains, s.avg_rank,
       s.total_backlinks, s.cost_usd,
       coalesce(s.previous_request_hash <> s.request_hash, false) AS definition_changed,
       CASE WHEN s.status = 'complete' AND s.domains IS NOT NULL
            THEN s.new_domains IS NULL END AS restart,
       s.previous_snapshot_date, s.total_count, s.expected_domains, s.rows, s.changed_rows,
       s.status = 'complete' AND s.domains < s.expected_domains AS short,
       s.published_at, s.run_id, s.purged_at, s.last_run_id, s.last_error, s.sync_seq
FROM etl_snapshot s
JOIN target_set t USING (target_set_id);

-- last_snapshot_date is the greatest complete date before valid_to: a night
-- moves it for every current row, a date published inside a closed range for
-- that range, without writing the version. So a row's sync number is the
-- later of its version's and that date's control row's.
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
JOIN target_set t USING (target_set_id);

CREATE VIEW domain_intersection_deleted AS
SELECT d.sync_seq, d.view_name, t.job, t.name AS target_set, d.target_set_id, d.snapshot_date,
       d.referring_domain, d.target_key, d.valid_from
FROM etl_sync_deleted d
JOIN target_set t USING (target_set_id);

-- ---------------------------------------------------------------------------
-- The history as it is: equal ranges that earlier publishes split are joined
-- (the earliest part keeps its run_id), and the dates they split, and each
-- set's oldest kept date after a purge, are measured again.

CREATE TEMP TABLE mig_versions ON COMMIT DROP AS
SELECT target_set_id, referring_domain, target_key, valid_from, valid_to, cont,
       max(valid_to) OVER (PARTITION BY target_set_id, referring_domain, target_key, grp) AS group_to
FROM (
    SELECT *, count(*) FILTER (WHERE NOT cont) OVER (PARTITION BY target_set_id, referring_domain,
                                                    target_key ORDER BY valid_from) AS grp
    FROM (
        SELECT target_set_id, referring_domain, target_key, valid_from, valid_to,
               coalesce(lag(valid_to) OVER w = valid_from AND lag(vals) OVER w = vals, false) AS cont
        FROM (SELECT v.*, ROW(v.target, v.intersections_count, v.type, v.rank, v.backlinks,
                              v.first_seen, v.lost_date, v.backlinks_spam_score, v.broken_backlinks,
                              v.broken_pages, v.referring_domains, v.referring_domains_nofollow,
                              v.referring_main_domains, v.referring_main_domains_nofollow,
                              v.referring_ips, v.referring_subnets, v.referring_pages,
                              v.referring_pages_nofollow, v.referring_links_tld,
                              v.referring_links_types, v.referring_links_attributes,
                              v.referring_links_platform_types,
                              v.referring_links_semantic_locations, v.referring_links_countries,
                              v.extra)::text AS vals
              FROM domain_intersection_version v) x
        WINDOW w AS (PARTITION BY target_set_id, referring_domain, target_key ORDER BY valid_from)
    ) y
) z;
DELETE FROM domain_intersection_version v USING mig_versions m
WHERE m.cont AND v.target_set_id = m.target_set_id AND v.referring_domain = m.referring_domain
  AND v.target_key = m.target_key AND v.valid_from = m.valid_from;
UPDATE domain_intersection_version v SET valid_to = m.group_to FROM mig_versions m
WHERE NOT m.cont AND m.group_to <> m.valid_to AND v.target_set_id = m.target_set_id AND v.referring_domain = m.referring_domain
  AND v.target_key = m.target_key AND v.valid_from = m.valid_from;

CREATE TEMP TABLE mig_orders ON COMMIT DROP AS
SELECT target_set_id, valid_from, valid_to, cont,
       max(valid_to) OVER (PARTITION BY target_set_id, grp) AS group_to
FROM (
    SELECT *, count(*) FILTER (WHERE NOT cont) OVER (PARTITION BY target_set_id
                                                    ORDER BY valid_from) AS grp
    FROM (
        SELECT target_set_id, valid_from, valid_to,
               coalesce(lag(valid_to) OVER w = valid_from AND lag(domains) OVER w = domains
                        AND lag(positions) OVER w = positions, false) AS cont
        FROM domain_intersection_order
        WINDOW w AS (PARTITION BY target_set_id ORDER BY valid_from)
    ) y
) z;
DELETE FROM domain_intersection_order o USING mig_orders m
WHERE m.cont AND o.target_set_id = m.target_set_id AND o.valid_from = m.valid_from;
UPDATE domain_intersection_order o SET valid_to = m.group_to FROM mig_orders m
WHERE NOT m.cont AND m.group_to <> m.valid_to
  AND o.target_set_id = m.target_set_id AND o.valid_from = m.valid_from;

DO $$
BEGIN
    PERFORM snapshot_stats(d.target_set_id, d.snapshot_date)
FROM (SELECT DISTINCT target_set_id, valid_from AS snapshot_date FROM mig_versions WHERE cont
      UNION
      SELECT s.target_set_id, min(s.snapshot_date) FROM etl_snapshot s
      WHERE s.status = 'complete' AND s.purged_at IS NULL
        AND EXISTS (SELECT 1 FROM etl_snapshot p WHERE p.target_set_id = s.target_set_id
                      AND p.purged_at IS NOT NULL)
      GROUP BY s.target_set_id) d
JOIN etl_snapshot s ON s.target_set_id = d.target_set_id AND s.snapshot_date = d.snapshot_date
WHERE s.status = 'complete' AND s.purged_at IS NULL;
END $$;

-- ---------------------------------------------------------------------------
-- Comments: the new objects, and the old ones whose meaning changed here.

COMMENT ON TABLE etl_sync_counter IS
    'One row: the last sync number handed out. Every transaction that publishes, fails or purges a snapshot '
    'takes the next one (sync_seq_take()) and keeps this row locked until it commits, so sync numbers follow '
    'commit order. Read by sync tools as the high-water mark: every number up to seq has committed.';
COMMENT ON COLUMN etl_sync_counter.one IS 'Always true: the table has one row.';
COMMENT ON COLUMN etl_sync_counter.seq IS
    'The greatest sync number taken; 1 stands for everything written before migration 010.';
COMMENT ON TABLE etl_sync_deleted IS
    'Rows that a transaction removed from domain_intersection_history or domain_intersection_changes (a '
    'republished date, a merge of equal ranges, retention), with that transaction''s sync number; read '
    'through domain_intersection_deleted. A row removed and written again by the same transaction is not '
    'listed. Grows with such removals; nothing prunes it yet.';
COMMENT ON COLUMN etl_sync_deleted.sync_seq IS 'Sync number of the transaction that removed the row.';
COMMENT ON COLUMN etl_sync_deleted.view_name IS
    '''history'' (a domain_intersection_history row, keyed by target_set_id, referring_domain, target_key, '
    'valid_from) or ''changes'' (a domain_intersection_changes row, keyed by target_set_id, snapshot_date, '
    'referring_domain).';
COMMENT ON COLUMN etl_sync_deleted.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN etl_sync_deleted.snapshot_date IS 'changes: the removed row''s snapshot_date; NULL for history.';
COMMENT ON COLUMN etl_sync_deleted.referring_domain IS 'The removed row''s referring domain.';
COMMENT ON COLUMN etl_sync_deleted.target_key IS 'history: the removed row''s target key; NULL for changes.';
COMMENT ON COLUMN etl_sync_deleted.valid_from IS 'history: the removed row''s valid_from; NULL for changes.';
COMMENT ON COLUMN etl_snapshot.sync_seq IS
    'Sync number of the transaction that last wrote this row (a publish, a failure, a purge, the '
    'recomputed comparison of the next date, the cost of a run); 1 when last written before migration 010.';
COMMENT ON COLUMN domain_intersection_version.sync_seq IS
    'Sync number of the transaction that last wrote this version (created, range ended or extended, '
    'trimmed by retention); 1 when last written before migration 010.';

COMMENT ON FUNCTION sync_seq_take() IS
    'sync_seq_take(): the calling transaction''s sync number. The first call takes the next one from '
    'etl_sync_counter and keeps the counter row locked until the transaction ends, so numbers follow commit '
    'order; later calls in the transaction return the same number (kept in the transaction-local setting '
    'intersect_etl.sync_seq).';
COMMENT ON FUNCTION sync_tidy(bigint) IS
    'sync_tidy(p_seq): removes from etl_sync_deleted the rows of sync number p_seq whose key exists again '
    '(removed and rewritten by the same transaction), so a number never holds both a row and its deletion.';
COMMENT ON FUNCTION publish_versions(bigint, bigint, date, date, boolean, bigint) IS
    'publish_versions(p_run, p_set, p_date, hi, verify, seq): part of publish_snapshot(). Makes the versions '
    'of (p_set, p_date) the rows run p_run staged: unchanged keys keep their version, changed and lost keys '
    'split the range covering p_date at p_date and hi (the next complete snapshot), and new values continue '
    'an equal version ending at p_date or take in an equal one starting at hi. Values are compared where '
    'digests differ (always when verify). Writes sync number seq on what it writes, and deletion rows.';
COMMENT ON FUNCTION publish_order(bigint, bigint, date, date) IS
    'publish_order(p_run, p_set, p_date, hi): part of publish_snapshot(). Makes the order row covering '
    'p_date the staged result order, by the same rule as the versions (equal neighbours are one range).';
COMMENT ON FUNCTION publish_snapshot(bigint, bigint, date, bigint) IS
    'publish_snapshot(p_run, p_set, p_date, p_total): makes the rows run p_run staged for set p_set '
    '(domain_intersection_pending) the snapshot of p_date, whatever the order dates are published in (a '
    'backfill before the first date, a rerun or replay of a past one): every other complete date keeps its '
    'rows, and versions and order rows stay one per maximal run of equal values. p_total is the API''s '
    'total_count. Values are compared only where digests differ (every value, for a replay). Writes the '
    'control row (published_at = now()) and the change rows of p_date and of the next complete date (now '
    'compared with this answer), deletes the staged rows, and takes the transaction''s sync number. outcome: '
    '''published''; ''already'' (this run published the set before: nothing changes); ''short'' (fewer '
    'rows staged than the ledger says were loaded: nothing is published). staged, ledger: those two counts; '
    'domains, expected_domains: of the snapshot. The caller holds the job''s lock; the set''s etl_run_set '
    'row is locked here, then the sync counter until commit.';
COMMENT ON FUNCTION snapshot_stats(bigint, date) IS
    'snapshot_stats(p_set, p_date): computes the size, average rank and backlinks of the snapshot of (p_set, '
    'p_date) into its etl_snapshot row, and what changed since the previous complete snapshot not purged '
    '(when of the same definition; otherwise a restart: no change rows, new/lost/changed and '
    'previous_snapshot_date NULL) into domain_intersection_change, replacing the date''s rows there. '
    'changed_rows counts the keys of both snapshots whose values differ. Called by publish_snapshot() for the '
    'date published and the complete date after it, and by purge_snapshots() for the oldest kept date.';
COMMENT ON FUNCTION fail_snapshot(bigint, bigint, date, text) IS
    'fail_snapshot(p_run, p_set, p_date, p_error): records that run p_run failed set p_set for p_date: the date '
    'is ''failed'' unless it has a complete snapshot, which stays as it was (only last_run_id and last_error '
    'change). Takes the transaction''s sync number.';
COMMENT ON FUNCTION snapshot_cost(bigint, date) IS
    'snapshot_cost(p_set, p_date): sets etl_snapshot.cost_usd of (p_set, p_date) to what every run of that '
    'date spent on the set. Takes the transaction''s sync number.';
COMMENT ON FUNCTION purge_snapshots(bigint, date) IS
    'purge_snapshots(p_set, p_cutoff): retention for one target set. Complete snapshots before p_cutoff are '
    'purged (control rows kept, with purged_at, their measures and change rows as they were), except the '
    'set''s newest complete one, which is never removed. Versions and order rows only purged dates used are '
    'deleted; those reaching past them start at the oldest kept date, which then has nothing to compare with '
    'and is recomputed as a restart (its change rows go). Row locks only, no DDL; takes the sync number only '
    'when it purges. Returns the number of dates purged.';

COMMENT ON TABLE domain_intersection_change IS
    'The referring domains new and lost at each complete snapshot, compared with the previous complete '
    'snapshot not purged, of the same definition: computed when the snapshot is published (snapshot_stats()), '
    'replaced as a whole when it or the snapshot before it is republished. A snapshot with nothing to '
    'compare with (the set''s first, the first after a definition change, the oldest one retention left) has '
    'no rows. A purged snapshot keeps its rows.';
COMMENT ON COLUMN etl_snapshot.previous_snapshot_date IS
    'The complete snapshot not purged just before this date, when of the same definition: the one compared '
    'with. NULL on a restart (none, another definition, or the oldest date retention kept) and on failed '
    'dates.';
COMMENT ON COLUMN etl_snapshot.previous_request_hash IS
    'The request_hash of the complete snapshot not purged just before this date (even of another '
    'definition); NULL when there is none.';
COMMENT ON COLUMN etl_snapshot.published_at IS
    'When the snapshot was last (re)published, or its comparison recomputed because the date before it was. '
    'NULL on failed dates. Not the sync key (transaction start, not commit order): use sync_seq.';

COMMENT ON VIEW domain_intersection_changes IS
    'Per target set and complete snapshot, the referring domains new since the previous complete snapshot not '
    'purged, of the same definition (change = ''new''), and those no longer there (''lost''). Failed dates are '
    'skipped: the comparison is with the last complete snapshot before. A snapshot with nothing to compare '
    'with (the set''s first, the first after a definition change, or the oldest one retention kept) has no '
    'rows here: domain_intersection_daily.restart says so. Purged snapshots keep their rows (purged_at set). '
    'Incremental sync: key (target_set_id, snapshot_date, referring_domain); read the rows with sync_seq '
    'above your cursor and the deletions (domain_intersection_deleted, view_name = ''changes'') likewise, '
    'applied in sync_seq order.';
COMMENT ON COLUMN domain_intersection_changes.previous_snapshot_date IS
    'The complete snapshot it is compared with.';
COMMENT ON COLUMN domain_intersection_changes.published_at IS
    'When snapshot_date was last (re)published or its comparison recomputed (etl_snapshot.published_at). '
    'Not the sync key: use sync_seq.';
COMMENT ON COLUMN domain_intersection_changes.sync_seq IS
    'Sync number of the last transaction that wrote this row or its date''s control row: the incremental-sync '
    'cursor (numbers follow commit order; see etl_sync_counter).';

COMMENT ON VIEW domain_intersection_daily IS
    'One row per target set and snapshot date (a UTC calendar date) that a run finished, complete or failed: '
    'the size of the snapshot, what changed since the previous complete snapshot not purged, what the runs of '
    'that date spent on the set. A complete snapshot stays complete when a later rerun of its date fails '
    '(last_run_id and last_error say so); a date still being fetched is listed once a run finishes it. '
    'Measures are NULL on failed dates; new/lost/changed are NULL on restarts. Purged snapshots stay, with '
    'purged_at set and their measures as they were (their rows leave latest and history); the oldest kept '
    'date is then a restart. Incremental sync: key (target_set_id, snapshot_date); read the rows with sync_seq '
    'above your cursor (rows are never deleted).';
COMMENT ON COLUMN domain_intersection_daily.restart IS
    'True for a complete snapshot with nothing to compare with (the set''s first, the first after a '
    'definition change, or the oldest one retention kept): new/lost/changed and previous_snapshot_date are '
    'NULL and domain_intersection_changes has no rows for it. NULL when failed, and for a snapshot retention '
    'had dropped before migration 005 (its measures are unknown).';
COMMENT ON COLUMN domain_intersection_daily.previous_snapshot_date IS
    'The complete snapshot not purged just before this one, compared with; NULL on restart and on failed '
    'dates.';
COMMENT ON COLUMN domain_intersection_daily.changed_rows IS
    'Keys (referring domain x target key) in both this and the previous snapshot whose values differ '
    '(position aside); NULL on restart or failed.';
COMMENT ON COLUMN domain_intersection_daily.published_at IS
    'When the snapshot was last (re)published or its comparison recomputed; NULL when failed. Not the sync '
    'key (it is a transaction''s start, not its commit): use sync_seq.';
COMMENT ON COLUMN domain_intersection_daily.purged_at IS
    'When retention purged the snapshot (its rows left latest, history and domain_intersection; this row and '
    'its changes stay); NULL while kept.';
COMMENT ON COLUMN domain_intersection_daily.sync_seq IS
    'Sync number of the last transaction that wrote this row (publish, failure, purge, recomputed '
    'comparison, cost): the incremental-sync cursor (numbers follow commit order; see etl_sync_counter).';

COMMENT ON VIEW domain_intersection_history IS
    'The history as ranges: one row per target set, referring domain, target key and maximal run of '
    'consecutive complete snapshots (not purged) with identical values, whatever order the dates were '
    'published in (position aside: it is per snapshot, and not in this view). The row holds for the complete '
    'snapshot dates in [valid_from, valid_to): valid_to is exclusive and NULL while current. A date inside a '
    'range that is not a complete snapshot (failed, never run) is not a snapshot: domain_intersection_daily '
    'lists which are. A referring domain missing from a snapshot ends its range there; one that comes back '
    'starts a new one. Purged snapshots leave: ranges reaching past them start at the oldest kept snapshot. '
    'Incremental sync: key (target_set_id, referring_domain, target_key, valid_from); read the rows with '
    'sync_seq above your cursor and the deletions (domain_intersection_deleted, view_name = ''history'') '
    'likewise, applied in sync_seq order. Each night moves last_snapshot_date, and so sync_seq, of every '
    'current row.';
COMMENT ON COLUMN domain_intersection_history.run_id IS
    'The run whose published answer first had these values (the earliest part''s when equal ranges were '
    'joined; of a migrated row: the run that last wrote it before migration 005).';
COMMENT ON COLUMN domain_intersection_history.sync_seq IS
    'Sync number of the last transaction that changed this row (its version, or its last_snapshot_date): the '
    'incremental-sync cursor (numbers follow commit order; see etl_sync_counter).';

COMMENT ON VIEW domain_intersection_deleted IS
    'Rows removed from domain_intersection_history or domain_intersection_changes, one per removal, with the '
    'sync number of the transaction that removed them: an incremental sync reads those above its cursor '
    'with the view''s rows and applies both in sync_seq order (one number never holds a row and its '
    'deletion).';
COMMENT ON COLUMN domain_intersection_deleted.sync_seq IS
    'Sync number of the transaction that removed the row.';
COMMENT ON COLUMN domain_intersection_deleted.view_name IS
    '''history'' or ''changes'': the view the row was removed from.';
COMMENT ON COLUMN domain_intersection_deleted.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_deleted.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_deleted.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_deleted.snapshot_date IS
    'changes: the removed row''s snapshot_date; NULL for history.';
COMMENT ON COLUMN domain_intersection_deleted.referring_domain IS 'The removed row''s referring domain.';
COMMENT ON COLUMN domain_intersection_deleted.target_key IS
    'history: the removed row''s target key; NULL for changes.';
COMMENT ON COLUMN domain_intersection_deleted.valid_from IS
    'history: the removed row''s valid_from; NULL for changes.';

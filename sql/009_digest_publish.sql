-- intersect-etl migration 009: a night of an existing set costs what it changes.
--
-- Measured by scripts/bench (README "Performance"): an unchanged 1M-row night
-- took 30.5 s against 17.3 s for the first load. It joined every version
-- covering the date with its staged row, whole rows on both sides, to compare
-- 25 columns (7 of them jsonb), then searched the answer again for new keys,
-- and counted the staged rows in a scan of their own.
--
-- 1. digest: each staged row carries the SipHash-1-3-128 of its values' COPY
--    text (include/transform.h, TRANSFORM_DIGEST_KEY), and so does each
--    version written from it. The publish joins keys and digests only (one
--    narrow full join finds lost keys, new keys and differing digests), and
--    compares values only for the keys whose digests differ. A version older
--    than this migration has none: it is compared in full once, and takes the
--    digest of the answer that matched it. A replay compares every value
--    whatever the digests say: it is how rows are mended. A set's first
--    answer skips the comparison: nothing covers its date.
-- 2. The staged rows are counted as the publish deletes them, at its end;
--    when they are not what the ledger says, everything the publish did is
--    undone ('short'), as before.
--
-- ADD COLUMN without a default rewrites nothing.

ALTER TABLE domain_intersection_pending ADD COLUMN digest uuid;
ALTER TABLE domain_intersection_version ADD COLUMN digest uuid;

-- Whether a staged row holds the values of a version (every column a
-- version compares; position is the order row's). Inlined where it is used.
CREATE FUNCTION same_values(v domain_intersection_version, p domain_intersection_pending)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p.target, p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen,
               p.lost_date, p.backlinks_spam_score, p.broken_backlinks, p.broken_pages,
               p.referring_domains, p.referring_domains_nofollow, p.referring_main_domains,
               p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
               p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
               p.referring_links_types, p.referring_links_attributes,
               p.referring_links_platform_types, p.referring_links_semantic_locations,
               p.referring_links_countries, p.extra)
           IS NOT DISTINCT FROM
           ROW(v.target, v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen,
               v.lost_date, v.backlinks_spam_score, v.broken_backlinks, v.broken_pages,
               v.referring_domains, v.referring_domains_nofollow, v.referring_main_domains,
               v.referring_main_domains_nofollow, v.referring_ips, v.referring_subnets,
               v.referring_pages, v.referring_pages_nofollow, v.referring_links_tld,
               v.referring_links_types, v.referring_links_attributes,
               v.referring_links_platform_types, v.referring_links_semantic_locations,
               v.referring_links_countries, v.extra)
$$;

-- The same call as before (sql/005_*), faster; what it answers is unchanged.
CREATE OR REPLACE FUNCTION publish_snapshot(p_run bigint, p_set bigint, p_date date, p_total bigint,
                                 OUT outcome text, OUT staged bigint, OUT ledger bigint,
                                 OUT domains bigint, OUT expected_domains bigint)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    st       text;
    hash     text;
    nxt      date;
    hi       date;
    o_dom    text[];
    o_pos    integer[];
    cur      domain_intersection_order%ROWTYPE;
    verify   boolean;
    n_diff   bigint := 0;
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

    -- Everything below is undone when the staged rows, counted as they are
    -- deleted at the end, are not what the ledger says: 'short'.
    BEGIN

        -- Every boundary is a complete date: the new values hold until the next
        -- complete snapshot after p_date, and that one keeps its own.
        SELECT min(c.snapshot_date) INTO nxt FROM etl_snapshot c
        WHERE c.target_set_id = p_set AND c.snapshot_date > p_date AND c.status = 'complete'
          AND c.purged_at IS NULL;
        hi := coalesce(nxt, 'infinity');

        -- A set's first answer (or its first after every version ended): no
        -- version covers p_date, and the answer goes in whole.
        IF NOT EXISTS (SELECT 1 FROM domain_intersection_version v
                       WHERE v.target_set_id = p_set AND v.valid_from <= p_date
                         AND v.valid_to > p_date) THEN
            INSERT INTO domain_intersection_version
            SELECT p.target_set_id, p.referring_domain, p.target_key, p_date, hi, p.target,
                   p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen, p.lost_date,
                   p.backlinks_spam_score, p.broken_backlinks, p.broken_pages, p.referring_domains,
                   p.referring_domains_nofollow, p.referring_main_domains,
                   p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
                   p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
                   p.referring_links_types, p.referring_links_attributes,
                   p.referring_links_platform_types, p.referring_links_semantic_locations,
                   p.referring_links_countries, p.extra, p.run_id, p.digest
            FROM domain_intersection_pending p
            WHERE p.run_id = p_run AND p.target_set_id = p_set;
        ELSE
            -- The keys whose row may differ: in the versions covering p_date
            -- or in the answer but not both, or in both with digests that
            -- differ (or with any, for a replay). Keys and digests only: a
            -- narrow join, where comparing whole rows made a night of an
            -- unchanged 1M-row set spill a hash table of 800 MB.
            CREATE TEMP TABLE IF NOT EXISTS publish_diff (
                referring_domain text, target_key smallint, valid_from date, valid_to date,
                digest uuid, staged boolean, same boolean)
                ON COMMIT DELETE ROWS;
            INSERT INTO publish_diff
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
        END IF;

        IF n_diff > 0 THEN
            -- In both: the values decide. Equal values under another digest
            -- (a version older than digests) keep their version, which takes
            -- the answer's digest. A few keys are looked up one by one; many
            -- (a replay compares them all) in one join of the two snapshots.
            IF n_diff * 4 < ledger THEN
                UPDATE publish_diff g SET same = coalesce((
                    SELECT same_values(v, p)
                    FROM domain_intersection_version v, domain_intersection_pending p
                    WHERE v.target_set_id = p_set AND v.referring_domain = g.referring_domain
                      AND v.target_key = g.target_key AND v.valid_from = g.valid_from
                      AND p.run_id = p_run AND p.target_set_id = p_set
                      AND p.referring_domain = g.referring_domain
                      AND p.target_key = g.target_key), false)
                WHERE g.staged AND g.valid_from IS NOT NULL;
            ELSE
                UPDATE publish_diff g SET same = true
                FROM domain_intersection_version v, domain_intersection_pending p
                WHERE g.staged AND g.valid_from IS NOT NULL
                  AND v.target_set_id = p_set AND v.referring_domain = g.referring_domain
                  AND v.target_key = g.target_key AND v.valid_from = g.valid_from
                  AND v.valid_from <= p_date AND v.valid_to > p_date
                  AND p.run_id = p_run AND p.target_set_id = p_set
                  AND p.referring_domain = g.referring_domain AND p.target_key = g.target_key
                  AND same_values(v, p);
            END IF;
            UPDATE domain_intersection_version v SET digest = g.digest FROM publish_diff g
            WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
              AND v.referring_domain = g.referring_domain
              AND v.target_key = g.target_key AND v.valid_from = g.valid_from AND g.same
              AND g.digest IS NOT NULL AND v.digest IS DISTINCT FROM g.digest;

            -- Versions covering p_date whose key the answer lacks or whose
            -- values it changes: the part after p_date is kept as a copy from
            -- hi on, the part before it by ending the range at p_date (or
            -- deleted when it started there).
            INSERT INTO domain_intersection_version
            SELECT v.target_set_id, v.referring_domain, v.target_key, hi, v.valid_to, v.target,
                   v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
                   v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
                   v.referring_domains_nofollow, v.referring_main_domains,
                   v.referring_main_domains_nofollow, v.referring_ips, v.referring_subnets,
                   v.referring_pages, v.referring_pages_nofollow, v.referring_links_tld,
                   v.referring_links_types, v.referring_links_attributes,
                   v.referring_links_platform_types, v.referring_links_semantic_locations,
                   v.referring_links_countries, v.extra, v.run_id, v.digest
            FROM domain_intersection_version v
            JOIN publish_diff g USING (referring_domain, target_key, valid_from)
            WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
              AND hi < v.valid_to AND NOT g.same;
            -- (Each statement names the range of p_date although publish_diff
            -- holds only versions covering it: without it the join is planned
            -- over every version the set ever had, and publishing slowed with
            -- each night.)
            DELETE FROM domain_intersection_version v USING publish_diff g
            WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
              AND v.referring_domain = g.referring_domain
              AND v.target_key = g.target_key AND v.valid_from = g.valid_from
              AND g.valid_from = p_date AND NOT g.same;
            UPDATE domain_intersection_version v SET valid_to = p_date FROM publish_diff g
            WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
              AND v.referring_domain = g.referring_domain
              AND v.target_key = g.target_key AND v.valid_from = g.valid_from
              AND g.valid_from < p_date AND NOT g.same;

            -- What the answer has that no version covering p_date holds now:
            -- its new keys and its changed values.
            INSERT INTO domain_intersection_version
            SELECT p.target_set_id, p.referring_domain, p.target_key, p_date, hi, p.target,
                   p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen, p.lost_date,
                   p.backlinks_spam_score, p.broken_backlinks, p.broken_pages, p.referring_domains,
                   p.referring_domains_nofollow, p.referring_main_domains,
                   p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
                   p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
                   p.referring_links_types, p.referring_links_attributes,
                   p.referring_links_platform_types, p.referring_links_semantic_locations,
                   p.referring_links_countries, p.extra, p.run_id, p.digest
            FROM domain_intersection_pending p
            JOIN publish_diff g ON g.referring_domain = p.referring_domain AND g.target_key = p.target_key
            WHERE p.run_id = p_run AND p.target_set_id = p_set AND g.staged AND NOT g.same;
        END IF;

        -- The result order, split the same way when it changed.
        SELECT array_agg(referring_domain ORDER BY position, referring_domain),
               array_agg(position ORDER BY position, referring_domain)
        INTO o_dom, o_pos
        FROM (SELECT referring_domain, min(position) AS position FROM domain_intersection_pending
              WHERE run_id = p_run AND target_set_id = p_set GROUP BY referring_domain) x;
        o_dom := coalesce(o_dom, '{}');
        o_pos := coalesce(o_pos, '{}');
        SELECT * INTO cur FROM domain_intersection_order
        WHERE target_set_id = p_set AND valid_from <= p_date AND valid_to > p_date;
        IF NOT FOUND OR cur.domains IS DISTINCT FROM o_dom OR cur.positions IS DISTINCT FROM o_pos THEN
            IF FOUND THEN
                IF hi < cur.valid_to THEN
                    INSERT INTO domain_intersection_order VALUES (p_set, hi, cur.valid_to, cur.domains,
                                                                  cur.positions);
                END IF;
                IF cur.valid_from = p_date THEN
                    DELETE FROM domain_intersection_order
                    WHERE target_set_id = p_set AND valid_from = p_date;
                ELSE
                    UPDATE domain_intersection_order SET valid_to = p_date
                    WHERE target_set_id = p_set AND valid_from = cur.valid_from;
                END IF;
            END IF;
            INSERT INTO domain_intersection_order VALUES (p_set, p_date, hi, o_dom, o_pos);
        END IF;

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
                                           published_at, purged_at, last_run_id, last_error)
    VALUES (p_set, p_date, 'complete', p_run, hash, p_total, expected_domains, now(), NULL,
            p_run, NULL)
    ON CONFLICT (target_set_id, snapshot_date) DO UPDATE SET
        status = 'complete', run_id = p_run, request_hash = hash, total_count = p_total,
        expected_domains = EXCLUDED.expected_domains, published_at = now(), purged_at = NULL,
        last_run_id = p_run, last_error = NULL;
    PERFORM snapshot_stats(p_set, p_date);
    IF nxt IS NOT NULL THEN
        -- its comparison changed: an incremental reader must see it again
        PERFORM snapshot_stats(p_set, nxt);
        UPDATE etl_snapshot SET published_at = now()
        WHERE target_set_id = p_set AND snapshot_date = nxt;
    END IF;
    SELECT c.domains INTO domains FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.snapshot_date = p_date;
    outcome := 'published';
END $$;

COMMENT ON COLUMN domain_intersection_pending.digest IS
    'SipHash-1-3-128 of the row''s values as the loader wrote them (target to extra, position left out): '
    'equal digests are equal values. NULL when staged by something other than the loader.';
COMMENT ON COLUMN domain_intersection_version.digest IS
    'The digest of the version''s values (see domain_intersection_pending.digest), so a night compares one '
    'value per row where nothing changed. NULL for a version written before digests, until a night matches it.';
COMMENT ON FUNCTION publish_snapshot(bigint, bigint, date, bigint) IS
    'publish_snapshot(p_run, p_set, p_date, p_total): makes the rows run p_run staged for set p_set '
    '(domain_intersection_pending) the snapshot of p_date, leaving every other complete date of the set as '
    'it was (a date republished in the middle splits the ranges covering it); p_total is the API''s '
    'total_count. Values are compared only where digests differ (every value, for a replay). Writes the '
    'control row (published_at = now()) and the change rows, and deletes the staged rows. outcome: '
    '''published''; ''already'' (this run published the set before: nothing changes); ''short'' (fewer '
    'rows staged than the ledger says were loaded: nothing is published). staged, ledger: those two counts; '
    'domains, expected_domains: of the snapshot. The caller holds the job''s lock; the set''s etl_run_set '
    'row is locked here.';
COMMENT ON FUNCTION same_values(domain_intersection_version, domain_intersection_pending) IS
    'same_values(v, p): whether staged row p holds the values of version v, every column a version compares '
    '(position is the order row''s). Used by publish_snapshot() where the digests differ.';

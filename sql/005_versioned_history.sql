-- 005_versioned_history.sql - history that grows with change, not with nights.
--
-- Until 004 every night stored its whole snapshot again in a partition of its
-- own: an unchanged night cost as many bytes as the first, every query
-- planned and locked one partition per night, and the views recomputed
-- new/lost per query. From here:
--
--   domain_intersection_version  one row per (set, referring domain, target
--                                key) and run of identical values, valid over
--                                [valid_from, valid_to) in snapshot dates; a
--                                new row only when a value changes, a lost
--                                domain closes its range
--   domain_intersection_order    the result order (position) per set, valid
--                                over a range the same way; a new row only
--                                when the order changes
--   etl_snapshot                 one control row per (set, snapshot date):
--                                status, counts, cost, the publish that made
--                                it, written in the publishing transaction
--   domain_intersection_change   the referring domains new and lost at each
--                                complete snapshot, computed once at publish
--
-- The snapshot of (set, D), for a complete D, is exactly the versions with
-- valid_from <= D < valid_to, each with its domain's position in the order
-- row covering D (snapshot_rows() below). Every range boundary is a complete
-- snapshot date of the set (or 'infinity'), so a date that failed or never
-- ran can fall inside a range without being a snapshot: the control row says
-- which dates are.
--
-- position is kept apart because it is not a property of a link: one domain
-- more near the top of the answer moves every domain below it, and with
-- position in the version every such night would rewrite the whole set.
--
-- Nothing here is DDL on the nightly path: no partition per date, no DROP
-- on retention (it trims ranges with DELETE/UPDATE under row locks only).
-- target_set_id leads every large table's key, so the tables can be
-- distributed by it (Citus) without changing a key.
--
-- Locks taken by this migration (one transaction, with every earlier
-- migration not yet applied): ACCESS EXCLUSIVE on domain_intersection and
-- its partitions (dropped at the end), on the old views (replaced), and on
-- domain_intersection_pending and etl_page (columns added). It waits at
-- most lock_timeout for each, then fails and changes nothing: run it when
-- no report holds those tables, or run it again. The rewrite goes one target
-- set at a time (each INSERT reads one set's rows).

SET LOCAL lock_timeout = '10s';

-- Replaced below (with the same names and columns, plus new ones).
DROP VIEW domain_intersection_breakdown, domain_intersection_latest, domain_intersection_changes,
          domain_intersection_daily, etl_snapshot, etl_run_summary;

-- A page's cost is checked (0 <= cost < 10^8, numeric(14,6)), but the sums
-- of a set's, a run's or a date's pages are not bounded by that: summed in
-- unbounded numeric, so a hostile API's costs cannot make the finishing
-- statement of a set fail ("numeric field overflow").
ALTER TABLE etl_run ALTER COLUMN cost_usd TYPE numeric;
ALTER TABLE etl_run_set ALTER COLUMN cost_usd TYPE numeric;

-- ---------------------------------------------------------------------------
-- Tables

CREATE TABLE domain_intersection_version (
    target_set_id                      bigint   NOT NULL,
    referring_domain                   text     NOT NULL,
    target_key                         smallint NOT NULL CHECK (target_key BETWEEN 1 AND 20),
    valid_from                         date     NOT NULL,
    valid_to                           date     NOT NULL DEFAULT 'infinity',
    target                             text     NOT NULL,
    intersections_count                integer,
    type                               text,
    rank                               integer,
    backlinks                          bigint,
    first_seen                         timestamptz,
    lost_date                          timestamptz,
    backlinks_spam_score               integer,
    broken_backlinks                   bigint,
    broken_pages                       bigint,
    referring_domains                  bigint,
    referring_domains_nofollow         bigint,
    referring_main_domains             bigint,
    referring_main_domains_nofollow    bigint,
    referring_ips                      bigint,
    referring_subnets                  bigint,
    referring_pages                    bigint,
    referring_pages_nofollow           bigint,
    referring_links_tld                jsonb,
    referring_links_types              jsonb,
    referring_links_attributes         jsonb,
    referring_links_platform_types     jsonb,
    referring_links_semantic_locations jsonb,
    referring_links_countries          jsonb,
    extra                              jsonb,
    run_id                             bigint   NOT NULL,
    PRIMARY KEY (target_set_id, referring_domain, target_key, valid_from),
    CHECK (valid_from < valid_to)
);
-- The rows of one date: those of the latest snapshot are exactly the ones
-- with valid_to = 'infinity', read as a short range of this index.
CREATE INDEX domain_intersection_version_to
    ON domain_intersection_version (target_set_id, valid_to, valid_from);

CREATE TABLE domain_intersection_order (
    target_set_id  bigint    NOT NULL,
    valid_from     date      NOT NULL,
    valid_to       date      NOT NULL DEFAULT 'infinity',
    domains        text[]    NOT NULL,   -- referring domains in result order
    positions      integer[] NOT NULL,   -- domains[i]'s position
    PRIMARY KEY (target_set_id, valid_from),
    CHECK (valid_from < valid_to),
    CHECK (cardinality(domains) = cardinality(positions))
);
-- As for the versions: the order row of a date is found by a short range,
-- not by walking every order row the set had before it.
CREATE INDEX domain_intersection_order_to
    ON domain_intersection_order (target_set_id, valid_to, valid_from);

CREATE TABLE etl_snapshot (
    target_set_id          bigint      NOT NULL REFERENCES target_set,
    snapshot_date          date        NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('complete', 'failed')),
    run_id                 bigint      NOT NULL,
    request_hash           text        NOT NULL,
    previous_snapshot_date date,
    previous_request_hash  text,
    total_count            bigint,
    expected_domains       bigint,
    domains                bigint,
    rows                   bigint,
    new_domains            bigint,
    lost_domains           bigint,
    changed_rows           bigint,
    avg_rank               numeric,
    total_backlinks        numeric,
    cost_usd               numeric     NOT NULL DEFAULT 0,
    published_at           timestamptz,
    purged_at              timestamptz,
    last_run_id            bigint,
    last_error             text,
    PRIMARY KEY (target_set_id, snapshot_date)
);

CREATE TABLE domain_intersection_change (
    target_set_id       bigint  NOT NULL,
    snapshot_date       date    NOT NULL,
    referring_domain    text    NOT NULL,
    change              text    NOT NULL CHECK (change IN ('new', 'lost')),
    intersections_count integer,
    min_rank            integer,
    backlinks           numeric,
    PRIMARY KEY (target_set_id, snapshot_date, referring_domain)
);

-- The rows a page first staged (duplicates of earlier pages not counted),
-- so the staged rows of a set can be checked against its ledger before
-- publishing; and 'discarded': a page whose staged rows a later run removed,
-- which a resumed run must fetch again.
ALTER TABLE etl_page ADD COLUMN staged integer;
ALTER TABLE etl_page DROP CONSTRAINT etl_page_status_check;
ALTER TABLE etl_page ADD CONSTRAINT etl_page_status_check
    CHECK (status IN ('loaded', 'failed', 'discarded'));
-- A page the database refused (a value out of range: SQLSTATE class 22):
-- the same answer would be refused again, so a resumed run does not fetch it.
ALTER TABLE etl_page ADD COLUMN refused boolean NOT NULL DEFAULT false;

-- ---------------------------------------------------------------------------
-- Writing a snapshot

-- Per (set, date): size, averages and what changed since the previous
-- complete snapshot, into the control row and domain_intersection_change.
-- Called for a date just published and for the complete date after it (whose
-- comparison changes when an earlier date is republished).
CREATE FUNCTION snapshot_stats(p_set bigint, p_date date) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    prev      date;
    prev_hash text;
    my_hash   text;
    comparable boolean;
BEGIN
    SELECT request_hash INTO my_hash FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date = p_date;
    SELECT snapshot_date, request_hash INTO prev, prev_hash FROM etl_snapshot
    WHERE target_set_id = p_set AND snapshot_date < p_date AND status = 'complete'
      AND purged_at IS NULL
    ORDER BY snapshot_date DESC LIMIT 1;
    comparable := prev IS NOT NULL AND prev_hash = my_hash;

    DELETE FROM domain_intersection_change WHERE target_set_id = p_set AND snapshot_date = p_date;
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
        previous_snapshot_date = prev,
        previous_request_hash = prev_hash,
        domains = m.domains, rows = m.rows, avg_rank = m.avg_rank,
        total_backlinks = m.total_backlinks,
        new_domains = CASE WHEN comparable THEN ch.new_domains END,
        lost_domains = CASE WHEN comparable THEN ch.lost_domains END,
        -- rows of both snapshots whose values differ: the versions that
        -- start after prev and continue one that covered prev
        changed_rows = CASE WHEN comparable THEN (
            SELECT count(*) FROM domain_intersection_version v
            JOIN domain_intersection_version w
              ON w.target_set_id = v.target_set_id AND w.referring_domain = v.referring_domain
             AND w.target_key = v.target_key AND w.valid_from <= prev AND w.valid_to > prev
            WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
              AND v.valid_from > prev) END
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

-- Makes the staged rows of (run, set) the snapshot of p_date, leaving every
-- other complete date of the set exactly as it was (a republished date in
-- the middle of the history splits the ranges that cover it). Returns
-- 'published', 'already' (this run published the set before: a redo after a
-- lost reply changes nothing) or 'short' (fewer rows staged than the ledger
-- says were loaded: nothing is published). The caller holds the job's lock;
-- the set's etl_run_set row is locked here.
CREATE FUNCTION publish_snapshot(p_run bigint, p_set bigint, p_date date, p_total bigint,
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
BEGIN
    SELECT rs.status, rs.request_hash INTO st, hash FROM etl_run_set rs
    WHERE rs.run_id = p_run AND rs.target_set_id = p_set FOR UPDATE;
    IF st = 'complete' THEN
        outcome := 'already';
        RETURN;
    END IF;
    SELECT count(*) INTO staged FROM domain_intersection_pending
    WHERE run_id = p_run AND target_set_id = p_set;
    SELECT coalesce(sum(coalesce(e.staged, e.rows)), 0) INTO ledger FROM etl_page e
    WHERE e.run_id = p_run AND e.target_set_id = p_set AND e.status = 'loaded';
    IF staged <> ledger THEN
        outcome := 'short';
        RETURN;
    END IF;

    -- Every boundary is a complete date: the new values hold until the next
    -- complete snapshot after p_date, and that one keeps its own.
    SELECT min(c.snapshot_date) INTO nxt FROM etl_snapshot c
    WHERE c.target_set_id = p_set AND c.snapshot_date > p_date AND c.status = 'complete'
      AND c.purged_at IS NULL;
    hi := coalesce(nxt, 'infinity');

    -- Versions covering p_date whose key the answer lacks or whose values
    -- it changes: the part after p_date is kept as a copy from hi on, the
    -- part before it by ending the range at p_date (or deleted when it
    -- started there).
    CREATE TEMP TABLE IF NOT EXISTS publish_gone (referring_domain text, target_key smallint,
                                                  valid_from date, valid_to date)
        ON COMMIT DELETE ROWS;
    INSERT INTO publish_gone
    SELECT v.referring_domain, v.target_key, v.valid_from, v.valid_to
    FROM domain_intersection_version v
    LEFT JOIN domain_intersection_pending p
      ON p.run_id = p_run AND p.target_set_id = p_set
     AND p.referring_domain = v.referring_domain AND p.target_key = v.target_key
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND (p.referring_domain IS NULL
           OR ROW(p.target, p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen,
                  p.lost_date, p.backlinks_spam_score, p.broken_backlinks, p.broken_pages,
                  p.referring_domains, p.referring_domains_nofollow, p.referring_main_domains,
                  p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
                  p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
                  p.referring_links_types, p.referring_links_attributes,
                  p.referring_links_platform_types, p.referring_links_semantic_locations,
                  p.referring_links_countries, p.extra)
              IS DISTINCT FROM
              ROW(v.target, v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen,
                  v.lost_date, v.backlinks_spam_score, v.broken_backlinks, v.broken_pages,
                  v.referring_domains, v.referring_domains_nofollow, v.referring_main_domains,
                  v.referring_main_domains_nofollow, v.referring_ips, v.referring_subnets,
                  v.referring_pages, v.referring_pages_nofollow, v.referring_links_tld,
                  v.referring_links_types, v.referring_links_attributes,
                  v.referring_links_platform_types, v.referring_links_semantic_locations,
                  v.referring_links_countries, v.extra));

    INSERT INTO domain_intersection_version
    SELECT v.target_set_id, v.referring_domain, v.target_key, hi, v.valid_to, v.target,
           v.intersections_count, v.type, v.rank, v.backlinks, v.first_seen, v.lost_date,
           v.backlinks_spam_score, v.broken_backlinks, v.broken_pages, v.referring_domains,
           v.referring_domains_nofollow, v.referring_main_domains,
           v.referring_main_domains_nofollow, v.referring_ips, v.referring_subnets,
           v.referring_pages, v.referring_pages_nofollow, v.referring_links_tld,
           v.referring_links_types, v.referring_links_attributes,
           v.referring_links_platform_types, v.referring_links_semantic_locations,
           v.referring_links_countries, v.extra, v.run_id
    FROM domain_intersection_version v
    JOIN publish_gone g USING (referring_domain, target_key, valid_from)
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND hi < v.valid_to;
    -- (Each statement names the range of p_date although publish_gone holds
    -- only versions covering it: without it the join is planned over every
    -- version the set ever had, and publishing slowed with each night.)
    DELETE FROM domain_intersection_version v USING publish_gone g
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND v.referring_domain = g.referring_domain
      AND v.target_key = g.target_key AND v.valid_from = g.valid_from
      AND g.valid_from = p_date;
    UPDATE domain_intersection_version v SET valid_to = p_date FROM publish_gone g
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
      AND v.referring_domain = g.referring_domain
      AND v.target_key = g.target_key AND v.valid_from = g.valid_from
      AND g.valid_from < p_date;

    -- What the answer has that no version covering p_date holds now.
    INSERT INTO domain_intersection_version
    SELECT p.target_set_id, p.referring_domain, p.target_key, p_date, hi, p.target,
           p.intersections_count, p.type, p.rank, p.backlinks, p.first_seen, p.lost_date,
           p.backlinks_spam_score, p.broken_backlinks, p.broken_pages, p.referring_domains,
           p.referring_domains_nofollow, p.referring_main_domains,
           p.referring_main_domains_nofollow, p.referring_ips, p.referring_subnets,
           p.referring_pages, p.referring_pages_nofollow, p.referring_links_tld,
           p.referring_links_types, p.referring_links_attributes,
           p.referring_links_platform_types, p.referring_links_semantic_locations,
           p.referring_links_countries, p.extra, p.run_id
    FROM domain_intersection_pending p
    WHERE p.run_id = p_run AND p.target_set_id = p_set
      AND NOT EXISTS (SELECT 1 FROM domain_intersection_version v
                      WHERE v.target_set_id = p_set AND v.referring_domain = p.referring_domain
                        AND v.target_key = p.target_key AND v.valid_from <= p_date
                        AND v.valid_to > p_date);

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

-- A set of a run failed on p_date: the date is 'failed' unless it has a
-- complete snapshot, which stays as it was (a failed rerun never hides it).
CREATE FUNCTION fail_snapshot(p_run bigint, p_set bigint, p_date date, p_error text) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    INSERT INTO etl_snapshot AS c (target_set_id, snapshot_date, status, run_id,
                                           request_hash, last_run_id, last_error)
    SELECT p_set, p_date, 'failed', p_run, rs.request_hash, p_run, p_error
    FROM etl_run_set rs WHERE rs.run_id = p_run AND rs.target_set_id = p_set
    ON CONFLICT (target_set_id, snapshot_date) DO UPDATE SET
        status = CASE WHEN c.status = 'complete' THEN 'complete' ELSE 'failed' END,
        run_id = CASE WHEN c.status = 'complete' THEN c.run_id ELSE p_run END,
        request_hash = CASE WHEN c.status = 'complete' THEN c.request_hash
                            ELSE EXCLUDED.request_hash END,
        last_run_id = p_run, last_error = p_error;
$$;

-- What every run of (set, date) spent, after any of them finished the set.
CREATE FUNCTION snapshot_cost(p_set bigint, p_date date) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE etl_snapshot c SET cost_usd = (
        SELECT coalesce(sum(rs.cost_usd), 0) FROM etl_run_set rs JOIN etl_run r USING (run_id)
        WHERE rs.target_set_id = p_set AND r.snapshot_date = p_date)
    WHERE c.target_set_id = p_set AND c.snapshot_date = p_date;
$$;

-- Retention for one set: complete snapshots before p_cutoff are purged
-- (their control rows kept, with purged_at), except the set's newest
-- complete one, which is never removed. The versions and order rows that
-- only purged dates used are deleted; those reaching past them start at the
-- oldest kept date. Returns the dates purged.
CREATE FUNCTION purge_snapshots(p_set bigint, p_cutoff date) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    keep  date;
    n     integer;
BEGIN
    SELECT min(snapshot_date) INTO keep FROM etl_snapshot
    WHERE target_set_id = p_set AND status = 'complete' AND purged_at IS NULL
      AND snapshot_date >= least(p_cutoff, (SELECT max(snapshot_date) FROM etl_snapshot
                                           WHERE target_set_id = p_set AND status = 'complete'));
    IF keep IS NULL THEN
        RETURN 0;  -- no complete snapshot at all
    END IF;
    UPDATE etl_snapshot SET purged_at = now()
    WHERE target_set_id = p_set AND snapshot_date < keep AND status = 'complete'
      AND purged_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        DELETE FROM domain_intersection_version WHERE target_set_id = p_set AND valid_to <= keep;
        UPDATE domain_intersection_version SET valid_from = keep
        WHERE target_set_id = p_set AND valid_from < keep;
        DELETE FROM domain_intersection_order WHERE target_set_id = p_set AND valid_to <= keep;
        UPDATE domain_intersection_order SET valid_from = keep
        WHERE target_set_id = p_set AND valid_from < keep;
    END IF;
    RETURN n;
END $$;

-- ---------------------------------------------------------------------------
-- From the partitioned history: every complete snapshot the old views showed
-- becomes versions, order rows and a control row, one set at a time.
-- A complete snapshot is the latest complete run of the date whose
-- partition exists; a later failed rerun no longer hides it (it never
-- touched its rows). Dates whose runs all failed keep a 'failed' row.

CREATE TEMP TABLE mig_dates ON COMMIT DROP AS
WITH runs AS (
    SELECT rs.target_set_id, r.snapshot_date, rs.run_id, rs.status, rs.request_hash, rs.total_count,
           rs.error,
           row_number() OVER (PARTITION BY rs.target_set_id, r.snapshot_date
                              ORDER BY (rs.status = 'complete') DESC, rs.run_id DESC) AS pick,
           first_value(rs.run_id) OVER (PARTITION BY rs.target_set_id, r.snapshot_date
                                        ORDER BY rs.run_id DESC) AS last_run_id,
           first_value(rs.error) OVER (PARTITION BY rs.target_set_id, r.snapshot_date
                                       ORDER BY rs.run_id DESC) AS last_error,
           sum(rs.cost_usd) OVER (PARTITION BY rs.target_set_id, r.snapshot_date) AS cost_usd
    FROM etl_run_set rs JOIN etl_run r USING (run_id)
    WHERE rs.status <> 'running'
), held AS (
    SELECT to_date(substr(c.relname, 22), 'YYYYMMDD') AS snapshot_date
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'domain_intersection'::regclass
      AND c.relname ~ '^domain_intersection_p[0-9]{8}$'
)
SELECT runs.*, (held.snapshot_date IS NOT NULL) AS held
FROM runs LEFT JOIN held USING (snapshot_date)
WHERE pick = 1;

INSERT INTO etl_snapshot (target_set_id, snapshot_date, status, run_id, request_hash,
                                  total_count, expected_domains, cost_usd, published_at,
                                  purged_at, last_run_id, last_error)
SELECT d.target_set_id, d.snapshot_date, d.status, d.run_id, d.request_hash, d.total_count,
       least(d.total_count, t.max_rows), d.cost_usd,
       CASE WHEN d.status = 'complete' THEN (SELECT finished_at FROM etl_run_set x
                                             WHERE x.run_id = d.run_id
                                               AND x.target_set_id = d.target_set_id) END,
       CASE WHEN d.status = 'complete' AND NOT d.held THEN now() END,
       d.last_run_id, CASE WHEN d.last_run_id <> d.run_id OR d.status = 'failed' THEN d.last_error END
FROM mig_dates d JOIN target_set t USING (target_set_id);

DO $$
DECLARE
    s bigint;
    cols text := 'target, intersections_count, type, rank, backlinks, first_seen, lost_date, '
        'backlinks_spam_score, broken_backlinks, broken_pages, referring_domains, '
        'referring_domains_nofollow, referring_main_domains, referring_main_domains_nofollow, '
        'referring_ips, referring_subnets, referring_pages, referring_pages_nofollow, '
        'referring_links_tld, referring_links_types, referring_links_attributes, '
        'referring_links_platform_types, referring_links_semantic_locations, '
        'referring_links_countries, extra';
BEGIN
    FOR s IN SELECT DISTINCT target_set_id FROM etl_snapshot ORDER BY 1 LOOP
        -- Islands of equal values (and run_id, which the old loader changed
        -- with the position) over the set's consecutive complete dates.
        EXECUTE format($q$
            WITH dates AS (
                SELECT snapshot_date, row_number() OVER (ORDER BY snapshot_date) AS n,
                       lead(snapshot_date) OVER (ORDER BY snapshot_date) AS next_date
                FROM etl_snapshot
                WHERE target_set_id = $1 AND status = 'complete' AND purged_at IS NULL
            ), r AS (
                SELECT d.*, dt.n, dt.next_date,
                       dt.n - row_number() OVER (
                           PARTITION BY d.referring_domain, d.target_key, d.run_id,
                                        md5(ROW(%1$s)::text)
                           ORDER BY dt.n) AS grp,
                       md5(ROW(%1$s)::text) AS h
                FROM domain_intersection d JOIN dates dt USING (snapshot_date)
                WHERE d.target_set_id = $1
            ), g AS (
                SELECT DISTINCT ON (referring_domain, target_key, run_id, h, grp)
                       *, max(n) OVER w AS last_n,
                       min(snapshot_date) OVER w AS first_date
                FROM r
                WINDOW w AS (PARTITION BY referring_domain, target_key, run_id, h, grp)
                ORDER BY referring_domain, target_key, run_id, h, grp, n
            )
            INSERT INTO domain_intersection_version
                (target_set_id, referring_domain, target_key, valid_from, valid_to, %1$s, run_id)
            SELECT $1, g.referring_domain, g.target_key, g.first_date,
                   coalesce((SELECT dt.next_date FROM dates dt WHERE dt.n = g.last_n), 'infinity'),
                   %1$s, g.run_id
            FROM g
        $q$, cols) USING s;

        -- Order rows: one per run of identical orders.
        WITH dates AS (
            SELECT snapshot_date, row_number() OVER (ORDER BY snapshot_date) AS n,
                   lead(snapshot_date) OVER (ORDER BY snapshot_date) AS next_date
            FROM etl_snapshot
            WHERE target_set_id = s AND status = 'complete' AND purged_at IS NULL
        ), o AS (
            SELECT dt.snapshot_date, dt.n, dt.next_date,
                   coalesce(array_agg(x.referring_domain ORDER BY x.position, x.referring_domain)
                            FILTER (WHERE x.referring_domain IS NOT NULL), '{}') AS domains,
                   coalesce(array_agg(x.position ORDER BY x.position, x.referring_domain)
                            FILTER (WHERE x.referring_domain IS NOT NULL), '{}') AS positions
            FROM dates dt
            LEFT JOIN (SELECT snapshot_date, referring_domain, min(position) AS position
                       FROM domain_intersection WHERE target_set_id = s
                       GROUP BY snapshot_date, referring_domain) x USING (snapshot_date)
            GROUP BY dt.snapshot_date, dt.n, dt.next_date
        ), i AS (
            SELECT o.*, o.n - row_number() OVER (PARTITION BY md5(domains::text || positions::text)
                                                 ORDER BY o.n) AS grp,
                   md5(domains::text || positions::text) AS h
            FROM o
        )
        INSERT INTO domain_intersection_order
        SELECT s, g.first_date, coalesce(g.last_next, 'infinity'), i.domains, i.positions
        FROM (SELECT h, grp, min(n) AS first_n, min(snapshot_date) AS first_date,
                     (array_agg(next_date ORDER BY n DESC))[1] AS last_next
              FROM i GROUP BY h, grp) g
        JOIN i ON i.h = g.h AND i.grp = g.grp AND i.n = g.first_n;

        PERFORM snapshot_stats(s, c.snapshot_date) FROM etl_snapshot c
        WHERE c.target_set_id = s AND c.status = 'complete' AND c.purged_at IS NULL;
    END LOOP;
END $$;

-- Staged rows of unfinished runs stay where they are; their pages' staged
-- counts are the rows they loaded (etl_page.rows counts duplicates of earlier
-- pages too, so an old run with those is refetched rather than trusted).
UPDATE etl_page SET staged = rows WHERE status = 'loaded';

DROP TABLE domain_intersection;
DROP FUNCTION ensure_partition(date);

-- The rows of (set, d) with the columns of the old table: the versions
-- covering d joined by domain to the positions of the order row covering d.
-- A function of its own, planned with nested loops off, because that join
-- must be a hash join: with stale statistics (right after a night, before
-- autovacuum analyzed it) the planner took the order array's unnest for 10
-- rows and rescanned it per version row, minutes for 100k domains. SECURITY
-- DEFINER, so the report views that call it need no right on the tables
-- (sql/bi_readonly.sql grants EXECUTE on it alone); search_path pinned.
CREATE FUNCTION snapshot_rows(p_set bigint, p_date date)
RETURNS TABLE (referring_domain text, target_key smallint, target text, "position" integer,
               intersections_count integer, type text, rank integer, backlinks bigint,
               first_seen timestamptz, lost_date timestamptz, backlinks_spam_score integer,
               broken_backlinks bigint, broken_pages bigint, referring_domains bigint,
               referring_domains_nofollow bigint, referring_main_domains bigint,
               referring_main_domains_nofollow bigint, referring_ips bigint,
               referring_subnets bigint, referring_pages bigint, referring_pages_nofollow bigint,
               referring_links_tld jsonb, referring_links_types jsonb,
               referring_links_attributes jsonb, referring_links_platform_types jsonb,
               referring_links_semantic_locations jsonb, referring_links_countries jsonb,
               extra jsonb, run_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER ROWS 2000
SET search_path FROM CURRENT SET enable_nestloop = off AS $$
    SELECT v.referring_domain, v.target_key, v.target, o.position, v.intersections_count, v.type,
           v.rank, v.backlinks, v.first_seen, v.lost_date, v.backlinks_spam_score,
           v.broken_backlinks, v.broken_pages, v.referring_domains, v.referring_domains_nofollow,
           v.referring_main_domains, v.referring_main_domains_nofollow, v.referring_ips,
           v.referring_subnets, v.referring_pages, v.referring_pages_nofollow,
           v.referring_links_tld, v.referring_links_types, v.referring_links_attributes,
           v.referring_links_platform_types, v.referring_links_semantic_locations,
           v.referring_links_countries, v.extra, v.run_id
    FROM domain_intersection_version v
    LEFT JOIN (
        SELECT u.domain, u.position
        FROM domain_intersection_order r
        CROSS JOIN LATERAL unnest(r.domains, r.positions) AS u(domain, position)
        WHERE r.target_set_id = p_set AND r.valid_from <= p_date AND r.valid_to > p_date
    ) o ON o.domain = v.referring_domain
    WHERE v.target_set_id = p_set AND v.valid_from <= p_date AND v.valid_to > p_date
$$;

-- The old table's name, as a view of every complete snapshot not purged:
-- queries written against the table keep working (reading, not writing).
-- A filter on target_set_id and snapshot_date goes to the control row, so a
-- query for one snapshot reads only that snapshot.
CREATE VIEW domain_intersection AS
SELECT s.snapshot_date, s.target_set_id, d.referring_domain, d.target_key, d.target, d.position,
       d.intersections_count, d.type, d.rank, d.backlinks, d.first_seen, d.lost_date,
       d.backlinks_spam_score, d.broken_backlinks, d.broken_pages, d.referring_domains,
       d.referring_domains_nofollow, d.referring_main_domains, d.referring_main_domains_nofollow,
       d.referring_ips, d.referring_subnets, d.referring_pages, d.referring_pages_nofollow,
       d.referring_links_tld, d.referring_links_types, d.referring_links_attributes,
       d.referring_links_platform_types, d.referring_links_semantic_locations,
       d.referring_links_countries, d.extra, d.run_id
FROM etl_snapshot s
CROSS JOIN LATERAL snapshot_rows(s.target_set_id, s.snapshot_date) d
WHERE s.status = 'complete' AND s.purged_at IS NULL;

-- The incremental cursors of daily and changes.
CREATE INDEX etl_snapshot_published ON etl_snapshot (published_at);
CREATE INDEX etl_snapshot_purged ON etl_snapshot (purged_at) WHERE purged_at IS NOT NULL;

-- intersect-etl migration 020: statistics of the domain versions before
-- snapshot_domains() joins them.
--
-- snapshot_domains() (sql/017) joins its work table, analyzed, to
-- domain_intersection_domain_version by primary key. Right after a set's
-- first load the domain versions have no statistics yet (autovacuum has not
-- come by): a run --fresh of that date then took 35 s at 100,000 rows
-- (scripts/bench, "rerun, before autovacuum"), the planner reading the
-- date's 50,000 domain rows as one and scanning the whole work table for
-- each. The statements are right; the planner needs numbers. Before the
-- trigger calls snapshot_domains(), analyze_if_stale() analyzes the table
-- when more of it changed since its last analysis than a fifth of its rows
-- (autovacuum's own threshold is a tenth: on a nightly schedule it has come
-- by long before). ANALYZE takes no lock a reader or a writer waits for.
--
-- Locks: replacing a function; none on tables.

SET LOCAL lock_timeout = '10s';

CREATE FUNCTION analyze_if_stale(p_table regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n_rows real;
    n_mod  bigint;
BEGIN
    SELECT greatest(c.reltuples, 0), coalesce(pg_stat_get_mod_since_analyze(c.oid), 0)
    INTO n_rows, n_mod
    FROM pg_class c WHERE c.oid = p_table;
    IF n_mod > 1000 AND n_mod > n_rows / 5 THEN
        EXECUTE format('ANALYZE %s', p_table);
        RETURN true;
    END IF;
    RETURN false;
END $$;

-- As in sql/019, the statistics first.
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

COMMENT ON FUNCTION analyze_if_stale(regclass) IS
    'analyze_if_stale(p_table): ANALYZE p_table when more of it changed since its last analysis than '
    'a fifth of its rows (and over 1,000 rows), so that a publish right after a large load plans '
    'with numbers (sql/020). Returns whether it analyzed.';

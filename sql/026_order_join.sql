-- intersect-etl migration 026: the publish compares the result order with
-- the one ending at its date in PL/pgSQL, not in an UPDATE's condition.
--
-- publish_order_arrays() joins the date's order with an equal order ending
-- at the date by extending that one. It did so with one statement,
-- UPDATE ... WHERE valid_to = p_date AND domains = o_dom AND positions =
-- o_pos, and inserted the order when that updated nothing. Every publish
-- that writes an order runs it, and a publish's statements are planned for
-- the values they are run with (a custom plan): the two arrays, one element
-- per referring domain, became constants of the UPDATE's plan, copied and
-- planned with before any row was read, even when no order ends at the
-- date (a first load). Timed in a copy of the function at the server's
-- defaults, with no order ending at the date: 3 ms for the 80,000 items of
-- the benchmark's latency-bound layout, 16 ms for 500,000 items (its
-- 1,000,000-row first load), against 0.1 ms for finding that order by its
-- key. (auto_explain, which prints those constants in the plans it logs,
-- made it look like 28 ms of an 80,000-item publish.)
--
-- Now the order ending at the date is read by its key (the index on
-- target_set_id, valid_to) and compared with the new one in PL/pgSQL, as
-- the order covering the date and its next neighbour already were; only an
-- equal one is extended, by its primary key. The result is the same: the
-- date's order joins an equal predecessor, or is inserted. Ranges of a
-- set's orders do not overlap, so at most one ends at the date; every one
-- that does is compared, as the UPDATE compared them.
--
-- Locks: none beyond replacing a function.

SET LOCAL lock_timeout = '10s';

-- As in sql/016, with the predecessor compared here.
CREATE OR REPLACE FUNCTION publish_order_arrays(p_set bigint, p_date date, hi date, o_dom text[],
                                                o_pos integer[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur domain_intersection_order%ROWTYPE;
    nb  domain_intersection_order%ROWTYPE;
    pv  domain_intersection_order%ROWTYPE;
    top date := hi;
    joined boolean := false;
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
    -- (the arrays stay out of the statements: compared here, sql/026)
    FOR pv IN SELECT * FROM domain_intersection_order
              WHERE target_set_id = p_set AND valid_to = p_date LOOP
        IF pv.domains = o_dom AND pv.positions = o_pos THEN
            UPDATE domain_intersection_order SET valid_to = top
            WHERE target_set_id = p_set AND valid_from = pv.valid_from;
            joined := true;
        END IF;
    END LOOP;
    IF NOT joined THEN
        INSERT INTO domain_intersection_order VALUES (p_set, p_date, top, o_dom, o_pos);
    END IF;
END $$;

-- intersect-etl migration 012: every attempt of a run, and runs that ended
-- without saying so.
--
-- A run continued after a failure (`run --snapshot-date` of its date) used
-- to overwrite its own status, error and start: a night that failed at 02:00
-- and was mended at 09:00 showed `succeeded`, no error, and seven hours of
-- duration. Each process that works on a run is now an attempt with its own
-- start, end, outcome, error, pages, rows and cost; etl_run keeps the
-- outcome of the latest, and etl_run_summary counts working time (the
-- attempts' durations) and shows the outcomes in order.
--
-- Two statuses are new, for a run and an attempt alike:
--   interrupted  SIGTERM or SIGINT stopped it; it said so before exiting;
--   abandoned    its process is gone without a word (SIGKILL, a crash, the
--                machine stopped): the next run of the job, holding the job's
--                lock, finds it `running` and marks it, with its counters
--                taken from the ledger.

ALTER TABLE etl_run DROP CONSTRAINT etl_run_status_check;
ALTER TABLE etl_run ADD CONSTRAINT etl_run_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'abandoned'));

CREATE TABLE etl_run_attempt (
    run_id        bigint      NOT NULL REFERENCES etl_run ON DELETE CASCADE,
    attempt       integer     NOT NULL CHECK (attempt >= 1),
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted',
                                    'abandoned')),
    error         text,
    pages         integer     NOT NULL DEFAULT 0,
    failed_pages  integer     NOT NULL DEFAULT 0,
    rows          bigint      NOT NULL DEFAULT 0,
    cost_usd      numeric     NOT NULL DEFAULT 0,
    host          text,
    pid           integer,
    PRIMARY KEY (run_id, attempt)
);

-- Runs recorded before this migration were one attempt each, as far as
-- anyone can tell now.
INSERT INTO etl_run_attempt (run_id, attempt, started_at, finished_at, status, error, pages,
                             failed_pages, rows, cost_usd, host, pid)
SELECT r.run_id, 1, r.started_at, r.finished_at, r.status, r.error, r.pages,
       (SELECT count(*) FROM etl_page p WHERE p.run_id = r.run_id AND p.status = 'failed'),
       r.rows, r.cost_usd, r.host, r.pid
FROM etl_run r;

-- What attempt p_attempt of run p_run did, from the ledger: the pages it
-- wrote (a ledger row's finished_at is when its page last settled, and the
-- attempts of a run never overlap: they hold the job's lock), and what the
-- run was charged since the attempts before it (a page's cost_usd adds up
-- every answer of it, so the ledger's sum only grows).
CREATE FUNCTION close_attempt(p_run bigint, p_attempt integer, p_status text, p_error text,
                              p_end timestamptz) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE etl_run_attempt a SET status = p_status, error = p_error, finished_at = p_end,
           pages = f.pages, failed_pages = f.failed_pages, rows = f.rows,
           cost_usd = greatest(f.cost - f.before, 0)
    FROM (SELECT count(*) FILTER (WHERE p.status IN ('loaded', 'discarded')
                                  AND p.finished_at >= x.started_at) AS pages,
                 count(*) FILTER (WHERE p.status = 'failed' AND p.finished_at >= x.started_at)
                     AS failed_pages,
                 coalesce(sum(p.rows) FILTER (WHERE p.status IN ('loaded', 'discarded')
                                              AND p.finished_at >= x.started_at), 0) AS rows,
                 coalesce(sum(p.cost_usd), 0) AS cost,
                 (SELECT coalesce(sum(b.cost_usd), 0) FROM etl_run_attempt b
                  WHERE b.run_id = p_run AND b.attempt < p_attempt) AS before
          FROM etl_run_attempt x LEFT JOIN etl_page p ON p.run_id = x.run_id
          WHERE x.run_id = p_run AND x.attempt = p_attempt
          GROUP BY x.started_at) f
    WHERE a.run_id = p_run AND a.attempt = p_attempt;
$$;

-- A process starts working on run p_run: its attempt's number.
CREATE FUNCTION begin_attempt(p_run bigint, p_host text, p_pid integer) RETURNS integer
LANGUAGE sql SET search_path FROM CURRENT AS $$
    INSERT INTO etl_run_attempt (run_id, attempt, host, pid)
    SELECT p_run, coalesce(max(attempt), 0) + 1, p_host, p_pid
    FROM etl_run_attempt WHERE run_id = p_run
    RETURNING attempt;
$$;

-- The attempt ends with the run's status and error (the run's own row is
-- load.c's); its figures come from the ledger. It ends when the run's row
-- says the run ended, which its process wrote just before: the attempts'
-- working time never exceeds the run's span.
CREATE FUNCTION finish_attempt(p_run bigint, p_attempt integer, p_status text, p_error text)
RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT close_attempt(p_run, p_attempt, p_status, p_error,
        (SELECT CASE WHEN r.status <> 'running' AND r.finished_at >= x.started_at
                     THEN least(r.finished_at, clock_timestamp()) ELSE clock_timestamp() END
         FROM etl_run r JOIN etl_run_attempt x ON x.run_id = r.run_id
         WHERE r.run_id = p_run AND x.attempt = p_attempt));
$$;

-- Called by a run of p_job that holds the job's lock, before it starts or
-- continues a run: every run and attempt of the job still `running` belongs
-- to a process that is gone. Each such attempt ends `abandoned` at its last
-- sign of life (its last ledger row, else its start); each such run too,
-- with pages, rows and cost from the ledger, and its unfinished sets failed
-- (their published snapshots untouched). Returns the runs marked.
CREATE FUNCTION abandon_runs(p_job text) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    a record;
    r record;
    n integer := 0;
    msg text;
BEGIN
    FOR a IN SELECT x.run_id, x.attempt, x.started_at, x.host, x.pid
             FROM etl_run_attempt x JOIN etl_run USING (run_id)
             WHERE etl_run.job = p_job AND x.status = 'running'
             ORDER BY x.run_id, x.attempt FOR UPDATE OF x LOOP
        msg := format('abandoned: the process (host %s, pid %s) ended without recording an '
                      'outcome (killed, or its machine stopped); found by the next run of job %s',
                      coalesce(a.host, '?'), coalesce(a.pid::text, '?'), p_job);
        PERFORM close_attempt(a.run_id, a.attempt, 'abandoned', msg,
            greatest(a.started_at, (SELECT max(p.finished_at) FROM etl_page p
                                    WHERE p.run_id = a.run_id AND p.finished_at >= a.started_at)));
    END LOOP;
    FOR r IN SELECT run_id, snapshot_date, host, pid FROM etl_run
             WHERE job = p_job AND status = 'running' ORDER BY run_id FOR UPDATE LOOP
        msg := format('abandoned: the process (host %s, pid %s) ended without recording an '
                      'outcome (killed, or its machine stopped); found by the next run of job %s',
                      coalesce(r.host, '?'), coalesce(r.pid::text, '?'), p_job);
        PERFORM fail_snapshot(r.run_id, rs.target_set_id, r.snapshot_date, msg)
        FROM etl_run_set rs WHERE rs.run_id = r.run_id AND rs.status = 'running';
        UPDATE etl_run_set rs SET status = 'failed', error = msg, finished_at = now(),
               pages = p.pages, rows = p.rows, cost_usd = p.cost
        FROM (SELECT target_set_id, count(*) FILTER (WHERE status = 'loaded') AS pages,
                     coalesce(sum(rows) FILTER (WHERE status = 'loaded'), 0) AS rows,
                     coalesce(sum(cost_usd), 0) AS cost
              FROM etl_page WHERE run_id = r.run_id GROUP BY target_set_id) p
        WHERE rs.run_id = r.run_id AND rs.status = 'running'
          AND p.target_set_id = rs.target_set_id;
        UPDATE etl_run_set SET status = 'failed', error = msg, finished_at = now()
        WHERE run_id = r.run_id AND status = 'running';
        UPDATE etl_run x SET status = 'abandoned', error = msg,
               finished_at = coalesce((SELECT max(finished_at) FROM etl_run_attempt
                                       WHERE run_id = r.run_id), now()),
               pages = p.pages, rows = p.rows, cost_usd = p.cost
        FROM (SELECT count(*) FILTER (WHERE status = 'loaded') AS pages,
                     coalesce(sum(rows), 0) AS rows, coalesce(sum(cost_usd), 0) AS cost
              FROM etl_page WHERE run_id = r.run_id) p
        WHERE x.run_id = r.run_id;
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;

-- As 006 had it, with working time and the attempts appended (a view's
-- columns can only be added at its end). While a run is running, its pages,
-- rows and cost are the ledger's as they stand (etl_run gets them when the
-- run ends): `runs` shows a run's progress, not zeros.
CREATE OR REPLACE VIEW etl_run_summary AS
SELECT r.run_id, r.job, r.snapshot_date, r.status, r.started_at, r.finished_at,
       CASE WHEN a.attempts = 0 THEN extract(epoch FROM r.finished_at - r.started_at)
            WHEN a.unfinished = 0 THEN a.working END AS duration_seconds,
       CASE WHEN r.status = 'running' THEN p.pages ELSE r.pages END AS pages,
       p.failed_pages,
       CASE WHEN r.status = 'running' THEN p.rows ELSE r.rows END AS rows,
       s.sets_complete, s.sets_failed,
       CASE WHEN r.status = 'running' THEN p.cost ELSE r.cost_usd END AS cost_usd, r.error,
       r.replay_of, a.attempts, a.statuses AS attempt_statuses, a.last_failure
FROM etl_run r
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE etl_page.status = 'failed') AS failed_pages,
           (count(*) FILTER (WHERE etl_page.status = 'loaded'))::integer AS pages,
           coalesce(sum(etl_page.rows), 0)::bigint AS rows,
           coalesce(sum(etl_page.cost_usd), 0)::numeric AS cost
    FROM etl_page WHERE etl_page.run_id = r.run_id
) p
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE etl_run_set.status = 'complete') AS sets_complete,
           count(*) FILTER (WHERE etl_run_set.status = 'failed') AS sets_failed
    FROM etl_run_set WHERE etl_run_set.run_id = r.run_id
) s
CROSS JOIN LATERAL (
    SELECT count(*) AS attempts,
           count(*) FILTER (WHERE x.finished_at IS NULL) AS unfinished,
           sum(extract(epoch FROM x.finished_at - x.started_at)) AS working,
           string_agg(x.status, ', ' ORDER BY x.attempt) AS statuses,
           (array_agg(x.error ORDER BY x.attempt DESC)
                FILTER (WHERE x.status NOT IN ('running', 'succeeded')))[1] AS last_failure
    FROM etl_run_attempt x WHERE x.run_id = r.run_id
) a;

COMMENT ON TABLE etl_run_attempt IS
    'One row per process that worked on a run: a run continued after a failure, an interruption or a kill has '
    'one attempt per start, oldest first. etl_run holds the latest attempt''s outcome; this table keeps them all.';
COMMENT ON COLUMN etl_run_attempt.run_id IS 'The run (etl_run.run_id).';
COMMENT ON COLUMN etl_run_attempt.attempt IS 'The attempt''s number within its run, from 1.';
COMMENT ON COLUMN etl_run_attempt.started_at IS 'When the process began working on the run.';
COMMENT ON COLUMN etl_run_attempt.finished_at IS
    'When it ended; for an abandoned attempt its last sign of life (its last ledger row, else its start). '
    'NULL while running.';
COMMENT ON COLUMN etl_run_attempt.status IS
    'running, succeeded, partial, failed (as etl_run.status), interrupted (SIGTERM or SIGINT stopped it and '
    'it said so) or abandoned (its process ended without a word; marked by the next run of the job).';
COMMENT ON COLUMN etl_run_attempt.error IS 'Why the attempt did not succeed; NULL when it did.';
COMMENT ON COLUMN etl_run_attempt.pages IS 'Pages this attempt loaded (ledger rows it wrote as loaded).';
COMMENT ON COLUMN etl_run_attempt.failed_pages IS 'Pages this attempt recorded as failed for good.';
COMMENT ON COLUMN etl_run_attempt.rows IS 'Rows the pages this attempt loaded staged.';
COMMENT ON COLUMN etl_run_attempt.cost_usd IS
    'What the API charged this attempt, in USD: the growth of the run''s ledger sum (etl_page.cost_usd) '
    'over the attempt.';
COMMENT ON COLUMN etl_run_attempt.host IS 'Host name of the process.';
COMMENT ON COLUMN etl_run_attempt.pid IS 'Process id of the process.';

COMMENT ON COLUMN etl_run_summary.pages IS
    'Pages loaded; while the run is running, as its ledger stands (etl_run.pages is written at its end).';
COMMENT ON COLUMN etl_run_summary.rows IS
    'Rows its loaded pages staged; while the run is running, as its ledger stands.';
COMMENT ON COLUMN etl_run_summary.cost_usd IS
    'What the API charged the run, in USD, as its ledger sums it; while running, as the ledger stands.';
COMMENT ON COLUMN etl_run_summary.duration_seconds IS
    'Working time in seconds: the sum of the attempts'' durations (hours between a failure and the run that '
    'mended it do not count); NULL while an attempt is running.';
COMMENT ON COLUMN etl_run_summary.attempts IS
    'How many processes worked on the run (etl_run_attempt); 0 for a replay.';
COMMENT ON COLUMN etl_run_summary.attempt_statuses IS
    'The attempts'' outcomes, oldest first, e.g. ''failed, succeeded'' for a run mended by a second attempt.';
COMMENT ON COLUMN etl_run_summary.last_failure IS
    'The error of the latest attempt that did not succeed; NULL if none failed.';
COMMENT ON COLUMN etl_run.status IS
    'running, succeeded (every set published), partial (some failed), failed (none published, or a run-wide '
    'error), interrupted (SIGTERM/SIGINT), abandoned (its process ended without a word). The latest '
    'attempt''s outcome; etl_run_attempt keeps every one.';

COMMENT ON FUNCTION close_attempt(bigint, integer, text, text, timestamptz) IS
    'close_attempt(p_run, p_attempt, p_status, p_error, p_end): ends an attempt with its figures from the '
    'ledger (pages it loaded and failed, rows, and the growth of the run''s cost since the attempts before).';
COMMENT ON FUNCTION begin_attempt(bigint, text, integer) IS
    'begin_attempt(p_run, p_host, p_pid): records a process starting work on run p_run; returns the '
    'attempt''s number.';
COMMENT ON FUNCTION finish_attempt(bigint, integer, text, text) IS
    'finish_attempt(p_run, p_attempt, p_status, p_error): ends the attempt now with the run''s outcome.';
COMMENT ON FUNCTION abandon_runs(text) IS
    'abandon_runs(p_job): called under the job''s lock; marks every run and attempt of p_job still running '
    '(their processes are gone) abandoned, with counters from the ledger and unfinished sets failed. Returns '
    'the runs marked.';

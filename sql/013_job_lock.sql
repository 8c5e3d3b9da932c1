-- intersect-etl migration 013: the job's lock is a row only the ETL can write (issue 16).
--
-- It was a session advisory lock, which any role with a login can take (and
-- hold, idling, to stop every run), which a database restart silently drops
-- (a second run then ran alongside the first), and which the loading
-- connections did not hold at all. Now a run holds its job's lock by naming
-- itself in this row (a random token per process), and every write of a page
-- checks, in its own transaction, that the row still names it
-- (SELECT ... FOR SHARE, see src/load.c): a process that lost the lock cannot
-- commit a page, and the holder is named when another run finds the job
-- locked. Taking or holding the row needs INSERT/UPDATE on this table (FOR
-- SHARE needs UPDATE too), which only the ETL's role has.
CREATE TABLE etl_job_lock (
    job           text PRIMARY KEY,
    token         text,
    run_id        bigint,
    host          text,
    holder_pid    integer,
    backend_pid   integer,
    backend_start timestamptz,
    server_start  timestamptz,
    db_user       text,
    db_userid     oid,
    application   text,
    since         timestamptz,
    heartbeat     timestamptz
);

COMMENT ON TABLE etl_job_lock IS
    'The lock of each job: a run holds it while the row''s token is its own. Whether the holder is alive is '
    'decided from its database session: its backend (backend_pid, with the same backend_start and user) still '
    'in pg_stat_activity, and the server not restarted since (server_start); after a restart the holder is '
    'given a grace period to come back (src/load.c LOAD_LOCK_RESTART_GRACE). A free lock has token NULL. '
    'Only the ETL''s role may write it; every page a run commits checks in its transaction that the row '
    'still names the run.';
COMMENT ON COLUMN etl_job_lock.job IS 'The job''s name (job: in its job file).';
COMMENT ON COLUMN etl_job_lock.token IS
    'Random, one per process that took the lock; NULL when nobody holds it. Pages commit only while it is '
    'theirs.';
COMMENT ON COLUMN etl_job_lock.run_id IS 'The run the holder is running (NULL until it started one).';
COMMENT ON COLUMN etl_job_lock.host IS 'The host name of the holding process.';
COMMENT ON COLUMN etl_job_lock.holder_pid IS 'The process id of the holding intersect-etl process on host.';
COMMENT ON COLUMN etl_job_lock.backend_pid IS
    'The server process (pg_stat_activity.pid) of the holder''s session that vouches for it being alive.';
COMMENT ON COLUMN etl_job_lock.backend_start IS
    'That session''s backend_start: a pid reused by a later session is not the holder.';
COMMENT ON COLUMN etl_job_lock.server_start IS
    'pg_postmaster_start_time() when the holder''s session started: a later one means the server restarted '
    'and every session of the holder is gone.';
COMMENT ON COLUMN etl_job_lock.db_user IS 'The database user of the holder''s session.';
COMMENT ON COLUMN etl_job_lock.db_userid IS 'Its role oid (pg_stat_activity.usesysid), for the liveness check.';
COMMENT ON COLUMN etl_job_lock.application IS 'The holder session''s application_name.';
COMMENT ON COLUMN etl_job_lock.since IS 'When the holder took the lock.';
COMMENT ON COLUMN etl_job_lock.heartbeat IS 'When the holder last showed, on a new session, that it holds the lock.';

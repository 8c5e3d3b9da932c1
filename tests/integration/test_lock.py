"""The job's lock (issue 16, items 2 and 3): a row of etl_job_lock only the
ETL's role can write (sql/013_job_lock.sql), checked by every page's transaction.

- PostgreSQL restarted in the middle of run A, run B of the same job and date
  started right after: B does not run alongside (exit 4, naming A), no page is
  bought twice, and the job's cost ceiling holds for what the API charged.
  (Before: the advisory lock went with the restart, B took it on its own
  connection and both bought the same pages.)
- A run that finds its job locked names the holder: database user,
  application, host, pid, since when (a live run, and a foreign session).
- A role with only LOGIN, and the BI role of sql/bi_readonly.sql, cannot take
  or hold the lock: holding the old advisory keys (the job's and the
  migrations') stops nothing, and the lock row is out of their reach.
- A run whose lock was taken over commits no page after it: its next page
  fails the fence and it stops with exit 4, leaving the run to the new holder.
"""

import os
import re
import subprocess
import time
import unittest
import uuid

from harness import BIN, SOURCE, EtlTestCase, OwnClusterTestCase, check_sanitizers

S = "dataforseo"

JOB = """\
version: 1
job: %(job)s
api:
  provider: aisa
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: %(concurrency)d
  requests_per_minute: 10000
  max_attempts: 3
  timeout_seconds: 10
database: {url: "${DATABASE_URL}"}
%(extra)s
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: alpha, targets: [alpha-a.com, alpha-b.com]}
  - {name: beta, targets: [beta-a.com, beta-b.com, beta-c.com]}
"""

HOLDER = re.compile(r"its lock is held by database user (\S+), application (\S+), host (\S+), pid (\d+) "
                    r"\(server pid (\d+)\), since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


def job_text(job="lk", concurrency=2, extra=""):
    return JOB % {"job": job, "concurrency": concurrency, "extra": extra}


def pages_bought(requests):
    """(first target, offset) of every request the fake answered with a page."""
    return [(r["first_target"], r["offset"]) for r in requests if r["served"] is not None]


class LockTest(EtlTestCase):

    def popen(self, job, date="2026-05-01", env=None):
        return subprocess.Popen([BIN, "run", job, "--snapshot-date", date],
                                env=dict(os.environ, LC_ALL="C", **(env or self.env())),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def psql_args(self, user, db=None):
        pg = self.db.pg
        return [os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", pg["PGPORT"], "-U", user, "-d", db or self.db.name]

    def hold(self, user, *sql, seconds=30):
        """A session of `user` that runs sql (each statement on its own) and idles."""
        cmd = self.psql_args(user)
        for s in sql:
            cmd += ["-c", s]
        cmd += ["-c", "SELECT pg_sleep(%d)" % seconds]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.wait, 60)
        self.addCleanup(p.kill)
        return p

    def wait_for_pages(self, n, timeout=30):
        deadline = time.time() + timeout
        while len(pages_bought(self.fake.requests)) < n:
            self.assertLess(time.time(), deadline, "the run bought fewer than %d pages" % n)
            time.sleep(0.05)

    # ------------------------------------------------------------------ a live holder is named

    def test_a_run_blocked_by_a_live_run_names_it(self):
        self.fake.set_scenario("alpha-a.com", total_count=800, latency_ms=700)
        self.fake.set_scenario("beta-a.com", total_count=300, latency_ms=700)
        job = self.job(job_text(concurrency=1))
        self.etl("migrate", job)
        a = self.popen(job)
        self.wait_for_pages(1)
        b = self.popen(job)
        _, err_b = b.communicate(timeout=60)
        _, err_a = a.communicate(timeout=120)
        check_sanitizers(err_a + err_b)
        self.assertEqual(a.returncode, 0, err_a)
        self.assertEqual(b.returncode, 4, err_b)
        self.assertIn("job lk is already running: run 1 (snapshot 2026-05-01): its lock is held by", err_b)
        m = HOLDER.search(err_b)
        self.assertIsNotNone(m, err_b)
        self.assertEqual(m.group(1), self.db.pg["PGUSER"])
        self.assertEqual(m.group(2), "intersect-etl")
        self.assertEqual(m.group(4), str(a.pid))
        # b bought nothing, and a released the lock as it ended
        self.assertEqual(len(pages_bought(self.fake.requests)), 8 + 3)
        self.assertEqual(self.db.rows("SELECT job, token, run_id, holder_pid, db_user, application "
                                      "FROM %s.etl_job_lock" % S),
                         [{"job": "lk", "token": None, "run_id": 1, "holder_pid": a.pid,
                           "db_user": self.db.pg["PGUSER"], "application": "intersect-etl"}])
        self.assertEqual(self.db.value("SELECT string_agg(run_id || ':' || status, ',') FROM %s.etl_run" % S),
                         "1:succeeded")

    def test_a_run_failing_once_it_holds_the_lock_leaves_nothing_behind(self):
        """A database error just after the run took the job's lock, while its
        loaders' other connections open on a thread of their own: the run
        fails naming the error, releases the lock and closes every connection
        (the thread's too), and the next run of the date loads."""
        self.fake.set_scenario("alpha-a.com", total_count=200)
        self.fake.set_scenario("beta-a.com", total_count=100)
        job = self.job(job_text().replace('database: {url: "${DATABASE_URL}"}',
                                          'database: {url: "${DATABASE_URL}", connections: 4}'))
        self.etl("migrate", job)
        self.db.psql("ALTER FUNCTION %s.abandon_runs(text) RENAME TO abandon_runs_away" % S)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-05-01", expect=1)
        self.assertIn("abandon_runs", err)
        self.assertEqual(pages_bought(self.fake.requests), [])
        self.db.sessions_ended()
        self.assertEqual(self.db.value("SELECT count(*) FROM pg_stat_activity WHERE application_name"
                                       " = 'intersect-etl' AND datname = current_database()"), "0")
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.etl_job_lock WHERE token IS NOT NULL" % S),
                         "0")
        self.db.psql("ALTER FUNCTION %s.abandon_runs_away(text) RENAME TO abandon_runs" % S)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-05-01", "-v")
        self.assertIn("loading on 4 connections", err)
        self.assertEqual(self.db.value("SELECT string_agg(status, ',') FROM %s.etl_run" % S), "succeeded")

    def test_a_foreign_session_holding_the_row_is_named(self):
        """A session of the ETL's role (psql, by hand) that holds the row: the
        run names its user, application and server pid, and the time."""
        self.fake.set_scenario("alpha-a.com", total_count=100)
        self.fake.set_scenario("beta-a.com", total_count=100)
        job = self.job(job_text())
        self.etl("migrate", job)
        holder = self.hold(self.db.pg["PGUSER"],
                           "SET application_name = 'by-hand'",
                           "INSERT INTO %s.etl_job_lock (job, token, host, holder_pid, backend_pid, backend_start,"
                           " server_start, db_user, db_userid, application, since, heartbeat)"
                           " SELECT 'lk', 'mine', 'elsewhere', 4242, pid, backend_start, pg_postmaster_start_time(),"
                           " usename, usesysid, application_name, '2026-05-01 01:02:03+00', now()"
                           " FROM pg_stat_activity WHERE pid = pg_backend_pid()" % S)
        deadline = time.time() + 10
        while self.db.value("SELECT count(*) FROM %s.etl_job_lock" % S) != "1":
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        backend = self.db.value("SELECT backend_pid FROM %s.etl_job_lock" % S)
        started = time.time()
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-05-01", expect=4)
        self.assertGreaterEqual(time.time() - started, 4.5)  # the 5 s for a holder that is exiting
        self.assertIn("error: job lk is already running: its lock is held by database user %s, application "
                      "by-hand, host elsewhere, pid 4242 (server pid %s), since 2026-05-01 01:02:03 UTC"
                      % (self.db.pg["PGUSER"], backend), err)
        self.assertEqual(self.fake.requests, [])
        # the holder's session ends: the lock is free at once, whatever its row says
        self.db.psql("SELECT pg_terminate_backend(%s)" % backend)
        holder.wait(10)
        self.etl("run", job, "--snapshot-date", "2026-05-01")
        self.assertEqual(self.db.value("SELECT token IS NULL AND holder_pid <> 4242 FROM %s.etl_job_lock" % S),
                         "t")

    # ------------------------------------------------------------------ roles without rights

    def test_roles_without_write_rights_cannot_take_or_hold_the_lock(self):
        """A role with only LOGIN, and the BI role, holding the advisory keys
        the job's lock and the migrations used: runs and migrations go on,
        and the lock row cannot be written, locked or even read by them."""
        self.fake.set_scenario("alpha-a.com", total_count=200)
        self.fake.set_scenario("beta-a.com", total_count=100)
        job = self.job(job_text())
        self.etl("migrate", job)
        login = "login_%s" % uuid.uuid4().hex[:10]
        bi = "bi_%s" % uuid.uuid4().hex[:10]
        self.db.psql('CREATE ROLE "%s" LOGIN' % login)
        self.addCleanup(self.db.admin, 'DROP ROLE IF EXISTS "%s"' % login)
        self.addCleanup(self.db.admin, 'DROP ROLE IF EXISTS "%s"' % bi)  # after tearDown drops the database
        pg = self.db.pg
        p = subprocess.run([os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", pg["PGHOST"], "-p",
                            pg["PGPORT"], "-U", pg["PGUSER"], "-d", self.db.name, "-v", "schema=" + S,
                            "-v", "role=" + bi, "-f", os.path.join(SOURCE, "sql", "bi_readonly.sql")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        take = ("INSERT INTO %s.etl_job_lock (job, token, backend_pid) VALUES ('lk', 'x', pg_backend_pid()) "
                "ON CONFLICT (job) DO UPDATE SET token = 'x'" % S)
        for role in (login, bi):
            with self.subTest(role=role):
                for sql in (take, "SELECT * FROM %s.etl_job_lock FOR SHARE" % S,
                            "UPDATE %s.etl_job_lock SET token = 'x'" % S,
                            "BEGIN READ WRITE; LOCK TABLE %s.etl_job_lock IN EXCLUSIVE MODE" % S):
                    if not sql.startswith("BEGIN"):  # the BI role's transactions are read-only by default
                        sql = "BEGIN READ WRITE; " + sql
                    r = subprocess.run(self.psql_args(role) + ["-c", sql], capture_output=True, text=True)
                    self.assertNotEqual(r.returncode, 0, sql)
                    self.assertIn("permission denied", r.stderr)
        # they hold the advisory keys the job's lock and migrate used, and idle
        holders = [self.hold(login, "SELECT pg_advisory_lock(7586121645963454823)"),
                   self.hold(bi, "SELECT pg_advisory_lock(1229866028, hashtext('lk'))")]
        deadline = time.time() + 10
        while self.db.value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") != "2":
            self.assertLess(time.time(), deadline, "the sessions did not take the advisory locks")
            time.sleep(0.05)
        started = time.time()
        self.etl("migrate", job)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-05-01")
        self.assertLess(time.time() - started, 20)
        self.assertEqual(sorted(pages_bought(self.fake.requests)),
                         [("alpha-a.com", 0), ("alpha-a.com", 100), ("beta-a.com", 0)])
        self.assertEqual(self.db.value("SELECT status FROM %s.etl_run" % S), "succeeded")
        for h in holders:
            self.assertIsNone(h.poll())  # they were holding all along

    # ------------------------------------------------------------------ fencing

    def test_a_run_whose_lock_is_taken_over_commits_nothing_more(self):
        """The row taken over under a live run (as a run would take it after
        deciding the holder was gone): the run's next page fails the check in
        its transaction, no page of it commits after, and it stops with exit
        4, leaving the run's status to the new holder."""
        self.fake.set_scenario("alpha-a.com", total_count=2000, latency_ms=300)
        self.fake.set_scenario("beta-a.com", total_count=100, latency_ms=300)
        job = self.job(job_text(concurrency=1))
        self.etl("migrate", job)
        a = self.popen(job)
        self.wait_for_pages(3)
        holder = self.hold(self.db.pg["PGUSER"],
                           "UPDATE %s.etl_job_lock SET token = 'taken', holder_pid = 4242, host = 'elsewhere',"
                           " backend_pid = pg_backend_pid(), application = current_setting('application_name'),"
                           " since = '2026-05-01 01:02:03+00'" % S)
        deadline = time.time() + 10
        while self.db.value("SELECT token FROM %s.etl_job_lock" % S) != "taken":
            self.assertLess(time.time(), deadline)
            time.sleep(0.02)
        loaded_then = int(self.db.value("SELECT count(*) FROM %s.etl_page WHERE status = 'loaded'" % S))
        _, err = a.communicate(timeout=60)
        check_sanitizers(err)
        self.assertEqual(a.returncode, 4, err)
        self.assertIn("job lk: this run lost the job's lock to another process: run 1 (snapshot 2026-05-01): "
                      "its lock is held by database user %s, application psql, host elsewhere, pid 4242"
                      % self.db.pg["PGUSER"], err)
        # at most the page whose transaction held the row when it was taken over
        self.assertLessEqual(int(self.db.value("SELECT count(*) FROM %s.etl_page WHERE status = 'loaded'" % S)),
                             loaded_then + 1)
        self.assertEqual(self.db.value("SELECT status FROM %s.etl_run" % S), "running")
        self.assertEqual(self.db.value("SELECT token FROM %s.etl_job_lock" % S), "taken")
        self.assertLess(len(pages_bought(self.fake.requests)), 21)
        holder.kill()


class LockRestartTest(OwnClusterTestCase):
    """The server restarted by the test: a cluster of its own (the suite's is
    shared by tests running in parallel)."""

    cluster_prefix = "pglock-"

    def setUp(self):
        super().setUp()
        self.run_env = self.env(DATABASE_URL=self.env_pg["DATABASE_URL"])

    def start(self, job):
        return subprocess.Popen([BIN, "run", job, "--snapshot-date", "2026-05-01"],
                                env=dict(os.environ, LC_ALL="C", **self.run_env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def check_restart(self, mode):
        # 30 pages of 100 ($0.023 each, $0.69 in all); the ceiling stops the
        # run at 26 (plan_cost's worst case of a page of 100 is what it
        # costs), some 13 s: longer than b tries the lock (5 s)
        self.fake.set_scenario("alpha-a.com", total_count=2000, latency_ms=1000)
        self.fake.set_scenario("beta-a.com", total_count=1000, latency_ms=1000)
        job = self.job(job_text(concurrency=2, extra="max_cost_usd: 0.60"))
        subprocess.run([BIN, "migrate", job], env=dict(os.environ, **self.run_env), check=True,
                       capture_output=True)
        a = self.start(job)
        deadline = time.time() + 30
        while len(pages_bought(self.fake.requests)) < 3:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        self.restart(mode)
        b = self.start(job)
        self.assertIsNone(a.poll(), "a ended before b started: the test shows nothing")
        _, err_b = b.communicate(timeout=120)
        _, err_a = a.communicate(timeout=180)
        check_sanitizers(err_a + err_b)
        self.assertIn("database connection lost", err_a)
        self.assertEqual(b.returncode, 4, err_b)
        self.assertIn("job lk is already running: run 1 (snapshot 2026-05-01): its lock is held by", err_b)
        m = HOLDER.search(err_b)
        self.assertIsNotNone(m, err_b)
        self.assertEqual(m.group(4), str(a.pid))
        # a ends at its cost ceiling, as it would have without the restart
        self.assertEqual(a.returncode, 3, err_a)
        self.assertIn("the job's cost ceiling max_cost_usd $0.6000 stopped the run", err_a)
        bought = pages_bought(self.fake.requests)
        self.assertEqual(len(bought), len(set(bought)), "a page was bought twice: %s" % sorted(bought))
        charged = sum(r["charged"] for r in self.fake.requests)
        self.assertLessEqual(charged, 0.60 + 1e-9)
        self.assertAlmostEqual(float(self.own.value("SELECT cost_usd FROM %s.etl_run" % S)), charged, places=6)
        self.assertEqual(self.own.value("SELECT string_agg(run_id || ':' || status, ',') FROM %s.etl_run" % S),
                         "1:partial")
        self.assertEqual(self.own.value("SELECT count(*) FROM %s.etl_job_lock WHERE token IS NOT NULL" % S), "0")

    def test_a_second_run_after_a_restart_does_not_run_alongside(self):
        self.check_restart("fast")


if __name__ == "__main__":
    unittest.main()

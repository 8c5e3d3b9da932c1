"""Reliability: every fault the fake can inject, alone and mixed on a seeded
schedule, ends with the tables of a fault-free run (or, for faults that must
not be retried, with the documented failed/partial state and message); a run
killed with SIGKILL at seeded moments resumes to the same tables without
requesting a loaded page again; PostgreSQL restarted mid-run; two runs of one
job at once; and a secret token found nowhere in output or tables."""

import os
import random
import signal
import subprocess
import time
import unittest

from harness import BIN, Database, EtlTestCase, OwnClusterTestCase, check_sanitizers, db_rows, fakeapi, pg_env

JOB = """\
version: 1
job: %(job)s
api:
  provider: %(provider)s
  base_url: ${%(url_var)s}
  %(creds)s
  concurrency: %(concurrency)d
  requests_per_minute: 10000
  max_attempts: %(attempts)d
  timeout_seconds: 5
database: {url: "${DATABASE_URL}"}
defaults: {limit: %(limit)d, max_rows: 100000}
target_sets:
  - {name: alpha, targets: [alpha-a.com, alpha-b.com]}
  - {name: beta, targets: [beta-a.com, beta-b.com, beta-c.com]}
"""

AISA = "token: ${AISA_API_KEY}"


def job_text(job="rel", provider="aisa", concurrency=4, attempts=6, limit=200):
    return JOB % {"job": job, "provider": provider, "concurrency": concurrency, "attempts": attempts,
                  "limit": limit, "url_var": "AISA_BASE_URL" if provider == "aisa" else "DFS_BASE_URL",
                  "creds": AISA if provider == "aisa" else "login: ${DFS_LOGIN}\n  password: ${DFS_PASSWORD}"}


def table_dump(db):
    """domain_intersection without run_id (ids differ between databases only by history)."""
    rows = db.rows("SELECT d.*, t.name FROM dataforseo.domain_intersection d "
                   "JOIN dataforseo.target_set t USING (target_set_id) "
                   "ORDER BY t.name, snapshot_date, referring_domain, target_key")
    for r in rows:
        r.pop("run_id")
        r.pop("target_set_id")
    return rows


class ReliabilityTest(EtlTestCase):

    totals = (1000, 700)
    _baselines = {}

    def scenarios(self, faults_alpha=None, faults_beta=None, totals=None):
        totals = totals or self.totals
        self.fake.set_scenario("alpha-a.com", total_count=totals[0], faults=faults_alpha or [])
        self.fake.set_scenario("beta-a.com", total_count=totals[1], faults=faults_beta or [])

    def baseline(self, totals=None):
        """Tables of a fault-free run, in a database of their own."""
        totals = totals or self.totals
        if totals not in self._baselines:
            db = Database("baseline")
            try:
                self.fake.reset()
                self.scenarios(totals=totals)
                job = self.job(job_text(job="base"), name="base.yaml")
                self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01",
                         env=self.env(DATABASE_URL=db.url))
                self._baselines[totals] = table_dump(db)
            finally:
                db.close()
                self.fake.reset()
        return self._baselines[totals]

    def test_each_retryable_fault_alone(self):
        # 11 runs: half the default rows (offset 400 is still a page of alpha)
        totals = (500, 300)
        base = self.baseline(totals)
        self.assertEqual(len(base), 500 * 2 + 300 * 3)
        faults = [
            {"kind": "http429", "retry_after": 0},
            {"kind": "http500"},
            {"kind": "http502_html"},
            {"kind": "task", "code": 40202},
            {"kind": "task", "code": 50000},
            {"kind": "task", "code": 40209},
            {"kind": "top", "code": 50000},
            {"kind": "truncated"},
            {"kind": "drop"},
            {"kind": "result_null"},
            {"kind": "slow", "seconds": 7},  # past timeout_seconds: 5
        ]
        for fault in faults:
            with self.subTest(fault=fault["kind"]):
                self.db.close()
                self.db = Database("fault")
                self.fake.reset()
                self.scenarios(faults_alpha=[dict(fault, offset=400, times=2)], totals=totals)
                job = self.job(job_text())
                code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01")
                self.assertEqual(table_dump(self.db), base)
                at = [r for r in self.fake.requests if r["first_target"] == "alpha-a.com" and r["offset"] == 400]
                self.assertEqual(len(at), 3, [r["fault"] for r in at])
                attempts = self.db.value("SELECT attempts FROM dataforseo.etl_page WHERE page_offset = 400 "
                                         "AND target_set_id = (SELECT target_set_id FROM dataforseo.target_set "
                                         "WHERE name = 'alpha')")
                if fault["kind"] == "drop":
                    # libcurl itself resends when a reused connection closes
                    # without an answer, so a drop may never reach the retry policy.
                    self.assertIn(attempts, ("1", "2", "3"))
                    continue
                self.assertIn("alpha: offset 400", err)
                self.assertEqual(attempts, "3")

    def test_mixed_faults_on_a_seeded_schedule(self):
        base = self.baseline()
        kinds = [{"kind": "http429", "retry_after": 0}, {"kind": "http500"}, {"kind": "truncated"},
                 {"kind": "drop"}, {"kind": "task", "code": 50000}, {"kind": "task", "code": 40202},
                 {"kind": "http502_html"}, {"kind": "result_null"}]
        for seed in (1, 2, 3):
            with self.subTest(seed=seed):
                rnd = random.Random(seed)
                self.db.close()
                self.db = Database("mixed")
                self.fake.reset()
                fa = [dict(rnd.choice(kinds), offset=rnd.choice([0, 200, 400, 600, 800]), times=rnd.randint(1, 2))
                      for _ in range(4)]
                fb = [dict(rnd.choice(kinds), offset=rnd.choice([0, 200, 400, 600]), times=1) for _ in range(3)]
                self.scenarios(fa, fb)
                job = self.job(job_text(attempts=8))
                self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01")
                self.assertEqual(table_dump(self.db), base)
                self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run"), "succeeded")

    def test_exhausted_attempts_fail_the_set_only(self):
        self.scenarios(faults_alpha=[{"kind": "http500", "offset": 600, "times": -1}])
        job = self.job(job_text(attempts=2))
        # a previous complete snapshot of this date must survive the failure
        self.fake.reset()
        self.scenarios()
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-02")
        before = table_dump(self.db)
        self.fake.reset()
        self.scenarios(faults_alpha=[{"kind": "http500", "offset": 600, "times": -1}])
        self.fake.set_scenario("beta-a.com", total_count=650)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-05-02", "--fresh", expect=3)
        self.assertIn("alpha: offset 600: HTTP 500", err)
        self.assertIn("attempts exhausted", err)
        sets = self.db.rows("SELECT t.name, s.status FROM dataforseo.etl_run_set s JOIN dataforseo.target_set t "
                            "USING (target_set_id) WHERE s.run_id = 2 ORDER BY 1")
        self.assertEqual([(s["name"], s["status"]) for s in sets], [("alpha", "failed"), ("beta", "complete")])
        self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run WHERE run_id = 2"), "partial")
        page = self.db.rows("SELECT status, http_status, error FROM dataforseo.etl_page WHERE run_id = 2 "
                            "AND page_offset = 600 AND target_set_id = 1")
        self.assertEqual(page[0]["status"], "failed")
        self.assertEqual(page[0]["http_status"], 500)
        after = table_dump(self.db)
        # alpha's snapshot is untouched; beta's was replaced by its new, smaller answer
        self.assertEqual([r for r in after if r["name"] == "alpha"], [r for r in before if r["name"] == "alpha"])
        self.assertEqual(len([r for r in after if r["name"] == "beta"]), 650 * 3)

    def test_non_retryable_faults(self):
        cases = [
            # (fault, exit status, run status, text in the message)
            ({"kind": "http401"}, 1, "failed", "HTTP 401"),
            ({"kind": "task", "code": 40200}, 1, "failed", "40200"),
            ({"kind": "task", "code": 40501}, 3, "partial", "40501"),
        ]
        for fault, status, run_status, text in cases:
            with self.subTest(fault=fault):
                self.db.close()
                self.db = Database("nonretry")
                self.fake.reset()
                self.scenarios(faults_alpha=[dict(fault, offset=0, times=1)])
                job = self.job(job_text(concurrency=1))
                code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-03", expect=status)
                self.assertRegex(err, r"alpha.*offset 0: HTTP")
                self.assertIn(text, err)
                self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run"), run_status)
                at = [r for r in self.fake.requests if r["first_target"] == "alpha-a.com" and r["offset"] == 0]
                self.assertEqual(len(at), 1, "a non-retryable fault must not be retried")

    def test_wrong_credentials_stop_the_run(self):
        job = self.job(job_text(concurrency=2))
        self.scenarios()
        code, out, err = self.etl("run", job, "--migrate", env=self.env(AISA_API_KEY="sk-aisa-wrong"), expect=1)
        self.assertIn("HTTP 401", err)
        self.assertNotIn("sk-aisa-wrong", out + err)
        self.assertLessEqual(len(self.fake.requests), 2)

    def test_sigkill_at_seeded_moments_resumes(self):
        totals = (3000, 2000)
        base = self.baseline(totals)
        rnd = random.Random(20261129)
        job = self.job(job_text(limit=50, concurrency=2))
        env = dict(os.environ, LC_ALL="C", **self.env())
        kills = 0
        loaded_before = set()
        for attempt in range(60):
            self.fake.reset()
            self.scenarios(totals=totals)
            self.fake.latency_ms = 100
            p = subprocess.Popen([BIN, "run", job, "--migrate", "--snapshot-date", "2026-05-01"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if kills < 20:
                time.sleep(rnd.uniform(0.0, 0.25))
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    kills += 1
            _, err = p.communicate(timeout=120)
            check_sanitizers(err)
            # no page the ledger had as loaded before this start was requested again
            again = [(r["first_target"], r["offset"]) for r in self.fake.requests
                     if (r["first_target"], r["offset"]) in loaded_before]
            self.assertEqual(again, [], "loaded pages requested again after restart %d" % attempt)
            if p.returncode == 0:
                break
            self.assertEqual(p.returncode, -signal.SIGKILL, err)
            if self.db.value("SELECT to_regclass('dataforseo.etl_page') IS NOT NULL") == "t":
                loaded_before = {(r["first"], r["page_offset"]) for r in self.db.rows(
                    "SELECT t.targets[1] AS first, p.page_offset FROM dataforseo.etl_page p "
                    "JOIN dataforseo.target_set t USING (target_set_id) WHERE p.status = 'loaded' "
                    "AND p.run_id = (SELECT max(run_id) FROM dataforseo.etl_run)")}
        self.fake.latency_ms = 0
        print("SIGKILL test: %d kills, finished on start %d" % (kills, attempt + 1))
        self.assertEqual(p.returncode, 0)
        self.assertGreaterEqual(kills, 15)
        self.assertEqual(table_dump(self.db), base)
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.etl_run"), "1")
        self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run"), "succeeded")

    def test_killed_rerun_leaves_no_pending_rows(self):
        """A rerun killed mid-way leaves its pages in domain_intersection_pending;
        the next fresh run of the job removes them, and publishes only its own."""
        self.scenarios()
        job = self.job(job_text(limit=50, concurrency=1))
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01")
        self.fake.set_scenario("alpha-a.com", total_count=1000, latency_ms=100)
        env = dict(os.environ, LC_ALL="C", **self.env())
        p = subprocess.Popen([BIN, "run", job, "--fresh", "--snapshot-date", "2026-05-01"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.db.value(
                "SELECT count(*) FROM dataforseo.domain_intersection_pending") == "0":
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=60)
        check_sanitizers(err)
        left = int(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_pending WHERE run_id = 2"))
        self.assertGreater(left, 0)
        self.scenarios()
        self.etl("run", job, "--fresh", "--snapshot-date", "2026-05-01")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_pending"), "0")
        self.assertEqual(self.db.value("SELECT string_agg(run_id || ':' || status, ',' ORDER BY run_id) "
                                       "FROM dataforseo.etl_run"), "1:succeeded,2:abandoned,3:succeeded")
        self.assertEqual(table_dump(self.db), self.baseline())

    def test_two_runs_at_once_one_exits_locked(self):
        self.scenarios()
        # a runs for longer than b tries the lock (load.h LOAD_LOCK_WAIT_MS, 5 s)
        self.fake.set_scenario("alpha-a.com", total_count=1000, latency_ms=2000)
        job = self.job(job_text(concurrency=1))
        self.etl("migrate", job)
        env = dict(os.environ, LC_ALL="C", **self.env())
        a = subprocess.Popen([BIN, "run", job], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        b = subprocess.Popen([BIN, "run", job], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err_b = b.communicate(timeout=60)
        _, err_a = a.communicate(timeout=120)
        check_sanitizers(err_a + err_b)
        self.assertEqual(a.returncode, 0, err_a)
        self.assertEqual(b.returncode, 4, err_b)
        self.assertIn("job rel is already running: run 1", err_b)
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.etl_run"), "1")

    def test_fewer_connections_than_asked(self):
        """A server that takes one connection of the two the job asks for:
        the run says so and loads on that one, with every row right."""
        role = "etl_one_%s" % self.db.name[-10:]
        self.db.psql('CREATE ROLE "%s" LOGIN CONNECTION LIMIT 1; ALTER DATABASE "%s" OWNER TO "%s"'
                     % (role, self.db.name, role))
        try:
            self.scenarios()
            url = self.db.url.replace("postgresql://%s@" % self.db.pg["PGUSER"], "postgresql://%s@" % role)
            job = self.job(job_text().replace('database: {url: "${DATABASE_URL}"}',
                                              'database: {url: "${DATABASE_URL}", connections: 2}'))
            code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01",
                                      env=self.env(DATABASE_URL=url))
            self.assertIn("warning: loading on 1 connection, not 2:", err)
            self.assertIn("too many connections for role", err)
            self.assertEqual(table_dump(self.db), self.baseline())
        finally:
            self.db.psql('ALTER DATABASE "%s" OWNER TO "%s"' % (self.db.name, self.db.pg["PGUSER"]))
            self.db.psql('DROP OWNED BY "%s" CASCADE; DROP ROLE "%s"' % (role, role))

    def test_secret_appears_nowhere(self):
        secret = "sk-aisa-SECRET-7f3a9c"
        password = "pw-SECRET-91b2"
        outputs = []
        fake = fakeapi.FakeServer(token=secret, login="login-x", password=password)
        fake.start()
        try:
            def arm():  # faults are used up by each run: set them again
                for f in (fake, self.fake):
                    f.set_scenario("alpha-a.com", total_count=1000, faults=[
                        {"kind": "http500", "offset": 200}, {"kind": "task", "code": 40501, "offset": 600}])
                    f.set_scenario("beta-a.com", total_count=700)
            env = self.env(AISA_API_KEY=secret, AISA_BASE_URL=fake.base_url("aisa"),
                           DFS_BASE_URL=fake.base_url("dataforseo"), DFS_LOGIN="login-x", DFS_PASSWORD=password)
            aisa = self.job(job_text())
            dfs = self.job(job_text(job="rel-dfs", provider="dataforseo"), name="dfs.yaml")
            # accepted, with a retried and a failed page, verbose
            arm()
            outputs.append(self.etl("-v", "run", aisa, "--migrate", env=env, expect=3))
            arm()
            outputs.append(self.etl("-v", "run", dfs, env=env, expect=3))
            # refused by the other fake (wrong credentials: the 401 path)
            env_wrong = dict(env, AISA_BASE_URL=self.fake.base_url("aisa"), DFS_BASE_URL=self.fake.base_url("dataforseo"))
            outputs.append(self.etl("-v", "run", aisa, "--fresh", env=env_wrong, expect=1))
            outputs.append(self.etl("-v", "run", dfs, "--fresh", env=env_wrong, expect=1))
            for cmd in ("plan", "validate"):
                outputs.append(self.etl(cmd, aisa, env=env))
                outputs.append(self.etl(cmd, dfs, env=env))
        finally:
            fake.stop()
        text = "".join(o + e for _, o, e in outputs)
        self.assertIn("HTTP 401", text)
        self.assertIn("40501", text)
        self.assertNotIn(secret, text)
        self.assertNotIn(password, text)
        self.assertNotIn("SECRET", text)
        pg = pg_env()
        dump = subprocess.run([os.path.join(pg["PG_BINDIR"], "pg_dump"), "-h", pg["PGHOST"], "-p", pg["PGPORT"],
                               "-U", "postgres", "-d", self.db.name],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn("etl_page", dump)
        self.assertIn("alpha-a.com", dump)
        self.assertNotIn("SECRET", dump)


class PostgresRestartTest(OwnClusterTestCase):
    """PostgreSQL restarted, or crashed, during a run or between its
    attempts: the run reconnects or continues and ends with the same tables."""

    cluster_prefix = "pgrestart-"

    def setUp(self):
        super().setUp()
        self.run_env = dict(os.environ, LC_ALL="C", **self.env(DATABASE_URL=self.env_pg["DATABASE_URL"]))

    def run_etl_here(self, job, expect):
        p = subprocess.run([BIN, "run", job, "--snapshot-date", "2026-05-01"], env=self.run_env,
                           capture_output=True, text=True, timeout=180)
        check_sanitizers(p.stderr)
        self.assertEqual(p.returncode, expect, p.stderr)
        return p.stderr

    def test_restart_mid_run(self):
        self.fake.set_scenario("alpha-a.com", total_count=1000, latency_ms=100)
        self.fake.set_scenario("beta-a.com", total_count=700, latency_ms=100)
        job = self.job(job_text(limit=100, concurrency=2))
        subprocess.run([BIN, "migrate", job], env=self.run_env, check=True, capture_output=True)
        p = subprocess.Popen([BIN, "run", job, "--snapshot-date", "2026-05-01"], env=self.run_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.8)
        self.restart("fast")
        _, err = p.communicate(timeout=180)
        check_sanitizers(err)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("database connection lost", err)
        self.assertEqual(len(table_dump(self.own)), 1000 * 2 + 700 * 3)
        self.assertRowsMatchFrom(self.own)

    def test_a_crash_of_the_server_loses_no_staged_page(self):
        """A crash of the server (no clean shutdown) between two attempts of a
        run: what its pages staged is WAL-logged, so the continued run fetches
        only the page that failed and publishes the whole answer."""
        self.fake.set_scenario("alpha-a.com", total_count=1000, faults=[
            {"kind": "task", "code": 40501, "offset": 900, "times": -1}])
        self.fake.set_scenario("beta-a.com", total_count=700)
        job = self.job(job_text(limit=100, concurrency=2, attempts=1))
        subprocess.run([BIN, "migrate", job], env=self.run_env, check=True, capture_output=True)
        log = self.run_etl_here(job, 3)  # alpha's last page fails: its 9 pages stay staged
        # (a first load stages its rows as versions of the date, sql/016)
        staged = ("SELECT (SELECT count(*) FROM dataforseo.domain_intersection_pending)"
                  " + (SELECT count(*) FROM dataforseo.domain_intersection_version"
                  "    WHERE valid_from = '2026-05-01' AND valid_to = 'infinity'"
                  "    AND NOT EXISTS (SELECT 1 FROM dataforseo.etl_snapshot s"
                  "                    WHERE s.target_set_id = domain_intersection_version.target_set_id"
                  "                    AND s.snapshot_date = '2026-05-01' AND s.status = 'complete'))")
        self.assertEqual(self.own.value(staged), "1800", log)
        self.restart("immediate")
        self.assertEqual(self.own.value(staged), "1800")
        before = self.fake.requests
        self.fake.reset()
        self.fake.set_scenario("alpha-a.com", total_count=1000)
        self.fake.set_scenario("beta-a.com", total_count=700)
        self.run_etl_here(job, 0)
        self.assertEqual([r["offset"] for r in self.fake.requests], [900])
        self.assertEqual(len(table_dump(self.own)), 1000 * 2 + 700 * 3)
        self.assertRowsMatchFrom(self.own, before + self.fake.requests)

    def assertRowsMatchFrom(self, db, requests=None):
        from harness import expected_rows
        for name, first, targets in (("alpha", "alpha-a.com", ["alpha-a.com", "alpha-b.com"]),
                                     ("beta", "beta-a.com", ["beta-a.com", "beta-b.com", "beta-c.com"])):
            want = expected_rows(requests or self.fake.requests, first, targets)
            got = db_rows(db, "dataforseo", name)
            self.assertEqual(sorted(got), sorted(want))


if __name__ == "__main__":
    unittest.main()

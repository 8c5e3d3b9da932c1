"""What operators alert on, told truly: the cost ceiling (a set whose pages
are all loaded publishes; the message says what is left; one cost figure in
the log, the done line, `runs` and the tables; exit statuses as README's
table), every attempt of a run kept, signals and killed processes against
the real binary and PostgreSQL."""

import json
import os
import re
import signal
import subprocess
import time
import unittest

from harness import BIN, SOURCE, EtlTestCase, check_sanitizers

JOB = """\
version: 1
job: ops17
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: %(concurrency)d
  requests_per_minute: 10000
  max_attempts: 1
  timeout_seconds: 30
database: {url: "${DATABASE_URL}"}
defaults: {limit: 1000, max_rows: 3000}
%(extra)s
target_sets:
  - {name: small, targets: [ops17-small.com]}
  - {name: big, targets: [ops17-big.com]}
  - {name: third, targets: [ops17-third.com]}
"""


def job_text(extra="", concurrency=2):
    return JOB % {"extra": extra, "concurrency": concurrency}


def cost_of(rows):
    """What the fake charges for a page of `rows` items, in micro-dollars (exact)."""
    return 20000 + 30 * rows


def usd(micro):
    """micro-dollars as the program prints them: half up to four decimals."""
    tenth = (micro + 50) // 100
    return "$%d.%04d" % (tenth // 10000, tenth % 10000)


class CostCeilingTest(EtlTestCase):

    def scenarios(self, small=315, big=2000, third=2000):
        self.fake.set_scenario("ops17-small.com", total_count=small)
        self.fake.set_scenario("ops17-big.com", total_count=big)
        self.fake.set_scenario("ops17-third.com", total_count=third)

    def sets(self):
        return {r["name"]: r for r in self.db.rows(
            "SELECT t.name, s.status, s.pages, s.rows, s.cost_usd::text AS cost, s.error"
            " FROM dataforseo.etl_run_set s JOIN dataforseo.target_set t USING (target_set_id)")}

    def test_ceiling_publishes_a_fully_loaded_set(self):
        # Pages of 1000 cost $0.05 at worst: with $0.10 two go out (small's
        # only page and big's first), the third set's first cannot. small's
        # page was the whole set (315 < limit): it publishes.
        self.scenarios()
        job = self.job(job_text("max_cost_usd: 0.10"))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-01", expect=3)
        charged = cost_of(315) + cost_of(1000)  # 29450 + 50000 micro-dollars
        self.assertEqual(sorted((r["first_target"], r["offset"]) for r in self.fake.requests),
                         [("ops17-big.com", 0), ("ops17-small.com", 0)])
        sets = self.sets()
        self.assertEqual(sets["small"]["status"], "complete")
        self.assertEqual(sets["small"]["error"], None)
        self.assertEqual(sets["small"]["rows"], 315)
        self.assertEqual(sets["big"]["status"], "failed")
        self.assertEqual(
            sets["big"]["error"],
            "the job's cost ceiling max_cost_usd $0.1000 stopped the run: $0.0500 charged for this set; "
            "left unfetched: 1 page from offset 1000 (1000 referring domains of total_count 2000)")
        self.assertEqual(sets["third"]["status"], "failed")
        self.assertEqual(
            sets["third"]["error"],
            "the job's cost ceiling max_cost_usd $0.1000 stopped the run: $0.0000 charged for this set; "
            "left unfetched: the whole set (its total_count is unknown; max_rows 3000)")
        # the published snapshot is small's whole answer
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM dataforseo.domain_intersection d JOIN dataforseo.target_set t"
            " USING (target_set_id) WHERE t.name = 'small' AND snapshot_date = '2026-03-01'"), "315")
        self.assertRowsMatch("small", "ops17-small.com", ["ops17-small.com"], "2026-03-01")
        # one figure: the ledger's sum, in the tables, the log, the last line and `runs`
        run = self.db.rows("SELECT status, pages, rows, cost_usd::text AS cost, error FROM dataforseo.etl_run")[0]
        self.assertEqual(run["cost"], "0.079450")
        self.assertEqual((run["status"], run["pages"], run["rows"]), ("partial", 2, 1315))
        self.assertEqual(run["error"], "the job's cost ceiling max_cost_usd $0.1000 stopped the run: "
                         "%s charged; 2 of 3 target sets not finished" % usd(charged))
        self.assertEqual(usd(charged), "$0.0795")
        self.assertIn("run 1: 1 target set complete, 2 failed; 2 pages, 1315 rows, $0.0795", err)
        self.assertIn("small: complete: total_count 315; this process loaded 315 referring domains "
                      "(315 table rows) in 1 page, $0.0295", err)
        self.assertNotIn("$0.0794", err)
        # said when the ceiling stops sending: spent so far, the worst case in flight
        self.assertRegex(err, r"warning: cost ceiling max_cost_usd \$0\.1000 reached: \$0\.0\d{3} charged, up to "
                              r"\$0\.\d{4} for the requests in flight; no more requests are sent")
        code, out, _ = self.etl("runs", job)
        self.assertIn("$0.0795", out)
        self.assertNotIn("$0.0794", out)

    def test_ceiling_that_completes_nothing_exits_1(self):
        # $0.06 holds one page of 1000 at worst ($0.05): small's first page
        # goes, then nothing more; no set has its whole answer.
        self.scenarios(small=2000, big=2000, third=2000)
        job = self.job(job_text("max_cost_usd: 0.06", concurrency=1))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-02", expect=1)
        self.assertEqual([(r["first_target"], r["offset"]) for r in self.fake.requests],
                         [("ops17-small.com", 0)])
        sets = self.sets()
        self.assertEqual(sorted(s["status"] for s in sets.values()), ["failed"] * 3)
        run = self.db.rows("SELECT status, cost_usd::text AS cost, error FROM dataforseo.etl_run")[0]
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["cost"], "0.050000")
        self.assertEqual(run["error"], "the job's cost ceiling max_cost_usd $0.0600 stopped the run: "
                         "$0.0500 charged; 3 of 3 target sets not finished")
        self.assertIn("run 1 failed: the job's cost ceiling", err)

    def test_ceiling_not_reached_exits_0(self):
        self.scenarios(small=315, big=100, third=50)
        job = self.job(job_text("max_cost_usd: 0.15", concurrency=1))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-03", expect=0)
        charged = cost_of(315) + cost_of(100) + cost_of(50)
        run = self.db.rows("SELECT status, cost_usd::text AS cost, error FROM dataforseo.etl_run")[0]
        self.assertEqual((run["status"], run["error"]), ("succeeded", None))
        self.assertEqual(run["cost"], "%.6f" % (charged / 1e6))
        self.assertIn("run 1: 3 target sets complete, 0 failed; 3 pages, 465 rows, %s" % usd(charged), err)

    def test_set_ceiling_partial_exits_3(self):
        self.scenarios(small=315, big=2000, third=50)
        job = self.job(job_text().replace("{name: big, targets: [ops17-big.com]}",
                                          "{name: big, targets: [ops17-big.com], max_cost_usd: 0.07}"))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-04", expect=3)
        sets = self.sets()
        self.assertEqual({k: v["status"] for k, v in sets.items()},
                         {"small": "complete", "big": "failed", "third": "complete"})
        self.assertEqual(sets["big"]["error"],
                         "the set's cost ceiling max_cost_usd $0.0700 stopped it: $0.0500 charged for this set; "
                         "left unfetched: 1 page from offset 1000 (1000 referring domains of total_count 2000)")
        run = self.db.rows("SELECT status, error FROM dataforseo.etl_run")[0]
        self.assertEqual((run["status"], run["error"]), ("partial", "1 of 3 target sets failed"))


SLOW_JOB = """\
version: 1
job: ops17s
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: 2
  requests_per_minute: 10000
  max_attempts: 1
  timeout_seconds: 60
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 3000}
target_sets:
  - {name: one, targets: [ops17-one.com]}
  - {name: two, targets: [ops17-two.com]}
"""


class AttemptsTest(EtlTestCase):
    """Every attempt of a run kept; signals and kills against the real binary."""

    def attempts(self, run_id=1):
        return self.db.rows(
            "SELECT attempt, status, error, pages, failed_pages, rows, cost_usd::text AS cost,"
            " extract(epoch FROM finished_at - started_at)::float8 AS secs"
            " FROM dataforseo.etl_run_attempt WHERE run_id = %d ORDER BY attempt" % run_id)

    def ledger(self, run_id=1):
        return self.db.rows(
            "SELECT count(*) FILTER (WHERE status = 'loaded') AS pages,"
            " coalesce(sum(rows), 0) AS rows, coalesce(sum(cost_usd), 0)::text AS cost"
            " FROM dataforseo.etl_page WHERE run_id = %d" % run_id)[0]

    def start(self, job, *args):
        """The binary in the background, its stderr to a file (read after it exits)."""
        self.errfile = open(os.path.join(self.tmp.name, "stderr"), "w+")
        env = dict(os.environ, LC_ALL="C", **self.env())
        return subprocess.Popen([BIN, "run", job] + list(args), env=env, stdout=subprocess.DEVNULL,
                                stderr=self.errfile)

    def stderr_of(self, proc):
        self.errfile.seek(0)
        err = self.errfile.read()
        self.errfile.close()
        check_sanitizers(err)
        return err

    def wait_loaded(self, n, timeout=60):
        """Until the ledger holds n loaded pages (the run is mid-way)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.db.value("SELECT count(*) FROM dataforseo.etl_page WHERE status = 'loaded'") \
                if self.db.value("SELECT to_regclass('dataforseo.etl_page') IS NOT NULL") == "t" else "0"
            if int(got) >= n:
                return
            time.sleep(0.1)
        self.fail("no %d loaded pages within %d s" % (n, timeout))

    def test_a_recovered_failure_keeps_its_attempt(self):
        job = self.job(SLOW_JOB)
        self.fake.inject({"kind": "http500", "offset": None, "times": -1})
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-04-01", expect=1)
        time.sleep(2)  # hours, in the issue: not working time
        self.fake.reset()
        self.fake.set_scenario("ops17-one.com", total_count=250)
        self.fake.set_scenario("ops17-two.com", total_count=40)
        self.etl("run", job, "--snapshot-date", "2026-04-01")
        a = self.attempts()
        self.assertEqual([(x["attempt"], x["status"], x["error"], x["pages"], x["failed_pages"], x["rows"], x["cost"])
                          for x in a],
                         [(1, "failed", "2 of 2 target sets failed", 0, 2, 0, "0.000000"),
                          (2, "succeeded", None, 4, 0, 290, "%.6f" % ((3 * 20000 + 290 * 30 + 20000) / 1e6))])
        run = self.db.rows("SELECT status, error, attempts, attempt_statuses, last_failure, duration_seconds::float8 AS d,"
                           " extract(epoch FROM finished_at - started_at)::float8 AS wall, pages, failed_pages"
                           " FROM dataforseo.etl_run_summary")[0]
        self.assertEqual((run["status"], run["error"], run["attempts"], run["attempt_statuses"], run["last_failure"]),
                         ("succeeded", None, 2, "failed, succeeded", "2 of 2 target sets failed"))
        self.assertAlmostEqual(run["d"], a[0]["secs"] + a[1]["secs"], places=3)
        self.assertLess(run["d"], run["wall"] - 1.5)
        code, out, err = self.etl("runs", job)
        self.assertRegex(out, r"\n +1 +ops17s +2026-04-01 +succeeded +2 \(failed, succeeded\) ")
        code, out, err = self.etl("runs", job, "1")
        self.assertIn("attempts  2: failed, succeeded\n", out)
        self.assertRegex(out, r"\n +1 +failed +\S+ \S+ +\S+ +0 +2 +0 +\$0\.0000 +2 of 2 target sets failed\n")

    def slow_scenarios(self, latency_ms=700):
        self.fake.set_scenario("ops17-one.com", total_count=1500, latency_ms=latency_ms)
        self.fake.set_scenario("ops17-two.com", total_count=1500, latency_ms=latency_ms)

    def interrupt(self, sig, code, name):
        job = self.job(SLOW_JOB)
        self.etl("migrate", job)
        self.slow_scenarios()
        proc = self.start(job, "--snapshot-date", "2026-04-02")
        self.wait_loaded(2)
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=15)
        took = time.monotonic() - sent
        err = self.stderr_of(proc)
        self.assertEqual(proc.returncode, code, err)
        self.assertLess(took, 10)
        self.assertIn("warning: %s: stopping: no more requests;" % name, err)
        self.assertIn("run 1 interrupted: 0 of 2 target sets complete; pages loaded are kept", err)
        run = self.db.rows("SELECT status, error, pages, rows, cost_usd::text AS cost FROM dataforseo.etl_run")[0]
        led = self.ledger()
        self.assertGreaterEqual(led["pages"], 2)
        self.assertEqual((run["status"], run["error"], run["pages"], run["rows"], run["cost"]),
                         ("interrupted", "interrupted by %s" % name, led["pages"], led["rows"], led["cost"]))
        a = self.attempts()
        self.assertEqual([(x["status"], x["error"], x["pages"], x["rows"], x["cost"]) for x in a],
                         [("interrupted", "interrupted by %s" % name, led["pages"], led["rows"], led["cost"])])
        # continued: the loaded pages are not asked again
        loaded = {(r["t"], r["o"]) for r in self.db.rows(
            "SELECT t.targets[1] AS t, page_offset AS o FROM dataforseo.etl_page p"
            " JOIN dataforseo.target_set t USING (target_set_id) WHERE p.status = 'loaded'")}
        self.fake.reset()
        self.slow_scenarios(latency_ms=0)
        self.etl("run", job, "--snapshot-date", "2026-04-02")
        asked = {(r["first_target"], r["offset"]) for r in self.fake.requests}
        self.assertEqual(asked & loaded, set())
        self.assertEqual(len(asked | loaded), 30)
        self.assertEqual([x["status"] for x in self.attempts()], ["interrupted", "succeeded"])
        self.assertEqual(self.db.value("SELECT attempt_statuses FROM dataforseo.etl_run_summary"),
                         "interrupted, succeeded")

    def test_sigterm_interrupts_and_the_run_continues(self):
        self.interrupt(signal.SIGTERM, 143, "SIGTERM")

    def test_sigint_interrupts(self):
        self.interrupt(signal.SIGINT, 130, "SIGINT")

    def test_a_killed_run_is_abandoned_by_the_next(self):
        job = self.job(SLOW_JOB)
        self.etl("migrate", job)
        self.fake.set_scenario("ops17-one.com", total_count=150)  # 2 pages, fast: published
        self.fake.set_scenario("ops17-two.com", total_count=1500, latency_ms=700)
        proc = self.start(job, "--snapshot-date", "2026-04-03")
        self.wait_loaded(4)
        self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run_set s JOIN dataforseo.target_set t"
                                       " USING (target_set_id) WHERE t.name = 'one'"), "complete")
        proc.kill()
        proc.wait(timeout=10)
        self.stderr_of(proc)
        self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run"), "running")
        led = self.ledger()
        # until then the summary shows what its ledger holds, not the zeros of etl_run
        live = self.db.rows("SELECT status, pages, rows, cost_usd::text AS cost FROM dataforseo.etl_run_summary")[0]
        self.assertEqual(live, {"status": "running", "pages": led["pages"], "rows": led["rows"], "cost": led["cost"]})
        self.assertGreaterEqual(led["pages"], 4)
        # the next run of the job, another date: the dead one is marked
        self.fake.reset()
        self.fake.set_scenario("ops17-one.com", total_count=10)
        self.fake.set_scenario("ops17-two.com", total_count=10)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-04-04")
        self.assertIn("warning: 1 earlier run of job ops17s marked abandoned: its process ended without "
                      "recording an outcome (see `runs`)", err)
        run = self.db.rows("SELECT status, error, pages, rows, cost_usd::text AS cost, sets_complete, sets_failed"
                           " FROM dataforseo.etl_run_summary WHERE run_id = 1")[0]
        self.assertEqual((run["status"], run["pages"], run["rows"], run["cost"], run["sets_complete"],
                          run["sets_failed"]),
                         ("abandoned", led["pages"], led["rows"], led["cost"], 1, 1))
        self.assertRegex(run["error"], r"^abandoned: the process \(host \S+, pid %d\) ended without recording an "
                                       r"outcome \(killed, or its machine stopped\); found by the next run of job "
                                       r"ops17s$" % proc.pid)
        a = self.attempts()
        self.assertEqual([(x["status"], x["pages"], x["rows"], x["cost"]) for x in a],
                         [("abandoned", led["pages"], led["rows"], led["cost"])])
        # its date again: the same run continues, as a second attempt
        self.fake.set_scenario("ops17-two.com", total_count=1500)
        self.etl("run", job, "--snapshot-date", "2026-04-03")
        self.assertEqual(self.db.value("SELECT status || ' ' || attempt_statuses FROM dataforseo.etl_run_summary"
                                       " WHERE run_id = 1"), "succeeded abandoned, succeeded")


class CredentialsTest(EtlTestCase):
    """validate and plan need no credential and connect to nothing; runs and
    report need only the database's."""

    def bare(self, *args, drop=("AISA_API_KEY",), expect=0):
        env = {k: v for k, v in os.environ.items() if k not in ("AISA_API_KEY", "DATABASE_URL")}
        env.update({k: v for k, v in self.env().items() if k not in drop})
        env["LC_ALL"] = "C"
        p = subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True, timeout=60)
        check_sanitizers(p.stderr)
        self.assertEqual(p.returncode, expect, p.stderr)
        return p.stdout, p.stderr

    def test_commands_ask_only_for_what_they_use(self):
        self.fake.set_scenario("ops17-small.com", total_count=10)
        self.fake.set_scenario("ops17-big.com", total_count=10)
        self.fake.set_scenario("ops17-third.com", total_count=10)
        job = self.job(job_text())
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-05")
        n = len(self.fake.requests)
        # neither the API's key nor the database's URL
        out, err = self.bare("validate", job, drop=("AISA_API_KEY", "DATABASE_URL"))
        self.assertEqual(out, "%s: ok: job ops17, 3 target sets, aisa provider\n" % job)
        self.assertIn("AISA_API_KEY is not set here: run and check need it, validate and plan do not", err)
        out, err = self.bare("plan", job, drop=("AISA_API_KEY", "DATABASE_URL"))
        self.assertIn("total: 3 target sets", out)
        # a token file that is not there is not read either
        tf = self.job(job_text().replace("token: ${AISA_API_KEY}", "token_file: /nonexistent/token"), "tf.yaml")
        self.bare("validate", tf, drop=("AISA_API_KEY", "DATABASE_URL"))
        self.bare("plan", tf, drop=("AISA_API_KEY", "DATABASE_URL"))
        # the database only
        out, err = self.bare("runs", job)
        self.assertRegex(out, r"\n +1 +ops17 +2026-03-05 +succeeded ")
        out, err = self.bare("report", job)
        self.assertIn("2026-03-05", out)
        self.assertEqual(len(self.fake.requests), n)
        # run needs the key, and the hint puts no default of a secret in the file
        out, err = self.bare("run", job, expect=2)
        self.assertIn("api.token: environment variable AISA_API_KEY is not set\n"
                      "hint: export AISA_API_KEY in the environment that runs intersect-etl", err)
        self.assertNotIn(":-", err)


class MessagesTest(EtlTestCase):
    """Each message says what was wrong and what to do (issue 17, item 5)."""

    def test_messages(self):
        job = self.job(job_text())
        one = self.job(job_text().replace("  - {name: big, targets: [ops17-big.com]}\n", "")
                       .replace("  - {name: third, targets: [ops17-third.com]}\n", ""), "one.yaml")
        url = self.job(job_text().replace("${AISA_BASE_URL}", "http://127.0.0.1:/apis/v1"), "url.yaml")
        self.etl("migrate", job)
        names = "hint: the job's target sets: small, big, third"
        cases = [
            (("run", job, "--snapshot-date", "2026-02-30"), 2,
             "--snapshot-date 2026-02-30: no such day: February 2026 has 28 days\nhint: the last is 2026-02-28"),
            (("run", job, "--snapshot-date", "2024-02-30"), 2, "February 2024 has 29 days"),
            (("run", job, "--snapshot-date", "2026-13-01"), 2, "--snapshot-date 2026-13-01: there is no month 13"),
            (("run", job, "--snapshot-date", "2026-2-1"), 2,
             "--snapshot-date 2026-2-1: not a date of the form YYYY-MM-DD\nhint: e.g. 2026-02-28"),
            (("run", job, "--only", "nosuch"), 2, "--only nosuch: no target set of that name\n" + names),
            (("plan", job, "--only", "nosuch"), 2, "--only nosuch: no target set of that name\n" + names),
            (("report", job, "--set", "nosuch"), 2, "--set nosuch: no target set of that name\n" + names),
            (("validate", "/nonexistent.yaml"), 2,
             "/nonexistent.yaml: cannot open the job file: No such file or directory\n"
             "hint: give the path of a job file (YAML)"),
            (("validate", self.tmp.name), 2, ": a directory, not a job file"),
            (("runs", "5"), 1,
             "run 5: no such run in schema dataforseo (the default: neither a JOB file nor --schema was given)\n"
             "hint: name the JOB file (`runs JOB 5`) or --schema SCHEMA"),
            (("runs", "5", "--schema", "dataforseo"), 1, "run 5: no such run in schema dataforseo\n"),
            (("validate", url), 2, "api.base_url: has an empty or non-numeric port after ':'\n"
                                   "hint: give the port (https://HOST:8443/...) or leave out the ':'"),
            (("run", url), 2, "api.base_url: has an empty or non-numeric port after ':'"),
        ]
        for args, code, msg in cases:
            with self.subTest(args=args):
                got, out, err = self.etl(*args, expect=code)
                self.assertIn(msg, err)
        self.assertEqual(self.fake.requests, [])
        # migrate --help states the precedence the code follows: options, JOB, environment
        code, out, err = self.etl("migrate", "--help")
        self.assertIn("The database and schema come from the options, else from JOB, else from\n"
                      "DATABASE_URL", out)
        # singular where there is one
        code, out, err = self.etl("plan", one)
        self.assertIn("\ntotal: 1 target set, at most", out)

    def test_json_lines_carry_numbers_as_fields(self):
        self.fake.set_scenario("ops17-small.com", total_count=315)
        self.fake.set_scenario("ops17-big.com", total_count=1200)
        self.fake.set_scenario("ops17-third.com", total_count=10)
        job = self.job(job_text().replace("{name: big, targets: [ops17-big.com]}",
                                          "{name: big, targets: [ops17-big.com, ops17-big2.com]}"))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-06",
                                  "--log-format", "json")
        lines = [json.loads(l) for l in err.splitlines()]
        done = [l for l in lines if l["message"].startswith("run 1: 3 target sets complete")]
        self.assertEqual(len(done), 1)
        d = done[0]
        charged = cost_of(315) + cost_of(1000) + cost_of(200) + cost_of(10)
        self.assertEqual({k: d[k] for k in ("sets_complete", "sets_failed", "pages", "rows", "cost_usd")},
                         {"sets_complete": 3, "sets_failed": 0, "pages": 4, "rows": 315 + 2 * 1200 + 10,
                          "cost_usd": float(usd(charged)[1:])})
        self.assertGreater(d["duration_seconds"], 0)
        # the progress summary's last line too
        prog = [l for l in lines if l["message"].startswith("done: sets 3/3")][0]
        self.assertEqual({k: prog[k] for k in ("sets_complete", "pages", "rows", "cost_usd")},
                         {"sets_complete": 3, "pages": 4, "rows": 315 + 2 * 1200 + 10,
                          "cost_usd": float(usd(charged)[1:])})
        big = [l for l in lines if l.get("target_set") == "big" and l["message"].startswith("complete:")][0]
        # max_rows counts referring domains; a set of two targets stores two rows for each
        self.assertEqual({k: big[k] for k in ("total_count", "referring_domains", "rows", "pages", "cost_usd")},
                         {"total_count": 1200, "referring_domains": 1200, "rows": 2400, "pages": 2,
                          "cost_usd": float(usd(cost_of(1000) + cost_of(200))[1:])})
        self.assertEqual(big["message"], "complete: total_count 1200; this process loaded 1200 referring domains "
                                         "(2400 table rows) in 2 pages, %s" % usd(cost_of(1000) + cost_of(200)))


class ToolsTest(EtlTestCase):
    """runs --status/--since; init writes a job file validate accepts."""

    def test_runs_filters(self):
        job = self.job(job_text())
        for name in ("small", "big", "third"):
            self.fake.set_scenario("ops17-%s.com" % name, total_count=10)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-10")
        self.fake.inject({"kind": "http500", "offset": None, "times": -1})
        self.etl("run", job, "--snapshot-date", "2026-03-11", expect=1)
        self.fake.reset()
        for name in ("small", "big", "third"):
            self.fake.set_scenario("ops17-%s.com" % name, total_count=10)
        self.etl("run", job, "--snapshot-date", "2026-03-12")

        def listed(*args):
            doc = json.loads(self.etl("runs", job, "--format", "json", *args)[1])
            return [(r["run_id"], r["snapshot_date"], r["status"]) for r in doc["runs"]]

        self.assertEqual(listed(), [(3, "2026-03-12", "succeeded"), (2, "2026-03-11", "failed"),
                                    (1, "2026-03-10", "succeeded")])
        self.assertEqual(listed("--status", "failed"), [(2, "2026-03-11", "failed")])
        self.assertEqual(listed("--since", "2026-03-11"), [(3, "2026-03-12", "succeeded"), (2, "2026-03-11", "failed")])
        self.assertEqual(listed("--status", "succeeded", "--since", "2026-03-11"), [(3, "2026-03-12", "succeeded")])
        self.assertEqual(listed("--status", "abandoned"), [])
        code, out, err = self.etl("runs", job, "--status", "interrupted")
        self.assertEqual(out, "no runs\n")
        for args, msg in [(("--status", "ok"), "--status ok: not a run status\nhint: one of running, succeeded, "
                                               "partial, failed, interrupted, abandoned"),
                          (("--since", "2026-02-30"), "--since 2026-02-30: no such day: February 2026 has 28 days"),
                          (("--since", "yesterday"), "--since yesterday: not a date of the form YYYY-MM-DD")]:
            code, out, err = self.etl("runs", job, *args, expect=2)
            self.assertIn(msg, err)

    def test_init_writes_a_job_file_validate_accepts(self):
        path = os.path.join(self.tmp.name, "Competitors.yaml")
        code, out, err = self.etl("init", path)
        self.assertIn("wrote %s; edit its target sets, then `intersect-etl validate %s`" % (path, path), err)
        with open(path) as f:
            text = f.read()
        self.assertIn("\njob: competitors   # names this job's runs and its lock", text)
        self.assertIn("token: ${AISA_API_KEY}\n", text)
        self.assertNotIn("sk-aisa-test", text)
        self.assertNotIn(":-default", text)
        # validate and plan take it as it is, with no credential in the environment
        env = {k: v for k, v in os.environ.items() if k not in ("AISA_API_KEY", "DATABASE_URL")}
        env["LC_ALL"] = "C"
        p = subprocess.run([BIN, "validate", path], env=env, capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stdout), (0, "%s: ok: job competitors, 1 target set, aisa provider\n" % path),
                         p.stderr)
        p = subprocess.run([BIN, "plan", path], env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('first request: {"targets":{"1":"example.com","2":"example.org"}', p.stdout)
        # and with every credential set, as run would read it
        code, out, err = self.etl("validate", path)
        # every commented-out key is a real one: uncommented, the file still validates
        uncommented = re.sub(r"(?m)^(\s*)# (retention:|  keep_|keep_|max_cost_usd:|exclude_targets:|filters:)",
                             r"\1\2", text)
        uncommented = uncommented.replace("#   keep_", "  keep_")
        p2 = os.path.join(self.tmp.name, "full.yaml")
        with open(p2, "w") as f:
            f.write(uncommented)
        code, out, err = self.etl("validate", p2)
        self.assertIn("max_cost_usd: 5.00", uncommented)
        # never replaced; a bad --job refused
        code, out, err = self.etl("init", path, expect=2)
        self.assertIn("%s: exists; init never replaces a file" % path, err)
        with open(path) as f:
            self.assertEqual(f.read(), text)
        code, out, err = self.etl("init", os.path.join(self.tmp.name, "x.yaml"), "--job", "Bad Name", expect=2)
        self.assertIn("--job: not a job name", err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "x.yaml")))
        code, out, err = self.etl("init", os.path.join(self.tmp.name, "y.yaml"), "--job", "nightly")
        with open(os.path.join(self.tmp.name, "y.yaml")) as f:
            self.assertIn("\njob: nightly ", f.read())


DFS_JOB = """\
version: 1
job: ops17d
api: {provider: dataforseo, base_url: "${DFS_BASE_URL}", login: "${DFS_LOGIN}", password: "${DFS_PASSWORD}"}
database: {url: "${DATABASE_URL}"}
target_sets:
  - {name: a, targets: [ops17-dfs.com]}
"""


class CheckTest(EtlTestCase):
    """check JOB: job file, database, API credentials; never a charged request."""

    def test_check_each_part(self):
        job = self.job(job_text())
        self.etl("migrate", job)
        port = self.db.pg["PGPORT"]
        code, out, err = self.etl("check", job)
        self.assertEqual(out, "job file: ok: job ops17, 3 target sets, aisa provider\n"
                              "database: ok: %s on 127.0.0.1:%s, schema dataforseo at this binary's version, "
                              "the rights a run uses\n"
                              "api: ok: the credentials are accepted (aisa provider, %s), balance $42.50; "
                              "nothing charged\n" % (self.db.name, port, self.fake.base_url("aisa")))
        reqs = self.fake.requests
        self.assertEqual([(r["path"], r["status"], r["charged"]) for r in reqs],
                         [("/apis/v1/dataforseo/appendix/user_data", 200, 0.0)])
        self.assertEqual(reqs[0]["headers"]["Authorization"], "Bearer sk-aisa-test")
        self.assertNotIn("sk-aisa-test", out + err)
        # the other provider: HTTP Basic
        dfs = self.job(DFS_JOB, "dfs.yaml")
        code, out, err = self.etl("check", dfs)
        self.assertIn("api: ok: the credentials are accepted (dataforseo provider", out)
        self.assertEqual(self.fake.requests[-1]["path"], "/v3/appendix/user_data")
        # credentials refused: 7, naming the part; the database was still checked
        code, out, err = self.etl("check", job, env=self.env(AISA_API_KEY="sk-aisa-wrong"), expect=7)
        self.assertIn("database: ok:", out)
        self.assertIn("error: api: the credentials were refused (HTTP 401)\nhint: check api.token (AISA_API_KEY)",
                      err)
        self.assertNotIn("sk-aisa-wrong", out + err)
        code, out, err = self.etl("check", dfs, env=self.env(DFS_PASSWORD="nope"), expect=7)
        self.assertIn("error: api: the credentials were refused (HTTP 401", err)
        # a gateway without the free endpoint: not verified, and nothing charged sent instead
        self.fake.user_data = False
        try:
            n = len(self.fake.requests)
            code, out, err = self.etl("check", job, expect=7)
            self.assertIn("answered HTTP 404: this gateway has no free account endpoint, so the credentials "
                          "are not verified (nothing charged was sent)", err)
            self.assertEqual([r["path"] for r in self.fake.requests[n:]], ["/apis/v1/dataforseo/appendix/user_data"])
        finally:
            self.fake.user_data = True
        self.assertTrue(all(r["charged"] == 0 and "appendix" in r["path"] for r in self.fake.requests))

    def test_check_database_parts(self):
        job = self.job(job_text())
        # not migrated: 5, and the API is still checked
        code, out, err = self.etl("check", job, expect=5)
        self.assertIn("api: ok:", out)
        self.assertIn("error: database: ", err)
        self.assertIn("migrate", err)
        # unreachable: 6
        code, out, err = self.etl("check", job, env=self.env(DATABASE_URL="postgresql://x@127.0.0.1:1/x"),
                                  expect=6)
        self.assertIn("error: database: cannot connect to the database", err)
        # a role that may read but not write: 6, naming what it lacks
        self.etl("migrate", job)
        role = "ops17_ro_%s" % self.db.name[-8:]
        self.db.psql('CREATE ROLE "%s" LOGIN; GRANT USAGE ON SCHEMA dataforseo TO "%s";'
                     ' GRANT SELECT ON ALL TABLES IN SCHEMA dataforseo TO "%s"' % (role, role, role))
        try:
            url = self.db.url.replace("postgresql://%s@" % self.db.pg["PGUSER"], "postgresql://%s@" % role)
            code, out, err = self.etl("check", job, env=self.env(DATABASE_URL=url), expect=6)
            self.assertIn("error: database: the role %s lacks SELECT, INSERT, UPDATE or DELETE on "
                          "domain_intersection_change, domain_intersection_order" % role, err)
            self.assertIn("api: ok:", out)
        finally:
            self.db.psql('DROP OWNED BY "%s" CASCADE; DROP ROLE "%s"' % (role, role))
        # a bad job file: 2, nothing else tried
        bad = self.job("version: 1\n", "bad.yaml")
        code, out, err = self.etl("check", bad, expect=2)
        self.assertIn("error: job file: %s:" % bad, err)
        self.assertEqual(out, "")


def parse_prom(text):
    """{(name, frozenset(labels)): value} of a Prometheus text file; every
    sample's metric has its HELP and TYPE first, every line parses."""
    got, typed = {}, set()
    for line in text.splitlines():
        m = re.match(r"^# (HELP|TYPE) ([a-z_]+) (.+)$", line)
        if m:
            if m.group(1) == "TYPE":
                assert m.group(3) == "gauge", line
                typed.add(m.group(2))
            continue
        m = re.match(r'^([a-z_]+)\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)+)\} (-?[0-9.]+)$', line)
        assert m, "not a sample: %r" % line
        assert m.group(1) in typed, "no TYPE before %s" % m.group(1)
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        got[(m.group(1), labels)] = float(m.group(3))
    return got


class MetricsTest(EtlTestCase):
    """--metrics-file and metrics_file: the run's outcome for a scraper, atomically, failed runs too."""

    def test_metrics_of_a_partial_run_with_a_retry(self):
        self.fake.set_scenario("ops17-small.com", total_count=315,
                               faults=[{"kind": "http500", "offset": 0, "times": 1}])
        self.fake.set_scenario("ops17-big.com", total_count=1500)
        self.fake.set_scenario("ops17-third.com", total_count=50,
                               faults=[{"kind": "http500", "offset": 0, "times": -1}])
        job = self.job(job_text().replace("max_attempts: 1", "max_attempts: 2"))
        path = os.path.join(self.tmp.name, "m", "ops17.prom")
        os.mkdir(os.path.dirname(path))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-20",
                                  "--metrics-file", path, expect=3)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["ops17.prom"])  # no tmp file left
        with open(path) as f:
            got = parse_prom(f.read())
        J = ("etl_job", "ops17")

        def v(name, **labels):
            return got[(name, frozenset([J] + list(labels.items())))]
        charged = cost_of(315) + cost_of(1000) + cost_of(500)
        self.assertEqual(v("intersect_etl_run_success"), 0)
        self.assertEqual([v("intersect_etl_run_status", status=s) for s in
                          ("succeeded", "partial", "failed", "interrupted")], [0, 1, 0, 0])
        self.assertEqual(v("intersect_etl_run_exit_status"), 3)
        self.assertEqual(v("intersect_etl_run_id"), 1)
        self.assertEqual((v("intersect_etl_run_pages"), v("intersect_etl_run_rows")), (3, 1815))
        self.assertAlmostEqual(v("intersect_etl_run_cost_usd"), charged / 1e6, places=6)
        # small: 2 (one retry), big: 2, third: 2 (one retry, then failed for good)
        self.assertEqual((v("intersect_etl_run_requests"), v("intersect_etl_run_retries")), (6, 2))
        self.assertAlmostEqual(v("intersect_etl_run_duration_seconds"),
                               v("intersect_etl_run_end_time_seconds") - v("intersect_etl_run_start_time_seconds"),
                               places=2)
        self.assertLess(abs(v("intersect_etl_run_end_time_seconds") - time.time()), 60)
        want = {"small": (1, 1, 315, 2, 1, cost_of(315)), "big": (1, 2, 1500, 2, 0, cost_of(1000) + cost_of(500)),
                "third": (0, 0, 0, 2, 1, 0)}
        for name, w in want.items():
            g = tuple(v(m, target_set=name) for m in (
                "intersect_etl_set_complete", "intersect_etl_set_pages", "intersect_etl_set_rows",
                "intersect_etl_set_requests", "intersect_etl_set_retries"))
            self.assertEqual(g, w[:5], name)
            self.assertAlmostEqual(v("intersect_etl_set_cost_usd", target_set=name), w[5] / 1e6, places=6)
        self.assertEqual(len(got), 12 + 3 + 6 * 3)
        # every series the example alert rules use is one the file has
        with open(os.path.join(SOURCE, "contrib", "prometheus", "intersect-etl.rules.yml")) as f:
            rules = f.read()
        used = set(re.findall(r"\bintersect_etl_[a-z_]+", rules))
        self.assertGreaterEqual(len(used), 6)
        self.assertEqual(used - {name for name, _ in got}, set())
        self.assertIn("$labels.etl_job", rules)  # 11 run series, one of them 4 statuses; 6 per set

    def test_job_key_and_a_failed_run(self):
        for name in ("small", "big", "third"):
            self.fake.set_scenario("ops17-%s.com" % name, total_count=10)
        path = os.path.join(self.tmp.name, "job.prom")
        job = self.job(job_text("metrics_file: %s" % path))
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-21")
        with open(path) as f:
            got = parse_prom(f.read())
        self.assertEqual(got[("intersect_etl_run_success", frozenset([("etl_job", "ops17")]))], 1)
        self.assertEqual(got[("intersect_etl_run_status", frozenset([("etl_job", "ops17"), ("status", "succeeded")]))], 1)
        # the database is gone: the file still says so (run id 0, nothing loaded)
        code, out, err = self.etl("run", job, env=self.env(DATABASE_URL="postgresql://x@127.0.0.1:1/x"), expect=1)
        with open(path) as f:
            got = parse_prom(f.read())
        self.assertEqual(got[("intersect_etl_run_status", frozenset([("etl_job", "ops17"), ("status", "failed")]))], 1)
        self.assertEqual(got[("intersect_etl_run_exit_status", frozenset([("etl_job", "ops17")]))], 1)
        self.assertEqual(got[("intersect_etl_run_id", frozenset([("etl_job", "ops17")]))], 0)
        self.assertNotIn(("intersect_etl_set_complete", frozenset([("etl_job", "ops17"), ("target_set", "small")])), got)
        # --metrics-file wins over the key; an unwritable path is a warning, not the run's failure
        other = os.path.join(self.tmp.name, "other.prom")
        self.etl("run", job, "--snapshot-date", "2026-03-22", "--metrics-file", other)
        self.assertTrue(os.path.exists(other))
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-03-23", "--metrics-file",
                                  "/nonexistent/dir/x.prom")
        self.assertIn("warning: metrics file /nonexistent/dir/x.prom.tmp.", err)
        self.assertIn(": cannot create: No such file or directory", err)


class DemoTest(EtlTestCase):
    """scripts/demo keeps what the user kept: --reset asks (exit 2 off a
    terminal), --stop stops both and keeps the data, --fake starts the fake
    again, and the env files are export lines. (A whole demo run builds and
    installs, so it is not run here; its paths were checked by hand.)"""

    def demo(self, *args, expect=0):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AISA_API_KEY")}
        env.update(DEMO_DIR=self.dir, LC_ALL="C")
        p = subprocess.run([os.path.join(SOURCE, "scripts", "demo")] + list(args), env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, expect, p.stderr)
        return p.stderr

    def alive(self, pid, wait=0):
        """Whether pid runs (a zombie no parent reaped does not), waiting up to `wait` s for it to end."""
        end = time.monotonic() + wait
        while True:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    running = f.read().rsplit(")", 1)[1].split()[0] != "Z"
            except FileNotFoundError:
                running = False
            if not running or time.monotonic() >= end:
                return running
            time.sleep(0.1)

    def test_kept_things_are_kept(self):
        self.dir = os.path.join(self.tmp.name, "demo")
        pg = os.path.join(self.dir, "pg")
        pgtmp = os.path.join(SOURCE, "scripts", "pg-tmp")
        try:
            err = self.demo("--fake")
            self.assertIn("demo: fake API on 127.0.0.1:", err)
            with open(os.path.join(self.dir, "fake.pid")) as f:
                pid = int(f.read())
            self.assertTrue(self.alive(pid))
            err = self.demo("--fake")
            self.assertIn("demo: the fake API is running already (pid %d)" % pid, err)
            # a kept cluster, with something in it
            subprocess.run([pgtmp, "start", pg], check=True, capture_output=True)
            env = dict(os.environ)
            with open(os.path.join(pg, "env")) as f:
                env.update(l.strip().split("=", 1) for l in f if "=" in l)
            psql = [os.path.join(env["PG_BINDIR"], "psql"), "-X", "-qAt", "-h", "127.0.0.1", "-p", env["PGPORT"],
                    "-U", "postgres", "-d", "intersect"]
            subprocess.run(psql + ["-c", "CREATE TABLE kept (x int); INSERT INTO kept VALUES (17)"], check=True)
            self.demo("--fake")  # .demo/env now names the database too
            with open(os.path.join(self.dir, "env")) as f:
                lines = [l for l in f.read().splitlines() if not l.startswith("#")]
            self.assertTrue(lines and all(l.startswith("export ") for l in lines), lines)
            # usable without set -a
            out = subprocess.run(["bash", "-c", ". %s/env; %s -X -qAt -c 'SELECT x FROM kept'; echo $AISA_BASE_URL"
                                  % (self.dir, psql[0])], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
            self.assertEqual(out.stdout.splitlines()[0], "17", out.stderr)
            self.assertRegex(out.stdout.splitlines()[1], r"^http://127\.0\.0\.1:\d+/apis/v1$")
            # --reset off a terminal asks nothing and deletes nothing
            err = self.demo("--reset", expect=2)
            self.assertIn("not a terminal: add --yes", err)
            self.assertEqual(subprocess.run(psql + ["-c", "SELECT x FROM kept"], capture_output=True,
                                            text=True).stdout, "17\n")
            # --stop: both stopped, the data stays
            err = self.demo("--stop")
            self.assertIn("demo: stopped the fake API", err)
            self.assertIn("its data stays", err)
            self.assertFalse(self.alive(pid, wait=5))
            self.assertTrue(os.path.isdir(os.path.join(pg, "data")))
            self.assertNotEqual(subprocess.run(psql + ["-c", "SELECT 1"], capture_output=True).returncode, 0)
            err = self.demo("--reset", "--yes")
            self.assertIn("demo: deleted", err)
            self.assertFalse(os.path.exists(pg))
        finally:
            if os.path.exists(os.path.join(self.dir, "fake.pid")):
                with open(os.path.join(self.dir, "fake.pid")) as f:
                    p = int(f.read())
                if self.alive(p):
                    os.kill(p, signal.SIGTERM)
            subprocess.run([pgtmp, "stop", pg], capture_output=True)


if __name__ == "__main__":
    unittest.main()

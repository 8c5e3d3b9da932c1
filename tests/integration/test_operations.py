"""What operators alert on, told truly: the cost ceiling (a set whose pages
are all loaded publishes; the message says what is left; one cost figure in
the log, the done line, `runs` and the tables; exit statuses as README's
table), every attempt of a run kept, signals and killed processes against
the real binary and PostgreSQL."""

import os
import re
import signal
import subprocess
import time
import unittest

from harness import BIN, EtlTestCase, check_sanitizers

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
        self.assertIn("complete: total_count 315, 315 rows in 1 page this process, $0.0295", err)
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


if __name__ == "__main__":
    unittest.main()

"""A night's first round of requests goes out whole (issue 18, latency).

A set's first page tells total_count; before it answers, nothing else of a
set with no history can go. A set with a previous night sends, beside its
first page, the pages that night had in full (src/schedule.c, expect_pages()), so
a latency-bound night does not wait one whole round trip for one page. The
fake API logs when each request arrived and sleeps before every answer:
these tests read the schedule from that log, and the rows from the tables.
"""

import unittest

from harness import EtlTestCase

S = "dataforseo"
LATENCY_MS = 400

JOB = """\
version: 1
job: sched
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 8, max_attempts: 1,
      requests_per_minute: 10000}
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: one, targets: [sched-a.com, sched-b.com]}
"""


class ScheduleTest(EtlTestCase):

    def setUp(self):
        super().setUp()
        self.job_path = self.job(JOB)
        self.etl("migrate", self.job_path)

    def night(self, date, total):
        self.fake.set_scenario("sched-a.com", total_count=total, latency_ms=LATENCY_MS)
        seen = len(self.fake.requests)
        self.etl("run", self.job_path, "--snapshot-date", date)
        reqs = self.last = self.fake.requests[seen:]
        t0 = min(r["time"] for r in reqs)
        # offset -> seconds after the first request arrived
        return {r["offset"]: r["time"] - t0 for r in reqs}

    def pages(self, date):
        return self.db.rows("SELECT page_offset, items FROM %s.etl_page e JOIN %s.etl_run r USING (run_id)"
                            " WHERE r.snapshot_date = '%s' ORDER BY 1" % (S, S, date))

    def test_a_night_sends_its_first_round_whole(self):
        # no history: the first page goes alone, the rest after its answer
        first = self.night("2026-10-01", total=500)
        self.assertEqual(sorted(first), [0, 100, 200, 300, 400])
        self.assertTrue(all(first[o] >= LATENCY_MS / 1000.0 * 0.9 for o in (100, 200, 300, 400)), first)
        # the next night: every page of the previous total at once
        second = self.night("2026-10-02", total=500)
        self.assertEqual(sorted(second), [0, 100, 200, 300, 400])
        self.assertTrue(all(t < LATENCY_MS / 1000.0 / 2 for t in second.values()), second)
        self.assertRowsMatch("one", "sched-a.com", ["sched-a.com", "sched-b.com"], "2026-10-02",
                             requests=self.last)

    def test_a_set_that_grew_or_shrank_is_paged_by_its_own_total(self):
        self.night("2026-10-01", total=500)
        # grown: the pages past the old total follow the first page's answer
        grown = self.night("2026-10-02", total=720)
        self.assertEqual(sorted(grown), [0, 100, 200, 300, 400, 500, 600, 700])
        self.assertTrue(all(grown[o] >= LATENCY_MS / 1000.0 * 0.9 for o in (500, 600, 700)), grown)
        self.assertRowsMatch("one", "sched-a.com", ["sched-a.com", "sched-b.com"], "2026-10-02",
                             requests=self.last)
        # shrunk by less than a page: whole pages of the old total went early
        # (100-600; 600 is now short), none past the new end
        shrunk = self.night("2026-10-03", total=650)
        self.assertEqual(sorted(shrunk), [0, 100, 200, 300, 400, 500, 600])
        self.assertRowsMatch("one", "sched-a.com", ["sched-a.com", "sched-b.com"], "2026-10-03",
                             requests=self.last)
        # shrunk by more: the pages past the end were asked (and paid for,
        # in the ledger and the run's cost) and held nothing; the answer is whole
        small = self.night("2026-10-04", total=250)
        self.assertEqual(sorted(small), [0, 100, 200, 300, 400, 500])
        got = {int(p["page_offset"]): int(p["items"]) for p in self.pages("2026-10-04")}
        self.assertEqual(got, {0: 100, 100: 100, 200: 50, 300: 0, 400: 0, 500: 0})
        self.assertRowsMatch("one", "sched-a.com", ["sched-a.com", "sched-b.com"], "2026-10-04",
                             requests=self.last)
        self.assertEqual(self.db.value("SELECT rows FROM %s.etl_snapshot WHERE snapshot_date = '2026-10-04'" % S),
                         "500")
        cost = self.db.value("SELECT sum(e.cost_usd) FROM %s.etl_page e JOIN %s.etl_run r USING (run_id)"
                             " WHERE r.snapshot_date = '2026-10-04'" % (S, S))
        self.assertAlmostEqual(float(cost), sum(r["charged"] for r in self.last), places=6)

    def test_the_pace_makes_up_a_few_late_starts_and_no_more(self):
        """Starts keep requests_per_minute (here 300: a slot every 0.2 s).
        While the first page is out (1.2 s, six slots) no other can go; after
        its answer the clock makes up at most PACE_MAKEUP (4) of the slots it
        missed: 5 starts at once, the others a slot apart, never more at
        once. (src/fetch.c: the makeup keeps the places of answers that
        land together filled together.)"""
        job = self.job(JOB.replace("requests_per_minute: 10000", "requests_per_minute: 300"), "paced.yaml")
        self.fake.set_scenario("sched-a.com", total_count=1100, latency_ms=1200)
        self.etl("run", job, "--snapshot-date", "2026-10-01")
        times = sorted(r["time"] for r in self.fake.requests)
        self.assertEqual(len(times), 11)
        rest = times[1:]  # the ten after the first page's answer
        in_window = [sum(1 for u in rest if t <= u < t + 0.15) for t in rest]
        self.assertLessEqual(max(in_window), 5, [round(t - times[0], 3) for t in times])
        self.assertGreaterEqual(in_window[0], 3, [round(t - times[0], 3) for t in times])
        self.assertGreaterEqual(rest[-1] - rest[0], (len(rest) - 5) * 0.2 * 0.95)
        self.assertRowsMatch("one", "sched-a.com", ["sched-a.com", "sched-b.com"], "2026-10-01")


if __name__ == "__main__":
    unittest.main()

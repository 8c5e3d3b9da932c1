"""History features of the loader: the raw archive and replay, retention
over a year of nightly snapshots, and the cost ceilings."""

import base64
import datetime
import gzip
import json
import os
import unittest

from harness import EtlTestCase

JOB = """\
version: 1
job: hist
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: %(concurrency)d
database: {url: "${DATABASE_URL}"}
%(extra)s
defaults: {limit: %(limit)d, max_rows: 100000}
target_sets:
  - {name: one, targets: [hist-a.com, hist-b.com]%(set_extra)s}
  - {name: two, targets: [two-a.com]}
"""


# ETL_TEST_LONG=1: retention over a year of nightly snapshots (364 nights,
# 300 days kept, archive 30); by default 20 nights, 10 days kept (archive
# 10): the same assertions at a size the test command affords. The year took
# 8-11 minutes per build, nearly all of it JIT compiling each snapshot the
# test's own queries read at default settings (issue 15 item 2): 1.3 s with
# PGOPTIONS="-c jit=off".
LONG = os.environ.get("ETL_TEST_LONG", "") not in ("", "0")
NIGHTS, KEEP_DAYS, KEEP_ARCHIVE = (364, 300, 30) if LONG else (20, 10, 10)


def job_text(extra="", set_extra="", limit=200, concurrency=2):
    return JOB % {"extra": extra, "set_extra": set_extra, "limit": limit, "concurrency": concurrency}


class HistoryTest(EtlTestCase):

    def dump(self):
        return self.db.rows("SELECT * FROM dataforseo.domain_intersection "
                            "ORDER BY target_set_id, snapshot_date, referring_domain, target_key")

    def scenarios(self, one=700, two=300):
        self.fake.set_scenario("hist-a.com", total_count=one)
        self.fake.set_scenario("two-a.com", total_count=two)

    def test_archive_and_replay(self):
        self.scenarios()
        job = self.job(job_text())
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-08-01")
        before = self.dump()
        self.assertEqual(len(before), 700 * 2 + 300)
        pages = self.db.rows("SELECT page_offset, page_limit, body IS NULL AND length(body_gzip) > 0 AS gz,"
                             " request->'targets'->>'1' AS first FROM dataforseo.raw_page ORDER BY 4, 1")
        self.assertEqual([(p["first"], p["page_offset"]) for p in pages],
                         [("hist-a.com", o) for o in (0, 200, 400, 600)] + [("two-a.com", o) for o in (0, 200)])
        # the fake gzips, as the API does: the bytes are kept as they came
        self.assertTrue(all(p["gz"] for p in pages))
        # the archived body is exactly what the fake sent
        served = {(r["first_target"], r["offset"]): r for r in self.fake.requests}
        body = gzip.decompress(self.archived_gzip(200))
        self.assertEqual(json.loads(body)["tasks"][0]["result"][0]["items"], served[("hist-a.com", 200)]["items"])
        self.assertNotIn("sk-aisa-test", self.db.value("SELECT string_agg(request::text, '') FROM dataforseo.raw_page"))

        # replay of an unchanged run: no request, identical tables
        n = len(self.fake.requests)
        code, out, err = self.etl("replay", job, "1")
        self.assertEqual(len(self.fake.requests), n)
        self.assertEqual(self.dump(), before)
        run = self.db.rows("SELECT run_id, status, replay_of, pages, rows, cost_usd FROM dataforseo.etl_run "
                           "WHERE run_id = 2")[0]
        self.assertEqual((run["status"], run["replay_of"], run["pages"], float(run["cost_usd"])),
                         ("succeeded", 1, 6, 0.0))

        # replay mends rows that went wrong after loading (as a transformer fix would)
        self.db.psql("UPDATE dataforseo.domain_intersection_version SET rank = -1, extra = '{\"x\":1}' "
                     "WHERE referring_domain IN (SELECT referring_domain FROM dataforseo.domain_intersection "
                     "WHERE position < 10)")
        self.db.psql("DELETE FROM dataforseo.domain_intersection_version WHERE referring_domain IN ("
                     "SELECT referring_domain FROM dataforseo.domain_intersection "
                     "WHERE position BETWEEN 500 AND 509)")
        self.etl("replay", job, "1")
        after = self.dump()
        self.assertEqual([{k: v for k, v in r.items() if k != "run_id"} for r in after],
                         [{k: v for k, v in r.items() if k != "run_id"} for r in before])
        self.assertRowsMatch("one", "hist-a.com", ["hist-a.com", "hist-b.com"], snapshot_date="2026-08-01")
        # a later `run` of that date is a new run, not a continuation of a replay
        self.etl("run", job, "--snapshot-date", "2026-08-01")
        self.assertEqual(self.db.value("SELECT max(run_id) FROM dataforseo.etl_run WHERE replay_of IS NULL"), "4")

    def archived_gzip(self, offset, first="hist-a.com"):
        b64 = self.db.value("SELECT encode(body_gzip, 'base64') FROM dataforseo.raw_page "
                            "WHERE page_offset = %d AND request->'targets'->>'1' = '%s'" % (offset, first))
        return base64.b64decode(b64)

    def test_archive_encodings(self):
        """A body sent uncompressed is archived as text; gzip that does not
        decode, or a coding never asked for, is a page error and retried."""
        self.scenarios()
        self.fake.set_scenario("hist-a.com", total_count=700, faults=[
            {"kind": "encoding", "as": "identity", "offset": 0},
            {"kind": "encoding", "as": "garbled", "offset": 200},
            {"kind": "encoding", "as": "trailing", "offset": 400},
            {"kind": "encoding", "as": "br", "offset": 600}])
        job = self.job(job_text())
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-08-01")
        for why in ("gzip body: not a valid gzip stream", "gzip body: data after the end of the gzip stream",
                    "Content-Encoding other than gzip"):
            self.assertIn(why, err)
        attempts = {r["page_offset"]: r["attempts"] for r in self.db.rows(
            "SELECT page_offset, attempts FROM dataforseo.etl_page p JOIN dataforseo.target_set t "
            "USING (target_set_id) WHERE t.name = 'one'")}
        self.assertEqual(attempts, {0: 1, 200: 2, 400: 2, 600: 2})
        stored = {r["page_offset"]: r for r in self.db.rows(
            "SELECT page_offset, body IS NOT NULL AS text, body_gzip IS NOT NULL AS gz "
            "FROM dataforseo.raw_page r JOIN dataforseo.target_set t USING (target_set_id) WHERE t.name = 'one'")}
        self.assertEqual({o: (r["text"], r["gz"]) for o, r in stored.items()},
                         {0: (True, False), 200: (False, True), 400: (False, True), 600: (False, True)})
        self.assertRowsMatch("one", "hist-a.com", ["hist-a.com", "hist-b.com"], snapshot_date="2026-08-01")
        before = self.dump()
        # replay reads both forms back
        self.db.psql("TRUNCATE dataforseo.domain_intersection_version, dataforseo.domain_intersection_order")
        self.etl("replay", job, "1")
        self.assertEqual([{k: v for k, v in r.items() if k != "run_id"} for r in self.dump()],
                         [{k: v for k, v in r.items() if k != "run_id"} for r in before])
        # an archived body that no longer decodes is named by replay
        self.db.psql("UPDATE dataforseo.raw_page SET body_gzip = substr(body_gzip, 1, 100) "
                     "WHERE page_offset = 200 AND body_gzip IS NOT NULL")
        code, out, err = self.etl("replay", job, "1", expect=1)
        self.assertIn("target set one failed: offset 200: archived gzip body: the gzip stream ends early", err)

    def test_replay_errors(self):
        self.scenarios()
        job = self.job(job_text(extra="archive: false"))
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-08-02")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.raw_page"), "0")
        code, out, err = self.etl("replay", job, "1", expect=1)
        self.assertIn("run 1 has no archived pages", err)
        self.assertIn("archive: false", err)
        code, out, err = self.etl("replay", job, "99", expect=1)
        self.assertIn("there is no run 99", err)
        code, out, err = self.etl("replay", job, "x1", expect=2)
        self.assertIn("x1: not a run id", err)
        other = self.job(job_text().replace("job: hist", "job: other"), name="other.yaml")
        code, out, err = self.etl("replay", other, "1", expect=2)
        self.assertIn("run 1 belongs to job hist, not other", err)

    def test_retention_over_a_year_of_snapshots(self):
        self.scenarios(one=20, two=10)
        job = self.job(job_text(extra="retention:\n  keep_snapshots: %d days\n  keep_archive: %d days"
                                      % (KEEP_DAYS, KEEP_ARCHIVE)))
        self.etl("migrate", job)
        # One real run registers the sets; then NIGHTS unchanged nightly
        # snapshots (a year with ETL_TEST_LONG) are written in SQL as publish
        # leaves them (a control row per night, versions of 3 domains valid
        # from the first), plus another job's snapshot on one old date that
        # must survive.
        self.etl("run", job, "--snapshot-date", "2025-01-01")
        start = datetime.date(2025, 1, 2)
        last = start + datetime.timedelta(days=NIGHTS - 1)
        run_date = last + datetime.timedelta(days=1)
        other = str(start + datetime.timedelta(days=30 if LONG else 5))
        self.db.psql("""
            SET search_path = dataforseo;
            INSERT INTO target_set (job, name, targets, request, request_hash, page_limit, max_rows)
            VALUES ('someone-else', 'x', '{x.com}', '{}', 'h', 100, 100);
            UPDATE domain_intersection_version SET valid_to = '2025-01-02';
            UPDATE domain_intersection_order SET valid_to = '2025-01-02';
            INSERT INTO domain_intersection_version (target_set_id, referring_domain, target_key, valid_from,
                   target, run_id)
            SELECT t.target_set_id, 'ref-' || g || '.com', 1,
                   CASE WHEN t.job = 'hist' THEN '2025-01-02'::date ELSE '%(other)s' END, t.targets[1], 1
              FROM target_set t, generate_series(1, 3) g;
            INSERT INTO domain_intersection_order
            SELECT target_set_id, CASE WHEN job = 'hist' THEN '2025-01-02'::date ELSE '%(other)s' END,
                   'infinity', '{ref-1.com,ref-2.com,ref-3.com}', '{1,2,3}'
              FROM target_set;
            INSERT INTO etl_snapshot (target_set_id, snapshot_date, status, run_id, request_hash, domains, rows,
                   published_at)
            SELECT t.target_set_id, d::date, 'complete', 1, t.request_hash, 3, 3, now()
              FROM generate_series('2025-01-02'::date, '%(last)s', '1 day') d, target_set t
             WHERE t.job = 'hist' OR (t.job = 'someone-else' AND d = '%(other)s');
        """ % {"other": other, "last": last})
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection"),
                         str(20 * 2 + 10 + NIGHTS * 2 * 3 + 3))
        self.etl("run", job, "--snapshot-date", str(run_date))
        cutoff = run_date - datetime.timedelta(days=KEEP_DAYS)
        dates = [r["snapshot_date"] for r in self.db.rows(
            "SELECT DISTINCT snapshot_date FROM dataforseo.domain_intersection d JOIN dataforseo.target_set t "
            "USING (target_set_id) WHERE t.job = 'hist' ORDER BY 1")]
        want = [str(start + datetime.timedelta(days=i)) for i in range(NIGHTS)
                if start + datetime.timedelta(days=i) > cutoff] + [str(run_date)]
        self.assertEqual(dates, want)
        # every kept date still has its rows; the purged ones are listed as such
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection d "
                                       "JOIN dataforseo.target_set t USING (target_set_id) "
                                       "WHERE t.job = 'hist' AND snapshot_date < '%s'" % run_date),
                         str((len(want) - 1) * 2 * 3))
        purged = self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_daily "
                               "WHERE job = 'hist' AND purged_at IS NOT NULL")
        self.assertEqual(purged, str((NIGHTS + 2 - len(want)) * 2))
        # the versions that held only purged dates are gone, the others start at the first kept date
        self.assertEqual(self.db.value("SELECT min(valid_from) FROM dataforseo.domain_intersection_version v "
                                       "JOIN dataforseo.target_set t USING (target_set_id) WHERE t.job = 'hist'"),
                         want[0])
        # another job's snapshot on an old date is untouched, in every view
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection "
                                       "WHERE snapshot_date = '%s'" % other), "3")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_latest "
                                       "WHERE job = 'someone-else'"), "3")
        # the archive of the first run (older than KEEP_ARCHIVE days) is gone, the last one's kept
        self.assertEqual(self.db.value("SELECT string_agg(DISTINCT run_id::text, ',') FROM dataforseo.raw_page"),
                         "2")

    def test_retention_waits_for_a_successful_run(self):
        self.scenarios(one=20, two=10)
        job = self.job(job_text(extra="retention: {keep_snapshots: 1 day}"))
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-02-01")
        self.fake.set_scenario("two-a.com", total_count=10, faults=[{"kind": "task", "code": 40501}])
        self.etl("run", job, "--snapshot-date", "2026-02-05", expect=3)
        self.assertIn("2026-02-01", [r["snapshot_date"] for r in self.db.rows(
            "SELECT DISTINCT snapshot_date FROM dataforseo.domain_intersection")])
        self.scenarios(one=20, two=10)
        self.etl("run", job, "--snapshot-date", "2026-02-06")
        self.assertEqual([r["snapshot_date"] for r in self.db.rows(
            "SELECT DISTINCT snapshot_date FROM dataforseo.domain_intersection ORDER BY 1")], ["2026-02-06"])

    def test_job_cost_ceiling_stops_sending(self):
        # 10 pages of 100 rows per set, $0.023 each at worst; concurrency 1
        self.scenarios(one=1000, two=1000)
        job = self.job(job_text(extra="max_cost_usd: 0.1", limit=100, concurrency=1))
        code, out, err = self.etl("plan", job)
        self.assertIn("job max_cost_usd $0.1000: below the worst case", out)
        # no set completes: failed, exit 1 (README "Exit status")
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-09-01", expect=1)
        # spent + worst case of the next page must stay <= 0.10: 4 pages of 0.023
        self.assertEqual(len(self.fake.requests), 4)
        run = self.db.rows("SELECT status, cost_usd, error FROM dataforseo.etl_run")[0]
        self.assertEqual(run["status"], "failed")
        self.assertAlmostEqual(float(run["cost_usd"]), 4 * 0.023, places=6)
        self.assertIn("the job's cost ceiling max_cost_usd $0.1000 stopped the run: $0.0920 charged; "
                      "2 of 2 target sets not finished", err)
        sets = self.db.rows("SELECT status, error FROM dataforseo.etl_run_set ORDER BY target_set_id")
        self.assertEqual([s["status"] for s in sets], ["failed", "failed"])
        self.assertRegex(sets[0]["error"], r"charged for this set; left unfetched: \d+ pages from offset")

    def test_set_cost_ceiling(self):
        self.scenarios(one=1000, two=300)
        job = self.job(job_text(set_extra=", max_cost_usd: 0.05", limit=100, concurrency=1))
        code, out, err = self.etl("plan", job)
        self.assertIn("max_cost_usd $0.0500: below the worst case: the set may stop at its ceiling", out)
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-09-02", expect=3)
        one = [r for r in self.fake.requests if r["first_target"] == "hist-a.com"]
        self.assertEqual(len(one), 2)  # 0.023 + 0.023 + 0.023 > 0.05
        self.assertIn("the set's cost ceiling max_cost_usd $0.0500 stopped it: $0.0460 charged for this set; "
                      "left unfetched: 8 pages from offset 200 (800 referring domains of total_count 1000)", err)
        sets = self.db.rows("SELECT t.name, s.status FROM dataforseo.etl_run_set s "
                            "JOIN dataforseo.target_set t USING (target_set_id) ORDER BY 1")
        self.assertEqual([(s["name"], s["status"]) for s in sets], [("one", "failed"), ("two", "complete")])


if __name__ == "__main__":
    unittest.main()

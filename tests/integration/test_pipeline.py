"""The pipeline end to end: `intersect-etl run` against the fake API and a real
PostgreSQL, checking every loaded row field by field against what the fake
served, the exact request bodies and offset sequences, snapshot replacement,
both response shapes, both body forms, both auth profiles, and concurrency.
"""

import json
import time
import unittest

from harness import EtlTestCase, db_rows

JOB_MULTI = """\
version: 1
job: multi
api:
  provider: aisa
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: 4
  requests_per_minute: 6000
database:
  url: ${DATABASE_URL}
  schema: dataforseo
defaults:
  limit: 1000
  max_rows: 5000
  order_by: ["1.rank,desc"]
target_sets:
  - name: empty
    targets: [empty-a.com, empty-b.com]
  - name: one-page
    targets: [onepage-a.com, onepage-b.com, onepage-c.com]
    exclude_targets: [excluded.com]
    filters: [["1.rank", ">", 100], "and", ["2.backlinks", ">", 5]]
    tag: one page
  - name: capped
    targets: [capped-a.com, capped-b.com]
    max_rows: 2000
  - name: short
    targets: [short-a.com, short-b.com]
    internal_list_limit: 3
"""


def offsets(requests, first_target):
    return [(r["task"]["offset"], r["task"]["limit"]) for r in requests
            if r.get("task") and r["task"]["targets"]["1"] == first_target]


class PipelineTest(EtlTestCase):

    def scenarios(self):
        self.fake.set_scenario("empty-a.com", total_count=0)
        self.fake.set_scenario("onepage-a.com", total_count=700)
        self.fake.set_scenario("capped-a.com", total_count=2345)
        self.fake.set_scenario("short-a.com", total_count=2500, short_pages={1000: 700})

    def test_multi_set_rows_requests_and_ledger(self):
        self.scenarios()
        job = self.job(JOB_MULTI)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-01-01")
        reqs = self.fake.requests
        # Offset sequences: paging goes on past a short page, and stops at max_rows.
        self.assertEqual(offsets(reqs, "empty-a.com"), [(0, 1000)])
        self.assertEqual(offsets(reqs, "onepage-a.com"), [(0, 1000)])
        self.assertEqual(sorted(offsets(reqs, "capped-a.com")), [(0, 1000), (1000, 1000)])
        self.assertEqual(sorted(offsets(reqs, "short-a.com")), [(0, 1000), (1000, 1000), (2000, 500)])
        # Exact body of one request: every field with its type, targets as an object.
        body = [json.loads(r["body"]) for r in reqs
                if r.get("task") and r["task"]["targets"]["1"] == "onepage-a.com"][0]
        self.assertEqual(body, {
            "targets": {"1": "onepage-a.com", "2": "onepage-b.com", "3": "onepage-c.com"},
            "exclude_targets": ["excluded.com"],
            "filters": [["1.rank", ">", 100], "and", ["2.backlinks", ">", 5]],
            "order_by": ["1.rank,desc"],
            "tag": "one page",
            "offset": 0,
            "limit": 1000,
        })
        for r in reqs:
            self.assertEqual(r["headers"].get("Authorization"), "Bearer sk-aisa-test")
        # Rows equal what was served, field by field.
        got = self.assertRowsMatch("empty", "empty-a.com", ["empty-a.com", "empty-b.com"])
        self.assertEqual(len(got), 0)
        got = self.assertRowsMatch("one-page", "onepage-a.com",
                                   ["onepage-a.com", "onepage-b.com", "onepage-c.com"])
        self.assertEqual(len(got), 700 * 3)
        got = self.assertRowsMatch("capped", "capped-a.com", ["capped-a.com", "capped-b.com"])
        self.assertEqual(len(got), 2000 * 2)
        got = self.assertRowsMatch("short", "short-a.com", ["short-a.com", "short-b.com"])
        self.assertEqual(len(got), (1000 + 700 + 500) * 2)
        # The run and the ledger.
        run = self.db.rows("SELECT * FROM dataforseo.etl_run")
        self.assertEqual(len(run), 1)
        self.assertEqual(run[0]["status"], "succeeded")
        self.assertEqual(run[0]["pages"], 7)
        self.assertEqual(run[0]["rows"], (700 * 3) + 4000 + 4400)
        served_cost = sum(0.02 + 0.00003 * r["served"][1] for r in reqs if r.get("served"))
        self.assertAlmostEqual(float(run[0]["cost_usd"]), served_cost, places=4)
        pages = self.db.rows("SELECT t.name, p.page_offset, p.status, p.items, p.total_count "
                             "FROM dataforseo.etl_page p JOIN dataforseo.target_set t USING (target_set_id) "
                             "ORDER BY 1, 2")
        self.assertEqual([(p["name"], p["page_offset"], p["status"], p["items"]) for p in pages], [
            ("capped", 0, "loaded", 1000), ("capped", 1000, "loaded", 1000),
            ("empty", 0, "loaded", 0),
            ("one-page", 0, "loaded", 700),
            ("short", 0, "loaded", 1000), ("short", 1000, "loaded", 700), ("short", 2000, "loaded", 500),
        ])
        sets = self.db.rows("SELECT t.name, s.status, s.total_count FROM dataforseo.etl_run_set s "
                            "JOIN dataforseo.target_set t USING (target_set_id) ORDER BY 1")
        self.assertEqual([(s["name"], s["status"], s["total_count"]) for s in sets], [
            ("capped", "complete", 2345), ("empty", "complete", 0),
            ("one-page", "complete", 700), ("short", "complete", 2500)])
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_pending"), "0")

    def dump(self):
        return self.db.rows("SELECT * FROM dataforseo.domain_intersection "
                            "ORDER BY target_set_id, snapshot_date, referring_domain, target_key")

    def test_snapshots_rerun_new_date_and_shrink(self):
        self.fake.set_scenario("capped-a.com", total_count=1500)
        job = self.job("""\
            version: 1
            job: snapshots
            api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}"}
            database: {url: "${DATABASE_URL}"}
            defaults: {limit: 1000, max_rows: 5000}
            target_sets:
              - {name: capped, targets: [capped-a.com, capped-b.com]}
              - {name: other, targets: [other-a.com]}
            """)
        self.fake.set_scenario("other-a.com", total_count=300)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-02-01")
        first = self.dump()
        self.assertEqual(len(first), 1500 * 2 + 300)
        # Same date again: identical tables (no row rewritten, run_id included).
        self.etl("run", job, "--snapshot-date", "2026-02-01")
        self.assertEqual(self.dump(), first)
        # Another date adds a snapshot beside the first.
        self.etl("run", job, "--snapshot-date", "2026-02-02")
        both = self.dump()
        self.assertEqual(len(both), 2 * len(first))
        self.assertEqual([r for r in both if r["snapshot_date"] == "2026-02-01"], first)
        # The API now has fewer rows: a rerun of 02-02 drops the stale ones from 02-02 only.
        self.fake.reset()
        self.fake.set_scenario("capped-a.com", total_count=1200)
        self.fake.set_scenario("other-a.com", total_count=300)
        self.etl("run", job, "--snapshot-date", "2026-02-02")
        self.assertRowsMatch("capped", "capped-a.com", ["capped-a.com", "capped-b.com"],
                             snapshot_date="2026-02-02")
        after = self.dump()
        self.assertEqual([r for r in after if r["snapshot_date"] == "2026-02-01"], first)
        counts = self.db.rows("SELECT snapshot_date, count(*) AS n FROM dataforseo.domain_intersection "
                              "GROUP BY 1 ORDER BY 1")
        self.assertEqual([(c["snapshot_date"], c["n"]) for c in counts],
                         [("2026-02-01", 3300), ("2026-02-02", 2700)])

    def test_duplicate_across_pages_keeps_first_position(self):
        """Also with pages loading on several connections at once, where two
        pages holding one referring domain can be in flight together: the
        first position still wins, on a first load and on a rerun (each
        staged, the repeat through di_stage and an upsert, then published)."""
        self.fake.set_scenario("dup-a.com", total_count=2500, duplicate_at=[1000, 2000])
        for conns, date in ((1, "2026-03-01"), (4, "2026-03-02")):
            with self.subTest(connections=conns):
                job = self.job("""\
                    version: 1
                    job: dups
                    api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 3}
                    database: {url: "${DATABASE_URL}", connections: %d}
                    target_sets:
                      - {name: dup, targets: [dup-a.com, dup-b.com], limit: 1000, max_rows: 5000}
                    """ % conns)
                for rerun in (False, True):
                    start = len(self.fake.requests)
                    code, out, err = self.etl("run", job, "--migrate", "--fresh", "-v",
                                              "--snapshot-date", date)
                    self.assertIn("loading on %d connection" % conns, err)
                    got = self.assertRowsMatch("dup", "dup-a.com", ["dup-a.com", "dup-b.com"],
                                               snapshot_date=date,
                                               requests=self.fake.requests[start:])
                    # Page 1000 repeats item 999 and pushes item 1999 off; page
                    # 2000 repeats item 1999 (so it is served once after all)
                    # and pushes 2499 off.
                    self.assertEqual(len(got), 2499 * 2)
                    first_dup = [r for r in self.fake.requests[start:]
                                 if r["offset"] == 1000][0]["items"][0]
                    dom = first_dup["domain_intersection"]["1"]["target"]
                    self.assertEqual(got[(dom, 1)]["position"], 999)

    def test_legacy_shape_array_body_and_basic_auth(self):
        self.fake.set_scenario("legacy-a.com", total_count=1100, shape="legacy")
        job = self.job("""\
            version: 1
            job: legacy
            api:
              provider: dataforseo
              base_url: ${DFS_BASE_URL}
              login: ${DFS_LOGIN}
              password: ${DFS_PASSWORD}
            database: {url: "${DATABASE_URL}"}
            target_sets:
              - {name: legacy, targets: [legacy-a.com, legacy-b.com], limit: 1000, max_rows: 5000}
            """)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-02")
        reqs = self.fake.requests
        self.assertTrue(all(r["path"].startswith("/v3/") for r in reqs))
        self.assertTrue(all(r["headers"]["Authorization"].startswith("Basic ") for r in reqs))
        self.assertTrue(all(r["body"].startswith("[") for r in reqs))
        got = self.assertRowsMatch("legacy", "legacy-a.com", ["legacy-a.com", "legacy-b.com"])
        self.assertEqual(len(got), 1100 * 2)
        row = next(iter(got.values()))
        self.assertIsNone(row["referring_links_countries"])
        self.assertIsNone(row["intersections_count"])

    def test_object_body_for_dataforseo_and_array_for_aisa(self):
        self.fake.set_scenario("forms-a.com", total_count=50)
        for provider, body, prefix in (("aisa", "array", "["), ("dataforseo", "object", "{")):
            self.fake.reset()
            self.fake.set_scenario("forms-a.com", total_count=50)
            creds = ('base_url: ${AISA_BASE_URL}\n  token: ${AISA_API_KEY}' if provider == "aisa" else
                     'base_url: ${DFS_BASE_URL}\n  login: ${DFS_LOGIN}\n  password: ${DFS_PASSWORD}')
            job = self.job("version: 1\njob: forms-%s\napi:\n  provider: %s\n  body: %s\n  %s\n"
                           "database: {url: \"${DATABASE_URL}\"}\n"
                           "target_sets:\n  - {name: forms, targets: [forms-a.com]}\n"
                           % (provider, provider, body, creds))
            self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-03")
            self.assertTrue(self.fake.requests)
            self.assertTrue(all(r["body"].startswith(prefix) for r in self.fake.requests))

    def test_partial_mode_missing_keys(self):
        self.fake.set_scenario("partial-a.com", total_count=400)
        job = self.job("""\
            version: 1
            job: partial
            api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}"}
            database: {url: "${DATABASE_URL}"}
            target_sets:
              - name: partial
                targets: [partial-a.com, partial-b.com, partial-c.com]
                intersection_mode: partial
            """)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-04")
        got = self.assertRowsMatch("partial", "partial-a.com",
                                   ["partial-a.com", "partial-b.com", "partial-c.com"])
        self.assertLess(len(got), 400 * 3)
        self.assertGreater(len(got), 400)

    def test_concurrency_beats_serial(self):
        """40 pages at 200 ms each: concurrency 8 takes well under half of concurrency 1."""
        def timed(concurrency, name):
            self.fake.reset()
            self.fake.set_scenario("slow-a.com", total_count=4000, latency_ms=200)
            job = self.job("""\
                version: 1
                job: conc-%s
                api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}",
                      concurrency: %d, requests_per_minute: 10000}
                database: {url: "${DATABASE_URL}"}
                target_sets:
                  - {name: slow, targets: [slow-a.com], limit: 100, max_rows: 4000}
                """ % (name, concurrency), name="%s.yaml" % name)
            t0 = time.monotonic()
            self.etl("run", job, "--migrate", "--snapshot-date", "2026-03-05")
            elapsed = time.monotonic() - t0
            self.assertEqual(len(offsets(self.fake.requests, "slow-a.com")), 40)
            return elapsed
        serial = timed(1, "serial")
        parallel = timed(8, "parallel")
        print("concurrency 1: %.2f s, concurrency 8: %.2f s, ratio %.2f" % (serial, parallel, parallel / serial))
        self.assertLess(parallel / serial, 0.5)


if __name__ == "__main__":
    unittest.main()

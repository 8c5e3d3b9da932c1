"""Hostile input, end to end: response bodies that are not what the API
promises (HTML, empty, wrong JSON types, numbers past int64, 10 MB strings,
deep nesting, more items than asked for, result null) each end as a clear page
error that the retry policy mends, never a crash or a corrupt table; and
target strings with quotes, backslashes, tabs, newlines, escapes and unicode
load intact."""

import json
import unittest

from harness import EtlTestCase, expected_rows
import fakeapi  # noqa: E402  (harness put tests/fake_api on the path)

JOB = """\
version: 1
job: hostile
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: 2
  max_attempts: 3
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 1000}
target_sets:
  - {name: h, targets: [hostile-a.com, hostile-b.com]}
"""


def per_target(doc, item=0, key="1"):
    return doc["tasks"][0]["result"][0]["items"][item]["domain_intersection"][key]


def set_field(field, value):
    def fn(doc):
        per_target(doc)[field] = value
    return fn


def extra_item(doc):
    items = doc["tasks"][0]["result"][0]["items"]
    items.append(items[0])


def charged(fake, first_target):
    """What the fake's answers for one set reported they cost."""
    return sum(r["charged"] for r in fake.requests if r["first_target"] == first_target)


class HostileTest(EtlTestCase):

    def test_hostile_bodies_are_page_errors_then_retried(self):
        envelope_wrong = json.dumps({"version": "0.1", "status_code": "20000", "status_message": "Ok.",
                                     "tasks": "none"})
        cases = [
            ("html", {"kind": "raw", "body": "<html><body><h1>Service Unavailable</h1></body></html>",
                      "content_type": "text/html"}),
            ("empty", {"kind": "raw", "body": ""}),
            ("not json", {"kind": "raw", "body": "\x00\x01\x02garbage"}),
            ("wrong types", {"kind": "raw", "body": envelope_wrong}),
            ("deep nesting", {"kind": "raw", "body": "[" * 100000}),
            ("result null", {"kind": "result_null"}),
            ("rank string", {"kind": "edit", "fn": set_field("rank", "high")}),
            ("rank fraction", {"kind": "edit", "fn": set_field("rank", 1.5)}),
            ("past int64", {"kind": "raw", "body": None}),  # filled in below
            ("map of lists", {"kind": "edit", "fn": set_field("referring_links_tld", {"com": [1]})}),
            ("bad time", {"kind": "edit", "fn": set_field("first_seen", "yesterday")}),
            ("10 MB domain", {"kind": "edit", "fn": set_field("target", "x" * (10 * 1024 * 1024))}),
            ("items past limit", {"kind": "edit", "fn": extra_item}),
        ]
        for name, fault in cases:
            with self.subTest(case=name):
                self.db.close()
                from harness import Database
                self.db = Database("hostile")
                self.fake.reset()
                if name == "past int64":
                    # a real page whose backlinks is a 20-digit integer literal
                    fault = {"kind": "edit", "fn": set_field("backlinks", 123456789012345678901234)}
                self.fake.set_scenario("hostile-a.com", total_count=350, faults=[dict(fault, offset=100)])
                job = self.job(JOB)
                code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-01")
                self.assertIn("h: offset 100", err)
                self.assertIn("retrying", err)
                self.assertLess(len(err), 20000, "the message must not dump the body")
                at = [r for r in self.fake.requests if r["offset"] == 100]
                self.assertEqual(len(at), 2)
                self.assertRowsMatch("h", "hostile-a.com", ["hostile-a.com", "hostile-b.com"])
                page = self.db.rows("SELECT attempts, status FROM dataforseo.etl_page WHERE page_offset = 100")
                self.assertEqual(page, [{"attempts": 2, "status": "loaded"}])

    def test_a_page_that_does_not_transform_is_retried_on_one_connection_too(self):
        """With database.connections 1 the fetching thread transforms (the
        loader thread would otherwise transform and COPY in turn): a page
        whose items are malformed is asked again the same way."""
        self.fake.set_scenario("hostile-a.com", total_count=350,
                               faults=[{"kind": "edit", "fn": set_field("rank", "high"), "offset": 100},
                                       {"kind": "edit", "fn": extra_item, "offset": 200}])
        job = self.job(JOB.replace('database: {url: "${DATABASE_URL}"}',
                                   'database: {url: "${DATABASE_URL}", connections: 1}'))
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-03")
        self.assertEqual(err.count("retrying"), 2, err)
        self.assertEqual(len([r for r in self.fake.requests if r["offset"] in (100, 200)]), 4)
        self.assertRowsMatch("h", "hostile-a.com", ["hostile-a.com", "hostile-b.com"])
        pages = self.db.rows("SELECT page_offset, attempts FROM dataforseo.etl_page"
                             " WHERE page_offset IN (100, 200) ORDER BY 1")
        self.assertEqual(pages, [{"page_offset": 100, "attempts": 2}, {"page_offset": 200, "attempts": 2}])

    def test_hostile_body_every_time_fails_the_set_cleanly(self):
        self.fake.set_scenario("hostile-a.com", total_count=350,
                               faults=[{"kind": "edit", "fn": extra_item, "offset": 200, "times": -1}])
        job = self.job(JOB)
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-02", expect=1)
        self.assertIn("offset 200", err)
        self.assertIn("attempts exhausted", err)
        self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run_set"), "failed")
        # The pages that did load stay staged, as the ledger says (a resumed
        # run completes them): a first load stages them as versions of the
        # date (sql/016), and nothing of the set is in any view.
        staged = ("SELECT count(*) FROM dataforseo.domain_intersection_version"
                  " WHERE valid_from = '2026-07-02' AND valid_to = 'infinity'")
        self.assertEqual(self.db.value(staged),
                         self.db.value("SELECT sum(staged) FROM dataforseo.etl_page WHERE status = 'loaded'"))
        self.assertNotEqual(self.db.value(staged), "0")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_pending"), "0")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection"), "0")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_history"), "0")
        err_row = self.db.value("SELECT error FROM dataforseo.etl_page WHERE page_offset = 200")
        self.assertIn("offset 200", err_row)

    def test_targets_with_awkward_characters_load_intact(self):
        targets = ['quo"te.com', "apos'trophe.com", "back\\slash.com", "tab\there.com", "new\nline.com",
                   "nul\\u0000like.com", "percent%s%d.com", "ünïcødé.com", "例え.jp", "emoji\U0001F600.com"]
        yaml_list = ", ".join(json.dumps(t, ensure_ascii=False) for t in targets)  # JSON strings are YAML double-quoted scalars
        job = self.job("""\
            version: 1
            job: awkward
            api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}"}
            database: {url: "${DATABASE_URL}"}
            target_sets:
              - name: awkward
                targets: [%s]
                tag: "tag with \\"quotes\\" and \\\\ backslash"
            """ % yaml_list)
        self.fake.set_scenario(targets[0], total_count=30)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-03")
        sent = json.loads(self.fake.requests[0]["body"])
        self.assertEqual(sent["targets"], {str(i + 1): t for i, t in enumerate(targets)})
        self.assertEqual(sent["tag"], 'tag with "quotes" and \\ backslash')
        stored = self.db.rows("SELECT targets, request FROM dataforseo.target_set")[0]
        self.assertEqual(stored["targets"], targets)
        self.assertEqual(stored["request"]["targets"], sent["targets"])
        got = self.assertRowsMatch("awkward", targets[0], targets)
        self.assertEqual(sorted({r["target"] for r in got.values()}), sorted(targets))

    def test_an_answer_to_another_request_is_retried(self):
        """A gateway or cache that answers with another request's page (here
        offset 0's for offset 100, then set two's for set one): each is a page
        error naming what differs, retried, and the rows are exactly right."""
        job = self.job(JOB.replace("  - {name: h, targets: [hostile-a.com, hostile-b.com]}",
                                   "  - {name: h, targets: [hostile-a.com, hostile-b.com]}\n"
                                   "  - {name: two, targets: [two-a.com]}"))
        self.fake.set_scenario("hostile-a.com", total_count=250, faults=[
            {"kind": "other_request", "as": {"offset": 0}, "offset": 100},
            {"kind": "other_request", "as": {"targets": {"1": "two-a.com"}}, "offset": 200}])
        self.fake.set_scenario("two-a.com", total_count=150)
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-04")
        self.assertEqual(err.count("answer to another request"), 2, err)
        self.assertEqual(len([r for r in self.fake.requests if r["first_target"] == "hostile-a.com"]), 5)
        served = [r for r in self.fake.requests if not r.get("fault")]
        self.assertRowsMatch("h", "hostile-a.com", ["hostile-a.com", "hostile-b.com"], requests=served)
        self.assertRowsMatch("two", "two-a.com", ["two-a.com"], requests=served)

    def test_every_charged_answer_counts_retried_or_not(self):
        """Answers the API charged for and the loader could not keep (a rank
        that is a fraction, twice) are money spent: the page's ledger row and
        the set's cost say what all three attempts cost, as the fake billed."""
        job = self.job(JOB)
        self.fake.set_scenario("hostile-a.com", total_count=250, faults=[
            {"kind": "edit", "fn": set_field("rank", 1.5), "offset": 100, "times": 2}])
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-05")
        page = self.db.rows("SELECT attempts, cost_usd FROM dataforseo.etl_page WHERE page_offset = 100")[0]
        self.assertEqual((page["attempts"], float(page["cost_usd"])), (3, 3 * fakeapi.cost_for(100)))
        want = charged(self.fake, "hostile-a.com")
        self.assertAlmostEqual(want, 4 * fakeapi.cost_for(100) + fakeapi.cost_for(50), places=6)
        for table in ("etl_run_set", "etl_run"):
            self.assertAlmostEqual(float(self.db.value("SELECT cost_usd FROM dataforseo.%s" % table)), want,
                                   places=6, msg=table)

    def test_charged_retries_stop_at_the_cost_ceiling(self):
        """A source of wrong answers cannot spend past max_cost_usd one retry
        at a time: the retry that would pass the ceiling is not sent, and a
        continued run counts what earlier attempts were charged."""
        job = self.job(JOB.replace("max_attempts: 3", "max_attempts: 6")
                       .replace("concurrency: 2", "concurrency: 1")
                       .replace("hostile-b.com]}", "hostile-b.com], max_cost_usd: 0.07}"))
        self.fake.set_scenario("hostile-a.com", total_count=1000, faults=[
            {"kind": "edit", "fn": set_field("rank", 1.5), "offset": 100, "times": -1}])
        code, out, err = self.etl("run", job, "--migrate", "--snapshot-date", "2026-07-06", expect=1)
        # $0.023 a page: 0, then 100 (wrong), and 200, sent as 100's answer
        # came in; spent $0.046, 200 in flight: a retry of 100 would make $0.092
        self.assertEqual([r["offset"] for r in self.fake.requests], [0, 100, 200])
        self.assertIn("not retried: a cost ceiling, max_cost_usd, is reached", err)
        self.assertAlmostEqual(float(self.db.value("SELECT cost_usd FROM dataforseo.etl_run_set")),
                               charged(self.fake, "hostile-a.com"), places=6)
        # continued, with the source mended: $0.069 spent, the page would pass the ceiling
        self.fake.reset()
        self.fake.set_scenario("hostile-a.com", total_count=1000)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-07-06", expect=1)
        self.assertEqual(self.fake.requests, [])
        self.assertIn("the set's cost ceiling max_cost_usd $0.0700 stopped it: $0.0690 charged for this set; "
                      "left unfetched: 8 pages from offset 100 (800 referring domains of total_count 1000)", err)

    def test_a_page_the_database_refuses_fails_its_set_not_the_run(self):
        """A value that passes every check of the transformer and that the
        database still refuses (SQLSTATE class 22): the page fails, its set
        fails with the page's message, the other set completes, exit 3; a
        continued run fails the set at once instead of paying for the page
        again, and --fresh fetches it."""
        job = self.job(JOB.replace("  - {name: h, targets: [hostile-a.com, hostile-b.com]}",
                                   "  - {name: h, targets: [hostile-a.com, hostile-b.com]}\n"
                                   "  - {name: ok, targets: [fine-a.com]}"))
        self.etl("migrate", job)
        # stands for any value out of a column's range (rank as smallint),
        # wherever the rows go: staged, or straight into the versions
        self.db.psql("CREATE FUNCTION dataforseo.small_rank() RETURNS trigger LANGUAGE plpgsql AS $$"
                     " BEGIN IF NEW.rank > 32767 THEN RAISE EXCEPTION USING ERRCODE = '22003',"
                     " MESSAGE = 'smallint out of range'; END IF; RETURN NEW; END $$;"
                     " CREATE TRIGGER small_rank BEFORE INSERT ON dataforseo.domain_intersection_pending"
                     " FOR EACH ROW EXECUTE FUNCTION dataforseo.small_rank();"
                     " CREATE TRIGGER small_rank BEFORE INSERT ON dataforseo.domain_intersection_version"
                     " FOR EACH ROW EXECUTE FUNCTION dataforseo.small_rank()")
        self.fake.set_scenario("hostile-a.com", total_count=250,
                               faults=[{"kind": "edit", "fn": set_field("rank", 40000), "offset": 100,
                                        "times": -1}])
        self.fake.set_scenario("fine-a.com", total_count=120)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-07-03", expect=3)
        self.assertIn("h: offset 100: the database refused the page's data", err)
        self.assertIn("out of range", err)
        sets = {r["name"]: r for r in self.db.rows(
            "SELECT t.name, s.status, s.error FROM dataforseo.etl_run_set s "
            "JOIN dataforseo.target_set t USING (target_set_id)")}
        self.assertEqual(sets["ok"]["status"], "complete")
        self.assertEqual(sets["h"]["status"], "failed")
        self.assertIn("offset 100: the database refused", sets["h"]["error"])
        page = self.db.rows("SELECT status, refused, error, cost_usd FROM dataforseo.etl_page "
                            "WHERE page_offset = 100 AND target_set_id = (SELECT target_set_id "
                            "FROM dataforseo.target_set WHERE name = 'h')")[0]
        self.assertEqual((page["status"], page["refused"]), ("failed", True))
        # the refused answer was charged: its cost is the ledger's and the set's
        self.assertEqual(float(page["cost_usd"]), fakeapi.cost_for(100))
        self.assertAlmostEqual(float(self.db.value(
            "SELECT cost_usd FROM dataforseo.etl_run_set JOIN dataforseo.target_set t USING (target_set_id) "
            "WHERE t.name = 'h'")), charged(self.fake, "hostile-a.com"), places=6)
        code, out, err = self.etl("runs", job, "1")
        self.assertIn("the database refused the page's data", out)
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.domain_intersection_latest "
                                       "WHERE target_set = 'ok'"), "120")
        # continued: set h fails at once, nothing fetched for it
        self.fake.reset()
        self.fake.set_scenario("fine-a.com", total_count=120)
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-07-03", expect=3)
        self.assertIn("refused by the database in an earlier attempt", err)
        self.assertEqual([r for r in self.fake.requests if r["first_target"] == "hostile-a.com"], [])
        # once the database takes the value, --fresh fetches the set again
        self.db.psql("DROP FUNCTION dataforseo.small_rank() CASCADE")
        self.fake.set_scenario("hostile-a.com", total_count=250,
                               faults=[{"kind": "edit", "fn": set_field("rank", 40000), "offset": 100,
                                        "times": -1}])
        self.etl("run", job, "--snapshot-date", "2026-07-03", "--fresh")
        self.assertEqual(self.db.value("SELECT max(rank) FROM dataforseo.domain_intersection_latest"), "40000")


if __name__ == "__main__":
    unittest.main()

"""`intersect-etl migrate` against a real server: idempotent, every table and
column in place, edited or unknown migrations refused, and `run` refusing a
schema that is not at the binary's version."""

import hashlib
import os
import subprocess
import unittest

from harness import EtlTestCase, SOURCE

COLUMNS = [
    "snapshot_date", "target_set_id", "referring_domain", "target_key", "target", "position",
    "intersections_count", "type", "rank", "backlinks", "first_seen", "lost_date",
    "backlinks_spam_score", "broken_backlinks", "broken_pages", "referring_domains",
    "referring_domains_nofollow", "referring_main_domains", "referring_main_domains_nofollow",
    "referring_ips", "referring_subnets", "referring_pages", "referring_pages_nofollow",
    "referring_links_tld", "referring_links_types", "referring_links_attributes",
    "referring_links_platform_types", "referring_links_semantic_locations",
    "referring_links_countries", "extra", "run_id",
]

JOB = """\
version: 1
job: migrate-test
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}"}
database: {url: "${DATABASE_URL}", schema: %s}
target_sets:
  - {name: s, targets: [a.com]}
"""

# The job tests/data/migrate/make_v4_history.py ran, at its last definition.
FIXTURE_JOB = """\
version: 1
job: mig
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 2}
database: {url: "${DATABASE_URL}", schema: legacy}
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: one, targets: [mig-a.com, mig-b.com]}
  - {name: two, targets: [mig-d.com]}
"""


def sql_files():
    return sorted(f for f in os.listdir(os.path.join(SOURCE, "sql")) if f[:3].isdigit() and f.endswith(".sql"))


class MigrateTest(EtlTestCase):

    def test_migrate_twice_creates_everything_once(self):
        job = self.job(JOB % "mig_one")
        code, out, err = self.etl("migrate", job)
        self.assertIn("%d migrations applied" % len(sql_files()), err)
        code, out, err = self.etl("migrate", job)
        self.assertIn("0 migrations applied", err)
        tables = self.db.rows("SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = 'mig_one' AND table_type = 'BASE TABLE' ORDER BY 1")
        self.assertEqual([t["table_name"] for t in tables], [
            "domain_intersection_breakdown_total", "domain_intersection_change",
            "domain_intersection_domain_version", "domain_intersection_order",
            "domain_intersection_pending", "domain_intersection_version", "etl_job_lock", "etl_kept_digests", "etl_page",
            "etl_page_keys",
            "etl_run", "etl_run_attempt",
            "etl_run_set", "etl_snapshot", "etl_sync_counter", "etl_sync_deleted", "raw_page",
            "schema_migrations", "target_set"])
        # the old table's name is a view with its columns, for queries written against it
        cols = self.db.rows("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'mig_one' AND table_name = 'domain_intersection' "
                            "ORDER BY ordinal_position")
        self.assertEqual([c["column_name"] for c in cols], COLUMNS)
        types = {c["column_name"]: c["data_type"] for c in cols}
        self.assertEqual(types["first_seen"], "timestamp with time zone")
        self.assertEqual(types["lost_date"], "timestamp with time zone")
        self.assertEqual(types["referring_links_tld"], "jsonb")
        self.assertEqual(types["rank"], "integer")
        self.assertEqual(types["backlinks"], "bigint")
        # every large table's key leads with target_set_id (distributable by it)
        for table in ("domain_intersection_version", "domain_intersection_order", "etl_snapshot",
                      "domain_intersection_change", "domain_intersection_domain_version"):
            pk = self.db.value("""SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = 'mig_one.%s'::regclass AND i.indisprimary""" % table)
            self.assertTrue(pk.startswith("target_set_id,"), (table, pk))
        # no partitions: planning and locks do not grow with the nights kept
        self.assertEqual(self.db.value("SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c "
                                       "ON c.oid = p.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = 'mig_one'"), "0")
        applied = self.db.rows("SELECT name, checksum FROM mig_one.schema_migrations")
        self.assertEqual([a["name"] for a in applied], sql_files())

    def test_run_refuses_unmigrated_schema(self):
        job = self.job(JOB % "mig_none")
        code, out, err = self.etl("run", job, expect=5)
        self.assertIn("schema is not set up", err)
        self.assertIn("migrate", err)
        self.assertEqual(self.fake.requests, [])

    def xacts(self):
        """Transactions committed in this test's database so far, every other
        session having reported its own."""
        self.db.sessions_ended()
        return int(self.db.value("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))

    def test_a_check_takes_the_build_checksums(self):
        job = self.job(JOB % "mig_sum")
        self.etl("migrate", job)
        # the checksums the build embeds are those the server recorded
        applied = {r["name"]: r["checksum"]
                   for r in self.db.rows("SELECT name, checksum FROM mig_sum.schema_migrations")}
        for f in sql_files():
            with open(os.path.join(SOURCE, "sql", f), "rb") as fh:
                self.assertEqual(applied[f], hashlib.md5(fh.read()).hexdigest(), f)
        # so a check sends no migration to the server to be hashed: one
        # statement each (the way before) would be a transaction each
        before = self.xacts()
        self.etl("check", job)
        spent = self.xacts() - before
        self.assertLess(spent, len(sql_files()), "check committed %d transactions" % spent)

    def test_edited_migration_is_refused(self):
        job = self.job(JOB % "mig_edit")
        self.etl("migrate", job)
        self.db.psql("UPDATE mig_edit.schema_migrations SET checksum = 'x' WHERE name LIKE '001%'")
        code, out, err = self.etl("migrate", job, expect=5)
        self.assertIn("was changed after it was applied", err)
        code, out, err = self.etl("run", job, expect=5)
        self.assertIn("was changed after it was applied", err)

    def test_newer_database_is_refused(self):
        job = self.job(JOB % "mig_new")
        self.etl("migrate", job)
        self.db.psql("INSERT INTO mig_new.schema_migrations (name, checksum) VALUES ('999_future.sql', 'x')")
        code, out, err = self.etl("migrate", job, expect=5)
        self.assertIn("999_future.sql", err)
        self.assertIn("newer intersect-etl", err)

    def test_migrate_from_options_and_quoted_schema(self):
        code, out, err = self.etl("migrate", "--database-url", self.db.url, "--schema", "Odd Schema")
        self.assertEqual(self.db.value('SELECT count(*) FROM "Odd Schema".schema_migrations'),
                         str(len(sql_files())))

    def old_views(self):
        """What each report view answers, as comparable rows."""
        q = {
            "latest": "SELECT * FROM legacy.domain_intersection_latest "
                      "ORDER BY target_set_id, referring_domain, target_key",
            "breakdown": "SELECT * FROM legacy.domain_intersection_breakdown "
                         "ORDER BY target_set_id, referring_domain, target_key, dimension, key",
            "changes": "SELECT job, target_set, target_set_id, snapshot_date, previous_snapshot_date, change,"
                       " referring_domain, intersections_count, min_rank, backlinks"
                       " FROM legacy.domain_intersection_changes"
                       " ORDER BY target_set_id, snapshot_date, change, referring_domain",
            "table": "SELECT * FROM legacy.domain_intersection "
                     "ORDER BY target_set_id, snapshot_date, referring_domain, target_key",
        }
        return {k: self.db.rows(v) for k, v in q.items()}

    def test_history_of_schema_004_migrates_without_loss(self):
        """Several nights loaded by the binary of schema 004 (reruns, a failed set, a
        definition change, a failed rerun of a complete date, retention): after the
        migration every view answers as before, but for what the migration fixes."""
        fixture = os.path.join(SOURCE, "tests", "data", "migrate", "v4_history.sql")
        pg = self.db.pg
        subprocess.run([os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-h", pg["PGHOST"], "-p", pg["PGPORT"], "-U", pg["PGUSER"], "-d", self.db.name,
                        "-f", fixture], check=True, capture_output=True)
        before = self.old_views()
        daily_before = self.db.rows(
            "SELECT target_set_id, snapshot_date, status, referring_domains, new_domains, lost_domains,"
            " avg_rank, total_backlinks, cost_usd, definition_changed"
            " FROM legacy.domain_intersection_daily ORDER BY 1, 2")
        self.assertGreater(len(before["table"]), 1000)
        job = self.job(FIXTURE_JOB)
        code, out, err = self.etl("migrate", job)
        self.assertIn("%d migrations applied" % (len(sql_files()) - 4), err)
        after = self.old_views()
        # run_id aside: 005 split equal values where the old loader's run_id
        # changed, and 010 joins such ranges, keeping the earliest part's run
        # (run_id is metadata, it does not split a range)
        def no_run(rows):
            return [{k: v for k, v in r.items() if k != "run_id"} for r in rows]
        self.assertEqual(no_run(after["table"]), no_run(before["table"]))
        self.assertEqual(no_run(after["latest"]), no_run(before["latest"]))
        self.assertNotEqual(after["table"], before["table"])
        self.assertEqual(after["breakdown"], before["breakdown"])
        # restart markers left changes for daily.restart; the new/lost rows are the same,
        # except where the fix below gives set 1 a snapshot on 2026-03-04 to compare with
        moved = {(1, "2026-03-04"), (1, "2026-03-05")}
        self.assertEqual([r for r in after["changes"] if (r["target_set_id"], r["snapshot_date"]) not in moved],
                         [r for r in before["changes"] if r["change"] != "restart"
                          and (r["target_set_id"], r["snapshot_date"]) not in moved])
        domains = {}
        for r in after["table"]:
            domains.setdefault((r["target_set_id"], r["snapshot_date"]), set()).add(r["referring_domain"])
        for key, prev in (((1, "2026-03-04"), "2026-03-03"), ((1, "2026-03-05"), "2026-03-04")):
            got = {(r["change"], r["referring_domain"]) for r in after["changes"]
                   if (r["target_set_id"], r["snapshot_date"]) == key}
            cur, old = domains[key], domains[(1, prev)]
            self.assertEqual(got, {("new", d) for d in cur - old} | {("lost", d) for d in old - cur})
            self.assertTrue(got)
        restarts = {(r["target_set_id"], r["snapshot_date"]) for r in before["changes"] if r["change"] == "restart"}
        daily_after = self.db.rows(
            "SELECT target_set_id, snapshot_date, status, distinct_domains AS referring_domains, new_domains,"
            " lost_domains, avg_rank, total_backlinks, cost_usd, definition_changed, restart, purged_at"
            " FROM legacy.domain_intersection_daily ORDER BY 1, 2")
        shown = [r for r in daily_after if r["purged_at"] is None]
        # dates retention had dropped are listed as purged (their rows were gone
        # before the migration, so their measures are unknown)
        purged = [r["snapshot_date"] for r in daily_after if r["purged_at"] is not None]
        self.assertEqual(sorted(set(purged)), ["2026-03-01", "2026-03-02"])
        self.assertEqual({(r["target_set_id"], r["snapshot_date"]) for r in shown if r["restart"]}, restarts)
        # the one deliberate difference: a failed rerun of 2026-03-04 no longer hides
        # the complete snapshot it never touched (before: 'failed', measures NULL)
        fixed = [r for r in daily_before if (r["target_set_id"], r["snapshot_date"]) == (1, "2026-03-04")]
        self.assertEqual(fixed[0]["status"], "failed")
        for r in shown:
            r.pop("restart"), r.pop("purged_at")
        want = [r for r in daily_before if (r["target_set_id"], r["snapshot_date"]) not in moved]
        got = [r for r in shown if (r["target_set_id"], r["snapshot_date"]) not in moved]
        self.assertEqual(got, want)
        now_complete = [r for r in shown if (r["target_set_id"], r["snapshot_date"]) == (1, "2026-03-04")][0]
        self.assertEqual(now_complete["status"], "complete")
        self.assertEqual(now_complete["referring_domains"], 255)
        # and the next night publishes on the migrated history
        self.fake.set_scenario("mig-a.com", total_count=266)
        self.fake.set_scenario("mig-d.com", total_count=85)
        self.etl("run", job, "--snapshot-date", "2026-03-06")
        d = self.db.rows("SELECT target_set, new_domains, lost_domains, changed_rows FROM legacy.domain_intersection_daily"
                         " WHERE snapshot_date = '2026-03-06' ORDER BY 1")
        self.assertEqual([(r["target_set"], r["new_domains"], r["lost_domains"]) for r in d],
                         [("one", 1, 0), ("two", 0, 0)])

    def test_unreachable_database_is_one_line_exit_1(self):
        job = self.job(JOB % "mig_x")
        code, out, err = self.etl("migrate", job, env=self.env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/x"),
                                  expect=1)
        self.assertIn("cannot connect to the database", err)
        self.assertEqual(err.count("\n"), 1, "one line: " + err)


if __name__ == "__main__":
    unittest.main()

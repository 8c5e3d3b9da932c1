"""`intersect-etl migrate` against a real server: idempotent, every table and
column in place, edited or unknown migrations refused, and `run` refusing a
schema that is not at the binary's version."""

import os
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
            "domain_intersection", "domain_intersection_pending", "etl_page", "etl_run",
            "etl_run_set", "raw_page", "schema_migrations", "target_set"])
        self.assertEqual(self.db.value("SELECT partstrat FROM pg_partitioned_table "
                                       "WHERE partrelid = 'mig_one.domain_intersection'::regclass"), "r")
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
        pk = self.db.value("""SELECT string_agg(a.attname, ',' ORDER BY k.ord)
            FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = 'mig_one.domain_intersection'::regclass AND i.indisprimary""")
        self.assertEqual(pk, "target_set_id,snapshot_date,referring_domain,target_key")
        applied = self.db.rows("SELECT name, checksum FROM mig_one.schema_migrations")
        self.assertEqual([a["name"] for a in applied], sql_files())

    def test_run_refuses_unmigrated_schema(self):
        job = self.job(JOB % "mig_none")
        code, out, err = self.etl("run", job, expect=5)
        self.assertIn("schema is not set up", err)
        self.assertIn("migrate", err)
        self.assertEqual(self.fake.requests, [])

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

    def test_unreachable_database_is_one_line_exit_1(self):
        job = self.job(JOB % "mig_x")
        code, out, err = self.etl("migrate", job, env=self.env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/x"),
                                  expect=1)
        self.assertIn("cannot connect to the database", err)
        self.assertEqual(err.count("\n"), 1, "one line: " + err)


if __name__ == "__main__":
    unittest.main()

"""sql/schema.sql is the schema a migrated database has: regenerated here
by scripts/schema-dump from this tree's binary (in a database of the
suite's cluster) and compared byte for byte, so it never drifts from the
migrations. On a difference the test prints the diff and how to refresh
the file."""

import difflib
import os
import subprocess
import tempfile
import unittest

from harness import BIN, PG_DIR, SOURCE


class SchemaTest(unittest.TestCase):

    def test_schema_sql_is_what_the_migrations_make(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "schema.sql")
            p = subprocess.run([os.path.join(SOURCE, "scripts", "schema-dump"), "--bin", BIN,
                                "--pg-dir", PG_DIR, "--out", out], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(out) as f:
                got = f.read()
        with open(os.path.join(SOURCE, "sql", "schema.sql")) as f:
            have = f.read()
        # not vacuous: the dump holds the tables, the views and their comments
        for want in ("CREATE TABLE dataforseo.domain_intersection_version",
                     "CREATE VIEW dataforseo.domain_intersection_latest",
                     "COMMENT ON VIEW dataforseo.domain_intersection_domains"):
            self.assertIn(want, got)
        if got != have:
            diff = "".join(difflib.unified_diff(have.splitlines(True), got.splitlines(True),
                                                "sql/schema.sql", "migrated", n=2))
            self.fail("sql/schema.sql differs from the schema the migrations make; run"
                      " scripts/schema-dump (after building) and commit it:\n" + diff[:20000])


if __name__ == "__main__":
    unittest.main()

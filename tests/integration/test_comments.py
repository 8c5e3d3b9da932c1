"""The migrated schema documents itself: every table, view and column (and
every function) has a non-empty COMMENT (sql/007_comments.sql), so a BI user
or a DBA reads the meaning, unit, grain and NULL semantics in psql's \\d+ or in
a BI tool's catalog browser. A migration that adds a relation or a column
without its comment fails here, naming what lacks one."""

import unittest

from harness import EtlTestCase

SCHEMA = "cmt"

JOB = """\
version: 1
job: comments-test
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}"}
database: {url: "${DATABASE_URL}", schema: %s}
target_sets:
  - {name: s, targets: [a.com]}
""" % SCHEMA

# Created by src/migrate.c, not by a migration; temporary tables live in
# pg_temp_* schemas and are never listed under the job's schema.
EXEMPT = ("schema_migrations",)

# Tables and views of the schema with their comment, then their columns.
RELATIONS = """
SELECT t.table_type AS kind, t.table_name AS name, NULL::text AS column_name,
       obj_description(format('%%I.%%I', t.table_schema, t.table_name)::regclass, 'pg_class') AS comment
FROM information_schema.tables t
WHERE t.table_schema = '%(schema)s' AND t.table_type IN ('BASE TABLE', 'VIEW')
  AND t.table_name NOT IN (%(exempt)s)
UNION ALL
SELECT t.table_type, c.table_name, c.column_name,
       col_description(format('%%I.%%I', c.table_schema, c.table_name)::regclass, c.ordinal_position)
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = '%(schema)s' AND t.table_type IN ('BASE TABLE', 'VIEW')
  AND c.table_name NOT IN (%(exempt)s)
"""

FUNCTIONS = """
SELECT 'FUNCTION' AS kind, p.oid::regprocedure::text AS name, NULL::text AS column_name,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = '%(schema)s'
"""


class CommentsTest(EtlTestCase):

    def catalog(self):
        args = {"schema": SCHEMA, "exempt": ", ".join("'%s'" % e for e in EXEMPT)}
        return self.db.rows(RELATIONS % args) + self.db.rows(FUNCTIONS % args)

    def test_every_table_view_column_and_function_has_a_comment(self):
        job = self.job(JOB)
        self.etl("migrate", job)
        objects = self.catalog()
        # Not vacuous: the schema is the versioned one, views and columns included.
        names = {o["name"] for o in objects}
        for want in ("domain_intersection_version", "domain_intersection_order", "etl_snapshot",
                     "domain_intersection_change", "domain_intersection", "domain_intersection_history",
                     "domain_intersection_latest", "etl_run_summary", "etl_page", "raw_page"):
            self.assertIn(want, names)
        self.assertGreater(sum(1 for o in objects if o["column_name"]), 200)
        self.assertTrue(any(o["kind"] == "FUNCTION" for o in objects))

        def label(o):
            what = {"BASE TABLE": "table", "VIEW": "view", "FUNCTION": "function"}[o["kind"]]
            if o["column_name"]:
                return "column %s.%s (%s)" % (o["name"], o["column_name"], what)
            return "%s %s" % (what, o["name"])

        missing = sorted(label(o) for o in objects if not (o["comment"] or "").strip())
        if missing:
            self.fail("%d objects without a comment:\n  %s" % (len(missing), "\n  ".join(missing)))


if __name__ == "__main__":
    unittest.main()

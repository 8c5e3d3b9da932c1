"""What a BI tool reads (sql/011_bi_reads.sql), as the BI role of
sql/bi_readonly.sql and as a third role that only has SELECT on the views,
both at the server's default settings (jit on, no planner toggle):

  - a past snapshot by date (domain_intersection_snapshot) equals what
    domain_intersection held on that date, read right after its night;
  - the per-domain grain (targets folded) and one domain's series over the
    dates, folded here from those snapshots;
  - the breakdown of a past date, expanded here from the snapshot's maps;
  - the target sets (targets, exclusions, filters, in use or retired) and
    per-set run outcomes;
  - `intersect-etl retire JOB SET`: the set leaves latest, stays in the
    history, and comes back when a job file names it again;
  - the schema toggles no planner setting, and the documented queries plan
    with no disabled node and below jit_above_cost as the third role.
"""

import json
import os
import subprocess
import unittest
import uuid

from harness import EtlTestCase

S = "dataforseo"

JOB = """\
version: 1
job: bi
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 4,
      requests_per_minute: 10000, max_attempts: 1}
database: {url: "${DATABASE_URL}", schema: dataforseo}
defaults: {limit: 100, max_rows: 1000}
target_sets:
%s
"""

ALPHA = "  - {name: alpha, targets: [alpha-a.com, alpha-b.com], exclude_targets: [alpha-x.com],\n" \
        "     filters: [[\"1.rank\", \">\", 10]]}"
BETA = "  - {name: beta, targets: [beta-a.com]}"

VIEWS = ["domain_intersection_latest", "domain_intersection_changes", "domain_intersection_daily",
         "domain_intersection_breakdown", "domain_intersection_history", "etl_run_summary",
         "domain_intersection", "domain_intersection_snapshot", "domain_intersection_snapshot_breakdown",
         "domain_intersection_domains", "domain_intersection_domain_series", "etl_target_set",
         "etl_run_set_summary", "domain_intersection_latest_domains"]

MAPS = [("tld", "referring_links_tld"), ("link_type", "referring_links_types"),
        ("attribute", "referring_links_attributes"), ("platform", "referring_links_platform_types"),
        ("semantic_location", "referring_links_semantic_locations"),
        ("country", "referring_links_countries")]

NIGHTS = [("2026-05-01", 30, 12), ("2026-05-02", 34, 12), ("2026-05-03", 26, 14)]


def documented_queries(d1):
    """The README's example queries (job bi, set alpha), d1 a past date."""
    return [
        "SELECT referring_domain, min_rank, backlinks, links_to_all_since FROM dataforseo.domain_intersection_domains"
        " WHERE job = 'bi' AND target_set = 'alpha' AND snapshot_date = '%s'"
        " ORDER BY backlinks DESC NULLS LAST, referring_domain LIMIT 20" % d1,
        "SELECT referring_domain, links_to_all_since::date AS links_to_all_since, min_rank, backlinks,"
        " snapshot_date FROM dataforseo.domain_intersection_latest_domains"
        " WHERE job = 'bi' AND target_set = 'alpha'"
        " ORDER BY links_to_all_since::date DESC, backlinks DESC LIMIT 20",
        "SELECT count(*) FROM dataforseo.domain_intersection_domains WHERE job = 'bi' AND target_set = 'alpha'"
        " AND snapshot_date = (SELECT max(snapshot_date) FROM dataforseo.domain_intersection_daily"
        " WHERE job = 'bi' AND target_set = 'alpha' AND status = 'complete' AND purged_at IS NULL)",
        "SELECT snapshot_date, target_set, change, referring_domain, min_rank, backlinks, previous_snapshot_date"
        " FROM dataforseo.domain_intersection_changes WHERE job = 'bi' AND snapshot_date > '%s'::date - 7"
        " ORDER BY snapshot_date DESC, target_set, change, backlinks DESC NULLS LAST" % d1,
        "SELECT snapshot_date, target_set, status, distinct_domains, new_domains, lost_domains, restart, short,"
        " cost_usd FROM dataforseo.domain_intersection_daily WHERE job = 'bi' AND purged_at IS NULL"
        " ORDER BY target_set, snapshot_date",
        "SELECT snapshot_date, min_rank, backlinks, target_keys FROM dataforseo.domain_intersection_domain_series"
        " WHERE job = 'bi' AND target_set = 'alpha' AND referring_domain = 'ref-0.alpha-a.com'"
        " AND snapshot_date > '%s'::date - 365 ORDER BY snapshot_date" % d1,
        "SELECT target, valid_from, coalesce(valid_to, current_date) AS held_until, rank, backlinks"
        " FROM dataforseo.domain_intersection_history WHERE job = 'bi' AND target_set = 'alpha'"
        " AND referring_domain = 'ref-0.alpha-a.com' ORDER BY target, valid_from",
        "SELECT key AS country, sum(links) AS links FROM dataforseo.domain_intersection_breakdown"
        " WHERE job = 'bi' AND target_set = 'alpha' AND dimension = 'country'"
        " GROUP BY key ORDER BY links DESC NULLS LAST, key LIMIT 10",
        "SELECT key AS country, sum(links) AS links FROM dataforseo.domain_intersection_snapshot_breakdown"
        " WHERE job = 'bi' AND target_set = 'alpha' AND snapshot_date = '%s' AND dimension = 'country'"
        " GROUP BY key ORDER BY links DESC NULLS LAST, key LIMIT 10" % d1,
        "SELECT snapshot_date, target_set, status, error, duration_seconds FROM dataforseo.etl_run_set_summary"
        " WHERE job = 'bi' AND snapshot_date > '%s'::date - 30 ORDER BY snapshot_date DESC, target_set" % d1,
        "SELECT target_set, targets, exclude_targets, filters, in_use FROM dataforseo.etl_target_set"
        " WHERE job = 'bi' ORDER BY target_set",
        "SELECT count(*) FROM dataforseo.domain_intersection_snapshot"
        " WHERE job = 'bi' AND target_set = 'alpha' AND snapshot_date = '%s'" % d1,
    ]


def fold(rows):
    """The per-domain grain of a snapshot's per-target rows, as the view folds them."""
    out = {}
    for r in rows:
        out.setdefault((r["snapshot_date"], r["referring_domain"]), []).append(r)

    def agg(f, vals):
        vals = [v for v in vals if v is not None]
        return f(vals) if vals else None
    res = {}
    for key, rs in out.items():
        res[key] = {"position": agg(min, [r["position"] for r in rs]), "target_keys": len(rs),
                    "intersections_count": agg(max, [r["intersections_count"] for r in rs]),
                    "min_rank": agg(min, [r["rank"] for r in rs]),
                    "backlinks": agg(sum, [r["backlinks"] for r in rs]),
                    "links_to_all_since": agg(max, [r["first_seen"] for r in rs]),
                    "max_spam_score": agg(max, [r["backlinks_spam_score"] for r in rs]),
                    "referring_pages": agg(sum, [r["referring_pages"] for r in rs]),
                    "run_id": agg(max, [r["run_id"] for r in rs])}
    return res


class BiTest(EtlTestCase):

    def night(self, date, alpha_total, beta_total, sets=(ALPHA, BETA), expect=0):
        self.fake.reset()
        self.fake.set_scenario("alpha-a.com", total_count=alpha_total)
        self.fake.set_scenario("beta-a.com", total_count=beta_total)
        path = self.job(JOB % "\n".join(sets), name="bi.yaml")
        self.etl("run", path, "--migrate", "--snapshot-date", date, expect=expect)
        return path

    def psql_as(self, role, sql):
        pg = self.db.pg
        cmd = [os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", "127.0.0.1", "-p", pg["PGPORT"], "-U", role, "-d", self.db.name, "-c", sql]
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PGTZ="UTC"))
        self.assertEqual(p.returncode, 0, "as %s: %s\n%s" % (role, sql, p.stderr))
        return p.stdout

    def rows_as(self, role, sql):
        return json.loads(self.psql_as(role, "SELECT coalesce(json_agg(q), '[]') FROM (%s) q" % sql))

    def make_roles(self):
        """The BI role of sql/bi_readonly.sql, and a third role with SELECT on the views only."""
        suffix = uuid.uuid4().hex[:8]
        bi, third = "bi_" + suffix, "third_" + suffix
        for r in (bi, third):
            self.addCleanup(self.db.admin, 'DROP ROLE IF EXISTS "%s"' % r)
        pg = self.db.pg
        p = subprocess.run([os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", pg["PGHOST"], "-p",
                            pg["PGPORT"], "-U", pg["PGUSER"], "-d", self.db.name, "-v", "schema=" + S,
                            "-v", "role=" + bi, "-f", os.path.join(os.environ["ETL_SOURCE_DIR"], "sql",
                                                                   "bi_readonly.sql")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.db.psql('CREATE ROLE "%s" LOGIN; GRANT USAGE ON SCHEMA %s TO "%s"; GRANT SELECT ON %s TO "%s"'
                     % (third, S, third, ", ".join("%s.%s" % (S, v) for v in VIEWS), third))
        # the third role runs at the server's defaults: jit on, nothing set for it
        self.assertEqual(self.psql_as(third, "SELECT current_setting('jit')").strip(), "on")
        return bi, third

    def build(self):
        """Three nights; each date's snapshot as domain_intersection held it that night."""
        held = {}
        for date, a, b in NIGHTS:
            self.night(date, a, b)
            held[date] = self.db.rows(
                "SELECT d.*, t.job, t.name AS target_set FROM %s.domain_intersection d"
                " JOIN %s.target_set t USING (target_set_id) WHERE d.snapshot_date = '%s'"
                " ORDER BY d.target_set_id, d.referring_domain, d.target_key" % (S, S, date))
            self.assertGreater(len(held[date]), 20)
        return held

    def test_bi_reads_as_the_bi_role_and_a_third_role(self):
        held = self.build()
        roles = self.make_roles()
        order = "target_set_id, referring_domain, target_key"
        for role in roles:
            for date, want in held.items():
                with self.subTest(role=role, date=date, what="snapshot"):
                    got = self.rows_as(role, "SELECT * FROM %s.domain_intersection_snapshot"
                                             " WHERE snapshot_date = '%s' ORDER BY %s" % (S, date, order))
                    self.assertEqual(got, want)
                with self.subTest(role=role, date=date, what="domains"):
                    got = self.rows_as(role, "SELECT * FROM %s.domain_intersection_domains WHERE job = 'bi'"
                                             " AND target_set = 'alpha' AND snapshot_date = '%s'" % (S, date))
                    alpha = [r for r in want if r["target_set"] == "alpha"]
                    folded = fold(alpha)
                    self.assertEqual(len(got), len(folded))
                    # the grain to count domains in: one row per referring domain
                    self.assertEqual(len(got), len({r["referring_domain"] for r in alpha}))
                    self.assertLess(len(got), len(alpha))
                    for g in got:
                        f = folded[(g["snapshot_date"], g["referring_domain"])]
                        self.assertEqual({k: g[k] for k in f}, f, g["referring_domain"])
                        self.assertEqual((g["job"], g["target_set"]), ("bi", "alpha"))
                if date == NIGHTS[-1][0]:
                    with self.subTest(role=role, what="latest domains"):
                        # the latest date's rows of domains, every set
                        got = self.rows_as(role, "SELECT * FROM %s.domain_intersection_latest_domains"
                                                 " WHERE job = 'bi' ORDER BY target_set, referring_domain" % S)
                        exp = self.rows_as(role, "SELECT * FROM %s.domain_intersection_domains WHERE job = 'bi'"
                                                 " AND snapshot_date = '%s' ORDER BY target_set, referring_domain"
                                           % (S, date))
                        self.assertGreater(len(exp), 20)
                        self.assertEqual(got, exp)
                with self.subTest(role=role, date=date, what="breakdown"):
                    got = self.rows_as(role, "SELECT referring_domain, target_key, dimension, key, links"
                                             " FROM %s.domain_intersection_snapshot_breakdown WHERE job = 'bi'"
                                             " AND target_set = 'alpha' AND snapshot_date = '%s'" % (S, date))
                    exp = []
                    for r in want:
                        if r["target_set"] != "alpha":
                            continue
                        for dim, col in MAPS:
                            for k, v in (r[col] or {}).items():
                                exp.append([r["referring_domain"], r["target_key"], dim, k,
                                            v if isinstance(v, int) else None])
                    self.assertGreater(len(exp), 0)
                    self.assertEqual(sorted([g["referring_domain"], g["target_key"], g["dimension"], g["key"],
                                             g["links"]] for g in got), sorted(exp))
            with self.subTest(role=role, what="series"):
                # a domain every night has, and one that only some nights have
                per_night = [{r["referring_domain"] for r in want if r["target_set"] == "alpha"}
                             for want in held.values()]
                dom = min(set.intersection(*per_night))
                got = self.rows_as(role, "SELECT * FROM %s.domain_intersection_domain_series WHERE job = 'bi'"
                                         " AND target_set = 'alpha' AND referring_domain = '%s'"
                                         " ORDER BY snapshot_date" % (S, dom))
                exp = []
                for date, want in held.items():
                    f = fold([r for r in want if r["target_set"] == "alpha" and r["referring_domain"] == dom])
                    for (d, _), v in f.items():
                        v = dict(v)
                        del v["position"]
                        exp.append(dict(v, job="bi", target_set="alpha", referring_domain=dom,
                                        snapshot_date=d, target_set_id=want[0]["target_set_id"]))
                self.assertEqual(len(exp), 3)
                self.assertEqual(got, exp)
            with self.subTest(role=role, what="target sets"):
                got = self.rows_as(role, "SELECT job, target_set, targets, exclude_targets, filters, in_use,"
                                         " retired_at FROM %s.etl_target_set ORDER BY target_set" % S)
                self.assertEqual(got, [
                    {"job": "bi", "target_set": "alpha", "targets": ["alpha-a.com", "alpha-b.com"],
                     "exclude_targets": ["alpha-x.com"], "filters": [["1.rank", ">", 10]], "in_use": True,
                     "retired_at": None},
                    {"job": "bi", "target_set": "beta", "targets": ["beta-a.com"], "exclude_targets": [],
                     "filters": None, "in_use": True, "retired_at": None}])
            with self.subTest(role=role, what="run outcomes"):
                got = self.rows_as(role, "SELECT run_id, target_set, snapshot_date, status, rows, error"
                                         " FROM %s.etl_run_set_summary ORDER BY run_id, target_set" % S)
                exp = self.db.rows("SELECT rs.run_id, t.name AS target_set, r.snapshot_date, rs.status, rs.rows,"
                                   " rs.error FROM %s.etl_run_set rs JOIN %s.etl_run r USING (run_id)"
                                   " JOIN %s.target_set t USING (target_set_id) ORDER BY 1, 2" % (S, S, S))
                self.assertEqual(len(got), 6)
                self.assertEqual(got, exp)
                self.assertEqual({g["status"] for g in got}, {"complete"})
            with self.subTest(role=role, what="documented queries"):
                for q in documented_queries(NIGHTS[0][0]):
                    self.rows_as(role, q)

    def test_retire_takes_a_set_out_of_latest_and_a_run_brings_it_back(self):
        self.night("2026-05-01", 30, 12)
        only_alpha = self.job(JOB % ALPHA, name="bi-alpha.yaml")
        # still in the job file: refused, nothing changed
        code, _, err = self.etl("retire", self.job(JOB % "\n".join((ALPHA, BETA)), name="bi-both.yaml"), "beta",
                                expect=2)
        self.assertIn("still in the job file", err)
        code, _, err = self.etl("retire", only_alpha, "gamma", expect=1)
        self.assertIn("job bi has no target set gamma", err)
        self.etl("retire", only_alpha, "Not A Set", expect=2)
        self.etl("retire", only_alpha, expect=2)
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.target_set WHERE retired_at IS NOT NULL" % S), "0")

        def latest_sets():
            return self.db.value("SELECT string_agg(DISTINCT target_set, ',' ORDER BY target_set)"
                                 " FROM %s.domain_intersection_latest" % S)
        self.assertEqual(latest_sets(), "alpha,beta")
        _, _, err = self.etl("retire", only_alpha, "beta")
        self.assertIn("target set beta: retired", err)
        self.assertEqual(latest_sets(), "alpha")
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.domain_intersection_breakdown"
                                       " WHERE target_set = 'beta'" % S), "0")
        when = self.db.value("SELECT retired_at FROM %s.target_set WHERE name = 'beta'" % S)
        _, _, err = self.etl("retire", only_alpha, "beta")
        self.assertIn("already retired", err)
        self.assertEqual(self.db.value("SELECT retired_at FROM %s.target_set WHERE name = 'beta'" % S), when)
        self.assertEqual(self.db.value("SELECT string_agg(target_set || ':' || in_use, ',' ORDER BY target_set)"
                                       " FROM %s.etl_target_set" % S), "alpha:true,beta:false")
        # its snapshots and history stay readable
        self.assertEqual(self.db.value("SELECT count(*) > 0 FROM %s.domain_intersection_snapshot"
                                       " WHERE target_set = 'beta' AND snapshot_date = '2026-05-01'" % S), "t")
        self.assertEqual(self.db.value("SELECT count(*) > 0 FROM %s.domain_intersection_history"
                                       " WHERE target_set = 'beta'" % S), "t")
        # a night of the job without it leaves it out; one that names it again brings it back
        self.night("2026-05-02", 30, 12, sets=(ALPHA,))
        self.assertEqual(latest_sets(), "alpha")
        self.night("2026-05-03", 30, 12)
        self.assertEqual(latest_sets(), "alpha,beta")
        self.assertEqual(self.db.value("SELECT retired_at IS NULL FROM %s.target_set WHERE name = 'beta'" % S), "t")

    def test_no_planner_toggle_and_documented_queries_plan_below_jit(self):
        self.build()
        _, third = self.make_roles()
        toggled = self.db.rows(
            "SELECT p.oid::regprocedure::text AS f, p.proconfig FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = '%s' AND array_to_string(p.proconfig, ',') ~* 'enable_'" % S)
        self.assertEqual(toggled, [])
        views = self.db.rows("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                             " WHERE n.nspname = '%s' AND c.relkind = 'v'"
                             " AND pg_get_viewdef(c.oid) ~* 'enable_'" % S)
        self.assertEqual(views, [])
        limit = float(self.psql_as(third, "SHOW jit_above_cost").strip())
        self.assertEqual(limit, 100000)
        for q in documented_queries(NIGHTS[0][0]):
            with self.subTest(query=q):
                plan = json.loads(self.psql_as(third, "EXPLAIN (FORMAT JSON) " + q))[0]["Plan"]
                self.assertLess(plan["Total Cost"], limit)
                # a disabled node costs 1e10 (PostgreSQL < 17); 16+ also names it
                self.assertNotIn("Disabled", json.dumps(plan))


if __name__ == "__main__":
    unittest.main()

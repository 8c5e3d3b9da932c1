"""The report views of sql/006_history_views.sql and the BI role of sql/bi_readonly.sql.

A multi-night history is built through the fake API with the real binary:
referring domains appear, disappear and reappear (total_count per night: the
fake's items are a pure function of the request and the index), one set fails
on one night, fails and is then completed by a rerun on another, a complete
night is rerun and fails, and a set's targets are edited between nights. The
exact contents of every view are then computed here, independently, from
what the fake served, and compared row by row. Then the locks each view's
query takes are counted as nights accumulate (they must not grow), and a role
made by sql/bi_readonly.sql logs in and can read the report views and nothing
else.
"""

import decimal
import json
import os
import subprocess
import unittest
import uuid
from datetime import datetime

from harness import EtlTestCase, MAP_FIELDS, SOURCE, TIME_FIELDS, api_time_to_json, expected_rows
import fakeapi  # noqa: E402  (harness put tests/fake_api on the path)

S = "dataforseo"

JOB = """\
version: 1
job: %(job)s
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 4,
      requests_per_minute: 10000, max_attempts: 1}
database: {url: "${DATABASE_URL}", schema: dataforseo}
defaults: {limit: %(limit)d, max_rows: 1000}
target_sets:
%(sets)s
"""

ALPHA = ["alpha-a.com", "alpha-b.com"]
BETA_OLD = ["beta-a.com", "beta-b.com", "beta-c.com"]
BETA_NEW = ["beta-a.com", "beta-b.com", "beta-d.com"]   # edited on the third night

DIMENSIONS = [("tld", "referring_links_tld"), ("link_type", "referring_links_types"),
              ("attribute", "referring_links_attributes"),
              ("platform", "referring_links_platform_types"),
              ("semantic_location", "referring_links_semantic_locations"),
              ("country", "referring_links_countries")]


def fail500(offset):
    return [{"kind": "http500", "offset": offset, "times": -1}]


def set_lines(sets):
    return "\n".join("  - {name: %s, targets: [%s]}" % (n, ", ".join(t)) for n, t in sets)


def good_pages(requests, first_target):
    """The pages the fake served successfully for one set."""
    return [r for r in requests if r.get("served") and r["first_target"] == first_target]


def served_cost(requests, first_target):
    return sum(fakeapi.cost_for(len(r["items"])) for r in good_pages(requests, first_target))


def served_rows(requests, first_target):
    return sum(len(i["domain_intersection"]) for r in good_pages(requests, first_target) for i in r["items"])


def per_domain(rows):
    """referring_domain -> (intersections_count, min rank, summed backlinks), as SQL aggregates do."""
    out = {}
    for r in rows.values():
        out.setdefault(r["referring_domain"], []).append(r)
    agg = {}
    for dom, rs in out.items():
        ic = [r["intersections_count"] for r in rs if r["intersections_count"] is not None]
        ranks = [r["rank"] for r in rs if r["rank"] is not None]
        bl = [r["backlinks"] for r in rs if r["backlinks"] is not None]
        agg[dom] = (max(ic) if ic else None, min(ranks) if ranks else None, sum(bl) if bl else None)
    return agg


def sql_round2(num, den):
    """PostgreSQL's round(numeric, 2): half away from zero."""
    q = decimal.Decimal(num) / decimal.Decimal(den)
    return float(q.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))


class ViewsTest(EtlTestCase):

    def night(self, date, sets, scenarios, expect=0, job="views", limit=100):
        """One `run --snapshot-date` with fresh scenarios; returns what the fake saw."""
        self.fake.reset()
        for first, total, faults in scenarios:
            self.fake.set_scenario(first, total_count=total, faults=faults or [])
        path = self.job(JOB % {"job": job, "limit": limit, "sets": set_lines(sets)}, name=job + ".yaml")
        self.etl("run", path, "--migrate", "--snapshot-date", date, expect=expect)
        return self.fake.requests

    def view(self, name, order):
        return self.db.rows("SELECT * FROM %s.%s ORDER BY %s" % (S, name, order))

    # ------------------------------------------------------------------ history

    def test_history_views_exact(self):
        alpha, beta_old, beta_new = ("alpha", ALPHA), ("beta", BETA_OLD), ("beta", BETA_NEW)
        # model: (set, date) -> {"runs": [requests of each run of that date],
        #        "answer": requests of its latest run if that completed the set, else None,
        #        "defn": the definition (version) that run fetched}
        model, runs = {}, []

        def record(date, reqs, outcome, run_key):
            """outcome: set name -> (first target, targets, definition, complete?)."""
            runs.append((run_key, reqs, outcome))
            for name, (first, targets, defn, ok) in outcome.items():
                m = model.setdefault((name, date), {"runs": [], "answer": None, "first": first,
                                                    "targets": targets, "defn": defn})
                m["runs"].append(reqs)
                # a failed rerun never hides a complete snapshot of its date
                if ok or m["answer"] is None:
                    m["answer"], m["targets"], m["defn"] = (reqs if ok else None), targets, defn

        # Night 1: both sets complete.
        r = self.night("2026-01-01", [alpha, beta_old],
                       [("alpha-a.com", 300, None), ("beta-a.com", 200, None)])
        record("2026-01-01", r, {"alpha": ("alpha-a.com", ALPHA, 1, True),
                                 "beta": ("beta-a.com", BETA_OLD, 1, True)}, 1)
        # Night 2: alpha's items 250..299 disappear.
        r = self.night("2026-01-02", [alpha, beta_old],
                       [("alpha-a.com", 250, None), ("beta-a.com", 200, None)])
        record("2026-01-02", r, {"alpha": ("alpha-a.com", ALPHA, 1, True),
                                 "beta": ("beta-a.com", BETA_OLD, 1, True)}, 2)
        # Night 3: they reappear, and 300..319 are new; beta's targets are edited.
        r = self.night("2026-01-03", [alpha, beta_new],
                       [("alpha-a.com", 320, None), ("beta-a.com", 180, None)])
        record("2026-01-03", r, {"alpha": ("alpha-a.com", ALPHA, 1, True),
                                 "beta": ("beta-a.com", BETA_NEW, 2, True)}, 3)
        # Night 4: alpha fails (one page never answers); beta loses 150..179.
        r = self.night("2026-01-04", [alpha, beta_new],
                       [("alpha-a.com", 320, fail500(100)), ("beta-a.com", 150, None)], expect=3)
        record("2026-01-04", r, {"alpha": ("alpha-a.com", ALPHA, 1, False),
                                 "beta": ("beta-a.com", BETA_NEW, 2, True)}, 4)
        # Night 5: alpha fails, then the rerun continues the run and completes it.
        r1 = self.night("2026-01-05", [alpha, beta_new],
                        [("alpha-a.com", 280, fail500(100)), ("beta-a.com", 150, None)], expect=3)
        r2 = self.night("2026-01-05", [alpha, beta_new],
                        [("alpha-a.com", 280, None), ("beta-a.com", 150, None)])
        record("2026-01-05", r1 + r2, {"alpha": ("alpha-a.com", ALPHA, 1, True),
                                       "beta": ("beta-a.com", BETA_NEW, 2, True)}, 5)
        # Night 6: complete; then a rerun of the same date fails alpha. Its
        # published snapshot stays: the failed rerun never touched it.
        r = self.night("2026-01-06", [alpha, beta_new],
                       [("alpha-a.com", 280, None), ("beta-a.com", 150, None)])
        record("2026-01-06", r, {"alpha": ("alpha-a.com", ALPHA, 1, True),
                                 "beta": ("beta-a.com", BETA_NEW, 2, True)}, 6)
        r = self.night("2026-01-06", [alpha, beta_new],
                       [("alpha-a.com", 280, fail500(200)), ("beta-a.com", 150, None)], expect=3)
        record("2026-01-06", r, {"alpha": ("alpha-a.com", ALPHA, 1, False),
                                 "beta": ("beta-a.com", BETA_NEW, 2, True)}, 7)

        ids = {t["name"]: t["target_set_id"] for t in self.db.rows("SELECT * FROM %s.target_set" % S)}
        for m in model.values():
            if m["answer"] is not None:
                m["rows"] = expected_rows(m["answer"], m["first"], m["targets"])
        # The published rows are exactly the model's answers (run_id comes from the table).
        table = {}
        for d in self.db.rows("SELECT t.name, d.* FROM %s.domain_intersection d JOIN %s.target_set t "
                              "USING (target_set_id)" % (S, S)):
            table.setdefault((d["name"], d["snapshot_date"]), {})[(d["referring_domain"], d["target_key"])] = d
        for key, m in model.items():
            if m["answer"] is not None:
                self.assertEqual(sorted(table[key]), sorted(m["rows"]), key)
        first6 = expected_rows(runs[5][1], "alpha-a.com", ALPHA)
        self.assertEqual(sorted(table[("alpha", "2026-01-06")]), sorted(first6))
        # (A failed set leaves its loaded pages staged, for a continued run:
        # the views below must never show them.)

        complete = {k: m for k, m in model.items() if m["answer"] is not None}
        self.check_latest(complete, table, ids)
        changes = self.check_changes(complete, ids)
        self.check_daily(model, changes, ids)
        self.check_breakdown(complete, ids)
        self.check_run_summary(runs)
        self.check_purged(ids)

    def expected_latest(self, complete):
        latest = {}
        for (name, date), m in sorted(complete.items()):
            latest[name] = (date, m)
        return latest

    def check_latest(self, complete, table, ids):
        latest = self.expected_latest(complete)
        self.assertEqual({n: d for n, (d, m) in latest.items()}, {"alpha": "2026-01-06", "beta": "2026-01-06"})
        got = self.view("domain_intersection_latest", "target_set, referring_domain, target_key")
        want = []
        for name, (date, m) in sorted(latest.items()):
            for k, row in m["rows"].items():
                w = {"job": "views", "target_set": name, "target_set_id": ids[name], "snapshot_date": date,
                     "extra": None, "run_id": table[(name, date)][k]["run_id"]}
                for f, v in row.items():
                    w[f] = api_time_to_json(v) if f in TIME_FIELDS else v
                want.append(w)
        want.sort(key=lambda w: (w["target_set"], w["referring_domain"], w["target_key"]))
        self.assertEqual(len(got), len(want))
        self.assertEqual([list(g) for g in got[:1]], [[
            "job", "target_set", "target_set_id", "snapshot_date", "referring_domain", "target_key", "target",
            "position", "intersections_count", "type", "rank", "backlinks", "first_seen", "lost_date",
            "backlinks_spam_score", "broken_backlinks", "broken_pages", "referring_domains",
            "referring_domains_nofollow", "referring_main_domains", "referring_main_domains_nofollow",
            "referring_ips", "referring_subnets", "referring_pages", "referring_pages_nofollow"]
            + MAP_FIELDS + ["extra", "run_id"]])
        # ORDER BY referring_domain sorts by the database's collation; compare by key instead.
        got_by = {(g["target_set"], g["referring_domain"], g["target_key"]): g for g in got}
        for w in want:
            self.assertEqual(got_by[(w["target_set"], w["referring_domain"], w["target_key"])], w)
        self.assertEqual(len({g["referring_domain"] for g in got if g["target_set"] == "alpha"}), 280)

    def check_changes(self, complete, ids):
        want = []
        counts = {}
        for name in ("alpha", "beta"):
            dates = sorted(d for (n, d) in complete if n == name)
            prev = None
            for date in dates:
                m = complete[(name, date)]
                base = {"job": "views", "target_set": name, "target_set_id": ids[name], "snapshot_date": date,
                        "previous_snapshot_date": prev}
                if prev is None or complete[(name, prev)]["defn"] != m["defn"]:
                    counts[(name, date)] = None
                else:
                    cur, old = per_domain(m["rows"]), per_domain(complete[(name, prev)]["rows"])
                    for change, side, other in (("new", cur, old), ("lost", old, cur)):
                        for dom in side.keys() - other.keys():
                            ic, rank, bl = side[dom]
                            want.append(dict(base, change=change, referring_domain=dom, intersections_count=ic,
                                             min_rank=rank, backlinks=bl))
                    counts[(name, date)] = (len(cur.keys() - old.keys()), len(old.keys() - cur.keys()))
                prev = date
        key = lambda r: (r["target_set"], r["snapshot_date"], r["change"], r["referring_domain"] or "")
        full = self.view("domain_intersection_changes", "1")
        # the incremental cursor of each row is its snapshot's publish
        # (and its sync number, since sql/010)
        pub = {(d["target_set"], d["snapshot_date"]): (d["published_at"], d["run_id"], d["sync_seq"])
               for d in self.view("domain_intersection_daily", "1")}
        for r in full:
            self.assertEqual((r.pop("published_at"), r.pop("run_id"), r.pop("sync_seq")),
                             pub[(r["target_set"], r["snapshot_date"])])
            self.assertIsNone(r.pop("purged_at"))
        got = sorted(full, key=key)
        want.sort(key=key)
        self.assertEqual(got, want)
        # The story told by the history above, in numbers.
        self.assertEqual(counts, {
            ("alpha", "2026-01-01"): None, ("alpha", "2026-01-02"): (0, 50), ("alpha", "2026-01-03"): (70, 0),
            ("alpha", "2026-01-05"): (0, 40), ("alpha", "2026-01-06"): (0, 0),
            ("beta", "2026-01-01"): None, ("beta", "2026-01-02"): (0, 0), ("beta", "2026-01-03"): None,
            ("beta", "2026-01-04"): (0, 30), ("beta", "2026-01-05"): (0, 0), ("beta", "2026-01-06"): (0, 0)})
        # Restarts are rows of daily, not of changes; since sql/010 a restart
        # after a definition change names no previous snapshot (it is compared
        # with none), and definition_changed says why.
        restarts = [(r["target_set"], r["snapshot_date"], r["previous_snapshot_date"], r["definition_changed"])
                    for r in self.view("domain_intersection_daily", "1") if r["restart"]]
        self.assertEqual(sorted(restarts), [("alpha", "2026-01-01", None, False), ("beta", "2026-01-01", None, False),
                                            ("beta", "2026-01-03", None, True)])
        return counts

    def check_daily(self, model, counts, ids):
        want = []
        for (name, date), m in sorted(model.items()):
            ok = m["answer"] is not None
            # previous complete snapshot before this date, for definition_changed
            prev = [k for k in sorted(model) if k[0] == name and k[1] < date and model[k]["answer"] is not None]
            prev_defn = model[prev[-1]]["defn"] if prev else None
            row = {"job": "views", "target_set": name, "target_set_id": ids[name], "snapshot_date": date,
                   "status": "complete" if ok else "failed",
                   "distinct_domains": None, "new_domains": None, "lost_domains": None,
                   "avg_rank": None, "total_backlinks": None,
                   "cost_usd": round(sum(served_cost(reqs, m["first"]) for reqs in m["runs"]), 6),
                   "definition_changed": prev_defn is not None and prev_defn != m["defn"]}
            if ok:
                rows = m["rows"].values()
                ranks = [r["rank"] for r in rows if r["rank"] is not None]
                row["distinct_domains"] = len({r["referring_domain"] for r in rows})
                if counts[(name, date)] is not None:
                    row["new_domains"], row["lost_domains"] = counts[(name, date)]
                row["avg_rank"] = sql_round2(sum(ranks), len(ranks))
                row["total_backlinks"] = sum(r["backlinks"] for r in rows if r["backlinks"] is not None)
            want.append(row)
        full = self.view("domain_intersection_daily", "target_set, snapshot_date")
        got = [{k: g[k] for k in want[0]} for g in full]
        for g in got:
            g["cost_usd"] = round(g["cost_usd"], 6)
        self.assertEqual(got, want)
        by = {(g["target_set"], g["snapshot_date"]): g for g in full}
        self.assertEqual(by[("alpha", "2026-01-04")]["status"], "failed")
        self.assertEqual(by[("alpha", "2026-01-05")]["status"], "complete")
        # the failed rerun of 01-06 is on record, its published snapshot kept
        self.assertEqual(by[("alpha", "2026-01-06")]["status"], "complete")
        self.assertIn("HTTP 500", by[("alpha", "2026-01-06")]["last_error"])
        self.assertNotEqual(by[("alpha", "2026-01-06")]["last_run_id"], by[("alpha", "2026-01-06")]["run_id"])
        for g in full:
            if g["status"] == "complete":
                self.assertEqual(g["rows"], len(model[(g["target_set"], g["snapshot_date"])]["rows"]))
                self.assertEqual(g["expected_domains"], g["distinct_domains"])
                self.assertFalse(g["short"])
                self.assertIsNotNone(g["published_at"])
        self.assertTrue(by[("beta", "2026-01-03")]["definition_changed"])
        self.assertEqual(sum(g["definition_changed"] for g in got), 1)

    def check_breakdown(self, complete, ids):
        latest = self.expected_latest(complete)
        want = []
        for name, (date, m) in latest.items():
            for row in m["rows"].values():
                for dim, field in DIMENSIONS:
                    for key, links in (row[field] or {}).items():
                        want.append(("views", name, ids[name], date, row["referring_domain"], row["target_key"],
                                     row["target"], dim, key, links))
        got = [tuple(r.values()) for r in self.db.rows("SELECT * FROM %s.domain_intersection_breakdown" % S)]
        self.assertEqual(sorted(got), sorted(want))
        self.assertIn("", {w[8] for w in want if w[7] == "country"})  # "" is a key the API returns

    def check_run_summary(self, runs):
        got = self.view("etl_run_summary", "run_id")
        table = {r["run_id"]: r for r in self.db.rows("SELECT * FROM %s.etl_run" % S)}
        # Run 5 was continued by the rerun: one run, the requests of both invocations.
        merged = {}
        for key, reqs, outcome in runs:
            # night 5 ran twice (recorded as one), every other night once
            m = merged.setdefault(key, {"reqs": [], "outcome": outcome, "invocations": 2 if key == 5 else 1})
            m["reqs"] += reqs
        self.assertEqual(len(got), len(merged))
        # each invocation is an attempt (sql/012); duration is their working time
        att = {r["run_id"]: r for r in self.db.rows(
            "SELECT run_id, count(*) AS n, sum(extract(epoch FROM finished_at - started_at))::float8 AS secs,"
            " string_agg(status, ', ' ORDER BY attempt) AS st,"
            " (array_agg(error ORDER BY attempt DESC) FILTER (WHERE status <> 'succeeded'))[1] AS lf"
            " FROM %s.etl_run_attempt GROUP BY run_id" % S)}
        want = []
        for (key, m), g in zip(sorted(merged.items()), got):
            firsts = [o[0] for o in m["outcome"].values()]
            failed = sum(1 for o in m["outcome"].values() if not o[3])
            t = table[g["run_id"]]
            a = att[g["run_id"]]
            self.assertEqual(a["n"], m["invocations"])
            secs = a["secs"]
            self.assertLessEqual(secs, (datetime.fromisoformat(t["finished_at"])
                                        - datetime.fromisoformat(t["started_at"])).total_seconds() + 1e-6)
            failed_pages = sum(1 for r in m["reqs"] if r["fault"]) if failed else 0
            want.append({
                "run_id": g["run_id"], "job": "views", "snapshot_date": t["snapshot_date"],
                "status": "partial" if failed else "succeeded",
                "started_at": t["started_at"], "finished_at": t["finished_at"],
                "duration_seconds": round(secs, 6),
                "pages": sum(len(good_pages(m["reqs"], f)) for f in firsts),
                "failed_pages": failed_pages,
                "rows": sum(served_rows(m["reqs"], f) for f in firsts),
                "sets_complete": len(firsts) - failed, "sets_failed": failed,
                "cost_usd": round(sum(served_cost(m["reqs"], f) for f in firsts), 6),
                "error": t["error"], "replay_of": None, "attempts": m["invocations"],
                "attempt_statuses": a["st"], "last_failure": a["lf"]})
        for g in got:
            g["duration_seconds"] = round(g["duration_seconds"], 6)
            g["cost_usd"] = round(g["cost_usd"], 6)
        self.assertEqual(got, want)
        self.assertEqual([g["snapshot_date"] for g in got], ["2026-01-0%d" % d for d in (1, 2, 3, 4, 5, 6, 6)])
        self.assertEqual([g["failed_pages"] for g in got], [0, 0, 0, 1, 0, 0, 1])
        self.assertTrue(all(g["error"] for g in got if g["status"] == "partial"))
        # the failure of night 5's first attempt is on record, as are both attempts' times
        self.assertEqual((got[4]["status"], got[4]["attempt_statuses"], got[4]["last_failure"]),
                         ("succeeded", "partial, succeeded", "1 of 2 target sets failed"))

    def check_purged(self, ids):
        """Retention purges a date: gone from latest, history and the old table's view,
        listed as purged in daily; the comparisons made with it stay facts of their night."""
        before = self.view("domain_intersection_changes", "1")
        self.db.psql("SELECT %s.purge_snapshots(target_set_id, '2026-01-02') FROM %s.target_set" % (S, S))
        self.assertEqual(self.db.value("SELECT min(snapshot_date) FROM %s.domain_intersection" % S), "2026-01-02")
        purged = [(r["target_set"], r["snapshot_date"]) for r in self.view("domain_intersection_daily", "1")
                  if r["purged_at"] is not None]
        self.assertEqual(sorted(purged), [("alpha", "2026-01-01"), ("beta", "2026-01-01")])
        # The view is ordered by its first column only; compare as multisets.
        # The purged dates' comparisons stay; the oldest kept date (01-02) has
        # nothing to compare with any more (sql/010): its rows go.
        def facts(rows):
            kept = [{k: v for k, v in r.items() if k not in ("purged_at", "sync_seq")} for r in rows]
            return sorted(kept, key=lambda r: sorted((k, str(v)) for k, v in r.items()))
        self.assertEqual(facts(self.view("domain_intersection_changes", "1")),
                         facts([r for r in before if r["snapshot_date"] != "2026-01-02"]))
        self.assertTrue(any(r["snapshot_date"] == "2026-01-02" for r in before))
        self.assertEqual([(r["target_set"], r["restart"], r["previous_snapshot_date"]) for r in
                          self.view("domain_intersection_daily", "target_set")
                          if r["snapshot_date"] == "2026-01-02"],
                         [("alpha", True, None), ("beta", True, None)])
        self.assertEqual(self.db.value("SELECT min(valid_from) FROM %s.domain_intersection_history" % S),
                         "2026-01-02")

    # ------------------------------------------------------------------ pruning

    def test_views_take_as_many_locks_after_12_nights_as_after_4(self):
        """With one partition per night every query planned and locked one
        relation per night kept; the versioned history reads fixed tables."""
        dates = ["2026-02-%02d" % d for d in range(1, 13)]
        sets = [("p1", ["p1-a.com", "p1-b.com"]), ("p2", ["p2-a.com"])]
        queries = [
            "SELECT * FROM %s.domain_intersection_latest WHERE target_set = 'p1'" % S,
            "SELECT * FROM %s.domain_intersection_changes WHERE target_set = 'p1' "
            "AND snapshot_date >= '2026-02-06'" % S,
            "SELECT * FROM %s.domain_intersection_daily WHERE job = 'prune'" % S,
            "SELECT * FROM %s.domain_intersection_breakdown WHERE target_set = 'p2'" % S,
            "SELECT * FROM %s.domain_intersection_history WHERE target_set = 'p1' "
            "AND referring_domain = (SELECT min(referring_domain) FROM %s.domain_intersection_latest)" % (S, S),
            "SELECT * FROM %s.domain_intersection WHERE snapshot_date = '2026-02-03'" % S,
        ]

        def locks(query):
            out = self.db.psql("BEGIN; %s; SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid(); COMMIT"
                               % query)
            return int(out.strip().splitlines()[-1])

        seen = {}
        for i, date in enumerate(dates):
            fails = date == "2026-02-08"
            self.night(date, sets, [("p1-a.com", 30 + i, fail500(10) if fails else None), ("p2-a.com", 20, None)],
                       job="prune", limit=10, expect=3 if fails else 0)
            if i in (3, 11):
                seen[i] = [locks(q) for q in queries]
        self.assertEqual(seen[3], seen[11])
        self.assertTrue(all(n <= 50 for n in seen[11]), seen[11])
        # and the answer is right: 02-09 has items 36 and 37 that 02-07 lacked (02-08 failed)
        got = self.db.rows("SELECT change, previous_snapshot_date AS prev, count(*) AS n "
                           "FROM %s.domain_intersection_changes WHERE target_set = 'p1' "
                           "AND snapshot_date = '2026-02-09' GROUP BY 1, 2" % S)
        self.assertEqual(got, [{"change": "new", "prev": "2026-02-07", "n": 2}])
        # an unchanged set wrote one version per row, once, and one order row
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.domain_intersection_version v "
                                       "JOIN %s.target_set t USING (target_set_id) WHERE t.name = 'p2'" % (S, S)),
                         "20")
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.domain_intersection_order o "
                                       "JOIN %s.target_set t USING (target_set_id) WHERE t.name = 'p2'" % (S, S)),
                         "1")

    def test_a_snapshot_read_on_stale_statistics_is_not_quadratic(self):
        """Right after a night, before autovacuum has analyzed it, the
        statistics still describe the night before. Joined in the view, the
        planner took the order array's unnest for 10 rows and rescanned it for
        every version row: 100k domains took minutes. The views look each
        position up in a map built once per snapshot (sql/011), whatever the
        statistics say. (A 60 s statement_timeout stands
        between the two: 0.5 s measured against more than 30 s.)"""
        self.night("2026-04-01", [("st", ["st-a.com"])], [("st-a.com", 5, None)], job="stale")
        self.db.psql("""
            SET search_path = dataforseo;
            ANALYZE domain_intersection_version; ANALYZE domain_intersection_order; ANALYZE etl_snapshot;
            UPDATE domain_intersection_version SET valid_to = '2026-04-02';
            UPDATE domain_intersection_order SET valid_to = '2026-04-02';
            INSERT INTO domain_intersection_version (target_set_id, referring_domain, target_key, valid_from,
                   target, run_id)
            SELECT 1, 'd' || g || '.com', 1, '2026-04-02', 'st-a.com', 1 FROM generate_series(1, 100000) g;
            INSERT INTO domain_intersection_order
            SELECT 1, '2026-04-02', 'infinity', array_agg('d' || g || '.com' ORDER BY g), array_agg(g ORDER BY g)
              FROM generate_series(1, 100000) g;
            INSERT INTO etl_snapshot (target_set_id, snapshot_date, status, run_id, request_hash)
            SELECT 1, '2026-04-02', 'complete', 1, request_hash FROM target_set;
        """)
        got = self.db.psql("SET statement_timeout = '60s'; SELECT count(*), sum(position) "
                           "FROM %s.domain_intersection_latest WHERE target_set = 'st'" % S)
        self.assertEqual(got.strip().splitlines()[-1], "100000|5000050000")

    def test_a_past_snapshot_is_read_by_its_ranges_at_default_settings(self):
        """A past snapshot's date reaches the planner as a parameter: read as
        valid_from <= $1 AND valid_to > $1 it was estimated at a ninth of the
        set's versions whatever the date, so past some hundreds of nights the
        plan scanned every version and JIT compiled (700 ms at 1,097 nights
        of a 10,000-domain set, bench/history.py). sql/015 adds the range
        condition and its GiST index. Here 400 nights of 1,000 domains whose
        values change every night (400,000 versions): the plan of a snapshot
        30 nights back must estimate about the rows it reads, not scan the
        versions, and cost less than jit_above_cost, at the server's defaults."""
        self.night("2026-01-01", [("pa", ["pa-a.com"])], [("pa-a.com", 5, None)], job="past")
        self.db.psql("""
            SET search_path = dataforseo;
            DELETE FROM domain_intersection_version; DELETE FROM domain_intersection_order;
            DELETE FROM domain_intersection_domain_version;
            -- the control rows first: the domain grain (sql/017, written by
            -- their trigger from the versions) is not what this reads
            INSERT INTO etl_snapshot (target_set_id, snapshot_date, status, run_id, request_hash)
            SELECT 1, DATE '2026-01-01' + n, 'complete', 1, request_hash
            FROM target_set, generate_series(1, 400) n;
            -- every domain's values change every night: a version a night
            INSERT INTO domain_intersection_version (target_set_id, referring_domain, target_key, valid_from,
                   valid_to, target, run_id, backlinks)
            SELECT 1, 'd' || d || '.com', 1, DATE '2026-01-01' + f,
                   CASE WHEN f = 400 THEN 'infinity' ELSE DATE '2026-01-01' + f + 1 END, 'pa-a.com', 1, f
            FROM generate_series(1, 1000) d, generate_series(0, 400) f;
            INSERT INTO domain_intersection_order
            SELECT 1, '2026-01-01', 'infinity', array_agg('d' || g || '.com' ORDER BY g), array_agg(g ORDER BY g)
              FROM generate_series(1, 1000) g;
            ANALYZE domain_intersection_version; ANALYZE etl_snapshot;
        """)
        # (per target key: domain_intersection_domains reads sql/017's domain
        # versions since, tested below)
        q = ("SELECT count(*) FROM %s.domain_intersection_snapshot WHERE target_set = 'pa' AND snapshot_date = "
             "(SELECT max(snapshot_date) - 30 FROM %s.domain_intersection_daily WHERE target_set = 'pa')" % (S, S))
        self.assertEqual(self.db.value(q), "1000")
        plan = json.loads(self.db.value("EXPLAIN (FORMAT JSON) " + q))[0]["Plan"]

        def nodes(n):
            yield n
            for c in n.get("Plans", []):
                yield from nodes(c)
        reads = [n for n in nodes(plan) if n.get("Relation Name") == "domain_intersection_version"]
        self.assertTrue(reads, plan)
        self.assertNotIn("Seq Scan", [n["Node Type"] for n in reads], "the plan scans every version")
        # the planner's idea of the snapshot's size is close to its 1,000 rows
        # (without sql/015: 44,556, a ninth of the versions, growing with them)
        self.assertTrue(100 <= sum(n["Plan Rows"] for n in reads) <= 10000, reads)
        self.assertLess(plan["Total Cost"], float(self.db.value("SHOW jit_above_cost")))

    def test_a_whole_snapshot_at_the_domain_grain_reads_a_narrow_row_per_domain(self):
        """The queries that read a whole snapshot at the domain grain (top
        domains of a past date, the latest top 20, the count of referring
        domains) folded the versions per query: 2 wide rows per domain (six
        jsonb maps), spread over as many heap pages as rows because the
        versions of one date were written over many nights (40 to 54 ms for
        one 10,000-domain set at 1,097 nights, bench/history.py). sql/017
        keeps the folded values as versions of their own, written when a
        snapshot is published. Here 2,000 domains x 2 keys published night by
        night for 60 nights, a fifth of the rows changing each night: each
        query reads at most a page per 10 domains (36 to 108 pages; the same
        queries folding the versions read 416 to 456), not the versions, with
        an estimate within 10x of the 2,000 rows, below jit_above_cost, at the
        server's defaults."""
        self.night("2026-01-01", [("dg", ["dg-a.com", "dg-b.com"])], [("dg-a.com", 5, None)], job="dgrain")
        self.db.psql("""
            SET search_path = dataforseo;
            DELETE FROM domain_intersection_version; DELETE FROM domain_intersection_order;
            DELETE FROM domain_intersection_domain_version;
            CREATE TEMP TABLE v AS
            SELECT d, k, f, coalesce(lead(f) OVER (PARTITION BY d, k ORDER BY f), 999) AS t
            FROM generate_series(1, 2000) d, generate_series(1, 2) k, generate_series(1, 60) f
            WHERE f = 1 OR (d * 7 + k * 13 + f * 31) % 5 = 0;
            -- a night's new versions, the wide maps as the API's, and the
            -- range it ends; then its control row (the trigger of sql/017)
            CREATE FUNCTION pg_temp.night(n integer) RETURNS void LANGUAGE sql AS $$
                UPDATE dataforseo.domain_intersection_version x SET valid_to = DATE '2026-01-01' + n
                FROM v WHERE v.t = n AND x.referring_domain = 'd' || v.d || '.com'
                 AND x.target_key = v.k AND x.valid_from = DATE '2026-01-01' + v.f;
                INSERT INTO dataforseo.domain_intersection_version (target_set_id, referring_domain,
                       target_key, valid_from, target, run_id, rank, backlinks, referring_pages,
                       referring_links_tld, referring_links_countries, referring_links_types)
                SELECT 1, 'd' || d || '.com', k, DATE '2026-01-01' + f, 'dg-a.com', 1, d % 97, d * f,
                       f, jsonb_build_object('com', f, 'org', d, 'net', k, 'io', 1, 'de', 2),
                       (SELECT jsonb_object_agg(c, f + c) FROM generate_series(1, 25) c),
                       jsonb_build_object('anchor', f, 'image', d, 'canonical', k)
                FROM v WHERE v.f = n ORDER BY d, k;
                INSERT INTO dataforseo.etl_snapshot (target_set_id, snapshot_date, status, run_id, request_hash)
                SELECT 1, DATE '2026-01-01' + n, 'complete', 1, request_hash FROM dataforseo.target_set;
            $$;
            SELECT pg_temp.night(n) FROM generate_series(1, 60) n;
            INSERT INTO domain_intersection_order
            SELECT 1, '2026-01-02', 'infinity', array_agg('d' || g || '.com' ORDER BY g), array_agg(g ORDER BY g)
              FROM generate_series(1, 2000) g;
        """)
        # (what autovacuum does between two nights)
        for t in ("domain_intersection_version", "etl_snapshot", "domain_intersection_domain_version"):
            self.db.psql("VACUUM ANALYZE %s.%s" % (S, t))
        latest = ("(SELECT max(snapshot_date) FROM %s.domain_intersection_daily WHERE target_set = 'dg'"
                  " AND status = 'complete' AND purged_at IS NULL)" % S)
        queries = {
            "domains 30 nights back": (
                "SELECT referring_domain, min_rank, backlinks, links_to_all_since FROM %s.domain_intersection_domains"
                " WHERE target_set = 'dg' AND snapshot_date = %s - 30 ORDER BY backlinks DESC NULLS LAST LIMIT 20"
                % (S, latest), 20),
            "latest top 20": (
                "SELECT referring_domain, links_to_all_since::date, min_rank, backlinks, snapshot_date"
                " FROM %s.domain_intersection_latest_domains WHERE target_set = 'dg'"
                " ORDER BY links_to_all_since::date DESC, backlinks DESC LIMIT 20" % S, 20),
            "count now": (
                "SELECT count(*) FROM %s.domain_intersection_domains WHERE target_set = 'dg' AND snapshot_date = %s"
                % (S, latest), 1),
        }
        # the answers are the snapshot's, folded (the differential test checks every value)
        self.assertEqual(self.db.value(queries["count now"][0]), "2000")
        self.assertEqual(self.db.value(
            "SELECT sum(backlinks) FROM %s.domain_intersection_domains WHERE target_set = 'dg'"
            " AND snapshot_date = '2026-01-31'" % S),
            self.db.value("SELECT sum(backlinks) FROM %s.domain_intersection_snapshot WHERE target_set = 'dg'"
                          " AND snapshot_date = '2026-01-31'" % S))
        limit = float(self.db.value("SHOW jit_above_cost"))

        def nodes(n):
            yield n
            for c in n.get("Plans", []):
                yield from nodes(c)
        for name, (q, rows) in queries.items():
            with self.subTest(query=name):
                plan = json.loads(self.db.value("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + q))[0]["Plan"]
                self.assertEqual(plan["Actual Rows"], rows)
                read = {n.get("Relation Name") for n in nodes(plan)}
                self.assertIn("domain_intersection_domain_version", read)
                self.assertNotIn("domain_intersection_version", read)
                scans = [n for n in nodes(plan) if n.get("Relation Name") == "domain_intersection_domain_version"]
                self.assertNotIn("Seq Scan", [n["Node Type"] for n in scans])
                self.assertTrue(200 <= sum(n["Plan Rows"] for n in scans) <= 20000, scans)
                self.assertLess(plan["Total Cost"], limit)
                pages = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
                self.assertLessEqual(pages, 200, "%s: %d pages for 2,000 domains" % (name, pages))

    # ------------------------------------------------------------------ BI role

    def bi_script(self, role, *extra):
        pg = self.db.pg
        cmd = [os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", pg["PGHOST"], "-p", pg["PGPORT"],
               "-U", pg["PGUSER"], "-d", self.db.name, "-v", "schema=" + S, "-v", "role=" + role,
               *extra, "-f", os.path.join(SOURCE, "sql", "bi_readonly.sql")]
        return subprocess.run(cmd, capture_output=True, text=True)

    def as_role(self, role, *sql, host="127.0.0.1"):
        pg = self.db.pg
        cmd = [os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", host, "-p", pg["PGPORT"], "-U", role, "-d", self.db.name]
        for s in sql:
            cmd += ["-c", s]
        return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="x"))

    def test_bi_role_reads_the_views_and_nothing_else(self):
        self.night("2026-03-01", [("bi", ["bi-a.com", "bi-b.com"])], [("bi-a.com", 40, None)], job="bi")
        self.night("2026-03-02", [("bi", ["bi-a.com", "bi-b.com"])], [("bi-a.com", 45, None)], job="bi")
        role = "bi_%s" % uuid.uuid4().hex[:10]
        self.addCleanup(self.db.admin, 'DROP ROLE IF EXISTS "%s"' % role)  # after tearDown drops the database
        # schema and role are required
        p = subprocess.run([os.path.join(self.db.pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", self.db.pg["PGHOST"],
                            "-p", self.db.pg["PGPORT"], "-U", self.db.pg["PGUSER"], "-d", self.db.name,
                            "-f", os.path.join(SOURCE, "sql", "bi_readonly.sql")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 3)
        self.assertIn("-v schema=NAME is required", p.stderr)
        # A broad grant made by hand before is taken back by the script.
        self.db.psql('CREATE ROLE "%s" LOGIN; GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA %s TO "%s"'
                     % (role, S, role))
        for _ in range(2):  # idempotent
            p = self.bi_script(role, "-v", "password='s3cret pass'")
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.db.value("SELECT rolcanlogin AND NOT rolsuper AND rolpassword IS NOT NULL "
                                       "FROM pg_authid WHERE rolname = '%s'" % role), "t")

        views = ["domain_intersection_latest", "domain_intersection_changes", "domain_intersection_daily",
                 "domain_intersection_breakdown", "domain_intersection_history", "etl_run_summary",
                 "domain_intersection", "domain_intersection_snapshot", "domain_intersection_snapshot_breakdown",
                 "domain_intersection_domains", "domain_intersection_domain_series", "etl_target_set",
                 "etl_run_set_summary", "domain_intersection_breakdown_totals",
                 "domain_intersection_latest_domains"]
        for v in views:
            with self.subTest(view=v):
                p = self.as_role(role, "SELECT count(*) FROM %s.%s" % (S, v))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertGreater(int(p.stdout), 0)
        # readable, empty or not: what republishes removed (none here), and
        # the sync cursor's high-water mark (README "Incremental sync")
        for v in ["domain_intersection_deleted", "etl_sync_counter"]:
            with self.subTest(view=v):
                p = self.as_role(role, "SELECT count(*) FROM %s.%s" % (S, v))
                self.assertEqual(p.returncode, 0, p.stderr)
        views += ["domain_intersection_deleted", "etl_sync_counter"]
        # over the unix socket too, and with the settings the script gives the role
        p = self.as_role(role, "SELECT current_user, current_setting('jit'), "
                               "current_setting('default_transaction_read_only'), "
                               "current_setting('statement_timeout'), "
                               "current_setting('idle_in_transaction_session_timeout'), "
                               "current_setting('TimeZone')", host=self.db.pg["PGHOST"])
        self.assertEqual(p.stdout.strip(), "%s|off|on|5min|1min|UTC" % role)
        # PUBLIC's TEMPORARY is taken (no per-role REVOKE can keep the role
        # from it) and given back by name to the schema's owner (issue 16)
        self.assertEqual(self.db.value("SELECT has_database_privilege('public', current_database(), 'TEMPORARY')"),
                         "f")
        self.assertEqual(self.db.value("SELECT has_database_privilege(nspowner, current_database(), 'TEMPORARY') "
                                       "FROM pg_namespace WHERE nspname = '%s'" % S), "t")

        tables = [r["relname"] for r in self.db.rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = '%s' AND c.relkind IN ('r', 'p', 'v') AND c.relname NOT IN (%s) ORDER BY 1"
            % (S, ", ".join("'%s'" % v for v in views)))]
        self.assertIn("domain_intersection_version", tables)
        self.assertIn("etl_snapshot", tables)
        for t in tables:
            with self.subTest(table=t):
                p = self.as_role(role, "SELECT 1 FROM %s.%s LIMIT 1" % (S, t))
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("permission denied for", p.stderr)
        # Writes fail on privileges alone, even with the read-only default switched off.
        writes = [
            "INSERT INTO %s.etl_run (job, snapshot_date) VALUES ('x', '2026-01-01')" % S,
            "UPDATE %s.target_set SET name = 'x'" % S,
            "DELETE FROM %s.domain_intersection_version" % S,
            "TRUNCATE %s.raw_page" % S,
            "CREATE TABLE %s.x (a int)" % S,
            "CREATE TABLE public.x (a int)",
            "CREATE VIEW %s.v AS SELECT 1" % S,
            "SELECT %s.publish_snapshot(1, 1, '2030-01-01', 1)" % S,
            "SELECT %s.purge_snapshots(1, '2030-01-01')" % S,
            "ALTER VIEW %s.etl_run_summary RENAME TO x" % S,
            "GRANT SELECT ON %s.etl_run TO PUBLIC" % S,
        ]
        for w in writes:
            with self.subTest(write=w):
                p = self.as_role(role, "SET default_transaction_read_only = off", w)
                self.assertNotEqual(p.returncode, 0)
                self.assertRegex(p.stderr, "permission denied|must be owner")
        for v in views:
            with self.subTest(view_write=v):
                p = self.as_role(role, "SET default_transaction_read_only = off", "DELETE FROM %s.%s" % (S, v))
                self.assertNotEqual(p.returncode, 0)
        p = self.as_role(role, "CREATE TEMP TABLE t (a int)")
        self.assertIn("read-only transaction", p.stderr)
        # Nothing changed.
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.etl_run" % S), "2")


if __name__ == "__main__":
    unittest.main()

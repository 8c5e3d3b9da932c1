"""The history whatever order dates are published in (issue 15 items 1 and 5).

Each sequence of the issue is run against the real binary and the fake API,
and after every step each view is compared with a reference model written
here: the set's complete snapshots not purged (date -> answer), from which
the ranges of domain_intersection_history (one per key and maximal run of
consecutive snapshots with equal values) and the daily measures (each date
against the previous snapshot; none for the oldest kept) follow, as the
views' COMMENTs (sql/010) state them. Answers differ by the fake's own
means: total_count (keys missing), an edit of every third item's rank, an
empty answer, a failing task.
"""

import unittest

from harness import EtlTestCase

S = "dataforseo"
FIRST = "ord-a.com"

JOB = """\
version: 1
job: ord
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 2, max_attempts: 1}
database: {url: "${DATABASE_URL}"}
%(extra)s
defaults: {limit: 100, max_rows: 1000}
target_sets:
  - {name: one, targets: [ord-a.com, ord-b.com]}
"""

# Columns that make a history range's values (position and run_id aside).
VALUE_COLUMNS = [
    "target", "intersections_count", "type", "rank", "backlinks", "first_seen", "lost_date",
    "backlinks_spam_score", "broken_backlinks", "broken_pages", "referring_domains",
    "referring_domains_nofollow", "referring_main_domains", "referring_main_domains_nofollow",
    "referring_ips", "referring_subnets", "referring_pages", "referring_pages_nofollow",
    "referring_links_tld", "referring_links_types", "referring_links_attributes",
    "referring_links_platform_types", "referring_links_semantic_locations", "referring_links_countries",
    "extra",
]


def bump_rank(doc):
    """Answer B: every third item's rank on target 1 is 7 higher."""
    for task in doc.get("tasks") or []:
        for res in task.get("result") or []:
            base = (task.get("data") or {}).get("offset", 0)
            for i, item in enumerate(res.get("items") or []):
                if (base + i) % 3 == 0:
                    obj = item["domain_intersection"]["1"]
                    obj["rank"] = (obj.get("rank") or 0) + 7


# name -> set_scenario arguments (the fake's answers for the set)
VARIANTS = {
    "A": {"total_count": 40},
    "B": {"total_count": 40, "faults": [{"kind": "edit", "fn": bump_rank, "times": -1}]},
    "S": {"total_count": 30},
    "E": {"total_count": 0},
    "F": {"total_count": 40, "faults": [{"kind": "task", "code": 40501, "times": -1}]},
}


def expected_history(snaps):
    """Ranges of the reference model: {key: [(valid_from, valid_to, last, values)]}."""
    dates = sorted(snaps)
    out = {}
    keys = set()
    for d in dates:
        keys.update(snaps[d])
    for key in keys:
        ranges = []
        cur = None
        for d in dates:
            val = snaps[d].get(key)
            if cur is not None and val == cur[3]:
                cur[2] = d
                continue
            if cur is not None:
                ranges.append(cur)
                cur = None
            if val is not None:
                cur = [d, None, d, val]
        if cur is not None:
            ranges.append(cur)
        result = []
        for first, _, last, val in ranges:
            later = [d for d in dates if d > last]
            result.append((first, later[0] if later else None, last, val))
        out[key] = result
    return out


def domains(snap):
    return {k[0] for k in snap}


class OrderModel:
    """What the views must show, from the snapshots alone."""

    def __init__(self):
        self.snaps = {}      # complete, not purged: date -> {key: values}
        self.purged = {}     # date -> daily row as it was when purged (frozen)


class OrderTest(EtlTestCase):

    def setUp(self):
        super().setUp()
        self.model = OrderModel()
        self.answers = {}    # variant -> {key: values}, the first time it was published

    def job_file(self, extra=""):
        return self.job(JOB % {"extra": extra})

    def night(self, date, variant, extra="", replay=None):
        """Runs date with the fake answering `variant`; or replays run `replay`,
        whose archived answer is `variant`, while the fake would answer another."""
        if replay is not None:
            self.fake.set_scenario(FIRST, **VARIANTS["S"])
            self.etl("replay", self.job_file(extra), str(replay))
        else:
            self.fake.set_scenario(FIRST, **VARIANTS[variant])
            code, out, err = self.etl("run", self.job_file(extra), "--migrate", "--snapshot-date", date,
                                      expect=None)
            # a run whose only set failed has failed (1)
            self.assertEqual(code, 1 if variant == "F" else 0, err)
        if variant != "F":
            snap = self.snapshot(date)
            # the same answer is the same rows every time it is published
            self.assertEqual(snap, self.answers.setdefault(variant, snap), "answer %s on %s" % (variant, date))
            self.model.snaps[date] = snap
            self.model.purged.pop(date, None)
        self.purged_now()
        self.check()

    def last_run(self):
        return int(self.db.value("SELECT max(run_id) FROM %s.etl_run" % S))

    def snapshot(self, date):
        rows = self.db.rows("SELECT * FROM %s.domain_intersection WHERE snapshot_date = '%s'" % (S, date))
        return {(r["referring_domain"], r["target_key"]): tuple(r[c] for c in VALUE_COLUMNS) for r in rows}

    def purged_now(self):
        """Dates retention purged drop out of the model, their daily rows frozen from now on."""
        for r in self.db.rows("SELECT * FROM %s.domain_intersection_daily WHERE purged_at IS NOT NULL" % S):
            d = r["snapshot_date"]
            if d in self.model.snaps:
                del self.model.snaps[d]
                self.model.purged[d] = r

    def history(self):
        rows = self.db.rows("SELECT * FROM %s.domain_intersection_history" % S)
        out = {}
        for r in rows:
            out.setdefault((r["referring_domain"], r["target_key"]), []).append(
                (r["valid_from"], r["valid_to"], r["last_snapshot_date"], tuple(r[c] for c in VALUE_COLUMNS)))
            self.assertEqual(r["is_current"], r["valid_to"] is None)
        return {k: sorted(v) for k, v in out.items()}

    def check(self):
        """Every view against the model."""
        snaps = self.model.snaps
        want = expected_history(snaps)
        got = self.history()
        self.assertEqual(sorted(got), sorted(want), "keys in history")
        for k in want:
            self.assertEqual(got[k], want[k], "ranges of %s" % (k,))
        dates = sorted(snaps)
        daily = {r["snapshot_date"]: r for r in self.db.rows(
            "SELECT * FROM %s.domain_intersection_daily WHERE status = 'complete'" % S)}
        changes = {}
        for r in self.db.rows("SELECT * FROM %s.domain_intersection_changes" % S):
            changes.setdefault(r["snapshot_date"], set()).add((r["referring_domain"], r["change"]))
        for d, frozen in self.model.purged.items():
            row = dict(daily[d])
            self.assertEqual(row, frozen, "purged %s stays as it was" % d)
        for i, d in enumerate(dates):
            row = daily[d]
            cur = snaps[d]
            self.assertIsNone(row["purged_at"])
            self.assertEqual((row["distinct_domains"], row["rows"]), (len(domains(cur)), len(cur)), d)
            if i == 0:
                self.assertEqual((row["restart"], row["previous_snapshot_date"], row["new_domains"],
                                  row["lost_domains"], row["changed_rows"]), (True, None, None, None, None), d)
                self.assertNotIn(d, changes, "changes of the first kept date %s" % d)
                continue
            prev = snaps[dates[i - 1]]
            changed = sum(1 for k in cur if k in prev and prev[k] != cur[k])
            new = domains(cur) - domains(prev)
            lost = domains(prev) - domains(cur)
            self.assertEqual((row["restart"], row["previous_snapshot_date"], row["new_domains"],
                              row["lost_domains"], row["changed_rows"]),
                             (False, dates[i - 1], len(new), len(lost), changed), d)
            self.assertEqual(changes.get(d, set()),
                             {(x, "new") for x in new} | {(x, "lost") for x in lost}, "changes of %s" % d)

    def ranges(self):
        return {tuple(x[:3]) for v in self.history().values() for x in v}

    def order_ranges(self):
        """The set's result orders: (valid_from, valid_to, number of domains), by date."""
        return [(r["valid_from"], r["valid_to"], int(r["n"])) for r in self.db.rows(
            "SELECT valid_from, valid_to, cardinality(domains) AS n FROM %s.domain_intersection_order "
            "ORDER BY valid_from" % S)]

    # -----------------------------------------------------------------

    def test_backfill_with_the_same_answer(self):
        self.night("2026-05-02", "A")
        self.night("2026-05-01", "A")
        # every key is one range from the backfilled date on, from the backfill's run
        self.assertEqual(self.ranges(), {("2026-05-01", None, "2026-05-02")})
        self.assertEqual(self.db.value("SELECT string_agg(DISTINCT run_id::text, ',') "
                                       "FROM %s.domain_intersection_history" % S), "2")
        d = self.db.rows("SELECT snapshot_date, restart, changed_rows, new_domains, lost_domains "
                         "FROM %s.domain_intersection_daily ORDER BY 1" % S)
        self.assertEqual([(r["snapshot_date"], r["restart"], r["changed_rows"], r["new_domains"],
                           r["lost_domains"]) for r in d],
                         [("2026-05-01", True, None, None, None), ("2026-05-02", False, 0, 0, 0)])

    def test_backfill_with_another_answer(self):
        self.night("2026-05-02", "A")
        self.night("2026-05-01", "B")
        self.night("2026-04-30", "A")

    def test_republish_of_a_middle_date_with_its_neighbours_answer(self):
        self.night("2026-05-01", "A")
        self.night("2026-05-02", "B")
        self.night("2026-05-03", "A")
        changed = int(self.db.value("SELECT changed_rows FROM %s.domain_intersection_daily "
                                    "WHERE snapshot_date = '2026-05-02'" % S))
        self.assertEqual(changed, len([k for k in self.answers["A"] if k[1] == 1 and
                                       self.answers["A"][k] != self.answers["B"][k]]))
        self.assertGreater(changed, 5)
        self.night("2026-05-02", "A")
        self.assertEqual(self.ranges(), {("2026-05-01", None, "2026-05-03")})
        self.assertEqual(self.db.value("SELECT string_agg(changed_rows::text, ',' ORDER BY snapshot_date) "
                                       "FROM %s.domain_intersection_daily" % S), "0,0")

    def test_a_republished_middle_date_joins_its_neighbours_orders(self):
        """publish_order_arrays(): the date's order takes the place of the one
        it replaces and joins equal neighbours on both sides (sql/026 compares
        the one ending at the date in PL/pgSQL), so equal orders stay one row."""
        self.night("2026-05-01", "A")
        self.night("2026-05-02", "S")   # fewer items: another order
        self.night("2026-05-03", "A")
        self.assertEqual(self.order_ranges(), [("2026-05-01", "2026-05-02", 40), ("2026-05-02", "2026-05-03", 30),
                                               ("2026-05-03", "infinity", 40)])
        self.night("2026-05-02", "A")
        self.assertEqual(self.order_ranges(), [("2026-05-01", "infinity", 40)])
        self.night("2026-05-02", "S")   # and apart again
        self.assertEqual(self.order_ranges(), [("2026-05-01", "2026-05-02", 40), ("2026-05-02", "2026-05-03", 30),
                                               ("2026-05-03", "infinity", 40)])
        self.night("2026-04-30", "A")   # a backfill joins the order after it
        self.assertEqual(self.order_ranges()[0], ("2026-04-30", "2026-05-02", 40))

    def test_rerun_of_a_failed_date(self):
        self.night("2026-05-01", "A")
        self.night("2026-05-02", "F")
        self.night("2026-05-03", "B")
        self.night("2026-05-02", "B")   # continues 05-03's ranges backwards
        self.night("2026-05-02", "A")   # and now 05-01's forwards
        self.night("2026-05-02", "F")   # a failed rerun of a complete date leaves it as it is
        self.assertEqual(self.db.value("SELECT status || ' ' || (last_error IS NOT NULL) "
                                       "FROM %s.domain_intersection_daily WHERE snapshot_date = '2026-05-02'"
                                       % S), "complete true")

    def test_rerun_of_an_empty_date(self):
        self.night("2026-05-01", "A")
        self.night("2026-05-02", "E")
        self.night("2026-05-03", "A")
        self.assertEqual(self.ranges(), {("2026-05-01", "2026-05-02", "2026-05-01"),
                                         ("2026-05-03", None, "2026-05-03")})
        self.night("2026-05-02", "A")
        self.assertEqual(self.ranges(), {("2026-05-01", None, "2026-05-03")})

    def test_keys_missing_in_the_middle_break_their_range(self):
        self.night("2026-05-01", "A")
        self.night("2026-05-03", "A")
        self.night("2026-05-02", "S")
        self.night("2026-05-02", "A")
        self.night("2026-05-02", "S")

    def test_replay_republishes_the_archived_answer(self):
        self.night("2026-05-01", "A")
        self.night("2026-05-02", "B")
        b_run = self.last_run()
        self.night("2026-05-03", "A")
        self.night("2026-05-02", "A")
        a_run = self.last_run()
        self.assertEqual(self.ranges(), {("2026-05-01", None, "2026-05-03")})
        # replays answer from the archive whatever the fake says now
        self.night("2026-05-02", "B", replay=b_run)
        self.assertIn(("2026-05-02", "2026-05-03", "2026-05-02"), self.ranges())
        self.night("2026-05-02", "A", replay=a_run)
        self.assertEqual(self.ranges(), {("2026-05-01", None, "2026-05-03")})

    def test_rerun_of_a_purged_date(self):
        keep = "retention: {keep_snapshots: 2 days}"
        self.night("2026-05-01", "A", extra=keep)
        self.night("2026-05-02", "A", extra=keep)
        self.night("2026-05-03", "B", extra=keep)   # purges 05-01
        self.assertEqual(sorted(self.model.purged), ["2026-05-01"])
        self.night("2026-05-01", "A", extra=keep)   # back: counted from 05-01, nothing else goes
        self.assertEqual(self.model.purged, {})
        self.assertIn(("2026-05-01", "2026-05-03", "2026-05-02"), self.ranges())

    def test_retention_makes_the_oldest_kept_date_a_restart(self):
        keep = "retention: {keep_snapshots: 2 days}"
        self.night("2026-05-01", "A")
        self.night("2026-05-02", "S")
        lost = sorted(domains(self.answers["A"]) - domains(self.answers["S"]))
        self.assertEqual(len(lost), 10)
        self.night("2026-05-03", "B")
        frozen = self.db.rows("SELECT * FROM %s.domain_intersection_daily ORDER BY snapshot_date" % S)
        self.assertEqual([r["restart"] for r in frozen], [True, False, False])
        # purges 05-01 and 05-02: 05-03 has nothing to compare with any more
        self.night("2026-05-04", "B", extra=keep)
        d = self.db.rows("SELECT * FROM %s.domain_intersection_daily ORDER BY snapshot_date" % S)
        self.assertEqual([(r["snapshot_date"], r["purged_at"] is not None, r["restart"],
                           r["previous_snapshot_date"], r["new_domains"], r["lost_domains"], r["changed_rows"])
                          for r in d],
                         [("2026-05-01", True, True, None, None, None, None),
                          ("2026-05-02", True, False, "2026-05-01", 0, 10, 0),
                          ("2026-05-03", False, True, None, None, None, None),
                          ("2026-05-04", False, False, "2026-05-03", 0, 0, 0)])
        # the purged dates' measures are frozen, the restart's size is what it was
        for col in ("distinct_domains", "rows", "avg_rank", "total_backlinks", "run_id", "new_domains",
                    "lost_domains", "changed_rows", "previous_snapshot_date"):
            self.assertEqual([r[col] for r in d[:2]], [r[col] for r in frozen[:2]], col)
        for col in ("distinct_domains", "rows", "avg_rank", "total_backlinks", "run_id"):
            self.assertEqual(d[2][col], frozen[2][col], col)
        # the purged date keeps its change rows; the restart has none
        self.assertEqual(self.db.rows("SELECT snapshot_date, referring_domain, change, purged_at IS NOT NULL AS p "
                                      "FROM %s.domain_intersection_changes ORDER BY 1, 2" % S),
                         [{"snapshot_date": "2026-05-02", "referring_domain": x, "change": "lost", "p": True}
                          for x in lost])
        # history starts at the oldest kept date
        self.assertEqual(min(r[0] for r in self.ranges()), "2026-05-03")

if __name__ == "__main__":
    unittest.main()

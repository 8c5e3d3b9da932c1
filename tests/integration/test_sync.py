"""Incremental sync with one cursor per view (issue 15 item 4).

A sync loop runs in a thread the way a tool (Airbyte, Fivetran, dbt) would:
each round reads the counter's high-water mark m, then the rows of each view
with cursor < sync_seq <= m and the deletion rows likewise, in separate
statements at READ COMMITTED, applies them in sync_seq order to a copy keyed
by each view's key, and moves its cursor to m. Meanwhile the main thread
runs nights of three sets, reruns, a failing rerun, a backfill, a replay and
retention. At the end the copy must equal the views row for row.
"""

import os
import subprocess
import threading
import time
import unittest

from harness import EtlTestCase

S = "dataforseo"

JOB = """\
version: 1
job: sync
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 3, max_attempts: 1}
database: {url: "${DATABASE_URL}"}
%(extra)s
defaults: {limit: 50, max_rows: 1000}
target_sets:
  - {name: one, targets: [sync-a.com, sync-b.com]}
  - {name: two, targets: [sync-c.com]}
  - {name: three, targets: [sync-d.com, sync-e.com]}
"""

FIRSTS = ["sync-a.com", "sync-c.com", "sync-d.com"]

# view -> its key columns
KEYS = {
    "domain_intersection_daily": ("target_set_id", "snapshot_date"),
    "domain_intersection_changes": ("target_set_id", "snapshot_date", "referring_domain"),
    "domain_intersection_history": ("target_set_id", "referring_domain", "target_key", "valid_from"),
}
DELETED = {"domain_intersection_changes": "changes", "domain_intersection_history": "history"}


def bump_rank(doc):
    for task in doc.get("tasks") or []:
        for res in task.get("result") or []:
            base = (task.get("data") or {}).get("offset", 0)
            for i, item in enumerate(res.get("items") or []):
                if (base + i) % 4 == 1:
                    for obj in item["domain_intersection"].values():
                        obj["rank"] = (obj.get("rank") or 0) + 3


class SyncLoop(threading.Thread):
    """The tool: one cursor per view, a copy per view."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db = db
        self.cursor = {v: 0 for v in KEYS}
        self.copy = {v: {} for v in KEYS}
        self.stop = threading.Event()
        self.rounds = 0
        self.error = None

    def sync_once(self):
        m = int(self.db.value("SELECT seq FROM %s.etl_sync_counter" % S))
        for view, key in KEYS.items():
            c = self.cursor[view]
            rows = self.db.rows("SELECT * FROM %s.%s WHERE sync_seq > %d AND sync_seq <= %d" % (S, view, c, m))
            ops = [(r["sync_seq"], 1, tuple(r[k] for k in key), r) for r in rows]
            if view in DELETED:
                gone = self.db.rows("SELECT * FROM %s.domain_intersection_deleted WHERE view_name = '%s' "
                                    "AND sync_seq > %d AND sync_seq <= %d" % (S, DELETED[view], c, m))
                ops += [(d["sync_seq"], 0, tuple(d[k] for k in key), None) for d in gone]
            for seq, kind, k, row in sorted(ops, key=lambda o: (o[0], o[1])):
                if kind:
                    self.copy[view][k] = row
                else:
                    self.copy[view].pop(k, None)
            self.cursor[view] = m
        self.rounds += 1

    def run(self):
        try:
            while not self.stop.is_set():
                self.sync_once()
                time.sleep(0.02)
        except Exception as e:  # reported by the test
            self.error = e


class SyncTest(EtlTestCase):

    def job_file(self, extra=""):
        return self.job(JOB % {"extra": extra})

    def night(self, date, variant="A", extra="", expect=0, only_fail=None):
        for i, first in enumerate(FIRSTS):
            faults = []
            if variant == "B" and i != 1:
                faults = [{"kind": "edit", "fn": bump_rank, "times": -1}]
            if only_fail == first:
                faults = [{"kind": "task", "code": 40501, "times": -1}]
            self.fake.set_scenario(first, total_count={"A": 120, "B": 120, "S": 90}[variant] - 10 * i,
                                   faults=faults)
        self.etl("run", self.job_file(extra), "--snapshot-date", date, expect=expect)

    def view(self, view):
        key = KEYS[view]
        return {tuple(r[k] for k in key): r for r in self.db.rows("SELECT * FROM %s.%s" % (S, view))}

    def test_a_sync_loop_during_loads_ends_with_the_views(self):
        self.etl("migrate", self.job_file())
        loop = SyncLoop(self.db)
        loop.start()
        try:
            keep = "retention: {keep_snapshots: 3 days}"
            self.night("2026-06-02", "A")
            self.night("2026-06-03", "B")
            self.night("2026-06-04", "S")
            self.night("2026-06-03", "A")                       # rerun of a middle date
            self.night("2026-06-01", "B")                       # backfill
            self.night("2026-06-04", "A", expect=3, only_fail="sync-c.com")  # a failed rerun
            self.etl("replay", self.job_file(), "2")            # 06-03 answered B again
            self.night("2026-06-05", "B", extra=keep)           # purges 06-01 and 06-02
            self.night("2026-06-02", "A", extra=keep)           # a purged date comes back
            self.night("2026-06-06", "S", extra=keep)           # purges it again and 06-03
        finally:
            time.sleep(0.3)
            loop.stop.set()
            loop.join(60)
        self.assertIsNone(loop.error)
        self.assertGreater(loop.rounds, 5)
        loop.sync_once()
        for view in KEYS:
            got, want = loop.copy[view], self.view(view)
            self.assertEqual(sorted(got), sorted(want), view)
            for k in want:
                self.assertEqual(got[k], want[k], "%s %s" % (view, k))
        # what it went through: republished dates removed rows, purges too
        kinds = {r["view_name"]: r["n"] for r in self.db.rows(
            "SELECT view_name, count(*) AS n FROM %s.domain_intersection_deleted GROUP BY 1" % S)}
        self.assertGreater(kinds.get("history", 0), 0)
        self.assertGreater(kinds.get("changes", 0), 0)
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.domain_intersection_daily "
                                       "WHERE purged_at IS NOT NULL" % S), "9")

    def test_numbers_follow_commit_order(self):
        """A number is taken under a row lock held to commit: a second writer
        waits for the first to commit, then takes the next number; a rolled
        back number is taken again."""
        self.etl("migrate", self.job_file())
        env = self.db.pg
        psql = [os.path.join(env["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", env["PGHOST"], "-p", env["PGPORT"], "-U", env["PGUSER"], "-d", self.db.name]
        first = subprocess.Popen(psql, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first.stdin.write("BEGIN;\nSELECT %s.sync_seq_take();\nSELECT %s.sync_seq_take();\n"
                          "SELECT pg_sleep(1.5);\nCOMMIT;\n" % (S, S))
        first.stdin.close()
        # until the first holds its number (it is asleep inside its transaction)
        for _ in range(200):
            if self.db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND query LIKE 'SELECT pg_sleep(1.5)%' AND state = 'active'") == "1":
                break
            time.sleep(0.05)
        t0 = time.time()
        second = self.db.value("SELECT %s.sync_seq_take()" % S)
        waited = time.time() - t0
        self.assertEqual(first.stdout.read().split(), ["2", "2"])
        first.stdout.close()
        first.wait(10)
        self.assertEqual(second, "3")
        self.assertGreater(waited, 0.3)
        self.db.psql("BEGIN; SELECT %s.sync_seq_take(); ROLLBACK;" % S)
        self.assertEqual(self.db.value("SELECT %s.sync_seq_take()" % S), "4")


if __name__ == "__main__":
    unittest.main()

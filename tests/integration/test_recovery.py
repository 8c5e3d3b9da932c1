"""Recovery paths of the history (issue 11): every way a night can go wrong
or be redone leaves each published snapshot exact, and nothing that cannot be
vouched for is shown or counted.

Each test is one reproduction from the issue; each failed before the
versioned history and the control rows (sql/005_*).
"""

import datetime
import os
import subprocess
import threading
import time
import unittest

from harness import EtlTestCase, run_etl

S = "dataforseo"
TARGETS = ["rec-a.com", "rec-b.com"]

JOB = """\
version: 1
job: %(job)s
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 2, max_attempts: 1}
database: {url: "${DATABASE_URL}"}
%(extra)s
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: one, targets: [rec-a.com, rec-b.com]}
"""


def task_fail(offset):
    return [{"kind": "task", "code": 40501, "offset": offset, "times": -1}]


class RecoveryTest(EtlTestCase):

    def job_file(self, job="rec", extra=""):
        return self.job(JOB % {"job": job, "extra": extra}, name=job + ".yaml")

    def night(self, date, total, faults=None, expect=0, job="rec", extra="", first="rec-a.com"):
        self.fake.set_scenario(first, total_count=total, faults=faults or [])
        return self.etl("run", self.job_file(job, extra), "--migrate", "--snapshot-date", date, expect=expect)

    def snapshot(self, date, name="one"):
        return self.db.rows("SELECT d.* FROM %s.domain_intersection d JOIN %s.target_set t USING (target_set_id) "
                            "WHERE t.name = '%s' AND d.snapshot_date = '%s' "
                            "ORDER BY referring_domain, target_key" % (S, S, name, date))

    def daily(self, date, name="one"):
        rows = self.db.rows("SELECT * FROM %s.domain_intersection_daily WHERE target_set = '%s' "
                            "AND snapshot_date = '%s'" % (S, name, date))
        return rows[0] if rows else None

    def strip_run(self, rows):
        return [{k: v for k, v in r.items() if k != "run_id"} for r in rows]

    # 1 ------------------------------------------------------------------

    def test_resume_after_stale_rows_were_removed_refetches_them(self):
        """A rerun's last page fails for good; the next night removes the rerun's
        staged rows; the README's recovery step (run that date again) must not
        publish what is left: it fetches the discarded pages again."""
        self.night("2026-05-01", 300)
        first = self.snapshot("2026-05-01")
        self.assertEqual(len(first), 600)
        self.night("2026-05-01", 300, task_fail(200), expect=1)     # the rerun fails its last page
        self.night("2026-05-02", 300)                                 # removes its staged rows
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.etl_page WHERE status = 'discarded'" % S), "2")
        self.fake.reset()
        self.night("2026-05-01", 300)                                 # the recovery step
        resumed = self.db.value("SELECT count(DISTINCT run_id) FROM %s.etl_run WHERE snapshot_date = '2026-05-01'"
                                % S)
        self.assertEqual(resumed, "2")                                # it continued the rerun
        self.assertEqual(sorted(r["offset"] for r in self.fake.requests), [0, 100, 200])
        self.assertEqual(self.strip_run(self.snapshot("2026-05-01")), self.strip_run(first))
        d = self.daily("2026-05-01")
        self.assertEqual((d["status"], d["distinct_domains"], d["rows"]), ("complete", 300, 600))
        self.assertEqual(self.daily("2026-05-02")["new_domains"], 0)

    def test_publish_refuses_fewer_staged_rows_than_the_ledger(self):
        """Whatever removes staged rows behind the ledger's back, the set fails
        with a message that says so, and the published snapshot stays."""
        self.night("2026-05-01", 300)
        self.night("2026-05-02", 300, task_fail(200), expect=1)
        # (a rerun of the same answer the next night stages no row at all,
        # sql/016: the ledger is made to claim one more than there is)
        self.db.psql("DELETE FROM %s.domain_intersection_pending WHERE position < 50;"
                     " UPDATE %s.etl_page SET staged = staged + 1 WHERE page_offset = 0"
                     " AND status = 'loaded' AND run_id = (SELECT max(run_id) FROM %s.etl_run)" % (S, S, S))
        self.fake.reset()
        code, out, err = self.night("2026-05-02", 300, expect=1)
        self.assertIn("rows staged, but its loaded pages staged", err)
        self.assertIn("its pages are discarded", err)
        self.assertEqual(self.daily("2026-05-02")["status"], "failed")
        self.assertEqual(len(self.snapshot("2026-05-01")), 600)
        # running the date again continues the run and fetches the set whole
        self.fake.reset()
        self.night("2026-05-02", 300)
        self.assertEqual(sorted(r["offset"] for r in self.fake.requests), [0, 100, 200])
        self.assertEqual(self.daily("2026-05-02")["rows"], 600)
        self.assertEqual(self.strip_run(self.snapshot("2026-05-02")),
                         [dict(r, snapshot_date="2026-05-02") for r in self.strip_run(self.snapshot("2026-05-01"))])

    # 2 ------------------------------------------------------------------

    def test_publish_twice_changes_nothing(self):
        """A redo after a lost reply runs the publish again for a run that
        already published: it must not touch the snapshot."""
        self.night("2026-05-01", 300)
        self.fake.set_scenario("rec-a.com", total_count=290)
        self.night("2026-05-01", 290)
        before = self.snapshot("2026-05-01")
        versions = self.db.value("SELECT count(*) FROM %s.domain_intersection_version" % S)
        out = self.db.psql("SELECT outcome FROM %s.publish_snapshot(2, 1, '2026-05-01', 290)" % S)
        self.assertEqual(out.strip(), "already")
        self.assertEqual(self.snapshot("2026-05-01"), before)
        self.assertEqual(len(before), 580)
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.domain_intersection_version" % S), versions)

    # 3, 4 ----------------------------------------------------------------

    def test_a_future_snapshot_date_is_refused(self):
        self.night("2026-05-01", 30, extra="retention: {keep_snapshots: 30 days}")
        tomorrow = (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=1)).isoformat()
        later = (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=2)).isoformat()
        code, out, err = self.night("2062-05-03", 30, expect=2, extra="retention: {keep_snapshots: 30 days}")
        self.assertIn("--snapshot-date 2062-05-03: after tomorrow", err)
        self.night(later, 30, expect=2)
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.etl_run" % S), "1")
        # tomorrow (UTC) is allowed, and retention counts back from today, not from it
        self.night(tomorrow, 30, extra="retention: {keep_snapshots: 30 days}")
        self.assertIsNotNone(self.daily("2026-05-01"))

    def test_retention_counts_from_the_earlier_of_date_and_today(self):
        """A night of long ago with retention: counting back from its own date
        keeps the nights before it."""
        extra = "retention: {keep_snapshots: 5 days}"
        for day in range(1, 8):
            self.night("2026-05-%02d" % day, 30, extra=extra)
        purged = [r["snapshot_date"] for r in self.db.rows(
            "SELECT snapshot_date FROM %s.domain_intersection_daily WHERE purged_at IS NOT NULL ORDER BY 1" % S)]
        self.assertEqual(purged, ["2026-05-01", "2026-05-02"])

    def test_retention_keeps_a_sets_newest_snapshot_and_other_jobs(self):
        """A set whose last complete night is older than the limit keeps it;
        another job's set on the same dates is never touched."""
        other = self.job(JOB.replace("{name: one, targets: [rec-a.com, rec-b.com]}",
                                     "{name: x, targets: [oth-a.com]}") % {"job": "other", "extra": ""},
                         name="other.yaml")
        self.fake.set_scenario("oth-a.com", total_count=30)
        self.etl("run", other, "--migrate", "--snapshot-date", "2026-04-01")
        self.fake.set_scenario("oth-a.com", total_count=20)
        self.etl("run", other, "--snapshot-date", "2026-04-02")
        job = self.job((JOB % {"job": "rec", "extra": "retention: {keep_snapshots: 3 days}"}).replace(
            "target_sets:\n", "target_sets:\n  - {name: two, targets: [rec2-a.com]}\n"), name="rec2.yaml")
        self.fake.set_scenario("rec-a.com", total_count=30)
        self.fake.set_scenario("rec2-a.com", total_count=10)
        for day in (1, 2):
            self.etl("run", job, "--snapshot-date", "2026-04-%02d" % day)
        # set one fails every night after; set two goes on
        self.fake.set_scenario("rec-a.com", total_count=30, faults=task_fail(0))
        for day in (10, 11, 12):
            self.etl("run", job, "--snapshot-date", "2026-04-%02d" % day, expect=3)
        self.assertIsNone(self.daily("2026-04-01")["purged_at"])   # no retention after a failed set
        # a run where every selected set succeeds runs the job's retention
        self.etl("run", job, "--snapshot-date", "2026-04-13", "--only", "two")
        latest = {r["target_set"]: r["snapshot_date"] for r in self.db.rows(
            "SELECT DISTINCT target_set, snapshot_date FROM %s.domain_intersection_latest" % S)}
        self.assertEqual(latest, {"one": "2026-04-02", "two": "2026-04-13", "x": "2026-04-02"})
        self.assertEqual(len(self.snapshot("2026-04-02")), 60)
        self.assertIsNotNone(self.daily("2026-04-01")["purged_at"])
        kept = [r["snapshot_date"] for r in self.db.rows(
            "SELECT snapshot_date FROM %s.domain_intersection_daily WHERE target_set = 'two' "
            "AND purged_at IS NULL ORDER BY 1" % S)]
        self.assertEqual(kept, ["2026-04-11", "2026-04-12", "2026-04-13"])
        # the other job's snapshots, on the very dates purged, show as before
        theirs = self.db.rows("SELECT snapshot_date, status, purged_at, distinct_domains "
                              "FROM %s.domain_intersection_daily WHERE job = 'other' ORDER BY 1" % S)
        self.assertEqual([(r["snapshot_date"], r["status"], r["purged_at"], r["distinct_domains"]) for r in theirs],
                         [("2026-04-01", "complete", None, 30), ("2026-04-02", "complete", None, 20)])
        self.assertEqual(len(self.snapshot("2026-04-01", name="x")), 30)

    # 5 ------------------------------------------------------------------

    def test_published_snapshot_stays_visible_during_and_after_a_failed_rerun(self):
        self.night("2026-05-01", 300)
        latest = self.db.rows("SELECT * FROM %s.domain_intersection_latest ORDER BY referring_domain, target_key" % S)
        # the rerun's second page is slow, then its third fails for good
        self.fake.set_scenario("rec-a.com", total_count=300, faults=[
            {"kind": "slow", "seconds": 3, "offset": 100}] + task_fail(200))
        done = {}

        def rerun():
            done["r"] = run_etl(["run", self.job_file(), "--snapshot-date", "2026-05-01"], env=self.env())

        t = threading.Thread(target=rerun)
        t.start()
        time.sleep(1.5)
        during = self.db.rows("SELECT * FROM %s.domain_intersection_latest ORDER BY referring_domain, target_key"
                              % S)
        daily_during = self.daily("2026-05-01")
        t.join()
        self.assertEqual(done["r"][0], 1, done["r"][2])
        self.assertEqual(during, latest)
        self.assertEqual(daily_during["status"], "complete")
        self.assertEqual(self.db.rows("SELECT * FROM %s.domain_intersection_latest "
                                      "ORDER BY referring_domain, target_key" % S), latest)
        d = self.daily("2026-05-01")
        self.assertEqual((d["status"], d["distinct_domains"]), ("complete", 300))
        self.assertIn("40501", d["last_error"])

    # 6 ------------------------------------------------------------------

    def test_complete_but_short_is_visible(self):
        """The API repeats an item on two pages: the set completes with a
        warning, and daily shows what was expected and what is stored."""
        self.fake.set_scenario("rec-a.com", total_count=300, duplicate_at=[100])
        code, out, err = self.etl("run", self.job_file(), "--migrate", "--snapshot-date", "2026-05-01")
        self.assertIn("complete, but short: 299 distinct referring domains stored of 300 expected", err)
        d = self.daily("2026-05-01")
        self.assertEqual((d["status"], d["expected_domains"], d["distinct_domains"], d["rows"], d["short"]),
                         ("complete", 300, 299, 598, True))
        self.assertEqual(self.db.value("SELECT rows FROM %s.etl_run_set" % S), "600")

    # 7 ------------------------------------------------------------------

    def test_a_dashboard_transaction_does_not_hold_the_night(self):
        """A BI session idle in a transaction that read the views: the next
        night, its publish and its retention run without waiting on it."""
        extra = "retention: {keep_snapshots: 1 day}"
        self.night("2026-05-01", 50, extra=extra)
        pg = self.db.pg
        bi = subprocess.Popen([os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", pg["PGHOST"],
                               "-p", pg["PGPORT"], "-U", pg["PGUSER"], "-d", self.db.name],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        try:
            bi.stdin.write("BEGIN; SELECT count(*) FROM %s.domain_intersection_latest; "
                           "SELECT count(*) FROM %s.domain_intersection_daily;\n" % (S, S))
            bi.stdin.flush()
            time.sleep(0.5)
            started = time.monotonic()
            self.fake.set_scenario("rec-a.com", total_count=60)
            self.etl("run", self.job_file(extra=extra), "--snapshot-date", "2026-05-03", timeout=60)
            self.assertLess(time.monotonic() - started, 30)
            self.assertIsNotNone(self.daily("2026-05-01")["purged_at"])
        finally:
            bi.stdin.write("ROLLBACK;\n")
            bi.stdin.close()
            bi.wait(timeout=10)

    # 8 ------------------------------------------------------------------

    def test_back_to_back_runs_never_find_the_lock_taken(self):
        """A backfill loop: each run starts the moment the previous one exits."""
        job = self.job_file()
        self.fake.set_scenario("rec-a.com", total_count=5)
        self.etl("migrate", job)
        for day in range(1, 16):
            self.etl("run", job, "--snapshot-date", "2026-05-%02d" % day, "-q")
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.etl_run WHERE status = 'succeeded'" % S), "15")

    def hold_job_lock(self, seconds):
        """Another session holding job rec's lock (its row of etl_job_lock,
        naming that session) for a while, then exiting without letting go."""
        pg = self.db.pg
        take = ("INSERT INTO %s.etl_job_lock (job, token, host, holder_pid, backend_pid, backend_start,"
                " server_start, db_user, db_userid, application, since, heartbeat)"
                " SELECT 'rec', 'other', 'elsewhere', 4242, pid, backend_start, pg_postmaster_start_time(),"
                " usename, usesysid, application_name, now(), now()"
                " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                " ON CONFLICT (job) DO UPDATE SET token = EXCLUDED.token, holder_pid = EXCLUDED.holder_pid,"
                " run_id = NULL, host = EXCLUDED.host, application = EXCLUDED.application,"
                " backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start,"
                " server_start = EXCLUDED.server_start, db_userid = EXCLUDED.db_userid" % S)
        return subprocess.Popen([os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", pg["PGHOST"],
                                 "-p", pg["PGPORT"], "-U", pg["PGUSER"], "-d", self.db.name, "-c", take,
                                 "-c", "SELECT pg_sleep(%d)" % seconds],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def test_a_lock_released_within_seconds_is_waited_for(self):
        job = self.job_file()
        self.fake.set_scenario("rec-a.com", total_count=5)
        self.etl("migrate", job)
        holder = self.hold_job_lock(2)
        try:
            time.sleep(0.5)
            self.etl("run", job, "--snapshot-date", "2026-05-01", "-q")
        finally:
            holder.wait(timeout=30)
        # held for longer than the wait: exit 4, with the message
        holder = self.hold_job_lock(9)
        try:
            time.sleep(0.5)
            code, out, err = self.etl("run", job, "--snapshot-date", "2026-05-02", expect=4)
            self.assertIn("job rec is already running: its lock is held by database user %s, application psql, "
                          "host elsewhere, pid 4242" % self.db.pg["PGUSER"], err)
        finally:
            holder.wait(timeout=30)

    # 9 ------------------------------------------------------------------

    def test_an_unchanged_night_writes_only_its_control_row(self):
        self.night("2026-05-01", 200)
        sizes = "SELECT (SELECT count(*) FROM %s.domain_intersection_version), " \
                "(SELECT count(*) FROM %s.domain_intersection_order)" % (S, S)
        before = self.db.value(sizes)
        self.night("2026-05-02", 200)
        self.night("2026-05-03", 200)
        self.assertEqual(self.db.value(sizes), before)
        self.assertEqual(len(self.snapshot("2026-05-03")), 400)
        self.assertEqual(self.strip_run(self.snapshot("2026-05-03")),
                         [dict(r, snapshot_date="2026-05-03") for r in self.strip_run(self.snapshot("2026-05-01"))])
        # a night that changes one value adds one version
        def bump(doc):
            item = doc["tasks"][0]["result"][0]["items"][0]
            item["domain_intersection"]["1"]["rank"] = 1
        self.fake.set_scenario("rec-a.com", total_count=200, faults=[{"kind": "edit", "fn": bump, "offset": 0}])
        self.etl("run", self.job_file(), "--snapshot-date", "2026-05-04")
        self.assertEqual(self.daily("2026-05-04")["changed_rows"], 1)
        self.assertEqual(self.db.value("SELECT count(*) FROM %s.domain_intersection_version" % S),
                         str(int(before.split("|")[0]) + 1))
        hist = self.db.rows("SELECT valid_from, valid_to, is_current, last_snapshot_date, rank "
                            "FROM %s.domain_intersection_history WHERE referring_domain = '%s' AND target_key = 1 "
                            "ORDER BY valid_from" % (S, [r for r in self.snapshot("2026-05-04")
                                                     if r["position"] == 0][0]["referring_domain"]))
        self.assertEqual([(h["valid_from"], h["valid_to"], h["is_current"], h["last_snapshot_date"], h["rank"])
                          for h in hist][1], ("2026-05-04", None, True, "2026-05-04", 1))
        self.assertEqual(hist[0]["valid_to"], "2026-05-04")
        self.assertEqual(hist[0]["last_snapshot_date"], "2026-05-03")

    def test_versions_without_a_digest_are_compared_in_full_once(self):
        """Versions written before digests (sql/009_*) have none: the next
        night compares their values, writes no version for the unchanged ones
        and gives them the answer's digest; a value that did change is still
        seen, with or without a digest."""
        self.night("2026-05-01", 200)
        counts = "SELECT count(*) || ' ' || count(digest) FROM %s.domain_intersection_version" % S
        self.assertEqual(self.db.value(counts), "400 400")
        self.db.psql("UPDATE %s.domain_intersection_version SET digest = NULL WHERE target_key = 1" % S)
        first = self.strip_run(self.snapshot("2026-05-01"))

        def bump(doc):
            doc["tasks"][0]["result"][0]["items"][0]["domain_intersection"]["1"]["rank"] = 1
        self.night("2026-05-02", 200, faults=[{"kind": "edit", "fn": bump, "offset": 0}])
        # one new version for the one changed value; the rest took their
        # digest (the version the change closed keeps none: no later night
        # compares it)
        self.assertEqual(self.db.value(counts), "401 400")
        self.assertEqual(self.daily("2026-05-02")["changed_rows"], 1)
        self.assertEqual(self.strip_run(self.snapshot("2026-05-01")), first)
        second = self.strip_run(self.snapshot("2026-05-02"))
        changed = [(b["position"], b["target_key"], b["rank"]) for a, b in zip(first, second)
                   if dict(a, snapshot_date=None) != dict(b, snapshot_date=None)]
        self.assertEqual(changed, [(0, 1, 1)])
        # the digests now stand for the values: an unchanged night writes nothing
        self.night("2026-05-03", 200, faults=[{"kind": "edit", "fn": bump, "offset": 0}])
        self.assertEqual(self.db.value(counts), "401 400")
        self.assertEqual(self.daily("2026-05-03")["changed_rows"], 0)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Makes v4_history.sql: a schema at migration 004 holding several nights of
history, written by the intersect-etl binary of that schema (commit 2f4bcd0,
the last before migration 005), for tests/integration/test_migrate.py.

    python3 tests/data/migrate/make_v4_history.py OLD_BINARY PG_TMP_DIR OUT.sql

PG_TMP_DIR is a cluster started by `scripts/pg-tmp start DIR`. The nights:
first loads, a rerun that changed the answer (republish), a night where one
set failed (task error), a definition change (restart), a night whose rerun
failed after a complete snapshot, and retention dropping the oldest date.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
os.environ.setdefault("ETL_PG_DIR", sys.argv[2])
import harness  # noqa: E402
import fakeapi  # noqa: E402

BIN, PG_DIR, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
JOB = """\
version: 1
job: mig
api: {base_url: "%(url)s", token: sk-aisa-test, concurrency: 2}
database: {url: "%(db)s", schema: legacy}
%(retention)s
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: one, targets: [mig-a.com, mig-b.com]}
  - {name: two, targets: [%(two)s]}
"""


def main():
    fake = fakeapi.FakeServer(token="sk-aisa-test")
    fake.start()
    db = harness.Database("fixture")
    path = "/tmp/mig-fixture.yaml"

    def run(date, two="mig-c.com", retention="", expect=(0,)):
        with open(path, "w") as f:
            f.write(JOB % {"url": fake.base_url("aisa"), "db": db.url, "two": two, "retention": retention})
        p = subprocess.run([BIN, "run", path, "--migrate", "--snapshot-date", date, "-q"],
                           capture_output=True, text=True)
        if p.returncode not in expect:
            raise SystemExit("run %s: exit %d\n%s" % (date, p.returncode, p.stderr))

    def bump_rank(doc):
        for item in doc["tasks"][0]["result"][0]["items"][:7]:
            for v in item["domain_intersection"].values():
                v["rank"] = (v.get("rank") or 0) + 1

    try:
        fake.set_scenario("mig-a.com", total_count=250)
        fake.set_scenario("mig-c.com", total_count=120)
        run("2026-03-01")
        fake.set_scenario("mig-a.com", total_count=270)
        fake.set_scenario("mig-c.com", total_count=110)
        run("2026-03-02")
        fake.inject({"kind": "edit", "fn": bump_rank, "offset": 0, "first_target": "mig-a.com"})
        fake.set_scenario("mig-a.com", total_count=260)
        run("2026-03-02")  # a rerun that republishes a changed answer
        fake.set_scenario("mig-c.com", total_count=110,
                          faults=[{"kind": "task", "code": 40501, "offset": 0}])
        run("2026-03-03", expect=(3,))  # set two fails
        fake.set_scenario("mig-a.com", total_count=255)
        fake.set_scenario("mig-c.com", total_count=115)
        fake.set_scenario("mig-d.com", total_count=80)
        run("2026-03-04", two="mig-d.com")  # set two's definition changes: a restart
        fake.set_scenario("mig-a.com", total_count=255,
                          faults=[{"kind": "task", "code": 40501, "offset": 100}])
        run("2026-03-04", two="mig-d.com", expect=(3,))  # a rerun of a complete date fails
        fake.set_scenario("mig-a.com", total_count=265)
        fake.set_scenario("mig-d.com", total_count=85)
        run("2026-03-05", two="mig-d.com", retention="retention: {keep_snapshots: 3 days}")
        pg = harness.pg_env()
        dump = subprocess.run([os.path.join(pg["PG_BINDIR"], "pg_dump"), "-h", pg["PGHOST"], "-p", pg["PGPORT"],
                               "-U", pg["PGUSER"], "--schema", "legacy", "--exclude-table-data", "legacy.raw_page", "--no-owner", "--no-privileges", db.name],
                              capture_output=True, text=True, check=True)
        with open(OUT, "w") as f:
            f.write("-- Made by tests/data/migrate/make_v4_history.py with intersect-etl at commit 2f4bcd0\n")
            f.write("-- (schema at migration 004). Do not edit: regenerate.\n")
            f.write(dump.stdout)
    finally:
        db.close()
        fake.stop()


main()

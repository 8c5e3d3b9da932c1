"""Shared helpers for the integration tests.

Each test module gets its own database in the suite's throwaway PostgreSQL
cluster (started by the `pg` ctest fixture, see scripts/pg-tmp), runs the real
intersect-etl binary against the fake DataForSEO API (tests/fake_api/fakeapi.py,
started in-process on loopback), and reads the tables back as JSON so rows can
be compared field by field with what the fake served.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("ETL_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SOURCE, "tests", "fake_api"))

import fakeapi  # noqa: E402  (path set just above)

BIN = os.environ.get("ETL_BIN", os.path.join(SOURCE, "build", "intersect-etl"))
PG_DIR = os.environ.get("ETL_PG_DIR", os.path.join(SOURCE, "build", "pg-test"))

# The 23 per-target keys of the current shape, in the API's order.
INT_FIELDS = [
    "rank", "backlinks", "backlinks_spam_score", "broken_backlinks", "broken_pages",
    "referring_domains", "referring_domains_nofollow", "referring_main_domains",
    "referring_main_domains_nofollow", "referring_ips", "referring_subnets",
    "referring_pages", "referring_pages_nofollow",
]
MAP_FIELDS = [
    "referring_links_tld", "referring_links_types", "referring_links_attributes",
    "referring_links_platform_types", "referring_links_semantic_locations",
    "referring_links_countries",
]
TIME_FIELDS = ["first_seen", "lost_date"]


def pg_env():
    """Connection settings of the suite's cluster (written by scripts/pg-tmp)."""
    env = {}
    with open(os.path.join(PG_DIR, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    return env


class Database:
    """A database of its own in the shared cluster, dropped at close()."""

    def __init__(self, prefix="t"):
        self.pg = pg_env()
        self.name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
        self.admin(f'CREATE DATABASE "{self.name}"')
        self.url = "postgresql://%s@127.0.0.1:%s/%s" % (self.pg["PGUSER"], self.pg["PGPORT"], self.name)

    @classmethod
    def existing(cls, pg, name):
        """A handle on a database of another cluster (pg: its scripts/pg-tmp env)."""
        db = cls.__new__(cls)
        db.pg, db.name = pg, name
        db.url = pg["DATABASE_URL"]
        return db

    def psql(self, sql, db=None, check=True, stderr=False):
        cmd = [os.path.join(self.pg["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", self.pg["PGHOST"], "-p", self.pg["PGPORT"], "-U", self.pg["PGUSER"],
               "-d", db or self.name, "-c", sql]
        # timestamptz values come back in UTC whatever the server's zone
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PGTZ="UTC"))
        if check and p.returncode != 0:
            raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
        return p.stdout + p.stderr if stderr else p.stdout

    def admin(self, sql):
        return self.psql(sql, db="postgres")

    def rows(self, sql):
        """The query's rows as a list of dicts, typed by PostgreSQL's JSON."""
        out = self.psql("SELECT coalesce(json_agg(q), '[]') FROM (%s) q" % sql)
        return json.loads(out)

    def value(self, sql):
        out = self.psql(sql).strip()
        return out

    def sessions_ended(self):
        """Waits (up to 10 s) until no other client is connected: a session
        reports its statistics (pg_stat_database, pg_stat_user_functions) as
        it ends, after its client has gone."""
        for _ in range(200):
            if self.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                          " AND backend_type = 'client backend' AND pid <> pg_backend_pid()") == "0":
                return
            time.sleep(0.05)

    def close(self):
        self.admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def write_job(dirname, text, name="job.yaml"):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def run_etl(args, env=None, timeout=300, input=None):
    """Runs the binary; returns (exit status, stdout, stderr)."""
    e = dict(os.environ)
    e["LC_ALL"] = "C"
    if env:
        e.update(env)
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=timeout,
                       input=input)
    check_sanitizers(p.stderr)
    return p.returncode, p.stdout, p.stderr


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: UndefinedBehaviorSanitizer")


def check_sanitizers(stderr):
    """Under the ASan/UBSan build a report fails the test whatever the exit status."""
    for mark in SANITIZER_MARKS:
        if mark in (stderr or ""):
            raise AssertionError("sanitizer report:\n" + stderr)


def expected_item_rows(item, position, targets, shape="current"):
    """The rows one served item must become, keyed by (referring_domain, key)."""
    rows = {}
    if shape == "legacy" or "domain_intersection" not in item:
        per_target = {k: v for k, v in item.items() if k.isdigit()}
        summary = None
    else:
        per_target = item["domain_intersection"]
        summary = item.get("summary")
    icount = None
    if isinstance(summary, dict):
        icount = summary.get("intersections_count")
    if icount is None and "intersections_count" in item:
        icount = item["intersections_count"]
    for key, obj in per_target.items():
        row = {
            "referring_domain": obj["target"],
            "target_key": int(key),
            "target": targets[int(key) - 1],
            "position": position,
            "intersections_count": icount,
            "type": obj.get("type"),
        }
        for f in INT_FIELDS:
            row[f] = obj.get(f)
        for f in MAP_FIELDS:
            row[f] = obj.get(f)
        for f in TIME_FIELDS:
            row[f] = obj.get(f)
        rows[(obj["target"], int(key))] = row
    return rows


def expected_rows(requests, first_target, targets):
    """Rows the served pages of one target set must have produced (lowest position wins)."""
    rows = {}
    for r in requests:
        task = r.get("task")
        if not task or r.get("status") != 200 or r.get("items") is None:
            continue
        if task.get("targets", {}).get("1") != first_target:
            continue
        offset = task.get("offset", 0)
        shape = r.get("shape", "current")
        for j, item in enumerate(r["items"]):
            for k, row in expected_item_rows(item, offset + j, targets, shape).items():
                if k not in rows or row["position"] < rows[k]["position"]:
                    rows[k] = row
    return rows


# How the database renders a timestamptz in JSON (timezone UTC): the API's
# "2021-08-27 20:28:54 +00:00" comes back as "2021-08-27T20:28:54+00:00".
def api_time_to_json(s):
    if s is None:
        return None
    date, time_, off = s.split(" ")
    return "%sT%s%s" % (date, time_, off)


def db_rows(db, schema, set_name, snapshot_date=None):
    where = "t.name = '%s'" % set_name
    if snapshot_date:
        where += " AND d.snapshot_date = '%s'" % snapshot_date
    got = db.rows("SELECT d.* FROM %s.domain_intersection d JOIN %s.target_set t "
                  "USING (target_set_id) WHERE %s ORDER BY position, target_key" % (schema, schema, where))
    return {(r["referring_domain"], r["target_key"]): r for r in got}


class EtlTestCase(unittest.TestCase):
    """Base class: a fake API per test class; a database and a temp dir per test."""

    schema = "dataforseo"

    @classmethod
    def setUpClass(cls):
        cls.fake = fakeapi.FakeServer(token="sk-aisa-test", login="login-test", password="pw-test")
        cls.fake.start()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.db = Database(self.__class__.__name__.lower()[:20])
        self.fake.reset()

    def tearDown(self):
        self.db.close()
        self.tmp.cleanup()

    def env(self, **extra):
        e = {"DATABASE_URL": self.db.url, "AISA_API_KEY": "sk-aisa-test",
             "AISA_BASE_URL": self.fake.base_url("aisa"),
             "DFS_BASE_URL": self.fake.base_url("dataforseo"),
             "DFS_LOGIN": "login-test", "DFS_PASSWORD": "pw-test"}
        e.update(extra)
        return e

    def job(self, text, name="job.yaml"):
        return write_job(self.tmp.name, text, name)

    def etl(self, *args, env=None, expect=0, timeout=300):
        code, out, err = run_etl(args, env=env or self.env(), timeout=timeout)
        if expect is not None:
            self.assertEqual(code, expect, "exit status of %s\nstdout:\n%s\nstderr:\n%s" % (args, out, err))
        return code, out, err

    def assertRowsMatch(self, set_name, first_target, targets, snapshot_date=None, requests=None):
        """Every row in the table equals, field by field, what the fake served; none missing or extra."""
        want = expected_rows(requests if requests is not None else self.fake.requests, first_target, targets)
        got = db_rows(self.db, self.schema, set_name, snapshot_date)
        self.assertEqual(sorted(got.keys()), sorted(want.keys()),
                         "row keys of %s differ: missing %s, extra %s" % (
                             set_name, sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
        for k, w in want.items():
            g = got[k]
            for f, v in w.items():
                if f in TIME_FIELDS:
                    v = api_time_to_json(v)
                self.assertEqual(g[f], v, "%s %s: field %s" % (set_name, k, f))
            self.assertIsNone(g["extra"], "%s %s: unexpected extra %s" % (set_name, k, g["extra"]))
        return got


class OwnClusterTestCase(EtlTestCase):
    """A PostgreSQL cluster of the test's own, which it may restart or crash
    (the suite's is shared by tests running in parallel): self.pgdir, its
    env file as self.env_pg, and self.own, its database "intersect"."""

    cluster_prefix = "pgown-"

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix=self.cluster_prefix)
        self.pgdir = os.path.join(tmp, "pg")
        pg_tmp = os.path.join(SOURCE, "scripts", "pg-tmp")
        subprocess.run([pg_tmp, "start", self.pgdir], check=True, capture_output=True)
        self.addCleanup(subprocess.run, [pg_tmp, "stop", self.pgdir], capture_output=True)
        self.env_pg = {}
        with open(os.path.join(self.pgdir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.env_pg[k] = v
        self.own = Database.existing(self.env_pg, "intersect")
        # scripts/pg-tmp trades durability for speed (synchronous_commit off):
        # a crash ("immediate") would then lose the last commits, which a
        # real server's does not. fsync may stay off: the OS keeps what was
        # written when only the server dies.
        self.own.psql("ALTER SYSTEM SET synchronous_commit = on")
        self.own.psql("SELECT pg_reload_conf()")

    def restart(self, mode):
        """pg_ctl restart: "fast" shuts down cleanly; "immediate" is a crash
        (the server recovers from its WAL on start)."""
        owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        subprocess.run(owner + [os.path.join(self.env_pg["PG_BINDIR"], "pg_ctl"), "-D",
                                os.path.join(self.pgdir, "data"), "-m", mode, "-w", "restart", "-l",
                                os.path.join(self.pgdir, "server.log")],
                       check=True, capture_output=True)

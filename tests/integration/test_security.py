"""The database boundary as an attacker with a login sees it, and credentials
an API echoes (issue 16, items 1, 3 (the BI role), 4, 5, 6 and 8).

- Names the ETL resolves: built-ins before anything in the job's schema, in
  sessions and in functions; a schema other roles may create in (or did) is
  refused; PUBLIC may not execute the schema's functions; the staging table
  is the session's own temporary table.
- An echoed API token is cut from stderr (text and JSON), `runs`, the ledger,
  the run and snapshot errors, the views and the archive.
- Plain http to loopback never goes through a proxy from the environment.
- A database address that accepts and never answers ends `run` and `migrate`
  within the connect timeout; a statement cancelled by statement_timeout says
  which database and how to change the limit.
- sql/bi_readonly.sql works for a role with CREATEROLE that owns the
  database, and leaves the BI role unable to create anything, temporary
  tables included; run by a role that cannot revoke PUBLIC's TEMPORARY, it
  fails saying so.
"""

import json
import os
import socket
import subprocess
import threading
import time
import unittest
import uuid

from harness import SOURCE, Database, EtlTestCase

TOKEN = "sk-aisa-test"  # the harness's key for the fake

JOB = """\
version: 1
job: sec
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  requests_per_minute: 10000
  max_attempts: 1
database: {url: "${DATABASE_URL}", schema: SCHEMA}
defaults: {limit: 100, max_rows: 200}
target_sets:
  - {name: alpha, targets: [alpha-a.com, alpha-b.com]}
  - {name: beta, targets: [beta-a.com, beta-b.com]}
"""

# Functions that stand in for built-ins the ETL and its SQL call, and record
# each call in a table anyone may write.
AUDIT = """
CREATE SCHEMA audit;
CREATE TABLE audit.calls (what text, by_user name DEFAULT current_user);
GRANT USAGE ON SCHEMA audit TO PUBLIC;
GRANT INSERT ON audit.calls TO PUBLIC;
"""
SHADOWS = """
CREATE FUNCTION {s}.hashtext(t text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.calls (what) VALUES ('hashtext');
    RETURN pg_catalog.hashtext(t);
END $$;
CREATE FUNCTION {s}.date_le_shadow(a date, b date) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.calls (what) VALUES ('<=');
    RETURN pg_catalog.date_le(a, b);
END $$;
CREATE OPERATOR {s}.<= (LEFTARG = date, RIGHTARG = date, FUNCTION = {s}.date_le_shadow);
"""


class Role:
    """A login role of the shared cluster, with its own psql; dropped at close()."""

    def __init__(self, db, prefix, attrs="LOGIN"):
        self.db = db
        self.name = "%s_%s" % (prefix, uuid.uuid4().hex[:8])
        db.admin('CREATE ROLE "%s" %s' % (self.name, attrs))

    def psql(self, sql=None, dbname=None, file=None, variables=(), check=True):
        pg = self.db.pg
        cmd = [os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", "127.0.0.1", "-p", pg["PGPORT"], "-U", self.name, "-d", dbname or self.db.name]
        for v in variables:
            cmd += ["-v", v]
        cmd += ["-f", file] if file else ["-c", sql]
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PGTZ="UTC"))
        if check and p.returncode != 0:
            raise AssertionError("psql as %s failed: %s\n%s" % (self.name, sql or file, p.stderr))
        return p

    def url(self, dbname):
        return "postgresql://%s@127.0.0.1:%s/%s" % (self.name, self.db.pg["PGPORT"], dbname)

    def close(self, *dbs):
        for d in dbs:
            d.psql('DROP OWNED BY "%s"' % self.name, check=False)
        self.db.admin('DROP ROLE IF EXISTS "%s"' % self.name)


class SearchPathTest(EtlTestCase):
    """Item 1: nothing in the job's schema stands in for a built-in."""

    def job_in(self, schema):
        return self.job(JOB.replace("SCHEMA", schema))

    def calls(self):
        return self.db.rows("SELECT what, by_user FROM audit.calls ORDER BY what")

    def test_shadowing_objects_in_the_schema_are_never_called(self):
        # The owner's own schema (nobody else may create in it): a function
        # and an operator there with built-in names must still not be what
        # the sessions and the functions (publish_snapshot() compares dates)
        # call. Before: the schema came first and both were called.
        job = self.job_in("dataforseo")
        self.etl("migrate", job)
        self.db.psql(AUDIT + SHADOWS.format(s="dataforseo"))
        self.etl("run", job, "--snapshot-date", "2026-01-02")
        self.etl("run", job, "--snapshot-date", "2026-01-03")
        self.assertEqual(self.calls(), [])
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.etl_snapshot "
                                       "WHERE status = 'complete'"), "4")

    def test_functions_pinned_and_not_executable_by_public(self):
        job = self.job_in("dataforseo")
        self.etl("migrate", job)
        rows = self.db.rows(
            "SELECT p.proname, (SELECT c FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%') AS path,"
            " has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec"
            " FROM pg_proc p WHERE p.pronamespace = 'dataforseo'::regnamespace ORDER BY 1")
        self.assertEqual([r["proname"] for r in rows],
                         sorted(r["proname"] for r in rows))
        self.assertIn("snapshot_rows", [r["proname"] for r in rows])
        self.assertIn("publish_snapshot", [r["proname"] for r in rows])
        for r in rows:
            self.assertEqual(r["path"], "search_path=pg_catalog, dataforseo, pg_temp", r)
            self.assertFalse(r["public_exec"], r)

    def test_schema_others_may_create_in_is_refused(self):
        # PostgreSQL 14's default: PUBLIC may CREATE in "public". A login
        # role plants hashtext(text) and <= (date, date) there.
        mallory = Role(self.db, "mallory")
        try:
            self.db.psql("GRANT CREATE ON SCHEMA public TO PUBLIC")
            self.db.psql(AUDIT)
            mallory.psql(SHADOWS.format(s="public"))
            job = self.job_in("public")
            want = ("intersect-etl: error: schema public: roles other than its owner may create "
                    "objects in it (PUBLIC), which the ETL would then run with its own rights\n"
                    "hint: REVOKE CREATE ON SCHEMA public FROM PUBLIC; or give the job a schema of "
                    "its own (database.schema)\n")
            for args in (("migrate", job), ("run", job, "--migrate"), ("runs", job)):
                code, out, err = self.etl(*args, expect=1)
                self.assertEqual(err, want, args)
            self.assertEqual(self.fake.requests, [])
            self.assertEqual(self.db.value("SELECT to_regclass('public.etl_run') IS NULL"), "t")
            # Closed now, but what was planted is still there.
            self.db.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            code, out, err = self.etl("migrate", job, expect=1)
            self.assertIn("intersect-etl: error: schema public holds ", err)
            self.assertIn("intersect-etl: error: schema public holds function "
                          "public.date_le_shadow(a date, b date) owned by %s, a role that is not its "
                          "owner, which the ETL could end up running with its own rights\n" % mallory.name,
                          err)
            self.assertIn("hint: drop it (or change its owner) after checking what it does", err)
            self.db.psql("DROP OWNED BY %s" % mallory.name)
            self.etl("run", job, "--migrate", "--snapshot-date", "2026-01-02")
            self.assertEqual(self.calls(), [])
        finally:
            mallory.close(self.db)

    def test_a_table_named_like_the_staging_table_is_not_used(self):
        # Pages that repeat a row go through the temporary di_stage; a table
        # of that name in the schema must not take its place (before: COPY
        # di_stage wrote into it, since the schema came before pg_temp).
        job = self.job_in("dataforseo")
        self.etl("migrate", job)
        self.db.psql("CREATE TABLE dataforseo.di_stage "
                     "(LIKE dataforseo.domain_intersection_pending INCLUDING DEFAULTS)")
        self.fake.set_scenario("alpha-a.com", total_count=200, duplicate_at=[100])
        self.etl("run", job, "--snapshot-date", "2026-01-02")
        self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.di_stage"), "0")
        reqs = [r for r in self.fake.requests if r["task"]["targets"]["1"] == "alpha-a.com"]
        self.assertRowsMatch("alpha", "alpha-a.com", ["alpha-a.com", "alpha-b.com"], "2026-01-02",
                             requests=reqs)


class RedactionTest(EtlTestCase):
    """Item 4: a token the API echoes is cut before it is logged, stored or shown."""

    def texts(self):
        """Every stored text a person or the BI role may read."""
        return json.dumps(self.db.rows(
            "SELECT (SELECT json_agg(p) FROM sec.etl_page p) AS pages,"
            " (SELECT json_agg(r) FROM sec.etl_run r) AS runs,"
            " (SELECT json_agg(r) FROM sec.etl_run_set r) AS run_sets,"
            " (SELECT json_agg(s) FROM sec.etl_snapshot s) AS snapshots,"
            " (SELECT json_agg(v) FROM sec.etl_run_summary v) AS summary,"
            " (SELECT json_agg(d) FROM sec.domain_intersection_daily d) AS daily,"
            " (SELECT json_agg(v) FROM sec.domain_intersection_version v) AS versions,"
            " (SELECT json_agg(json_build_array(body, body_gzip IS NULL)) FROM sec.raw_page) AS archive"))

    def test_echoed_token_is_cut_everywhere(self):
        job = self.job(JOB.replace("SCHEMA", "sec"))
        self.etl("migrate", job)
        # alpha: a task error quoting the key (the set fails); beta: a page
        # whose items carry it in a field of their own (kept, in extra).
        echo = "Invalid Field: key %s is not allowed (Authorization: Bearer %s)" % (TOKEN, TOKEN)
        cut = "Invalid Field: key *** is not allowed (Authorization: Bearer ***)"
        self.fake.inject({"kind": "task", "code": 40501, "message": echo, "offset": None,
                          "times": -1, "first_target": "alpha-a.com"})

        def add_token(doc):
            for item in doc["tasks"][0]["result"][0]["items"]:
                item["debug"] = "seen key " + TOKEN
        self.fake.inject({"kind": "edit", "fn": add_token, "offset": 0,
                          "first_target": "beta-a.com"})
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-01-02", expect=3)
        self.assertNotIn(TOKEN, out + err)
        self.assertIn(cut, err)
        code, out, err = self.etl("--log-format", "json", "run", job, "--snapshot-date",
                                  "2026-01-03", "--only", "alpha", expect=1)
        self.assertNotIn(TOKEN, out + err)
        self.assertTrue(any(cut in json.loads(line)["message"] for line in err.splitlines()), err)
        # a 401 whose body quotes the key stops the run
        self.fake.reset()
        self.fake.inject({"kind": "top", "code": 40100, "http_status": 401, "offset": None,
                          "times": -1, "message": "Key %s is not valid" % TOKEN})
        code, out, err = self.etl("run", job, "--snapshot-date", "2026-01-04", expect=1)
        self.assertNotIn(TOKEN, out + err)
        self.assertIn("Key *** is not valid", err)
        texts = self.texts()
        self.assertNotIn(TOKEN, texts)
        self.assertIn(cut, texts)
        self.assertIn("Key *** is not valid", texts)
        self.assertEqual(
            self.db.rows("SELECT DISTINCT api_status_message FROM sec.etl_page WHERE api_status_code = 40501"),
            [{"api_status_message": cut}])
        last = self.db.value("SELECT last_error FROM sec.etl_snapshot s JOIN sec.target_set t "
                             "USING (target_set_id) WHERE t.name = 'alpha' AND snapshot_date = '2026-01-03'")
        self.assertIn(cut, last)
        # the archived page is the decoded body with the key cut, not the
        # gzip bytes that held it; its rows keep the field, cut
        self.assertEqual(self.db.rows(
            "SELECT r.page_offset, r.body_gzip IS NULL AS decoded, r.body LIKE '%%seen key ***%%' AS cut"
            " FROM sec.raw_page r JOIN sec.target_set t USING (target_set_id)"
            " WHERE t.name = 'beta' AND r.page_offset = 0 ORDER BY r.run_id LIMIT 1"),
            [{"page_offset": 0, "decoded": True, "cut": True}])
        self.assertEqual(self.db.value(
            "SELECT DISTINCT extra->'_item'->>'debug' FROM sec.domain_intersection_version v "
            "JOIN sec.target_set t USING (target_set_id) WHERE t.name = 'beta' AND extra ? '_item'"),
            "seen key ***")
        for args in (("runs", job), ("runs", job, "1"), ("runs", job, "--format", "json"),
                     ("runs", job, "2", "--format", "json")):
            code, out, err = self.etl(*args)
            self.assertNotIn(TOKEN, out + err, args)
        code, out, err = self.etl("runs", job, "1")
        self.assertIn("key *** is not allowed", out)


class ProxyTest(EtlTestCase):
    """Item 5: http_proxy never sees a request to a plain-http loopback API."""

    def test_proxy_from_environment_is_not_used_for_loopback_http(self):
        got = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.2)
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                c.settimeout(2)
                try:
                    got.append(c.recv(65536))
                    c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass
                c.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            proxy = "http://127.0.0.1:%d" % srv.getsockname()[1]
            env = self.env(http_proxy=proxy, HTTP_PROXY=proxy, all_proxy=proxy, ALL_PROXY=proxy,
                           no_proxy="", NO_PROXY="")
            job = self.job(JOB.replace("SCHEMA", "dataforseo"))
            self.etl("run", job, "--migrate", "--snapshot-date", "2026-01-02", env=env)
        finally:
            stop.set()
            t.join()
            srv.close()
        self.assertEqual(got, [])
        self.assertEqual(len([r for r in self.fake.requests if r["status"] == 200]), 4)


class DatabaseTimeoutTest(EtlTestCase):
    """Item 6: every wait on the database is bounded."""

    def test_database_that_never_answers(self):
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(16)  # the kernel completes the handshakes; nobody reads
            port = srv.getsockname()[1]
            url = "postgresql://etl:Secret-pw@127.0.0.1:%d/warehouse" % port
            job = self.job(JOB.replace("SCHEMA", "dataforseo"))
            for args in (("migrate", job), ("run", job)):
                t0 = time.monotonic()
                code, out, err = self.etl(*args, env=self.env(DATABASE_URL=url), expect=1, timeout=60)
                took = time.monotonic() - t0
                self.assertLess(took, 25, args)
                self.assertGreater(took, 8, args)  # the 10 s connect_timeout, not a refusal
                self.assertIn("intersect-etl: error: cannot connect to the database (host 127.0.0.1, "
                              "port %d, user etl, database warehouse): " % port, err)
                self.assertIn("timeout expired", err)
                self.assertNotIn("Secret", err)
        self.assertEqual(self.fake.requests, [])

    def test_statement_timeout_default_and_override(self):
        # What the ETL's sessions (the run's and the loaders') have, seen
        # from inside them by triggers on the tables each writes.
        job = self.job(JOB.replace("SCHEMA", "dataforseo"))
        self.etl("migrate", job)
        self.db.psql("""
            CREATE TABLE public.seen (tbl text, timeout text);
            CREATE FUNCTION public.note_timeout() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.seen VALUES (TG_TABLE_NAME, current_setting('statement_timeout'));
                RETURN NULL;
            END $$;
            CREATE TRIGGER note AFTER INSERT ON dataforseo.etl_run
                FOR EACH ROW EXECUTE FUNCTION public.note_timeout();
            CREATE TRIGGER note AFTER INSERT ON dataforseo.etl_page
                FOR EACH ROW EXECUTE FUNCTION public.note_timeout();""")
        seen = "SELECT DISTINCT tbl, timeout FROM public.seen ORDER BY 1, 2"
        self.etl("run", job, "--snapshot-date", "2026-01-02")
        self.assertEqual(self.db.rows(seen), [{"tbl": "etl_page", "timeout": "30min"},
                                              {"tbl": "etl_run", "timeout": "30min"}])
        # an administrator's setting is kept, and so are the connection's options
        self.db.psql("TRUNCATE public.seen; ALTER DATABASE %s SET statement_timeout = '2h'" % self.db.name)
        self.etl("run", job, "--snapshot-date", "2026-01-03")
        self.assertEqual(self.db.rows(seen), [{"tbl": "etl_page", "timeout": "2h"},
                                              {"tbl": "etl_run", "timeout": "2h"}])
        self.db.psql("TRUNCATE public.seen")
        url = self.db.url + "?options=-c%20statement_timeout%3D45min"
        self.etl("run", job, "--snapshot-date", "2026-01-04", env=self.env(DATABASE_URL=url))
        self.assertEqual(self.db.rows(seen), [{"tbl": "etl_page", "timeout": "45min"},
                                              {"tbl": "etl_run", "timeout": "45min"}])

    def test_statement_timeout_names_the_database_and_the_override(self):
        job = self.job(JOB.replace("SCHEMA", "dataforseo"))
        self.etl("migrate", job)
        url = self.db.url + "?options=-c%20statement_timeout%3D1500"
        holder = subprocess.Popen(
            [os.path.join(self.db.pg["PG_BINDIR"], "psql"), "-X", "-q", "-h", self.db.pg["PGHOST"],
             "-p", self.db.pg["PGPORT"], "-U", self.db.pg["PGUSER"], "-d", self.db.name,
             "-c", "BEGIN; LOCK TABLE dataforseo.etl_run; SELECT pg_sleep(30);"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                if self.db.value("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                 "WHERE c.relname = 'etl_run' AND l.mode = 'AccessExclusiveLock' "
                                 "AND l.granted") == "1":
                    break
                time.sleep(0.1)
            t0 = time.monotonic()
            code, out, err = self.etl("run", job, env=self.env(DATABASE_URL=url), expect=1, timeout=60)
            self.assertLess(time.monotonic() - t0, 20)
        finally:
            holder.kill()
            holder.wait()
        self.assertIn("canceling statement due to statement timeout", err)
        self.assertIn("hint: the database (host 127.0.0.1, port %s, database %s) cancelled the "
                      "statement; the ETL's statements may take 30min unless the session says "
                      "otherwise: ALTER ROLE ... SET statement_timeout = '2h', or "
                      "options=-c%%20statement_timeout%%3D2h in the connection URL"
                      % (self.db.pg["PGPORT"], self.db.name), err)


class BiReadonlyTest(EtlTestCase):
    """Items 8 and 3 (BI part): bi_readonly.sql as a CREATEROLE role; a BI
    role that can create nothing."""

    SCRIPT = os.path.join(SOURCE, "sql", "bi_readonly.sql")

    def setUp(self):
        super().setUp()
        self.mig = Role(self.db, "etl_mig", "LOGIN CREATEROLE")
        self.bi_name = "bi_%s" % uuid.uuid4().hex[:8]
        self.own = Database("biown")
        self.own.admin('ALTER DATABASE "%s" OWNER TO "%s"' % (self.own.name, self.mig.name))

    def tearDown(self):
        self.own.close()
        self.db.admin('DROP ROLE IF EXISTS "%s"' % self.bi_name)
        self.mig.close(self.db)
        super().tearDown()

    def script(self, dbname, check=True):
        return self.mig.psql(file=self.SCRIPT, dbname=dbname, check=check,
                             variables=("schema=dataforseo", "role=" + self.bi_name,
                                        "password='x-pw'"))

    def bi(self, sql, dbname):
        pg = self.db.pg
        return subprocess.run(
            [os.path.join(pg["PG_BINDIR"], "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1",
             "-p", pg["PGPORT"], "-U", self.bi_name, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True)

    def test_createrole_owner_of_the_database(self):
        job = self.job(JOB.replace("SCHEMA", "dataforseo"))
        env = self.env(DATABASE_URL=self.mig.url(self.own.name))
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-01-02", env=env)
        p = self.script(self.own.name)
        self.assertIn("can read the report views of schema dataforseo", p.stdout)
        self.assertEqual(self.own.rows(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolcanlogin FROM pg_roles "
            "WHERE rolname = '%s'" % self.bi_name),
            [{"rolsuper": False, "rolcreaterole": False, "rolcreatedb": False, "rolinherit": False,
              "rolcanlogin": True}])
        # reads what it is for
        sql = "SELECT count(*) FROM dataforseo.domain_intersection_latest"
        p = self.bi(sql, self.own.name)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, self.own.value(sql)), p.stderr)
        self.assertGreater(int(p.stdout), 0)
        # and can create nothing, read-write transaction or not
        for sql, msg in [
                ("BEGIN READ WRITE; CREATE TEMP TABLE t (i int)",
                 'permission denied to create temporary tables in database "%s"' % self.own.name),
                ("BEGIN READ WRITE; CREATE TABLE public.t (i int)", "permission denied for schema public"),
                ("BEGIN READ WRITE; CREATE TABLE dataforseo.t (i int)",
                 "permission denied for schema dataforseo"),
                ("BEGIN READ WRITE; CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                 'permission denied to create temporary tables in database "%s"' % self.own.name),
                ("BEGIN READ WRITE; CREATE SCHEMA mine", 'permission denied for database %s' % self.own.name),
                ("SELECT dataforseo.snapshot_stats(1, '2026-01-02')",
                 "permission denied for function snapshot_stats")]:
            p = self.bi(sql, self.own.name)
            self.assertNotEqual(p.returncode, 0, sql)
            self.assertIn(msg, p.stderr, sql)
        # the ETL (the schema's owner) still stages in temporary tables
        self.etl("run", job, "--snapshot-date", "2026-01-03", env=env)
        self.assertEqual(self.own.value("SELECT count(*) FROM dataforseo.etl_snapshot "
                                        "WHERE status = 'complete'"), "4")
        # running it again is safe
        self.script(self.own.name)

    def test_runner_that_cannot_revoke_temporary_is_told(self):
        # The CREATEROLE role owns the schema but not the database: it cannot
        # take TEMPORARY from PUBLIC, so the BI role could create temporary
        # tables: the script fails and changes nothing.
        self.db.admin('GRANT CREATE ON DATABASE "%s" TO "%s"' % (self.db.name, self.mig.name))
        job = self.job(JOB.replace("SCHEMA", "dataforseo"))
        self.etl("migrate", job, env=self.env(DATABASE_URL=self.mig.url(self.db.name)))
        p = self.script(self.db.name, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bi_readonly.sql: role %s could still create objects: TEMPORARY on database %s"
                      % (self.bi_name, self.db.name), p.stderr)
        self.assertIn("run the script as the database's owner (or a superuser)", p.stderr)
        self.assertEqual(self.db.value("SELECT count(*) FROM pg_roles WHERE rolname = '%s'"
                                       % self.bi_name), "0")


if __name__ == "__main__":
    unittest.main()

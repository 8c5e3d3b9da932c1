"""No credential in any output, and no forged log line: the real binary with a
password in base_url, in database URLs that cannot be parsed or reached, and
in option values it refuses; global options after the command; core dumps
and /proc access off while it holds credentials; API text with a newline and
terminal escapes in its status_message, as text and as JSON log lines.

Every secret below holds the word Secret (or SECRET), and the test asserts
that word appears in no stdout or stderr."""

import json
import os
import socket
import subprocess
import time
import unittest

from harness import BIN, EtlTestCase, check_sanitizers

JOB = """\
version: 1
job: secrets
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  requests_per_minute: 10000
  max_attempts: 2
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 100}
target_sets:
  - {name: alpha, targets: [alpha-a.com, alpha-b.com]}
"""


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SecretsTest(EtlTestCase):

    def assertNoSecret(self, out, err, what):
        for text in (out, err):
            self.assertNotIn("Secret", text, what)
            self.assertNotIn("SECRET", text, what)

    # -- item: user:password@ in base_url ----------------------------------

    def test_base_url_with_userinfo_is_refused(self):
        cases = [
            "https://user:Secret-pw@gateway.example.com/apis/v1",
            "http://Secret@127.0.0.1:8089",
            "https://me:p%40Secret@gateway.example.com",
        ]
        for url in cases:
            job = self.job(JOB.replace("${AISA_BASE_URL}", "'%s'" % url))
            for cmd in ("validate", "plan", "run"):
                code, out, err = self.etl(cmd, job, expect=2)
                self.assertRegex(err, r"job\.yaml:4:13: api\.base_url: must not contain a user "
                                 r"name or password", (cmd, url))
                self.assertIn("hint: credentials belong in api.token", err)
                self.assertNoSecret(out, err, (cmd, url))
        self.assertEqual(self.fake.requests, [])

    # -- item: database URLs in connection errors --------------------------

    def test_connection_errors_show_no_password(self):
        port = closed_port()
        pg = self.db.pg
        # (URL, what the message must contain)
        cases = [
            ("postgresql://alice:pa%%zzSecret@127.0.0.1:%d/warehouse" % port,
             'the connection string is not valid: invalid percent-encoded token: "..."'),
            ("postgresql://alice:Secret%%00x@127.0.0.1:%d/warehouse" % port,
             "the connection string is not valid: forbidden value %00 in percent-encoded value"),
            ('postgresql://alice:Sec"ret@[::1/warehouse',
             "the connection string is not valid: end of string reached when looking for matching\n"),
            ("postgresql://alice:Secret@127.0.0.1:%d/warehouse?Secret=1" % port,
             'the connection string is not valid: invalid URI query parameter: "..."'),
            ("host=127.0.0.1 password=Secret user", 'missing "..." after "..." in connection info'),
            ("postgresql://alice:Secret@127.0.0.1:%d/warehouse" % port,
             "(host 127.0.0.1, port %d, user alice, database warehouse): connection to server at "
             '"127.0.0.1", port %d failed: Connection refused' % (port, port)),
            ("host=127.0.0.1 port=%d user=bob password=Secret dbname=dw" % port,
             "(host 127.0.0.1, port %d, user bob, database dw): " % port),
            ("postgresql://alice:Secret@127.0.0.1:%d/warehouse?sslmode=Secret" % port,
             'invalid sslmode value: "***"'),
            ("postgresql://%s:Secret@127.0.0.1:%s/no_such_db_x" % (pg["PGUSER"], pg["PGPORT"]),
             "(host 127.0.0.1, port %s, user %s, database no_such_db_x): " % (pg["PGPORT"], pg["PGUSER"])),
        ]
        job_tmpl = JOB.replace('"${DATABASE_URL}"', "'%s'")
        for url, msg in cases:
            runs = [("migrate", "--database-url", url), ("runs", "--database-url=" + url)]
            if "'" not in url:
                runs.append(("run", self.job(job_tmpl % url)))
            for args in runs:
                code, out, err = self.etl(*args, expect=1)
                self.assertIn("cannot connect to the database", err, args)
                self.assertIn(msg, err, args)
                self.assertNoSecret(out, err, args)
                self.assertNotIn(url, err)
                self.assertNotIn('Sec"ret', err)
            # the same from the environment
            code, out, err = self.etl("runs", env=self.env(DATABASE_URL=url), expect=1)
            self.assertIn(msg, err, url)
            self.assertNoSecret(out, err, url)

    # -- item: refused options name the option, never its value ------------

    def test_refused_options_do_not_echo_values(self):
        url = "postgresql://u:Secret@db.example.com/dw"
        cases = [
            (("run", "x.yaml", "--database-url=" + url), "--database-url: unknown option"),
            (("--database-url=" + url, "run", "x.yaml"), "--database-url: unknown option"),
            (("plan", "x.yaml", "--databse-url", url), "--databse-url: unknown option"),
            (("run", "x.yaml", "--fresh=" + url), "--fresh: takes no value"),
            (("run", "x.yaml", "--quiet=Secret"), "--quiet: takes no value"),
            (("--log-format=" + url, "run", "x.yaml"), "--log-format: expected text or json"),
            (("run", "x.yaml", "--log-format", url), "--log-format: expected text or json"),
            (("run", "x.yaml", "--snapshot-date=" + url), "--snapshot-date: not a date"),
            (("runs", "--limit", url), "--limit: not a number from 1 to"),
            (("runs", "--format", url), "--format: runs prints table or json"),
            (("run", "x.yaml", "-Secret"), "-S: unknown option"),
            (("run", "--only=a", "-Zq", "x.yaml"), "-Z: unknown option"),
            (("run", "--only", "a", "-qZ", "x.yaml"), "-Z: unknown option"),
            (("migrate", "--database-url"), "--database-url: needs a value"),
            ((url, "run", "x.yaml"), "the first argument after the options is not a command"),
            (("-q", url), "the first argument after the options is not a command"),
            (("help", url), "help: no such command"),
        ]
        for args, msg in cases:
            code, out, err = self.etl(*args, expect=2)
            self.assertIn("intersect-etl: " + msg, err, args)
            self.assertNoSecret(out, err, args)

    # -- item: global options before or after the command ------------------

    def test_global_options_after_the_command(self):
        job = self.job(JOB)
        code, out, err = self.etl("run", job, "--migrate", "-q")
        self.assertEqual(err, "")
        code, out, err = self.etl("run", job, "--fresh", "--log-format", "json")
        lines = err.splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertIn("message", json.loads(line))
        code, out, err = self.etl("validate", job, "--log-format=json", "--verbose")
        self.assertIn("ok: job secrets", out)
        code, out, err = self.etl("-q", "run", job, "--fresh", "--log-format", "text")
        self.assertEqual(err, "")
        code, out, err = self.etl("run", job, "--version")
        self.assertRegex(out, r"^intersect-etl \d+\.\d+\.\d+\n$")
        for cmd in ("run", "plan", "validate", "migrate", "replay", "runs", "report"):
            code, out, err = self.etl(cmd, "--help")
            self.assertIn("before or after the command name", out, cmd)

    # -- item: core dumps off, /proc closed, argv scrubbed -----------------

    def test_no_core_dump_and_no_password_in_proc(self):
        """A run blocked on a server that accepts and never answers, seen from outside."""
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            srv.settimeout(30)
            url = "postgresql://alice:Secret@127.0.0.1:%d/dw" % srv.getsockname()[1]
            # As root, run as nobody: /proc/PID of a non-dumpable process is owned by
            # root, which only shows when the process is not root itself.
            user = 65534 if os.geteuid() == 0 else None
            p = subprocess.Popen([BIN, "runs", "--database-url", url], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, user=user,
                                 env=dict(os.environ, LC_ALL="C", DATABASE_URL=""))
            try:
                conn, _ = srv.accept()  # the connect comes after cli_main's first lines
                with open("/proc/%d/limits" % p.pid) as f:
                    core = [ln for ln in f if ln.startswith("Max core file size")]
                self.assertEqual(core[0].split()[4:6], ["0", "0"], core)
                self.assertEqual(os.stat("/proc/%d/status" % p.pid).st_uid, 0)  # not dumpable
                with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                    argv = f.read().split(b"\0")
                self.assertIn(b"--database-url", argv)
                self.assertNotIn(b"Secret", b" ".join(argv))
                conn.close()
            finally:
                p.kill()
                out, err = p.communicate(timeout=30)
        check_sanitizers(err)

    # -- item: API text in log lines ---------------------------------------

    def test_status_message_is_escaped_in_text_logs(self):
        hostile = ("Invalid Field.\nintersect-etl: error: forged line\x1b[2J\x1b]0;title\x07 "
                   "\u009b31m end")
        job = self.job(JOB)
        self.etl("migrate", job)
        self.fake.inject({"kind": "task", "code": 40501, "message": hostile, "offset": None, "times": -1})
        code, out, err = self.etl("run", job, expect=None)
        self.assertIn(code, (1, 3))
        self.assertNotIn("\x1b", err)
        self.assertNotIn("\x07", err)
        self.assertNotIn("\u009b", err)
        for line in err.splitlines():
            self.assertFalse(line.startswith("intersect-etl: error: forged"), err)
        self.assertIn("Invalid Field.\\nintersect-etl: error: forged line\\x1b[2J\\x1b]0;title\\x07 "
                      "\\u009b31m end", err)
        # JSON lines: json-c's escaping, the message whole once decoded
        self.fake.reset()
        self.fake.inject({"kind": "task", "code": 40501, "message": hostile, "offset": None, "times": -1})
        code, out, err = self.etl("--log-format", "json", "run", job, "--fresh", expect=None)
        self.assertNotIn("\x1b", err)
        messages = [json.loads(line)["message"] for line in err.splitlines()]
        self.assertTrue(any(hostile in m for m in messages), messages)


if __name__ == "__main__":
    unittest.main()

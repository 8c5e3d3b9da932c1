"""What a person or a log collector sees: the live progress line on a
terminal (driven through a pseudo-terminal), plain lines without control
characters elsewhere, and JSON logs whose every line parses."""

import json
import os
import pty
import select
import subprocess
import unittest

from harness import BIN, EtlTestCase, check_sanitizers

JOB = """\
version: 1
job: prog
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 2}
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: first, targets: [prog-a.com, prog-b.com]}
  - {name: second, targets: [prog2-a.com]}
"""


class ProgressTest(EtlTestCase):

    def setUp(self):
        super().setUp()
        self.fake.set_scenario("prog-a.com", total_count=1200, latency_ms=60)
        self.fake.set_scenario("prog2-a.com", total_count=500, latency_ms=60,
                               faults=[{"kind": "http500", "offset": 200}])
        self.jobfile = self.job(JOB)
        self.etl("migrate", self.jobfile)

    def test_live_line_on_a_terminal(self):
        master, slave = pty.openpty()
        env = dict(os.environ, LC_ALL="C", TERM="xterm", **self.env())
        p = subprocess.Popen([BIN, "run", self.jobfile], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=slave, env=env)
        os.close(slave)
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 60)
            if not r:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        p.wait(timeout=60)
        os.close(master)
        text = out.decode("utf-8", "replace")
        check_sanitizers(text)
        self.assertEqual(p.returncode, 0, text)
        redraws = text.count("\r\x1b[K")
        self.assertGreaterEqual(redraws, 3, text)  # the bar redraws in place
        self.assertIn("pages ", text)
        self.assertIn("ETA ", text)
        # messages do not land on top of the bar: each starts on a cleared line
        self.assertIn("\r\x1b[Kintersect-etl: warning: second: offset 200: HTTP 500", text)
        # it ends with a final line, the bar erased before it
        last = text.rstrip("\r\n").split("\n")[-1]
        self.assertIn("run 1: 2 target sets complete", last)
        self.assertIn("\r\x1b[Kintersect-etl: done: sets 2/2, pages 17/17, rows 2900", text)

    def test_no_control_characters_when_not_a_terminal(self):
        code, out, err = self.etl("run", self.jobfile)
        self.assertNotRegex(err, r"[\x00-\x08\x0b-\x1f\x7f]")
        self.assertIn("intersect-etl: first: complete", err)
        self.assertIn("intersect-etl: done: sets 2/2, pages 17/17, rows 2900", err)

    def test_json_log_lines_parse(self):
        code, out, err = self.etl("--log-format", "json", "-v", "run", self.jobfile)
        lines = err.splitlines()
        self.assertGreater(len(lines), 10)
        levels = set()
        for line in lines:
            obj = json.loads(line)  # every line parses
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("error", "warning", "info", "debug"))
            self.assertIsInstance(obj["message"], str)
            levels.add(obj["level"])
            if obj["message"].startswith("offset 200: HTTP 500"):
                self.assertEqual(obj["target_set"], "second")
                self.assertEqual(obj["job"], "prog")
                self.assertEqual(obj["run"], 1)
        self.assertEqual(levels, {"info", "warning", "debug"})
        self.assertTrue(any(json.loads(l).get("target_set") == "first" for l in lines))
        # a failure is a JSON line too
        code, out, err = self.etl("--log-format", "json", "run", self.jobfile,
                                  env=self.env(DATABASE_URL="postgresql://x@127.0.0.1:1/x"), expect=1)
        obj = json.loads(err.strip().splitlines()[-1])
        self.assertEqual(obj["level"], "error")
        self.assertIn("cannot connect to the database", obj["message"])
        code, out, err = self.etl("--log-format", "yaml", "run", self.jobfile, expect=2)
        self.assertIn("--log-format yaml: expected text or json", err)

    def test_quiet(self):
        code, out, err = self.etl("-q", "run", self.jobfile)
        self.assertIn("warning: second: offset 200", err)
        self.assertNotIn("complete", err)
        self.assertNotIn("done:", err)


if __name__ == "__main__":
    unittest.main()

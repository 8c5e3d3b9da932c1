"""The command line as a user meets it: help and exit statuses, bad job files
and options (each a clear message and exit 2, never a crash), `plan` (output
checked, no request sent), `validate`, and the docker-compose file."""

import os
import random
import re
import unittest

from harness import EtlTestCase, SOURCE

GOOD = """\
version: 1
job: cli
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: 4
database: {url: "${DATABASE_URL}"}
defaults:
  limit: 1000
  max_rows: 2500
target_sets:
  - name: crm
    targets: [hubspot.com, salesforce.com]
    filters: [["1.rank", ">", 100]]
  - name: mail
    targets: [mailchimp.com]
    max_rows: 300
    limit: 100
"""


class CliTest(EtlTestCase):

    def test_help_and_version(self):
        code, out, err = self.etl("--help")
        for cmd in ("run", "plan", "validate", "migrate"):
            self.assertIn(cmd, out)
        for status in ("0  success", "2  bad command line", "3  partial", "4  another run", "5  the database schema"):
            self.assertIn(status, out)
        for cmd in ("run", "plan", "validate", "migrate"):
            code, out, err = self.etl(cmd, "--help")
            self.assertIn("Usage: intersect-etl " + cmd, out)
            self.assertIn("Exit status", out)
            self.assertIn("-q/--quiet, -v/--verbose and --log-format text|json,\nbefore or after", out)
            code, out2, err = self.etl("help", cmd)
            self.assertEqual(out2, out)
        code, out, err = self.etl("--version")
        self.assertRegex(out, r"^intersect-etl \d+\.\d+\.\d+\n$")

    def test_usage_errors_exit_2(self):
        cases = [
            ((), "no command given"),
            (("frobnicate",), "frobnicate: no such command"),
            (("--bogus",), "--bogus: unknown option"),
            (("run",), "run takes exactly one JOB file"),
            (("run", "a.yaml", "b.yaml"), "run takes exactly one JOB file"),
            (("run", "x.yaml", "--snapshot-date", "2026-02-30"), "--snapshot-date 2026-02-30: no such day: February 2026 has 28 days"),
            (("run", "x.yaml", "--snapshot-date"), "--snapshot-date: needs a value"),
            (("plan", "x.yaml", "--nope"), "--nope: unknown option"),
            (("plan", "x.yaml", "--nope=value"), "--nope: unknown option"),
            (("run", "x.yaml", "--fresh=yes"), "--fresh: takes no value"),
            (("run", "x.yaml", "--log-format", "yaml"), "--log-format yaml: expected text or json"),
            (("run", "x.yaml", "--log-format"), "--log-format: needs a value"),
            (("run", "x.yaml", "-Z"), "-Z: unknown option"),
            (("validate",), "validate takes exactly one JOB file"),
            (("help", "nothing"), "help nothing: no such command"),
        ]
        for args, msg in cases:
            code, out, err = self.etl(*args, expect=2)
            self.assertIn(msg, err, args)

    def test_validate_good_and_missing_file(self):
        job = self.job(GOOD)
        code, out, err = self.etl("validate", job)
        self.assertIn("ok: job cli, 2 target sets", out)
        # a job file that is not there: a bad command line, exit 2 (issue 17)
        code, out, err = self.etl("validate", os.path.join(self.tmp.name, "missing.yaml"), expect=2)
        self.assertIn("missing.yaml", err)

    def test_bad_job_files_exit_2_with_position(self):
        targets = ", ".join("t%d.com" % i for i in range(21))
        cases = {
            "empty.yaml": ("", r"empty"),
            "truncated.yaml": ("version: 1\njob: x\ntarget_sets:\n  - name: [a, b\n", r"truncated\.yaml:\d+:\d+"),
            "targets21.yaml": (GOOD.replace("[mailchimp.com]", "[%s]" % targets), r"targets21\.yaml:\d+:\d+: .*targets.*20"),
            "unknown.yaml": (GOOD.replace("concurrency: 4", "concurency: 4"), r"unknown\.yaml:6:3: .*concurency.*\n.*concurrency"),
            # an unset variable outside the credentials (validate and plan need none: test_operations.py)
            "unset.yaml": (GOOD.replace("${AISA_BASE_URL}", "${SURELY_UNSET_VAR_X}"), r"unset\.yaml:4:\d+: .*SURELY_UNSET_VAR_X"),
        }
        for name, (text, pattern) in cases.items():
            path = os.path.join(self.tmp.name, name)
            with open(path, "w") as f:
                f.write(text)
            for cmd in ("validate", "plan", "run"):
                code, out, err = self.etl(cmd, path, expect=2)
                self.assertRegex(err, pattern, "%s %s" % (cmd, name))
        self.assertEqual(self.fake.requests, [])

    def test_hostile_files_exit_2(self):
        rnd = random.Random(7)
        binary = os.path.join(self.tmp.name, "binary.yaml")
        with open(binary, "wb") as f:
            f.write(bytes(rnd.randrange(256) for _ in range(4096)))
        big = os.path.join(self.tmp.name, "big.yaml")
        with open(big, "w") as f:
            f.write("# " + "x" * (10 * 1024 * 1024) + "\n")
        for path, pattern in ((binary, r"binary\.yaml"), (big, r"big\.yaml.*(large|size|bytes)")):
            code, out, err = self.etl("validate", path, expect=2)
            self.assertRegex(err, pattern)
            self.assertNotIn("Sanitizer", err)

    def test_plan_output_and_no_requests(self):
        job = self.job(GOOD)
        code, out, err = self.etl("plan", job)
        self.assertEqual(self.fake.requests, [])
        self.assertIn("target set crm (2 targets, limit 1000, max_rows 2500)", out)
        self.assertIn('first request: {"targets":{"1":"hubspot.com","2":"salesforce.com"},'
                      '"filters":[["1.rank",">",100]],"offset":0,"limit":1000}', out)
        self.assertIn("at most: 3 requests, 2500 rows, $0.1350", out)
        self.assertIn("target set mail (1 targets, limit 100, max_rows 300)", out)
        self.assertIn("at most: 3 requests, 300 rows, $0.0690", out)
        self.assertIn("total: 2 target sets, at most 6 requests, 2800 rows, $0.2040", out)
        self.assertNotIn("sk-aisa-test", out + err)
        code, out, err = self.etl("plan", job, "--only", "mail")
        self.assertNotIn("target set crm", out)
        self.assertIn("total: 1 target set,", out)
        code, out, err = self.etl("plan", job, "--only", "nope", expect=2)
        self.assertIn("--only nope: no target set of that name", err)
        self.assertEqual(self.fake.requests, [])

    def test_docker_compose_names_services_and_variables(self):
        with open(os.path.join(SOURCE, "docker-compose.yml")) as f:
            text = f.read()
        services = re.findall(r"^  ([a-z][a-z0-9_-]*):\s*$", text, re.M)
        self.assertIn("postgres", services)
        self.assertIn("intersect-etl", services)
        for var in ("DATABASE_URL", "AISA_API_KEY", "POSTGRES_PASSWORD"):
            self.assertIn(var, text)
        self.assertIn("build:", text)
        self.assertTrue(os.path.exists(os.path.join(SOURCE, "Dockerfile")))
        with open(os.path.join(SOURCE, "Dockerfile")) as f:
            docker = f.read()
        for pkg in ("libcurl", "libpq", "libjson-c", "libyaml"):
            self.assertIn(pkg, docker)


if __name__ == "__main__":
    unittest.main()

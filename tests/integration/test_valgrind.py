"""One end-to-end run under valgrind: no invalid reads or writes, no
definite or indirect leaks, across validate, plan, migrate, a run with a
retried fault and a failed set (two threads: fetching and loading), a
replay, runs and report. (Skipped in the sanitizer build, where
ASan/UBSan/LSan check every test instead.)"""

import os
import shutil
import subprocess
import unittest

from harness import BIN, EtlTestCase

VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
            "--track-origins=yes"]

JOB = """\
version: 1
job: vg
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: 3
  max_attempts: 2
database: {url: "${DATABASE_URL}"}
defaults: {limit: 300, max_rows: 2000}
target_sets:
  - {name: ok, targets: [vg-a.com, vg-b.com]}
  - {name: legacy, targets: [vgl-a.com, vgl-b.com]}
  - {name: bad, targets: [vgx-a.com]}
"""


@unittest.skipIf(os.environ.get("ETL_SANITIZE") == "1", "sanitizer build: ASan/LSan check instead")
@unittest.skipIf(shutil.which("valgrind") is None, "valgrind is not installed")
class ValgrindTest(EtlTestCase):

    def vg(self, *args, expect=0):
        env = dict(os.environ, LC_ALL="C", **self.env())
        p = subprocess.run(VALGRIND + [BIN] + list(args), capture_output=True, text=True, env=env, timeout=600)
        self.assertNotEqual(p.returncode, 99, "valgrind found errors:\n" + p.stderr)
        self.assertEqual(p.returncode, expect, p.stderr)
        return p

    def test_end_to_end_is_valgrind_clean(self):
        self.fake.set_scenario("vg-a.com", total_count=1000, faults=[{"kind": "truncated", "offset": 300},
                                                                      {"kind": "http429", "retry_after": 0}])
        self.fake.set_scenario("vgl-a.com", total_count=400, shape="legacy")
        self.fake.set_scenario("vgx-a.com", total_count=900, faults=[{"kind": "task", "code": 40501, "offset": 300}])
        job = self.job(JOB)
        self.vg("validate", job)
        self.vg("plan", job)
        self.vg("migrate", job)
        self.vg("run", job, "--snapshot-date", "2026-06-01", expect=3)
        self.vg("replay", job, "1")
        self.vg("--log-format", "json", "runs", job)
        self.vg("report", job)
        self.vg("validate", self.job("version: 1\njob: [\n", name="bad.yaml"), expect=2)
        self.assertEqual(self.db.value("SELECT status FROM dataforseo.etl_run WHERE run_id = 1"), "partial")
        self.assertEqual(self.db.value("SELECT replay_of FROM dataforseo.etl_run WHERE run_id = 2"), "1")


if __name__ == "__main__":
    unittest.main()

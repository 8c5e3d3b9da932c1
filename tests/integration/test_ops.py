"""Operations: `runs` against runs of known outcome (succeeded, partial,
failed) as a table and as JSON, `runs RUN_ID` with the failed page and its
error; `report` in its three formats against a two-night history whose new
and lost referring domains are known from the fake's total_count per night;
and an install into a temporary prefix that works from a directory with no
source tree, with a man page that renders without warnings and documents
every option and job-file key."""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
import unittest

from harness import BIN, EtlTestCase, SOURCE, check_sanitizers, fakeapi

JOB = """\
version: 1
job: ops
api:
  base_url: ${AISA_BASE_URL}
  token: ${AISA_API_KEY}
  concurrency: 4
  requests_per_minute: 10000
  max_attempts: 1
  timeout_seconds: 10
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 1000}
target_sets:
  - {name: alpha, targets: [ops-alpha.com, ops-alpha2.com]}
  - {name: beta, targets: [ops-beta.com]}
  - {name: gamma, targets: [ops-gamma.com]}
"""
TARGETS = {"alpha": ["ops-alpha.com", "ops-alpha2.com"], "beta": ["ops-beta.com"]}


def width(s):
    """Terminal columns of s: East Asian wide characters two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in s)


def table(headers, right, rows):
    """The table intersect-etl prints: columns as wide as their widest cell by
    display width, two spaces apart, numbers right-aligned, no trailing blanks."""
    cols = len(headers)
    rows = [["-" if c is None else str(c) for c in r] for r in rows]
    w = [max(width(r[i]) for r in [headers] + rows) for i in range(cols)]
    out = []
    for r in [headers] + rows:
        cells = []
        for i, c in enumerate(r):
            pad = " " * (w[i] - width(c))
            cells.append(pad + c if i in right else c + ("" if i == cols - 1 else pad))
        out.append("  ".join(cells).rstrip(" ") + "\n")
    return "".join(out)


def cost(pages):
    """What the fake charges for pages of these item counts, as the database sums it."""
    return round(sum(fakeapi.cost_for(n) for n in pages), 6)


def money(x):
    """As the program prints a cost: the ledger's micro-dollars half up to four decimals."""
    tenth = (round(x * 1e6) + 50) // 100
    return "$%d.%04d" % (tenth // 10000, tenth % 10000)


def duration(s):
    if s is None:
        return "-"
    if s < 59.95:
        return "%.1fs" % s
    whole = int(s + 0.5)
    return "%dm%02ds" % (whole // 60, whole % 60) if whole < 3600 else "%dh%02dm" % (whole // 3600, whole % 3600 // 60)


def per_domain(requests, first_target, targets):
    """Referring domain -> (intersections_count, min rank, summed backlinks) of what the fake served."""
    from harness import expected_rows
    agg = {}
    for (domain, _key), row in expected_rows(requests, first_target, targets).items():
        agg.setdefault(domain, []).append(row)
    out = {}
    for domain, rows in agg.items():
        ranks = [r["rank"] for r in rows if r["rank"] is not None]
        links = [r["backlinks"] for r in rows if r["backlinks"] is not None]
        icounts = [r["intersections_count"] for r in rows if r["intersections_count"] is not None]
        out[domain] = (max(icounts) if icounts else None, min(ranks) if ranks else None,
                       sum(links) if links else None)
    return out


class OpsTest(EtlTestCase):

    def run_etl_json(self, *args):
        code, out, err = self.etl(*args)
        return json.loads(out)

    def etl_raw(self, *args):
        """stdout exactly as written (the harness's text mode would turn CRLF into LF)."""
        p = subprocess.run([BIN] + list(args), capture_output=True, env=dict(os.environ, LC_ALL="C", **self.env()))
        check_sanitizers(p.stderr.decode("utf-8", "replace"))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode("utf-8")

    # ---- runs ----------------------------------------------------------

    def three_runs(self, job):
        """Run 1 succeeds, run 2 is partial (beta's page 100 fails for good),
        run 3 fails (every first page fails)."""
        self.fake.set_scenario("ops-alpha.com", total_count=300)
        self.fake.set_scenario("ops-beta.com", total_count=120)
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01", "--only", "alpha", "--only", "beta")
        self.fake.reset()
        self.fake.set_scenario("ops-alpha.com", total_count=250)
        self.fake.set_scenario("ops-beta.com", total_count=130,
                               faults=[{"kind": "http500", "offset": 100, "times": -1}])
        self.etl("run", job, "--snapshot-date", "2026-05-02", "--only", "alpha", "--only", "beta", expect=3)
        self.fake.reset()
        self.fake.inject({"kind": "http500", "offset": None, "times": -1})
        self.etl("run", job, "--snapshot-date", "2026-05-03", "--only", "alpha", "--only", "beta", expect=1)

    def test_runs_list_detail_and_errors(self):
        job = self.job(JOB)
        self.three_runs(job)
        db = {r["run_id"]: r for r in self.db.rows(
            "SELECT run_id, round(duration_seconds::numeric, 3)::float8 AS duration, "
            "to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') AS started, "
            "to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS started_iso, "
            "to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS') AS finished, "
            "to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS finished_iso "
            "FROM dataforseo.etl_run_summary")}
        # (run, date, status, sets complete/all, pages, failed pages, rows, cost, error);
        # run 3 asked alpha's page 100 beside its first (alpha had 250 the
        # night before: its first round goes whole), so 3 pages failed
        known = [
            (3, "2026-05-03", "failed", 0, 2, 0, 3, 0, 0.0, "2 of 2 target sets failed"),
            (2, "2026-05-02", "partial", 1, 2, 4, 1, 600, cost([100, 100, 50, 100]), "1 of 2 target sets failed"),
            (1, "2026-05-01", "succeeded", 2, 2, 5, 0, 720, cost([100, 100, 100, 100, 20]), None),
        ]
        rows = [[k[0], "ops", k[1], k[2], "1", db[k[0]]["started"], duration(db[k[0]]["duration"]),
                 "%d/%d" % (k[3], k[4]), k[5], k[6], k[7], money(k[8]), k[9] or ""] for k in known]
        head = ["RUN", "JOB", "SNAPSHOT", "STATUS", "ATTEMPTS", "STARTED (UTC)", "DURATION", "SETS", "PAGES",
                "FAILED", "ROWS", "COST", "ERROR"]
        want = table(head, {0, 6, 7, 8, 9, 10, 11}, rows)
        code, out, err = self.etl("runs", job)
        self.assertEqual(out, want)
        # every job of the schema, from the options alone; --limit; another job has none
        code, out, err = self.etl("runs", "--database-url", self.db.url, "--schema", "dataforseo")
        self.assertEqual(out, want)
        code, out, err = self.etl("runs", job, "--limit", "1")
        self.assertEqual(out, table(head, {0, 6, 7, 8, 9, 10, 11}, rows[:1]))
        code, out, err = self.etl("runs", "--job", "nobody", "--database-url", self.db.url)
        self.assertEqual(out, "no runs\n")

        doc = self.run_etl_json("runs", job, "--format", "json")
        self.assertEqual(doc, {"runs": [{
            "run_id": k[0], "job": "ops", "snapshot_date": k[1], "status": k[2],
            "started_at": db[k[0]]["started_iso"], "finished_at": db[k[0]]["finished_iso"],
            "duration_seconds": db[k[0]]["duration"], "pages": k[5], "failed_pages": k[6], "rows": k[7],
            "sets_complete": k[3], "sets_failed": k[4] - k[3], "cost_usd": k[8], "error": k[9],
            "replay_of": None, "attempts": 1, "attempt_statuses": k[2], "last_failure": k[9]}
            for k in known]})

        # run 2 in detail: the failed set and its page, with the error it ended with
        page = self.db.rows("SELECT error FROM dataforseo.etl_page WHERE run_id = 2 AND status = 'failed'")
        self.assertEqual(len(page), 1)
        perr = page[0]["error"]
        self.assertIn("offset 100: HTTP 500", perr)
        self.assertIn("attempts exhausted", perr)
        serr = self.db.value("SELECT error FROM dataforseo.etl_run_set WHERE run_id = 2 AND status = 'failed'")
        r2 = db[2]
        want = ("run 2 of job ops: partial\n"
                "snapshot  2026-05-02\n"
                "started   %s UTC\n"
                "finished  %s UTC (%s)\n"
                "sets      1 complete, 1 failed\n"
                "pages     4 (1 failed)\n"
                "rows      600\n"
                "cost      %s\n"
                "error     1 of 2 target sets failed\n"
                "\n" % (r2["started"], r2["finished"], duration(r2["duration"]), money(known[1][8])))
        want += table(["TARGET SET", "STATUS", "TOTAL", "PAGES", "ROWS", "COST", "ERROR"], {2, 3, 4, 5}, [
            ["alpha", "complete", 250, 3, 500, money(cost([100, 100, 50])), ""],
            ["beta", "failed", 130, 1, 100, money(cost([100])), serr]])
        want += "\n1 failed page\n"
        want += table(["TARGET SET", "OFFSET", "LIMIT", "ATTEMPTS", "HTTP", "API CODE", "API MESSAGE", "ERROR"],
                      {1, 2, 3, 4, 5}, [["beta", 100, 30, 1, 500, None, "The upstream service failed.", perr]])
        code, out, err = self.etl("runs", job, "2")
        self.assertEqual(out, want)

        doc = self.run_etl_json("runs", "2", "--format", "json", "--database-url", self.db.url)
        times = {r["name"]: r["t"] for r in self.db.rows(
            "SELECT t.name, to_char(s.finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS t "
            "FROM dataforseo.etl_run_set s JOIN dataforseo.target_set t USING (target_set_id) WHERE run_id = 2")}
        ptime = self.db.value("SELECT to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                              "FROM dataforseo.etl_page WHERE run_id = 2 AND status = 'failed'")
        self.assertEqual(doc["run"]["status"], "partial")
        self.assertEqual(doc["run"]["failed_pages"], 1)
        self.assertEqual(doc["target_sets"], [
            {"name": "alpha", "status": "complete", "total_count": 250, "pages": 3, "rows": 500,
             "cost_usd": cost([100, 100, 50]), "error": None, "finished_at": times["alpha"]},
            {"name": "beta", "status": "failed", "total_count": 130, "pages": 1, "rows": 100,
             "cost_usd": cost([100]), "error": serr, "finished_at": times["beta"]}])
        self.assertEqual(doc["failed_pages"], [
            {"target_set": "beta", "offset": 100, "limit": 30, "attempts": 1, "http_status": 500,
             "api_status_code": None, "api_status_message": "The upstream service failed.",
             "error": perr, "finished_at": ptime}])

        # run 3: both sets failed on their first page (alpha's page 100,
        # asked beside it, too)
        code, out, err = self.etl("runs", job, "3")
        self.assertIn("run 3 of job ops: failed\n", out)
        self.assertIn("\n3 failed pages\n", out)
        self.assertRegex(out, r"\nalpha +0 +100 +1 +500 +- ")
        self.assertRegex(out, r"\nalpha +100 +100 +1 +500 +- ")
        self.assertRegex(out, r"\nbeta +0 +100 +1 +500 +- ")

        # a report after the failed night says which snapshot it shows instead
        code, out, err = self.etl("report", job)
        self.assertIn("\nalpha: the run of 2026-05-03 failed; showing the snapshot of 2026-05-02\n"
                      "beta: the run of 2026-05-03 failed; showing the snapshot of 2026-05-01\n", out)

        # errors: unknown run (exit 1), bad options (exit 2), unmigrated schema (exit 5)
        code, out, err = self.etl("runs", job, "99", expect=1)
        self.assertIn("run 99: no such run of job ops in schema dataforseo", err)
        self.assertEqual(out, "")
        code, out, err = self.etl("runs", "99", "--database-url", self.db.url, expect=1)
        self.assertIn("run 99: no such run in schema dataforseo", err)
        for args, msg in [(("runs", "--format", "csv"), "--format csv: runs prints table or json"),
                          (("runs", "--limit", "0"), "--limit 0: not a number from 1 to 100000"),
                          (("runs", "0"), "0: not a run id"),
                          (("runs", "1", "2"), "2: only one RUN_ID is taken"),
                          (("runs", "99999999999999999999"), "99999999999999999999: not a run id"),
                          (("report",), "report takes exactly one JOB file"),
                          (("report", job, "--format", "xml"), "--format xml: not table, csv or json"),
                          (("report", job, "--set", "nope"), "--set nope: no target set of that name")]:
            code, out, err = self.etl(*args, expect=2)
            self.assertIn(msg, err, args)
        code, out, err = self.etl("runs", "--schema", "nothing_here", "--database-url", self.db.url, expect=5)
        self.assertIn("run `intersect-etl migrate", err)

    # ---- report --------------------------------------------------------

    def test_report_table_csv_json(self):
        job = self.job(JOB)
        # night 1: alpha 300, beta 120; night 2: alpha 250 (50 lost), beta 130 (10 new); gamma never ran
        served = []
        for date, totals in (("2026-05-01", (300, 120)), ("2026-05-02", (250, 130))):
            self.fake.reset()
            self.fake.set_scenario("ops-alpha.com", total_count=totals[0])
            self.fake.set_scenario("ops-beta.com", total_count=totals[1])
            self.etl("run", job, "--migrate", "--snapshot-date", date, "--only", "alpha", "--only", "beta")
            served.append(self.fake.requests)
        night = [{name: per_domain(reqs, t[0], t) for name, t in TARGETS.items()} for reqs in served]
        self.assertEqual(len(night[0]["alpha"]), 300)
        self.assertEqual(len(night[1]["alpha"]), 250)
        lost = {"alpha": sorted(set(night[0]["alpha"]) - set(night[1]["alpha"])),
                "beta": sorted(set(night[0]["beta"]) - set(night[1]["beta"]))}
        new = {"alpha": sorted(set(night[1]["alpha"]) - set(night[0]["alpha"])),
               "beta": sorted(set(night[1]["beta"]) - set(night[0]["beta"]))}
        self.assertEqual([len(lost["alpha"]), len(new["alpha"]), len(lost["beta"]), len(new["beta"])], [50, 0, 0, 10])
        # the data really is international: some lost domain is IDN in Unicode, wider in bytes than on screen
        self.assertTrue(any(width(d) < len(d.encode()) for d in lost["alpha"]))

        def changes(name):
            return ([("new", d) + night[1][name][d] for d in new[name]] +
                    [("lost", d) + night[0][name][d] for d in lost[name]])

        summary = {
            "alpha": dict(domains=250, rows=500, new=0, lost=50, cost=cost([100, 100, 50])),
            "beta": dict(domains=130, rows=130, new=10, lost=0, cost=cost([100, 30])),
        }

        # -- table
        want = table(["TARGET SET", "SNAPSHOT", "PREVIOUS", "DOMAINS", "ROWS", "NEW", "LOST", "COST"],
                     {3, 4, 5, 6, 7},
                     [[n, "2026-05-02", "2026-05-01", s["domains"], s["rows"], s["new"], s["lost"], money(s["cost"])]
                      for n, s in summary.items()] + [["gamma"] + [None] * 7])
        for name, s in summary.items():
            want += "\n%s 2026-05-02: %d new, %d lost since 2026-05-01\n" % (name, s["new"], s["lost"])
            want += table(["CHANGE", "REFERRING DOMAIN", "INTERSECTIONS", "MIN RANK", "BACKLINKS"], {2, 3, 4},
                          [list(c) for c in changes(name)])
        code, out, err = self.etl("report", job)
        self.assertEqual(out, want)
        # aligned by display width: the last column is right-aligned, so every
        # line of a change table ends in the same terminal column
        section = out.split("\nalpha 2026-05-02: 0 new, 50 lost since 2026-05-01\n")[1].split("\n\n")[0]
        lines = section.splitlines()
        self.assertEqual(len(lines), 51)
        self.assertEqual({width(l) for l in lines}, {width(lines[0])})
        self.assertGreater(len({len(l.encode()) for l in lines}), 1)

        code, out, err = self.etl("report", job, "--set", "beta")
        self.assertEqual(out.splitlines()[1].split()[0], "beta")
        self.assertEqual(len(out.split("\n\n")[0].splitlines()), 2)
        self.assertIn("\nbeta 2026-05-02: 10 new, 0 lost since 2026-05-01\n", out)
        self.assertNotIn("alpha", out)

        # -- CSV (RFC 4180: CRLF, quoting only where needed)
        out = self.etl_raw("report", job, "--format", "csv")
        self.assertTrue(out.endswith("\r\n"))
        self.assertNotIn("\n", out.replace("\r\n", ""))
        want = [["job", "target_set", "record", "snapshot_date", "previous_snapshot_date", "referring_domains",
                 "rows", "new_domains", "lost_domains", "cost_usd", "definition_changed", "referring_domain",
                 "intersections_count", "min_rank", "backlinks"]]
        for name, s in summary.items():
            want.append(["ops", name, "snapshot", "2026-05-02", "2026-05-01", str(s["domains"]), str(s["rows"]),
                         str(s["new"]), str(s["lost"]), repr(s["cost"]), "false", "", "", "", ""])
            for c in changes(name):
                want.append(["ops", name, c[0], "2026-05-02", "2026-05-01", "", "", "", "", "", "", c[1]] +
                            ["" if v is None else str(v) for v in c[2:]])
        want.append(["ops", "gamma", "snapshot"] + [""] * 12)
        self.assertEqual(list(csv.reader(io.StringIO(out, newline=""))), want)

        # -- JSON
        doc = self.run_etl_json("report", job, "--format", "json")

        def entries(rows):
            return [{"referring_domain": c[1], "intersections_count": c[2], "min_rank": c[3], "backlinks": c[4]}
                    for c in rows]
        want = {"job": "ops", "schema": "dataforseo", "target_sets": [
            {"name": name, "snapshot_date": "2026-05-02", "previous_snapshot_date": "2026-05-01",
             "failed_after": None, "referring_domains": s["domains"], "rows": s["rows"],
             "new_domains": s["new"], "lost_domains": s["lost"], "cost_usd": s["cost"],
             "definition_changed": False,
             "new": entries(c for c in changes(name) if c[0] == "new"),
             "lost": entries(c for c in changes(name) if c[0] == "lost")}
            for name, s in summary.items()]}
        want["target_sets"].append(
            {"name": "gamma", "snapshot_date": None, "previous_snapshot_date": None, "failed_after": None,
             "referring_domains": None, "rows": None, "new_domains": None, "lost_domains": None,
             "cost_usd": None, "definition_changed": None, "new": [], "lost": []})
        self.assertEqual(doc, want)

    def test_report_first_snapshot_and_hostile_text(self):
        """A first snapshot has nothing to compare with; a referring domain
        carrying terminal escapes and a bidi override reaches the table only
        as '?', and CSV/JSON keep it exactly."""
        job = self.job(JOB.replace("max_attempts: 1", "max_attempts: 2"))
        evil = "evil\x1b[31m\u202e.example\r\n"

        def edit(doc):
            item = doc["tasks"][0]["result"][0]["items"][0]
            for obj in item["domain_intersection"].values():
                obj["target"] = evil
        self.fake.set_scenario("ops-beta.com", total_count=3, faults=[{"kind": "edit", "fn": edit, "times": -1}])
        self.etl("run", job, "--migrate", "--snapshot-date", "2026-05-01", "--only", "beta")
        self.fake.reset()
        self.fake.set_scenario("ops-beta.com", total_count=2)
        self.etl("run", job, "--snapshot-date", "2026-05-02", "--only", "beta")
        code, out, err = self.etl("report", job, "--set", "beta")
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\u202e", out)
        self.assertIn("\nlost    evil?[31m?.example  ", out)
        out = self.etl_raw("report", job, "--set", "beta", "--format", "csv")
        rows = list(csv.reader(io.StringIO(out, newline="")))
        self.assertIn(evil, [r[11] for r in rows if r[2] == "lost"])
        self.assertIn('"%s"' % evil, out)
        doc = json.loads(self.etl_raw("report", job, "--set", "beta", "--format", "json"))
        self.assertIn(evil, [e["referring_domain"] for e in doc["target_sets"][0]["lost"]])
        # the first night alone: no comparison
        code, out, err = self.etl("runs", job)
        self.db.psql("DELETE FROM dataforseo.etl_snapshot WHERE snapshot_date = '2026-05-02';"
                     "DELETE FROM dataforseo.etl_run WHERE snapshot_date = '2026-05-02'")
        code, out, err = self.etl("report", job, "--set", "beta")
        self.assertIn("\nbeta 2026-05-01: first snapshot: nothing to compare with\n", out)
        self.assertRegex(out.splitlines()[1], r"^beta +2026-05-01 +- +3 +3 +- +- +\$0\.0201$")

    # ---- install -------------------------------------------------------

    def test_install_works_without_source_tree(self):
        build = os.path.dirname(BIN)
        if not os.path.exists(os.path.join(build, "cmake_install.cmake")):
            self.skipTest("%s is not a CMake build directory" % build)
        prefix = os.path.join(self.tmp.name, "prefix")
        p = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        binary = os.path.join(prefix, "bin", "intersect-etl")
        share = os.path.join(prefix, "share")
        for rel in ("man/man1/intersect-etl.1", "intersect-etl/jobs/example.yaml",
                    "doc/intersect-etl/contrib/systemd/intersect-etl@.service",
                    "doc/intersect-etl/contrib/systemd/intersect-etl@.timer",
                    "doc/intersect-etl/contrib/cron/intersect-etl.crontab",
                    "doc/intersect-etl/contrib/intersect-etl.env.example"):
            self.assertTrue(os.path.isfile(os.path.join(share, rel)), rel)
        if os.path.exists(os.path.join(SOURCE, "sql", "bi_readonly.sql")):
            self.assertTrue(os.path.isfile(os.path.join(share, "intersect-etl", "sql", "bi_readonly.sql")))
        # the installed unit and crontab run the installed binary
        with open(os.path.join(share, "doc/intersect-etl/contrib/systemd/intersect-etl@.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=%s " % binary, unit)
        for line in ("EnvironmentFile=/etc/intersect-etl/%i.env", "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "DynamicUser=yes", "Type=oneshot"):
            self.assertIn(line + "\n", unit)
        with open(os.path.join(share, "doc/intersect-etl/contrib/systemd/intersect-etl@.timer")) as f:
            timer = f.read()
        self.assertRegex(timer, r"\nOnCalendar=.+\n")
        self.assertRegex(timer, r"\nRandomizedDelaySec=.+\n")
        with open(os.path.join(share, "doc/intersect-etl/contrib/cron/intersect-etl.crontab")) as f:
            cron = [l for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual(len(cron), 1)
        self.assertIn(binary + " ", cron[0])
        self.assertNotIn("flock", cron[0])
        self.assertNotIn("%", cron[0])  # cron would turn it into a newline

        # from a directory with nothing of the source tree around
        with tempfile.TemporaryDirectory(prefix="ops-nosrc-") as cwd:
            env = dict(os.environ, LC_ALL="C", AISA_API_KEY="sk-aisa-test", DATABASE_URL=self.db.url)
            env.pop("ETL_SOURCE_DIR", None)

            def installed(*args, expect=0):
                q = subprocess.run([binary] + list(args), cwd=cwd, env=env, capture_output=True, text=True)
                check_sanitizers(q.stderr)
                self.assertEqual(q.returncode, expect, "%s\n%s%s" % (args, q.stdout, q.stderr))
                return q
            self.assertRegex(installed("--version").stdout, r"^intersect-etl \d+\.\d+\.\d+\n$")
            example = os.path.join(share, "intersect-etl", "jobs", "example.yaml")
            self.assertIn("ok: job example, 3 target sets", installed("validate", example).stdout)
            n = len([f for f in os.listdir(os.path.join(SOURCE, "sql")) if re.match(r"\d{3}_.*\.sql$", f)])
            self.assertIn("%d migrations applied" % n, installed("migrate", example).stderr)
            self.assertEqual(self.db.value("SELECT count(*) FROM dataforseo.schema_migrations"), str(n))
            self.assertEqual(installed("runs", example).stdout, "no runs\n")

        self.check_man_page(os.path.join(share, "man", "man1", "intersect-etl.1"), binary)

    def check_man_page(self, page, binary):
        with open(page) as f:
            src = f.read()
        text = src.replace("\\-", "-").replace("\\(em", "-").replace("\\&", "")
        # every command and option the binary's help names, and every job-file key of the README
        code, out, err = self.etl("--help")
        commands = re.findall(r"^  ([a-z]+) ", out.split("Commands:")[1].split("\n\n")[0], re.M)
        self.assertIn("report", commands)
        for cmd in commands + [""]:
            help_text = subprocess.run([binary] + ([cmd] if cmd else []) + ["--help"], capture_output=True,
                                       text=True).stdout
            for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", help_text)):
                self.assertIn(opt, text, "man page lacks %s of %s" % (opt, cmd or "the global options"))
            self.assertIn(cmd, text)
        with open(os.path.join(SOURCE, "README.md")) as f:
            readme = f.read()
        keys_table = readme.split("Every key, with its default:")[1].split("\n\n")[1]
        for line in keys_table.splitlines()[2:]:
            for key in re.findall(r"`([a-z_.\[\]]+)`", line.split("|")[1]):
                self.assertIn(key.split(".")[-1].replace("[]", ""), text, "man page lacks job key %s" % key)
        for status in "012345":
            self.assertRegex(text, r"\n\.TP\n\.B %s\n" % status)
        for var in ("DATABASE_URL", "AISA_API_KEY"):
            self.assertIn(var, text)

        env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MANPAGER="cat", PAGER="cat")
        if shutil.which("man"):
            p = subprocess.run(["man", "--warnings=all", "-l", page], capture_output=True, text=True, env=env)
            how = "man --warnings=all -l"
        elif shutil.which("groff"):
            p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], capture_output=True, text=True, env=env)
            how = "groff -man -ww"
        else:
            self.skipTest("neither man nor groff is installed: the man page was not rendered")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "", "%s warns" % how)
        if how.startswith("man"):
            self.assertIn("SYNOPSIS", p.stdout)
            self.assertIn("EXIT STATUS", p.stdout)


if __name__ == "__main__":
    unittest.main()

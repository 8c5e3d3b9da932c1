"""Randomized differential test of the history views (issue 15).

Seeded random sequences of operations run the real binary against the fake
API and PostgreSQL, and after EVERY step each view is compared, row by row and
field by field, with a reference model written here from the history
semantics (the views are a pure function of each set's complete, unpurged
snapshots; see the rules quoted in Model below), not from the SQL:

  night      run --snapshot-date D, D after every date so far, each set's
             answer drawn from a few drifting nights of the fake API
             (fakeapi.Dataset(task, night=n)), so answers recur
  rerun      run a date inside the history again (complete, failed, purged
             or never run), with a new answer or the same
  backfill   run a date before the first one
  fail       a night or rerun in which some sets fail (a non-retryable task
             error on their first page): a complete date must stay as it was
  retention  a night run with `retention: {keep_snapshots: K days}`
  replay     `intersect-etl replay JOB RUN_ID` of an earlier run
  --only     any run may name a subset of the sets

The model knows each answer from the fake's own generator: what a set's night
n serves is Dataset(task, total_count, night=n).page(0, all).

Sizes (environment):
  ETL_DIFF_SEEDS=N    seeds 1..N (default 3; 1 when ETL_SANITIZE is set)
  ETL_DIFF_SEED=S     only seed S (to reproduce a failure: the message names it)
  ETL_DIFF_STEPS=N    steps per seed (default 25; 12 under the sanitizers)
  ETL_DIFF_IN_ORDER=1 in-order operations only: nights in increasing date
                      order, failures of new dates, --only, replay of the
                      latest run; no rerun, backfill or retention. The model's
                      sanity check on a loader without the out-of-order fixes.
  ETL_DIFF_OPS=night,retention  only these operations (the first step is
                      always a night of every set)
  ETL_DIFF_VERBOSE=1  each step and its time on stderr
e.g. ETL_DIFF_SEED=3 ctest --test-dir build -R differential (ctest allows 15 minutes);
a long search runs the file itself against the suite's cluster:
  scripts/pg-tmp start build/pg-test
  ETL_DIFF_SEEDS=100 ETL_DIFF_STEPS=45 python3 tests/integration/test_differential.py
  scripts/pg-tmp stop build/pg-test
"""

import datetime
import decimal
import json
import os
import random
import sys
import time
import unittest

import harness
from harness import EtlTestCase, api_time_to_json, expected_item_rows, fakeapi

SANITIZE = os.environ.get("ETL_SANITIZE", "") in ("1", "ON", "TRUE", "true", "on")
SEEDS = ([int(os.environ["ETL_DIFF_SEED"])] if os.environ.get("ETL_DIFF_SEED")
         else list(range(1, int(os.environ.get("ETL_DIFF_SEEDS", "1" if SANITIZE else "3")) + 1)))
STEPS = int(os.environ.get("ETL_DIFF_STEPS", "12" if SANITIZE else "25"))
IN_ORDER = os.environ.get("ETL_DIFF_IN_ORDER", "") not in ("", "0")
VERBOSE = os.environ.get("ETL_DIFF_VERBOSE", "") not in ("", "0")  # each step on stderr
OPS = [o for o in os.environ.get("ETL_DIFF_OPS", "").split(",") if o]

JOB_NAME = "diff"
# name -> (targets, candidate domains the nights draw from); limit 25 makes
# two pages of the larger sets
SETS = {
    "alpha": (["alpha-a.com", "alpha-b.com"], 40),
    "beta": (["beta-a.com", "beta-b.com"], 24),
    "gamma": (["gamma-a.com"], 16),
}
NIGHTS = 4          # answers drawn from nights 0..3: equal answers recur
# Nights move on by up to 3 days a step, and the ETL refuses a date in the
# future: earlier when many steps would pass today.
FIRST_DATE = min(datetime.date(2026, 3, 10),
                 datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=3 * STEPS + 3))

VALUE_FIELDS = (["target", "intersections_count", "type"] + harness.INT_FIELDS + harness.MAP_FIELDS
                + harness.TIME_FIELDS + ["extra"])


def job_text(keep_snapshots=None):
    sets = "\n".join("  - {name: %s, targets: [%s]}" % (n, ", ".join(t)) for n, (t, _) in SETS.items())
    retention = "retention: {keep_snapshots: %d days}\n" % keep_snapshots if keep_snapshots else ""
    return ("version: 1\njob: %s\napi:\n  base_url: ${AISA_BASE_URL}\n  token: ${AISA_API_KEY}\n"
            "  concurrency: 2\ndatabase: {url: \"${DATABASE_URL}\"}\n%s"
            "defaults: {limit: 25, max_rows: 1000}\ntarget_sets:\n%s\n" % (JOB_NAME, retention, sets))


def answer_rows(task, set_name, night):
    """{(domain, key): row} of what the fake serves for set_name at night."""
    targets, candidates = SETS[set_name]
    ds = fakeapi.Dataset(task, total_count=candidates, night=night)
    rows = {}
    for pos, item in enumerate(ds.page(0, ds.total_count)):
        for k, row in expected_item_rows(item, pos, targets).items():
            for f in harness.TIME_FIELDS:
                row[f] = api_time_to_json(row[f])
            row["extra"] = None
            rows[k] = row
    return rows, ds.total_count


def values(row):
    return tuple(_canon(row[f]) for f in VALUE_FIELDS)


def _canon(v):
    # maps compare as maps, whatever their key order
    return tuple(sorted(v.items())) if isinstance(v, dict) else v


def domain_agg(rows):
    """Per referring domain: (max intersections_count, min rank, sum backlinks), NULLs ignored as SQL does."""
    agg = {}
    for (dom, _), r in rows.items():
        a = agg.setdefault(dom, [[], [], []])
        for lst, f in zip(a, ("intersections_count", "rank", "backlinks")):
            if r[f] is not None:
                lst.append(r[f])
    return {d: (max(a[0]) if a[0] else None, min(a[1]) if a[1] else None, sum(a[2]) if a[2] else None)
            for d, a in agg.items()}


class Model:
    """The views as the history semantics (issue 15, decided by the lead) define them.

    1. history: per (set, domain, key) one row per maximal run of consecutive
       complete unpurged snapshot dates holding identical values (all columns
       but position and run_id); valid_to = the next complete unpurged date
       after the run (NULL at the latest); last_snapshot_date = the run's last.
    2. daily of D compares with P, the previous complete unpurged snapshot:
       changed_rows = keys in both whose values differ; new/lost domains and
       the changes rows likewise; no P: restart, no previous date, no changes
       rows, new/lost/changed NULL.
    3. After a purge the oldest kept date has no P; purged dates keep their
       daily row (measures frozen, purged_at set) and their changes rows;
       their rows leave domain_intersection, latest and history.
    4. Republishing a date replaces its answer, the next date recompares;
       a failed run of a complete date changes nothing."""

    def __init__(self):
        self.complete = {n: {} for n in SETS}   # set -> {date: (rows, total_count)}
        self.failed = {n: set() for n in SETS}  # set -> dates whose runs all failed
        self.purged = {n: {} for n in SETS}     # set -> {date: (frozen daily, frozen changes)}

    def publish(self, s, date, answer):
        self.complete[s][date] = answer
        self.failed[s].discard(date)
        self.purged[s].pop(date, None)

    def fail(self, s, date):
        if date not in self.complete[s] and date not in self.purged[s]:
            self.failed[s].add(date)

    def retention(self, run_date, keep_days):
        cutoff = run_date - datetime.timedelta(days=keep_days - 1)
        for s in SETS:
            dates = sorted(self.complete[s])
            if not dates:
                continue
            bound = min(cutoff, dates[-1])
            keep = min(d for d in dates if d >= bound)
            gone = [d for d in dates if d < keep]
            frozen = {d: (self.daily_row(s, d), self.changes_rows(s, d)) for d in gone}
            for d in gone:
                del self.complete[s][d]
                self.purged[s][d] = frozen[d]

    def previous(self, s, date):
        before = [d for d in self.complete[s] if d < date]
        return max(before) if before else None

    def daily_row(self, s, date):
        rows, total = self.complete[s][date]
        prev = self.previous(s, date)
        ranks = [r["rank"] for r in rows.values() if r["rank"] is not None]
        bls = [r["backlinks"] for r in rows.values() if r["backlinks"] is not None]
        avg = None
        if ranks:
            avg = float((decimal.Decimal(sum(ranks)) / decimal.Decimal(len(ranks))).quantize(
                decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))
        row = {"status": "complete", "distinct_domains": len({d for d, _ in rows}), "rows": len(rows),
               "total_count": total, "expected_domains": min(total, 1000), "avg_rank": avg,
               "total_backlinks": sum(bls) if bls else None, "purged": False,
               "restart": prev is None, "previous_snapshot_date": str(prev) if prev else None,
               "new_domains": None, "lost_domains": None, "changed_rows": None}
        if prev is not None:
            prows = self.complete[s][prev][0]
            doms, pdoms = {d for d, _ in rows}, {d for d, _ in prows}
            row["new_domains"] = len(doms - pdoms)
            row["lost_domains"] = len(pdoms - doms)
            row["changed_rows"] = sum(1 for k in rows if k in prows and values(rows[k]) != values(prows[k]))
        return row

    def changes_rows(self, s, date):
        prev = self.previous(s, date)
        if prev is None:
            return {}
        cur, old = domain_agg(self.complete[s][date][0]), domain_agg(self.complete[s][prev][0])
        out = {}
        for change, a, b in (("new", cur, old), ("lost", old, cur)):
            for dom in set(a) - set(b):
                ic, mr, bl = a[dom]
                out[(s, str(date), change, dom)] = {
                    "previous_snapshot_date": str(prev), "intersections_count": ic, "min_rank": mr,
                    "backlinks": bl, "purged": False}
        return out

    # -- the views ---------------------------------------------------------

    def view_snapshots(self):
        out = {}
        for s in SETS:
            for date, (rows, _) in self.complete[s].items():
                for (dom, key), r in rows.items():
                    out[(s, str(date), dom, key)] = dict({f: r[f] for f in VALUE_FIELDS}, position=r["position"])
        return out

    def view_latest(self):
        out = {}
        for s in SETS:
            if self.complete[s]:
                date = max(self.complete[s])
                for (dom, key), r in self.complete[s][date][0].items():
                    out[(s, dom, key)] = dict({f: r[f] for f in VALUE_FIELDS}, position=r["position"],
                                              snapshot_date=str(date))
        return out

    def view_daily(self):
        out = {}
        for s in SETS:
            for date in self.complete[s]:
                out[(s, str(date))] = self.daily_row(s, date)
            for date, (frozen, _) in self.purged[s].items():
                out[(s, str(date))] = dict(frozen, purged=True)
            for date in self.failed[s]:
                out[(s, str(date))] = {"status": "failed", "purged": False, "restart": None}
        return out

    def view_changes(self):
        out = {}
        for s in SETS:
            for date in self.complete[s]:
                out.update(self.changes_rows(s, date))
            for date, (_, frozen) in self.purged[s].items():
                out.update({k: dict(v, purged=True) for k, v in frozen.items()})
        return out

    def view_domains(self):
        """domain_intersection_domains: the target keys of a domain folded."""
        out = {}
        for (s, date, dom, _), r in self.view_snapshots().items():
            a = out.setdefault((s, date, dom), {"target_keys": 0, "position": [], "intersections_count": [],
                                                "min_rank": [], "backlinks": [], "referring_pages": [],
                                                "max_spam_score": [], "links_to_all_since": []})
            a["target_keys"] += 1
            for f, src in (("position", "position"), ("intersections_count", "intersections_count"),
                           ("min_rank", "rank"), ("backlinks", "backlinks"), ("referring_pages", "referring_pages"),
                           ("max_spam_score", "backlinks_spam_score"), ("links_to_all_since", "first_seen")):
                if r[src] is not None:
                    a[f].append(r[src])
        fold = {"position": min, "intersections_count": max, "min_rank": min, "backlinks": sum,
                "referring_pages": sum, "max_spam_score": max, "links_to_all_since": _latest_time}
        return {k: {f: (fold[f](v) if v else None) if f in fold else v for f, v in a.items()}
                for k, a in out.items()}

    def view_latest_domains(self):
        """domain_intersection_latest_domains: domain_intersection_domains of each set's latest date."""
        latest = {s: str(max(self.complete[s])) for s in SETS if self.complete[s]}
        return {(s, dom): dict(r, snapshot_date=date) for (s, date, dom), r in self.view_domains().items()
                if latest.get(s) == date}

    def view_breakdown_totals(self):
        """domain_intersection_breakdown_totals: every map of a snapshot summed per dimension and key."""
        out = {}
        for (s, date, _, _), r in self.view_snapshots().items():
            for dim, field in BREAKDOWN_DIMENSIONS:
                if not isinstance(r[field], dict):
                    continue
                for key, v in r[field].items():
                    a = out.setdefault((s, date, dim, key), {"links": 0, "target_rows": 0})
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        a["links"] += int(decimal.Decimal(str(v)).quantize(0, decimal.ROUND_HALF_UP))
                    a["target_rows"] += 1
        return out

    def view_history(self):
        out = {}
        for s in SETS:
            dates = sorted(self.complete[s])
            keys = {k for d in dates for k in self.complete[s][d][0]}
            for key in keys:
                run = None  # [first date, last date, row]
                for d in dates + [None]:
                    r = self.complete[s][d][0].get(key) if d is not None else None
                    if run and (r is None or values(r) != values(run[2])):
                        out[(s, key[0], key[1], str(run[0]))] = dict(
                            {f: run[2][f] for f in VALUE_FIELDS}, valid_to=str(d) if d else None,
                            is_current=d is None, last_snapshot_date=str(run[1]))
                        run = None
                    if r is not None:
                        if run is None:
                            run = [d, d, r]
                        else:
                            run[1] = d
        return out


def _latest_time(values):
    """max() of timestamps as the database renders them in JSON (the latest instant, its own text)."""
    return max(values, key=datetime.datetime.fromisoformat)


BREAKDOWN_DIMENSIONS = [("tld", "referring_links_tld"), ("link_type", "referring_links_types"),
                        ("attribute", "referring_links_attributes"), ("platform", "referring_links_platform_types"),
                        ("semantic_location", "referring_links_semantic_locations"),
                        ("country", "referring_links_countries")]

# What each view is read as: key columns, then the compared columns.
VALUES_SQL = ", ".join("d.%s" % f for f in VALUE_FIELDS)
QUERIES = {
    "domain_intersection": (
        ("target_set", "snapshot_date", "referring_domain", "target_key"),
        "SELECT t.name AS target_set, d.snapshot_date, d.referring_domain, d.target_key, d.position, %s "
        "FROM {s}.domain_intersection d JOIN {s}.target_set t USING (target_set_id) WHERE t.job = '%s'"
        % (VALUES_SQL, JOB_NAME)),
    "domain_intersection_latest": (
        ("target_set", "referring_domain", "target_key"),
        "SELECT d.target_set, d.snapshot_date, d.referring_domain, d.target_key, d.position, %s "
        "FROM {s}.domain_intersection_latest d WHERE d.job = '%s'" % (VALUES_SQL, JOB_NAME)),
    "domain_intersection_daily": (
        ("target_set", "snapshot_date"),
        "SELECT target_set, snapshot_date, status, distinct_domains, rows, total_count, expected_domains, "
        "avg_rank, total_backlinks, purged_at IS NOT NULL AS purged, restart, previous_snapshot_date, "
        "new_domains, lost_domains, changed_rows FROM {s}.domain_intersection_daily WHERE job = '%s'" % JOB_NAME),
    "domain_intersection_changes": (
        ("target_set", "snapshot_date", "change", "referring_domain"),
        "SELECT target_set, snapshot_date, change, referring_domain, previous_snapshot_date, "
        "intersections_count, min_rank, backlinks, purged_at IS NOT NULL AS purged "
        "FROM {s}.domain_intersection_changes WHERE job = '%s'" % JOB_NAME),
    "domain_intersection_history": (
        ("target_set", "referring_domain", "target_key", "valid_from"),
        "SELECT d.target_set, d.referring_domain, d.target_key, d.valid_from, d.valid_to, d.is_current, "
        "d.last_snapshot_date, %s FROM {s}.domain_intersection_history d WHERE d.job = '%s'"
        % (VALUES_SQL, JOB_NAME)),
    "domain_intersection_domains": (
        ("target_set", "snapshot_date", "referring_domain"),
        "SELECT target_set, snapshot_date, referring_domain, target_keys, position, intersections_count, "
        "min_rank, backlinks, referring_pages, max_spam_score, links_to_all_since "
        "FROM {s}.domain_intersection_domains WHERE job = '%s'" % JOB_NAME),
    "domain_intersection_latest_domains": (
        ("target_set", "referring_domain"),
        "SELECT target_set, snapshot_date, referring_domain, target_keys, position, intersections_count, "
        "min_rank, backlinks, referring_pages, max_spam_score, links_to_all_since "
        "FROM {s}.domain_intersection_latest_domains WHERE job = '%s'" % JOB_NAME),
    "domain_intersection_breakdown_totals": (
        ("target_set", "snapshot_date", "dimension", "key"),
        "SELECT target_set, snapshot_date, dimension, key, links, target_rows "
        "FROM {s}.domain_intersection_breakdown_totals WHERE job = '%s'" % JOB_NAME),
}
MODEL_VIEWS = {
    "domain_intersection_domains": Model.view_domains,
    "domain_intersection_latest_domains": Model.view_latest_domains,
    "domain_intersection_breakdown_totals": Model.view_breakdown_totals,
    "domain_intersection": Model.view_snapshots,
    "domain_intersection_latest": Model.view_latest,
    "domain_intersection_daily": Model.view_daily,
    "domain_intersection_changes": Model.view_changes,
    "domain_intersection_history": Model.view_history,
}


def diff_view(name, want, got):
    """'' when equal, else a precise account of the first differences."""
    lines = []
    missing = sorted(set(want) - set(got), key=str)
    extra = sorted(set(got) - set(want), key=str)
    for k in missing[:6]:
        lines.append("  missing %s: %s" % (k, _short(want[k])))
    for k in extra[:6]:
        lines.append("  extra   %s: %s" % (k, _short(got[k])))
    differing = [k for k in sorted(set(want) & set(got), key=str)
                 if any(_canon(got[k].get(f)) != _canon(v) for f, v in want[k].items())]
    for k in differing[:8]:
        fields = ["%s: want %r, got %r" % (f, v, got[k].get(f)) for f, v in want[k].items()
                  if _canon(got[k].get(f)) != _canon(v)]
        lines.append("  differs %s: %s" % (k, "; ".join(fields)))
    if not lines:
        return ""
    return "%s: %d missing, %d extra, %d differing (of %d expected)\n%s" % (
        name, len(missing), len(extra), len(differing), len(want), "\n".join(lines))


def _short(row):
    keep = ("valid_to", "last_snapshot_date", "status", "restart", "previous_snapshot_date", "changed_rows",
            "new_domains", "lost_domains", "purged", "rank", "backlinks", "position")
    return {f: row[f] for f in keep if f in row}


class DifferentialTest(EtlTestCase):

    def test_random_sequences(self):
        for seed in SEEDS:
            db = harness.Database("diff")
            try:
                self.fake.reset()
                Sequence(self, db, seed).play()
            finally:
                db.close()


class Sequence:
    """One seed's sequence of operations, each followed by the comparison of every view."""

    def __init__(self, case, db, seed):
        self.case, self.db, self.seed = case, db, seed
        self.rng = random.Random(seed)
        self.model = Model()
        self.keep_days = self.rng.randint(2, 5)
        self.job = case.job(job_text(), name="diff-%d.yaml" % seed)
        self.job_ret = case.job(job_text(self.keep_days), name="diff-%d-ret.yaml" % seed)
        self.tasks = {}    # set -> the task the ETL sent (dataset-defining fields)
        self.runs = {}     # run_id -> (date, {set: answer}) of runs that published sets
        self.date_runs = {}  # date -> its latest run: {"ok", "replay", "complete": sets}
        self.log = []      # what happened, for the failure message
        self.answers = {}  # (set, night) -> answer
        self.t0 = time.monotonic()

    def env(self):
        return dict(self.case.env(), DATABASE_URL=self.db.url)

    def continued(self, date):
        """The sets a run of `date` will not fetch: a run of a date continues
        the date's latest run when that one did not succeed and is no replay
        (README, Recovery), and the sets complete in it stay as they are."""
        last = self.date_runs.get(date)
        return set() if last is None or last["ok"] or last["replay"] else set(last["complete"])

    def play(self):
        self.step_run("night", FIRST_DATE, list(SETS), set())
        for _ in range(STEPS - 1):
            self.random_step()

    # -- choosing a step -------------------------------------------------

    def dates(self):
        ds = set()
        for s in SETS:
            ds |= set(self.model.complete[s]) | self.model.failed[s] | set(self.model.purged[s])
        return sorted(ds)

    def random_step(self):
        rng, dates = self.rng, self.dates()
        ops = ["night"] * 4 + ["fail"] * 2 + ["replay"]
        if not IN_ORDER:
            ops += ["rerun"] * 3 + ["backfill", "retention"]
        if OPS:
            ops = [o for o in ops if o in OPS] or ["night"]
        op = rng.choice(ops)
        only = list(SETS)
        if rng.random() < 0.3:
            only = sorted(rng.sample(list(SETS), rng.randint(1, len(SETS) - 1)))
        if op == "replay":
            cands = sorted(self.runs)
            if IN_ORDER:  # only the latest run, onto the latest date
                cands = [r for r in cands[-1:] if self.runs[r][0] == dates[-1]]
            if cands:
                return self.step_replay(rng.choice(cands))
            op = "night"
        if op in ("night", "retention"):
            date = dates[-1] + datetime.timedelta(days=rng.randint(1, 3))
        elif op == "backfill":
            date = dates[0] - datetime.timedelta(days=rng.randint(1, 3))
        elif op == "rerun":
            date = dates[0] + datetime.timedelta(days=rng.randint(0, (dates[-1] - dates[0]).days))
        else:  # fail: a new night, or (out of order) any date of the history
            if IN_ORDER or rng.random() < 0.5:
                date = dates[-1] + datetime.timedelta(days=rng.randint(1, 2))
            else:
                date = dates[0] + datetime.timedelta(days=rng.randint(0, (dates[-1] - dates[0]).days))
        failing = set()
        if op == "fail":
            failing = set(rng.sample(only, rng.randint(1, len(only))))
        self.step_run(op, date, only, failing, retention=(op == "retention"))

    # -- running a step --------------------------------------------------

    def answer(self, s, night):
        if (s, night) not in self.answers:
            self.answers[(s, night)] = answer_rows(self.tasks[s], s, night)
        return self.answers[(s, night)]

    def step_run(self, op, date, only, failing, retention=False):
        nights = {s: self.rng.randrange(NIGHTS) for s in only}
        skipped = self.continued(date)
        failing = failing - skipped  # (a set complete in the run is not asked again)
        for s in SETS:
            targets, candidates = SETS[s]
            faults = [{"kind": "task", "code": 40501, "offset": 0}] if s in failing else None
            self.case.fake.set_scenario(targets[0], total_count=candidates, night=nights.get(s, 0),
                                        faults=faults)
        args = ["run", self.job_ret if retention else self.job, "--snapshot-date", str(date)]
        if len(self.log) == 0:
            args.append("--migrate")
        if only != list(SETS):
            for s in only:
                args += ["--only", s]
        done = [s for s in only if s not in failing]
        expect = 0 if not failing else (3 if done else 1)
        self.log.append("%s %s%s nights %s%s" % (
            op, date, "" if only == list(SETS) else " --only " + ",".join(only),
            ",".join("%s=%d" % kv for kv in sorted(nights.items())),
            " failing " + ",".join(sorted(failing)) if failing else ""))
        before = len(self.case.fake.requests)
        code, out, err = harness.run_etl(args, env=self.env())
        self.check(code == expect, "exit status %d, expected %d\n%s" % (code, expect, err[-2000:]))
        for r in self.case.fake.requests[before:]:
            s = next((n for n, (t, _) in SETS.items() if t[0] == r["first_target"]), None)
            if s is not None and s not in self.tasks and r["task"]:
                self.tasks[s] = r["task"]
        published = {}
        served = self.case.fake.requests[before:]
        for s in only:
            if s in skipped:
                continue
            if s in failing:
                self.model.fail(s, date)
            else:
                published[s] = self.answer(s, nights[s])
                self.check_served(s, served, published[s][0])
                self.model.publish(s, date, published[s])
        if published:
            self.runs[int(self.db.value("SELECT max(run_id) FROM dataforseo.etl_run"))] = (date, published)
        self.date_runs[date] = {"ok": code == 0, "replay": False,
                                "complete": (skipped if skipped else set()) | set(published)}
        if retention and expect == 0:
            self.model.retention(date, self.keep_days)
        self.compare()

    def check_served(self, s, served, rows):
        """The model's answer is what the fake served (its request log), page by page."""
        targets = SETS[s][0]
        got = harness.expected_rows(served, targets[0], targets)
        for row in got.values():
            row.update({f: api_time_to_json(row[f]) for f in harness.TIME_FIELDS}, extra=None)
        self.check(got == rows, "set %s: the fake served %d rows, the model computed %d (differing: %s)" % (
            s, len(got), len(rows), sorted(k for k in set(got) | set(rows) if got.get(k) != rows.get(k))[:5]))

    def step_replay(self, run_id):
        date, published = self.runs[run_id]
        self.log.append("replay of run %d (%s, sets %s)" % (run_id, date, ",".join(sorted(published))))
        code, out, err = harness.run_etl(["replay", self.job, str(run_id)], env=self.env())
        self.check(code == 0, "replay exit status %d\n%s" % (code, err[-2000:]))
        self.date_runs[date] = {"ok": True, "replay": True, "complete": set(published)}
        for s, answer in published.items():
            self.model.publish(s, date, answer)
        self.compare()

    def compare(self):
        if VERBOSE:
            print("%7.2f s  seed %d: %s" % (time.monotonic() - self.t0, self.seed, self.log[-1]), file=sys.stderr)
        problems = []
        for name, (key_cols, sql) in QUERIES.items():
            got = {}
            for r in self.rows(sql.format(s=self.case.schema)):
                got[tuple(r.pop(c) for c in key_cols)] = r
            want = MODEL_VIEWS[name](self.model)
            if name == "domain_intersection_daily":
                # a failed date: only its status is defined
                got = {k: ({f: v[f] for f in ("status", "purged", "restart")} if v["status"] == "failed" else v)
                       for k, v in got.items()}
            problems.append(diff_view(name, {_key(k): v for k, v in want.items()},
                                      {_key(k): v for k, v in got.items()}))
        self.check(not any(problems), "\n".join(p for p in problems if p))

    def rows(self, sql):
        # at the server's default settings (jit on), as users read them
        out = self.db.psql("SELECT coalesce(json_agg(q), '[]') FROM (%s) q" % sql)
        return json.loads(out)

    def check(self, ok, what):
        if not ok:
            raise AssertionError("seed %d, step %d of the sequence below: %s\nsequence (reproduce with "
                                 "ETL_DIFF_SEED=%d ETL_DIFF_STEPS=%d%s):\n  %s" % (
                                     self.seed, len(self.log), what, self.seed, len(self.log),
                                     (" ETL_DIFF_IN_ORDER=1" if IN_ORDER else "")
                                     + (" ETL_DIFF_OPS=" + ",".join(OPS) if OPS else ""),
                                     "\n  ".join("%d. %s" % (i + 1, s) for i, s in enumerate(self.log))))


def _key(k):
    return tuple(str(x) for x in k)


if __name__ == "__main__":
    unittest.main()

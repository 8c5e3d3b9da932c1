#!/usr/bin/env python3
"""Tests of the fake Domain Intersection API (tests/fake_api/fakeapi.py).

The integration tests trust this fake to behave like the real service and
to be deterministic, so its own behaviour is pinned down here: paging, data
purity, both request profiles, auth, every fault kind, the scripted
scenarios, the request log, the control endpoints and script mode. All
traffic is real HTTP over loopback (http.client), never the real API.

Run: python3 tests/fake_api/test_fakeapi.py -v   (exits non-zero on failure)
"""

import base64
import gzip
import zlib
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fakeapi  # noqa: E402  (path set up above)
from fakeapi import FakeServer, Dataset, cost_for, STATUS_MESSAGES  # noqa

TOKEN, LOGIN, PASSWORD = "sk-aisa-test", "user", "pw"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00$")
TARGET_KEYS = [
    "type", "target", "rank", "backlinks", "first_seen", "lost_date",
    "backlinks_spam_score", "broken_backlinks", "broken_pages",
    "referring_domains", "referring_domains_nofollow",
    "referring_main_domains", "referring_main_domains_nofollow",
    "referring_ips", "referring_subnets", "referring_pages",
    "referring_pages_nofollow", "referring_links_tld",
    "referring_links_types", "referring_links_attributes",
    "referring_links_platform_types", "referring_links_semantic_locations",
    "referring_links_countries",
]
LEGACY_KEYS = [k for k in TARGET_KEYS if k not in (
    "referring_links_countries", "backlinks_spam_score",
    "referring_domains_nofollow", "referring_main_domains_nofollow",
    "referring_pages_nofollow")]
MAP_KEYS = TARGET_KEYS[17:]


def task_for(first="hubspot.com", second="mailchimp.com", **extra):
    t = {"targets": {"1": first, "2": second}}
    t.update(extra)
    return t


def basic(login, password):
    raw = f"{login}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Resp:
    """One HTTP answer: status, headers, wire bytes, decoded bytes, JSON."""

    def __init__(self, r, wire):
        self.status = r.status
        self.headers = r.headers
        self.wire = wire
        self.data = wire
        if r.headers.get("Content-Encoding") == "gzip":
            self.data = gzip.decompress(wire)

    def json(self):
        return json.loads(self.data)


class ServerCase(unittest.TestCase):
    """One fake server per test class; state reset before every test."""

    @classmethod
    def setUpClass(cls):
        cls.srv = FakeServer(token=TOKEN, login=LOGIN,
                             password=PASSWORD).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        self.srv.reset()

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.srv.port,
                                          timeout=timeout)

    def request(self, method, path, body=b"", headers=None, conn=None):
        own = conn is None
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Resp(r, r.read())
        finally:
            if own:
                c.close()

    def post(self, body, profile="aisa", auth=True, gzip_ok=False,
             headers=None, conn=None):
        """POST a task (dict/list are JSON-encoded, str/bytes sent as is)."""
        h = {"Content-Type": "application/json"}
        if auth is True:
            h["Authorization"] = ("Bearer " + TOKEN if profile == "aisa"
                                  else basic(LOGIN, PASSWORD))
        elif auth:
            h["Authorization"] = auth
        if gzip_ok:
            h["Accept-Encoding"] = "gzip"
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        return self.request("POST", fakeapi.PATHS[profile], body, h, conn)

    def page(self, task, **kw):
        """POST and return (top-level JSON, result[0]) of a good page."""
        resp = self.post(task, **kw)
        self.assertEqual(resp.status, 200, resp.data[:300])
        doc = resp.json()
        self.assertEqual(doc["status_code"], 20000, doc["status_message"])
        self.assertEqual(doc["tasks"][0]["status_code"], 20000)
        return doc, doc["tasks"][0]["result"][0]


# --------------------------------------------------------------------------
# Data generation (no server)
# --------------------------------------------------------------------------

class TestDataset(unittest.TestCase):

    def test_seed_is_sha256_of_canonical_json(self):
        t = task_for(limit=5, offset=10, tag="x")
        canon = json.dumps({
            "targets": t["targets"], "exclude_targets": [], "filters": [],
            "backlinks_filters": [], "backlinks_status_type": "live",
            "intersection_mode": "all", "rank_scale": "one_thousand",
            "internal_list_limit": 10}, sort_keys=True,
            separators=(",", ":"))
        seed = int(hashlib.sha256(canon.encode()).hexdigest(), 16)
        ds = Dataset(t)
        self.assertEqual(ds.seed, seed)
        self.assertEqual(ds.total_count, seed % 3001)
        self.assertTrue(0 <= ds.total_count <= 3000)

    def test_dataset_identity(self):
        base = Dataset(task_for()).key
        # Sending the documented defaults is the same query as omitting them.
        same = task_for(exclude_targets=[], filters=None,
                        backlinks_status_type="live",
                        intersection_mode="all", rank_scale="one_thousand",
                        internal_list_limit=10, offset=300, limit=7,
                        order_by=["1.rank,desc"], tag="t")
        self.assertEqual(Dataset(same).key, base)
        for field, value in [("exclude_targets", ["bbc.com"]),
                             ("filters", [["1.rank", ">", 100]]),
                             ("backlinks_filters", [["dofollow", "=", True]]),
                             ("backlinks_status_type", "all"),
                             ("intersection_mode", "partial"),
                             ("rank_scale", "one_hundred"),
                             ("internal_list_limit", 3)]:
            with self.subTest(field=field):
                self.assertNotEqual(Dataset(task_for(**{field: value})).key,
                                    base)
        self.assertNotEqual(Dataset(task_for(second="x.com")).key, base)

    def test_item_is_pure_function_of_index(self):
        t = task_for()
        a, b = Dataset(t), Dataset(dict(t, offset=500, limit=3))
        self.assertEqual(a.item(37), b.item(37))
        self.assertEqual(a.items(30, 10)[7], a.item(37))
        self.assertEqual(a.page(30, 10), a.items(30, 10))
        self.assertNotEqual(a.item(37), a.item(38))
        ds = Dataset(t, total_count=5)
        self.assertEqual(len(ds.page(3, 100)), 2)
        self.assertEqual(ds.page(5, 100), [])

    def test_referring_domains_unique_and_mixed(self):
        ds = Dataset(task_for())
        names = [ds.referring_domain(i) for i in range(3000)]
        self.assertEqual(len(set(names)), 3000)
        # Still unique after the normalisation an ETL might apply.
        norm = {n.encode("idna").decode().lower() for n in names}
        self.assertEqual(len(norm), 3000)
        self.assertTrue(any(n.isascii() and not n.startswith("xn--")
                            for n in names))
        self.assertTrue(any("xn--" in n for n in names))
        for script in ("[äöü]", "[а-я]", "[\u3040-\u30ff\u4e00-\u9fff]"):
            self.assertTrue(any(re.search(script, n) for n in names), script)
        for i in (0, 17, 2999):
            self.assertIn(str(i), names[i].encode("idna").decode("idna"))
            self.assertEqual(ds.item(i)["domain_intersection"]["1"]["target"],
                             names[i])

    def test_target_objects_are_realistic(self):
        ds = Dataset(task_for())
        objs = []
        for item in ds.items(0, 1000):
            self.assertEqual(list(item), ["domain_intersection", "summary"])
            self.assertEqual(item["summary"], {"intersections_count": 2})
            di = item["domain_intersection"]
            self.assertEqual(list(di), ["1", "2"])
            self.assertEqual(di["1"]["target"], di["2"]["target"])
            objs.extend(di.values())
        seen = {"null_map": 0, "empty_key": 0, "null_int": 0, "lost": 0,
                "huge": 0, "capped": 0}
        for o in objs:
            self.assertEqual(list(o), TARGET_KEYS)
            self.assertEqual(o["type"], "backlinks_domain_intersection")
            self.assertRegex(o["first_seen"], TIME_RE)
            if o["lost_date"] is not None:
                self.assertRegex(o["lost_date"], TIME_RE)
                self.assertGreaterEqual(o["lost_date"], o["first_seen"])
                seen["lost"] += 1
            if o["rank"] is not None:
                self.assertTrue(0 <= o["rank"] <= 1000)
            if o["backlinks_spam_score"] is not None:
                self.assertTrue(0 <= o["backlinks_spam_score"] <= 100)
            for k in TARGET_KEYS[2:17]:
                if k in ("first_seen", "lost_date"):
                    continue
                v = o[k]
                if v is None:
                    seen["null_int"] += 1
                else:
                    self.assertIsInstance(v, int)
                    self.assertTrue(0 <= v < 2 ** 63)
            if o["backlinks"] is not None and o["backlinks"] > 2 ** 31:
                seen["huge"] += 1
            for k in MAP_KEYS:
                m = o[k]
                if m is None:
                    seen["null_map"] += 1
                    continue
                self.assertLessEqual(len(m), 10)
                seen["capped"] += len(m) == 10
                seen["empty_key"] += "" in m
                for mk, mv in m.items():
                    self.assertIsInstance(mk, str)
                    self.assertIsInstance(mv, int)
        for what, n in seen.items():
            self.assertGreater(n, 0, what)
        # "mostly null": lost dates are the exception.
        self.assertLess(seen["lost"], len(objs) / 4)

    def test_rank_scale_and_internal_list_limit(self):
        ds = Dataset(task_for(rank_scale="one_hundred",
                              internal_list_limit=2))
        for item in ds.items(0, 300):
            for o in item["domain_intersection"].values():
                if o["rank"] is not None:
                    self.assertLessEqual(o["rank"], 100)
                for k in MAP_KEYS:
                    self.assertLessEqual(len(o[k] or {}), 2)

    def test_legacy_shape(self):
        t = task_for()
        cur, old = Dataset(t), Dataset(t, shape="legacy")
        for i in range(50):
            item = old.item(i)
            self.assertEqual(list(item), ["1", "2"])  # no wrapper, no summary
            for key, o in item.items():
                self.assertEqual(list(o), LEGACY_KEYS)
                full = cur.item(i)["domain_intersection"][key]
                self.assertEqual(o, {k: full[k] for k in LEGACY_KEYS})
        with self.assertRaises(ValueError):
            Dataset(t, shape="v2")
        with self.assertRaises(ValueError):
            Dataset({"targets": {}})

    def test_partial_mode(self):
        t = {"targets": {"1": "a.com", "2": "b.com", "3": "c.com"},
             "intersection_mode": "partial"}
        for shape in ("current", "legacy"):
            ds = Dataset(t, shape=shape)
            short = no_summary = 0
            for item in ds.items(0, 400):
                di = item if shape == "legacy" else item["domain_intersection"]
                self.assertGreaterEqual(len(di), 1)   # never all missing
                self.assertTrue(set(di) <= {"1", "2", "3"})
                short += len(di) < 3
                if shape == "current":
                    if "summary" in item:
                        self.assertEqual(item["summary"],
                                         {"intersections_count": len(di)})
                    else:
                        no_summary += 1
            self.assertTrue(0 < short < 200, short)  # some, not most
            if shape == "current":
                self.assertGreater(no_summary, 0)
        # With a single target nothing can be dropped.
        one = Dataset({"targets": {"1": "a.com"},
                       "intersection_mode": "partial"})
        self.assertTrue(all(list(it["domain_intersection"]) == ["1"]
                            for it in one.items(0, 100)))

    def test_cost_formula(self):
        self.assertEqual(cost_for(10), 0.0203)
        self.assertEqual(cost_for(0), 0.02)
        self.assertEqual(cost_for(1000), 0.05)


# --------------------------------------------------------------------------
# HTTP basics: paging, body forms, auth, encoding
# --------------------------------------------------------------------------

class TestHTTP(ServerCase):

    def test_listens_on_loopback_only(self):
        self.assertEqual(self.srv.server_address[0], "127.0.0.1")
        p = self.srv.port
        self.assertEqual(self.srv.base_url("aisa"),
                         f"http://127.0.0.1:{p}/apis/v1")
        self.assertEqual(self.srv.base_url("dataforseo"),
                         f"http://127.0.0.1:{p}/v3")
        self.assertEqual(self.srv.url("dataforseo"),
                         f"http://127.0.0.1:{p}/v3/backlinks/"
                         "domain_intersection/live")

    def test_paging(self):
        self.srv.set_scenario("hubspot.com", total_count=250)
        ds = Dataset(task_for(), total_count=250)
        got = []
        for offset, n in ((0, 100), (100, 100), (200, 50)):
            doc, res = self.page(task_for(offset=offset, limit=100))
            self.assertEqual(res["total_count"], 250)
            self.assertEqual(res["items_count"], n)
            self.assertEqual(res["items"], ds.items(offset, n))
            got.extend(res["items"])
        self.assertEqual(got, ds.items(0, 250))
        for offset in (250, 5000):  # past the end: empty, total intact
            doc, res = self.page(task_for(offset=offset, limit=100))
            self.assertEqual((res["total_count"], res["items_count"],
                              res["items"]), (250, 0, []))
        # Defaults: offset 0, limit 100.
        doc, res = self.page(task_for())
        self.assertEqual(res["items"], ds.items(0, 100))

    def test_default_total_count_and_determinism_across_pages(self):
        t = task_for(second="example.org")
        doc, res = self.page(dict(t, offset=0, limit=50))
        self.assertEqual(res["total_count"], Dataset(t).total_count)
        doc2, res2 = self.page(dict(t, offset=20, limit=10),
                               profile="dataforseo")
        self.assertEqual(res2["items"], res["items"][20:30])

    def test_success_envelope(self):
        t = task_for(limit=10, tag="job-7/set-1")
        doc, res = self.page(t)
        self.assertEqual(doc["version"], "0.1.20240801")
        self.assertRegex(doc["time"], r"^\d+\.\d{4} sec\.$")
        self.assertEqual((doc["cost"], doc["tasks_count"],
                          doc["tasks_error"]), (0.0203, 1, 0))
        task = doc["tasks"][0]
        self.assertRegex(task["id"], r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-"
                                     r"[0-9a-f]{12}$")
        self.assertEqual(task["status_message"], "Ok.")
        self.assertEqual((task["cost"], task["result_count"]), (0.0203, 1))
        self.assertEqual(task["path"],
                         ["v3", "backlinks", "domain_intersection", "live"])
        self.assertEqual(task["data"], dict(t, api="backlinks",
                                            function="domain_intersection"))
        self.assertEqual(res["targets"], t["targets"])

    def test_body_forms_on_both_endpoints(self):
        t = task_for(limit=5)
        want = Dataset(t).items(0, 5)
        for profile in ("aisa", "dataforseo"):
            for body in (t, [t]):
                with self.subTest(profile=profile, array=isinstance(body,
                                                                    list)):
                    doc, res = self.page(body, profile=profile)
                    self.assertEqual(res["items"], want)

    def test_more_than_one_task(self):
        for profile in ("aisa", "dataforseo"):
            r = self.post([task_for(), task_for()], profile=profile)
            self.assertEqual(r.status, 200)
            doc = r.json()
            self.assertEqual(doc["status_code"], 40006)
            self.assertEqual(doc["status_message"],
                             "You can set only one task at a time.")
            self.assertIsNone(doc["tasks"])

    def test_not_json(self):
        for body in ("{not json", "", "[]", "42", "[1]", b"\xff\xfe"):
            with self.subTest(body=body):
                r = self.post(body)
                self.assertEqual(r.status, 200)
                doc = r.json()
                self.assertEqual(doc["status_code"], 40503)
                self.assertEqual(doc["cost"], 0)
                self.assertIsNone(doc["tasks"])

    def test_task_validation(self):
        many = {str(i): f"t{i}.com" for i in range(1, 22)}
        cases = [({"limit": 5}, "targets"),
                 ({"targets": {}}, "targets"),
                 ({"targets": ["a.com"]}, "targets"),
                 ({"targets": {"1": ""}}, "targets"),
                 ({"targets": many}, "targets"),
                 (task_for(limit=0), "limit"),
                 (task_for(limit=1001), "limit"),
                 (task_for(limit="10"), "limit"),
                 (task_for(offset=-1), "offset"),
                 (task_for(internal_list_limit=0), "internal_list_limit"),
                 (task_for(intersection_mode="some"), "intersection_mode"),
                 (task_for(rank_scale="ten"), "rank_scale")]
        for task, field in cases:
            with self.subTest(field=field, task=task):
                r = self.post(task, profile="dataforseo")
                self.assertEqual(r.status, 200)
                doc = r.json()
                self.assertEqual((doc["status_code"], doc["tasks_error"],
                                  doc["cost"]), (20000, 1, 0))
                t = doc["tasks"][0]
                self.assertEqual(t["status_code"], 40501)
                self.assertEqual(t["status_message"],
                                 f"Invalid Field: '{field}'.")
                self.assertIsNone(t["result"])
                self.assertEqual(t["cost"], 0)
        # Edges that are valid.
        twenty = {str(i): f"t{i}.com" for i in range(1, 21)}
        self.page({"targets": twenty, "limit": 1})
        self.page(task_for(limit=1000, offset=0))

    def test_auth(self):
        t = task_for(limit=1)
        for profile, good, bad in (
                ("aisa", "Bearer " + TOKEN, "Bearer sk-aisa-wrong"),
                ("dataforseo", basic(LOGIN, PASSWORD), basic(LOGIN, "nope"))):
            with self.subTest(profile=profile):
                self.assertEqual(self.post(t, profile, auth=good).status, 200)
                for auth in (bad, False, "Basic !!notbase64",
                             "Token " + TOKEN):
                    r = self.post(t, profile, auth=auth)
                    self.assertEqual(r.status, 401, auth)
                    doc = r.json()
                    if profile == "aisa":
                        err = doc["error"]
                        self.assertEqual(err["type"], "authentication_error")
                        self.assertEqual(err["code"], "invalid_api_key")
                        self.assertTrue(err["message"] and err["request_id"])
                    else:
                        self.assertEqual(doc["status_code"], 40100)
                        self.assertEqual(
                            doc["status_message"],
                            "You are not authorized to access this resource.")
                        self.assertEqual((doc["cost"], doc["tasks_count"],
                                          doc["tasks_error"], doc["tasks"]),
                                         (0, 0, 0, None))
        # Each profile takes only its own scheme.
        self.assertEqual(self.post(t, "aisa",
                                   auth=basic(LOGIN, PASSWORD)).status, 401)
        self.assertEqual(self.post(t, "dataforseo",
                                   auth="Bearer " + TOKEN).status, 401)

    def test_unknown_paths(self):
        for method, path in (("POST", "/v3/backlinks/backlinks/live"),
                             ("POST", "/apis/v1/dataforseo/x"),
                             ("GET", fakeapi.PATHS["dataforseo"]),
                             ("POST", "/_fake/nothing")):
            with self.subTest(path=path):
                r = self.request(method, path, b"{}")
                self.assertEqual(r.status, 404)
                self.assertEqual(r.json()["status_code"], 40400)

    def test_keep_alive_and_content_length(self):
        c = self.conn()
        try:
            r1 = self.post(task_for(limit=3), conn=c)
            sock = c.sock
            r2 = self.post(task_for(limit=3), auth="Bearer bad", conn=c)
            r3 = self.request("POST", "/nowhere", b"{}", conn=c)
            r4 = self.post(task_for(limit=3), gzip_ok=True, conn=c)
            self.assertIs(c.sock, sock)  # same TCP connection throughout
        finally:
            c.close()
        for r, status in ((r1, 200), (r2, 401), (r3, 404), (r4, 200)):
            self.assertEqual(r.status, status)
            self.assertEqual(int(r.headers["Content-Length"]), len(r.wire))

    def test_gzip(self):
        t = task_for(limit=50)
        plain = self.post(t)
        self.assertIsNone(plain.headers.get("Content-Encoding"))
        packed = self.post(t, gzip_ok=True)
        self.assertEqual(packed.headers["Content-Encoding"], "gzip")
        self.assertEqual(packed.wire[:2], b"\x1f\x8b")
        self.assertLess(len(packed.wire), len(plain.wire))
        strip = lambda d: d["tasks"][0]["result"]  # noqa: E731
        self.assertEqual(strip(packed.json()), strip(plain.json()))
        # Error answers are compressed too; q=0 refuses gzip.
        err = self.post(t, auth="Bearer x", gzip_ok=True)
        self.assertEqual(err.headers["Content-Encoding"], "gzip")
        self.assertEqual(err.status, 401)
        no = self.post(t, headers={"Accept-Encoding": "gzip;q=0"})
        self.assertIsNone(no.headers.get("Content-Encoding"))

    def test_cost(self):
        for limit, cost in ((10, 0.0203), (1, 0.02003), (1000, 0.05)):
            self.srv.set_scenario("hubspot.com", total_count=3000)
            doc, res = self.page(task_for(limit=limit))
            self.assertEqual(doc["cost"], cost)
            self.assertEqual(doc["tasks"][0]["cost"], cost)
        self.srv.set_scenario("hubspot.com", total_count=0)
        doc, res = self.page(task_for())
        self.assertEqual((doc["cost"], res["items"]), (0.02, []))

    def test_ensure_ascii_and_legacy_scenario(self):
        self.srv.set_scenario("hubspot.com", total_count=40, shape="legacy",
                              ensure_ascii=True)
        r = self.post(task_for(limit=40))
        r.data.decode("ascii")  # every non-ASCII name escaped as \uXXXX
        doc = r.json()
        self.assertEqual(doc["version"], "0.1.20221214")
        items = doc["tasks"][0]["result"][0]["items"]
        self.assertEqual(items, Dataset(task_for(), shape="legacy").items(0,
                                                                           40))
        self.assertTrue(any(not it["1"]["target"].isascii() for it in items))


# --------------------------------------------------------------------------
# Scenarios and faults
# --------------------------------------------------------------------------

class TestScenarios(ServerCase):

    def test_short_pages(self):
        self.srv.set_scenario("hubspot.com", total_count=250,
                              short_pages={100: 30})
        ds = Dataset(task_for(), total_count=250)
        doc, res = self.page(task_for(offset=100, limit=100))
        self.assertEqual((res["total_count"], res["items_count"]), (250, 30))
        self.assertEqual(res["items"], ds.items(100, 30))
        # The client must go on from offset 130; that page is whole.
        doc, res = self.page(task_for(offset=130, limit=100))
        self.assertEqual(res["items"], ds.items(130, 100))
        self.assertEqual(self.srv.requests[0]["served"], [100, 30])

    def test_duplicate_at(self):
        self.srv.set_scenario("hubspot.com", total_count=250,
                              duplicate_at=[100])
        ds = Dataset(task_for(), total_count=250)
        _, first = self.page(task_for(offset=0, limit=100))
        _, second = self.page(task_for(offset=100, limit=100))
        self.assertEqual(second["items_count"], 100)
        self.assertEqual(second["items"][0], first["items"][-1])
        self.assertEqual(second["items"], ds.items(99, 100))
        self.assertEqual(self.srv.requests[1]["served"], [99, 100])
        # The last page is unaffected and its count stays clipped.
        _, last = self.page(task_for(offset=200, limit=100))
        self.assertEqual(last["items"], ds.items(200, 50))

    def test_scenario_only_for_its_first_target(self):
        self.srv.set_scenario("hubspot.com", total_count=7)
        _, res = self.page(task_for(first="other.com"))
        self.assertEqual(res["total_count"],
                         Dataset(task_for(first="other.com")).total_count)
        _, res = self.page(task_for(second="zzz.com"))  # same first target
        self.assertEqual(res["total_count"], 7)

    def test_latency(self):
        self.srv.set_scenario("slow.com", latency_ms=250)
        t0 = time.monotonic()
        self.page(task_for(first="slow.com", limit=1))
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        with FakeServer(token=TOKEN, latency_ms=200) as other:
            c = http.client.HTTPConnection("127.0.0.1", other.port, timeout=5)
            t0 = time.monotonic()
            c.request("POST", fakeapi.PATHS["aisa"],
                      json.dumps(task_for(limit=1)),
                      {"Authorization": "Bearer " + TOKEN})
            self.assertEqual(c.getresponse().status, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.2)
            c.close()

    def test_night_drift(self):
        """A night's answer drifts from the night-less one (some domains
        lost, some metrics changed, the rest equal), is served exactly as
        Dataset(task, night=n) generates it, and the same night repeats it."""
        base = Dataset(task_for(), total_count=120)
        nights = {n: Dataset(task_for(), total_count=120, night=n) for n in (0, 1)}

        def by_domain(ds):
            return {it["domain_intersection"]["1"]["target"]: it
                    for it in ds.page(0, ds.total_count)}
        everything = by_domain(base)
        for n, ds in nights.items():
            got = by_domain(ds)
            self.assertEqual(ds.total_count, len(got))
            self.assertLess(ds.total_count, 120)           # some lost
            self.assertGreater(ds.total_count, 80)
            self.assertLessEqual(set(got), set(everything))
            same = changed = 0
            for dom, item in got.items():
                for k, obj in item["domain_intersection"].items():
                    old = everything[dom]["domain_intersection"][k]
                    if obj == old:
                        same += 1
                        continue
                    changed += 1
                    # only the drifting metrics move
                    diff = {f for f in obj if obj[f] != old[f]}
                    self.assertLessEqual(diff, {"rank", "backlinks", "referring_links_countries"})
                    if old["backlinks"] is not None:
                        self.assertGreater(obj["backlinks"], old["backlinks"])
            self.assertGreater(changed, 10)
            self.assertGreater(same, changed)
        one, two = by_domain(nights[0]), by_domain(nights[1])
        self.assertTrue(set(one) - set(two) and set(two) - set(one))  # lost and new
        self.assertTrue(any(one[d] != two[d] for d in set(one) & set(two)))
        self.assertTrue(any(one[d] == two[d] for d in set(one) & set(two)))
        # positions count the kept domains in order, with no gap
        self.assertEqual(nights[1].referring_domain(5),
                         nights[1].item(5)["domain_intersection"]["1"]["target"])

        # served: paged like any answer, the same bytes of items each time
        self.srv.set_scenario("hubspot.com", total_count=120, night=1)
        _, a = self.page(task_for(offset=0, limit=50))
        _, b = self.page(task_for(offset=50, limit=100))
        self.assertEqual(a["total_count"], nights[1].total_count)
        self.assertEqual(a["items"] + b["items"], nights[1].page(0, 200))
        self.assertEqual(b["items_count"], nights[1].total_count - 50)
        _, again = self.page(task_for(offset=0, limit=50))
        self.assertEqual(again["items"], a["items"])
        self.srv.set_scenario("hubspot.com", total_count=120, night=0)
        _, c = self.page(task_for(offset=0, limit=200))
        self.assertEqual(c["items"], nights[0].page(0, 200))
        # through the control endpoint as well
        r = self.request("POST", "/_fake/scenario", json.dumps(
            {"first_target": "hubspot.com", "total_count": 120, "night": 1}).encode())
        self.assertEqual(r.status, 200, r.data)
        _, d = self.page(task_for(offset=0, limit=200))
        self.assertEqual(d["items"], nights[1].page(0, 200))
        for bad in (-1, "1", True, 1.5):
            with self.assertRaises(ValueError):
                self.srv.set_scenario("a.com", night=bad)
            with self.assertRaises(ValueError):
                Dataset(task_for(), night=bad)

    def test_bad_scenarios_and_faults_rejected(self):
        with self.assertRaises(ValueError):
            self.srv.set_scenario("a.com", shape="v9")
        with self.assertRaises(ValueError):
            self.srv.set_scenario("a.com", faults=[{"kind": "explode"}])
        with self.assertRaises(ValueError):
            self.srv.inject({"kind": "task"})  # needs a code
        with self.assertRaises(ValueError):
            self.srv.inject({"kind": "drop", "times": 0})


class TestFaults(ServerCase):

    def fault(self, fault, profile="aisa", **task_kw):
        """Run one request through a scenario fault; return the answer."""
        self.srv.set_scenario("hubspot.com", total_count=300, faults=[fault])
        return self.post(task_for(limit=10, **task_kw), profile=profile)

    def assertRecovered(self):
        self.page(task_for(limit=10))  # times defaults to 1

    def test_charged_is_what_the_answer_reports(self):
        """The log's "charged" is what a client counts: a completed task's
        cost, fault or not; nothing for errors or what cannot be read."""
        def charged(fault):
            self.fault(fault)
            return self.srv.requests[-1]["charged"]

        def doubled(doc):
            doc["tasks"][0]["cost"] *= 2

        self.post(task_for(limit=10))
        self.assertEqual(self.srv.requests[-1]["charged"], cost_for(10))
        self.assertEqual(charged({"kind": "edit", "fn": doubled}), 2 * cost_for(10))
        self.assertEqual(charged({"kind": "other_request", "as": {"limit": 20}}), cost_for(20))
        self.assertEqual(charged({"kind": "task", "code": 40501}), 0)
        self.assertEqual(charged({"kind": "http500"}), 0)
        self.assertEqual(charged({"kind": "encoding", "as": "garbled"}), 0)
        self.assertEqual(charged({"kind": "encoding", "as": "identity"}), cost_for(10))

    def test_http429(self):
        r = self.fault({"kind": "http429"})
        self.assertEqual((r.status, r.headers["Retry-After"]), (429, "1"))
        self.assertEqual(r.json()["error"]["type"], "rate_limit_error")
        self.assertEqual(r.json()["error"]["code"], "rate_limited")
        self.assertRecovered()
        r = self.fault({"kind": "http429", "retry_after": 7})
        self.assertEqual(r.headers["Retry-After"], "7")

    def test_http500(self):
        r = self.fault({"kind": "http500"})
        self.assertEqual(r.status, 500)
        self.assertEqual(r.json()["error"]["type"], "api_error")
        r = self.fault({"kind": "http500"}, profile="dataforseo")
        self.assertEqual((r.status, r.json()["status_code"]), (500, 50000))
        self.assertRecovered()

    def test_http502_html(self):
        r = self.fault({"kind": "http502_html"})
        self.assertEqual(r.status, 502)
        self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
        self.assertIn(b"502 Bad Gateway", r.data)
        self.assertRecovered()

    def test_http401(self):
        r = self.fault({"kind": "http401"}, profile="dataforseo")
        self.assertEqual((r.status, r.json()["status_code"]), (401, 40100))
        self.assertRecovered()

    def test_task_codes(self):
        for code in (40202, 40209, 50000, 40200, 40501):
            with self.subTest(code=code):
                r = self.fault({"kind": "task", "code": code})
                self.assertEqual(r.status, 200)
                doc = r.json()
                self.assertEqual((doc["status_code"], doc["tasks_error"],
                                  doc["cost"]), (20000, 1, 0))
                t = doc["tasks"][0]
                self.assertEqual(t["status_code"], code)
                self.assertEqual(t["status_message"], STATUS_MESSAGES[code])
                self.assertIsNone(t["result"])
        r = self.fault({"kind": "task", "code": 40203, "message": "custom"})
        self.assertEqual(r.json()["tasks"][0]["status_message"], "custom")

    def test_top_codes(self):
        r = self.fault({"kind": "top", "code": 50000})
        doc = r.json()
        self.assertEqual((r.status, doc["status_code"], doc["tasks"]),
                         (200, 50000, None))
        self.assertEqual(doc["status_message"], "Internal Error.")
        r = self.fault({"kind": "top", "code": 40200, "http_status": 402})
        self.assertEqual((r.status, r.json()["status_code"]), (402, 40200))

    def test_truncated(self):
        full = self.post(task_for(limit=10))
        r = self.fault({"kind": "truncated"})
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.headers["Content-Length"]), len(r.wire))
        self.assertAlmostEqual(len(r.data), len(full.data) // 2, delta=40)
        self.assertTrue(r.data.startswith(b'{"version": "0.1.20240801"'))
        with self.assertRaises(ValueError):
            json.loads(r.data)
        self.assertRecovered()
        # Cut before gzip: a sound gzip stream of broken JSON.
        self.srv.set_scenario("hubspot.com", faults=[{"kind": "truncated"}])
        r = self.post(task_for(limit=10), gzip_ok=True)
        with self.assertRaises(ValueError):
            json.loads(r.data)
        # "wire": cut after gzip, so decompression itself fails.
        headers, wire = self.gzip_wire({"kind": "truncated", "wire": True})
        self.assertEqual(len(wire), int(headers["Content-Length"]))
        with self.assertRaises(EOFError):
            gzip.decompress(wire)

    def gzip_wire(self, fault):
        """A page asked for with gzip under `fault`: (headers, the bytes as
        sent), undecoded, for faults that break the encoding itself."""
        self.srv.set_scenario("hubspot.com", faults=[fault])
        c = self.conn()
        try:
            c.request("POST", fakeapi.PATHS["aisa"],
                      json.dumps(task_for(limit=10)),
                      {"Authorization": "Bearer " + TOKEN,
                       "Accept-Encoding": "gzip"})
            resp = c.getresponse()
            return resp.headers, resp.read()
        finally:
            c.close()

    def test_encoding(self):
        def raw(as_):
            headers, wire = self.gzip_wire({"kind": "encoding", "as": as_})
            return headers.get("Content-Encoding"), wire

        def items(b):
            return json.loads(b)["tasks"][0]["result"][0]["items"]

        full = items(self.post(task_for(limit=10)).data)
        coding, wire = raw("identity")  # asked for gzip, got it plain
        self.assertEqual((coding, items(wire)), (None, full))
        self.assertEqual(self.srv.requests[-1]["served"], [0, 10])
        coding, wire = raw("garbled")
        self.assertEqual(coding, "gzip")
        with self.assertRaises((OSError, EOFError, zlib.error)):
            gzip.decompress(wire)
        self.assertIsNone(self.srv.requests[-1]["served"])
        coding, wire = raw("trailing")
        self.assertTrue(wire.endswith(b"trailing bytes"))
        self.assertEqual(items(gzip.decompress(wire[:-len(b"trailing bytes")])), full)
        coding, wire = raw("br")
        self.assertEqual((coding, items(gzip.decompress(wire))), ("br", full))
        with self.assertRaises(ValueError):
            self.srv.inject({"kind": "encoding"})

    def test_slow(self):
        t0 = time.monotonic()
        r = self.fault({"kind": "slow", "seconds": 0.3})
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual(r.json()["tasks"][0]["result"][0]["items_count"], 10)
        e = self.srv.requests[-1]
        self.assertEqual((e["fault"], e["status"], e["served"]),
                         ("slow", 200, [0, 10]))

    def test_drop(self):
        self.srv.set_scenario("hubspot.com", faults=[{"kind": "drop"}])
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionResetError)):
            self.post(task_for(limit=10))
        e = self.srv.requests[-1]
        self.assertEqual((e["fault"], e["status"], e["served"]),
                         ("drop", None, None))
        self.assertRecovered()

    def test_result_null(self):
        r = self.fault({"kind": "result_null"})
        doc = r.json()
        self.assertEqual((r.status, doc["status_code"], doc["tasks_error"]),
                         (200, 20000, 0))
        t = doc["tasks"][0]
        self.assertEqual((t["status_code"], t["result"], t["result_count"]),
                         (20000, None, 0))
        self.assertRecovered()

    def test_times_and_offset_targeting(self):
        self.srv.set_scenario("hubspot.com", total_count=300, faults=[
            {"kind": "http500", "offset": 100, "times": 2},
            {"kind": "http502_html", "offset": None}])
        statuses = [self.post(task_for(offset=o, limit=100)).status
                    for o in (100, 0, 100, 100, 0, 200)]
        # offset 100 takes the two 500s; the untargeted 502 goes to the
        # first request it matches (offset 0); after that, all is served.
        self.assertEqual(statuses, [500, 502, 500, 200, 200, 200])
        self.assertEqual([e["fault"] for e in self.srv.requests],
                         ["http500", "http502_html", "http500",
                          None, None, None])

    def test_unlimited_times(self):
        self.srv.set_scenario("hubspot.com",
                              faults=[{"kind": "http500", "times": -1}])
        self.assertEqual([self.post(task_for()).status for _ in range(3)],
                         [500, 500, 500])

    def test_global_queue(self):
        self.srv.set_scenario("hubspot.com", total_count=300,
                              faults=[{"kind": "http500"}])
        self.srv.inject({"kind": "http429"},
                        {"kind": "task", "code": 40209, "offset": 200})
        r = [self.post(task_for(offset=o)).status for o in (0, 0, 0)]
        self.assertEqual(r, [429, 500, 200])  # global before scenario
        # Global faults hit any target set; this one only at offset 200.
        other = task_for(first="other.com")
        self.assertEqual(self.post(other).status, 200)
        doc = self.post(dict(other, offset=200)).json()
        self.assertEqual(doc["tasks"][0]["status_code"], 40209)
        # "first_target" aims a global fault at one set.
        self.srv.inject({"kind": "http500", "first_target": "b.com"})
        self.assertEqual(self.post(task_for(first="a.com")).status, 200)
        self.assertEqual(self.post(task_for(first="b.com")).status, 500)
        # Invalid and unauthorised requests never consume faults.
        self.srv.inject({"kind": "http502_html"})
        self.assertEqual(self.post(task_for(), auth="Bearer x").status, 401)
        self.assertEqual(self.post(task_for(limit=0)).status, 200)
        self.assertEqual(self.post(task_for()).status, 502)


# --------------------------------------------------------------------------
# Request log and control endpoints
# --------------------------------------------------------------------------

class TestLogAndControl(ServerCase):

    def control(self, method, path, doc=None):
        body = json.dumps(doc).encode() if doc is not None else b""
        r = self.request(method, path, body,
                         {"Content-Type": "application/json"})
        return r.status, r.json()

    def test_request_log(self):
        self.srv.set_scenario("hubspot.com", total_count=120)
        t = task_for(limit=100, offset=100, tag="x")
        raw = json.dumps([t])
        r = self.post(raw, profile="dataforseo", gzip_ok=True)
        self.post(task_for(), auth="Bearer nope")
        self.request("POST", "/elsewhere", b"hello")
        self.control("GET", "/_fake/requests")  # never logged itself
        log = self.srv.requests
        self.assertEqual(len(log), 3)
        e = log[0]
        self.assertEqual(set(e), {"time", "path", "profile", "headers",
                                  "body", "task", "first_target", "offset",
                                  "limit", "status", "fault", "served",
                                  "items", "charged"})
        self.assertEqual((e["path"], e["profile"], e["body"], e["task"]),
                         (fakeapi.PATHS["dataforseo"], "dataforseo", raw, t))
        self.assertEqual((e["first_target"], e["offset"], e["limit"]),
                         ("hubspot.com", 100, 100))
        self.assertEqual((e["status"], e["fault"], e["served"]),
                         (200, None, [100, 20]))
        self.assertEqual(e["items"],
                         r.json()["tasks"][0]["result"][0]["items"])
        self.assertEqual(e["headers"]["authorization"],
                         basic(LOGIN, PASSWORD))
        self.assertEqual(e["headers"]["Accept-Encoding"], "gzip")
        self.assertLessEqual(e["time"], log[1]["time"])
        self.assertEqual((log[1]["profile"], log[1]["status"],
                          log[1]["task"], log[1]["served"]),
                         ("aisa", 401, None, None))
        self.assertEqual((log[2]["profile"], log[2]["status"],
                          log[2]["body"]), (None, 404, "hello"))
        # Effective defaults are logged when offset/limit are omitted.
        self.post(task_for(first="d.com"))
        self.assertEqual((self.srv.requests[-1]["offset"],
                          self.srv.requests[-1]["limit"]), (0, 100))

    def test_control_endpoints(self):
        st, doc = self.control("POST", "/_fake/scenario", {
            "first_target": "hubspot.com", "total_count": 150,
            "short_pages": {"100": 5},
            "faults": [{"kind": "http500", "offset": 0}]})
        self.assertEqual((st, doc), (200, {"ok": True}))
        st, _ = self.control("POST", "/_fake/inject",
                             {"kind": "http429", "retry_after": 3})
        self.assertEqual(st, 200)
        st, _ = self.control("POST", "/_fake/inject",
                             [{"kind": "task", "code": 50000}])
        self.assertEqual(st, 200)
        self.assertEqual(self.post(task_for()).headers["Retry-After"], "3")
        doc = self.post(task_for()).json()
        self.assertEqual(doc["tasks"][0]["status_code"], 50000)
        self.assertEqual(self.post(task_for()).status, 500)
        _, res = self.page(task_for(offset=100))
        self.assertEqual((res["total_count"], res["items_count"]), (150, 5))

        st, log = self.control("GET", "/_fake/requests")
        self.assertEqual(st, 200)
        self.assertEqual([e["fault"] for e in log],
                         ["http429", "task", "http500", None])
        self.assertTrue(all("items" not in e for e in log))
        self.assertEqual(log[3]["served"], [100, 5])
        st, log = self.control("GET", "/_fake/requests?items=1")
        self.assertEqual(len(log[3]["items"]), 5)
        self.assertEqual(log[3]["items"], self.srv.requests[3]["items"])

        for bad in ({"total_count": 3}, {"first_target": "a", "nope": 1},
                    {"first_target": "a", "faults": [{"kind": "zap"}]}):
            st, doc = self.control("POST", "/_fake/scenario", bad)
            self.assertEqual((st, doc["ok"]), (400, False))
        st, doc = self.control("POST", "/_fake/inject", {"kind": "zap"})
        self.assertEqual(st, 400)

        st, _ = self.control("POST", "/_fake/reset")
        self.assertEqual(st, 200)
        self.assertEqual(self.srv.requests, [])
        _, res = self.page(task_for())
        self.assertEqual(res["total_count"], Dataset(task_for()).total_count)


# --------------------------------------------------------------------------
# Script mode
# --------------------------------------------------------------------------

class TestScriptMode(unittest.TestCase):

    def test_script(self):
        with tempfile.TemporaryDirectory() as tmp:
            port_file = os.path.join(tmp, "port")
            scen = os.path.join(tmp, "scen.json")
            with open(scen, "w") as fh:
                json.dump({"scenarios": [{"first_target": "hubspot.com",
                                          "total_count": 42}],
                           "faults": [{"kind": "http500", "offset": 40}]}, fh)
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "fakeapi.py"),
                 "--port", "0", "--port-file", port_file,
                 "--token", "sk-aisa-script", "--scenario-file", scen],
                stdout=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()
                m = re.fullmatch(r"fakeapi listening on "
                                 r"http://127\.0\.0\.1:(\d+)\n", line)
                self.assertIsNotNone(m, line)
                port = int(m.group(1))
                with open(port_file) as fh:
                    self.assertEqual(int(fh.read()), port)

                def call(path, auth, task):
                    c = http.client.HTTPConnection("127.0.0.1", port,
                                                   timeout=10)
                    c.request("POST", path, json.dumps(task),
                              {"Authorization": auth})
                    r = c.getresponse()
                    out = (r.status, json.loads(r.read()))
                    c.close()
                    return out

                st, doc = call(fakeapi.PATHS["aisa"], "Bearer sk-aisa-script",
                               task_for(offset=40))
                self.assertEqual(st, 500)
                st, doc = call(fakeapi.PATHS["aisa"], "Bearer sk-aisa-script",
                               task_for(offset=40))
                res = doc["tasks"][0]["result"][0]
                self.assertEqual((res["total_count"], res["items_count"]),
                                 (42, 2))
                # Default Basic credentials: demo / demo-password.
                st, doc = call(fakeapi.PATHS["dataforseo"],
                               basic("demo", "demo-password"), task_for())
                self.assertEqual(st, 200)
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/_fake/requests")
                log = json.loads(c.getresponse().read())
                c.close()
                self.assertEqual([e["status"] for e in log], [500, 200, 200])
            finally:
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=10)
                proc.stdout.close()
            self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()

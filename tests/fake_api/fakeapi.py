#!/usr/bin/env python3
"""Fake DataForSEO Backlinks "Domain Intersection" API for intersect-etl tests.

The ETL never talks to the real API in tests; it talks to this server, which
imitates both ways of reaching the endpoint:

  aisa        POST /apis/v1/dataforseo/backlinks/domain_intersection/live
              Authorization: Bearer <token>
  dataforseo  POST /v3/backlinks/domain_intersection/live
              Authorization: Basic base64(login:password)

Everything a test compares is a pure function of the request: a data set is
identified by the dataset-defining task fields (targets, exclude_targets,
filters, backlinks_filters, backlinks_status_type, intersection_mode,
rank_scale, internal_list_limit), and item i of that data set is a pure
function of (data set, i), whatever offset/limit was used to fetch it. Only
task ids, request ids and "time" strings vary between runs.

Tests shape the traffic with scenarios (keyed by the first target, i.e.
targets["1"]) and fault queues; see FakeServer.set_scenario() and
FakeServer.inject(). Every API request is recorded in FakeServer.requests so
that integration tests can assert exactly what the ETL was served.

Standard library only (Python 3.11). Use it in-process:

    from fakeapi import FakeServer, Dataset
    with FakeServer(token="sk-aisa-test") as srv:
        srv.set_scenario("hubspot.com", total_count=2345)
        ... run the ETL against srv.base_url("aisa") ...

or out of process (serves until SIGTERM/SIGINT, then exits 0):

    python3 fakeapi.py --port 0 --port-file /tmp/port [--scenario-file s.json]

and drive it through the control endpoints POST /_fake/scenario,
POST /_fake/inject, POST /_fake/reset and GET /_fake/requests[?items=1].
"""

import argparse
import base64
import binascii
import datetime
import gzip
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Dataset", "cost_for", "STATUS_MESSAGES", "PATHS",
           "FAULT_KINDS", "main"]

# --------------------------------------------------------------------------
# Constants of the imitated API
# --------------------------------------------------------------------------

LISTEN_HOST = "127.0.0.1"  # never anything else: tests must not be reachable

#: endpoint path per profile; base_url() is the path minus the API suffix.
PATHS = {
    "aisa": "/apis/v1/dataforseo/backlinks/domain_intersection/live",
    "dataforseo": "/v3/backlinks/domain_intersection/live",
}
_BASES = {"aisa": "/apis/v1", "dataforseo": "/v3"}
#: the provider's free account endpoint (GET; "not charged", appendix/user_data),
#: which `intersect-etl check` asks to see that the credentials are accepted
USER_DATA_PATHS = {"aisa": "/apis/v1/dataforseo/appendix/user_data",
                   "dataforseo": "/v3/appendix/user_data"}

VERSION_CURRENT = "0.1.20240801"
VERSION_LEGACY = "0.1.20221214"  # responses archived before the 2023 change

TASK_PATH = ["v3", "backlinks", "domain_intersection", "live"]

# Messages as the provider words them. The public errors table was only
# partly readable when this was written: 20000, 40000, 40100, 40203 and the
# HTTP-level texts are verbatim; the others are faithful paraphrases. The ETL
# must key on codes, never on these strings.
STATUS_MESSAGES = {
    20000: "Ok.",
    40000: "You can set only one task at a time.",
    # The brief for this fake asks for 40006 on multi-task bodies; the public
    # table lists the same text under 40000. Both are served on request.
    40006: "You can set only one task at a time.",
    40100: "You are not authorized to access this resource.",
    40102: "No Search Results.",
    40103: "Task is not ready yet. Please try again later.",
    40200: "Payment Required.",
    40202: "Rate limit per minute is exceeded. Please contact our support "
           "team to increase your limit.",
    40203: "The cost limit has been exceeded. You can modify your cost limit "
           "in the user panel https://app.dataforseo.com/api-dashboard .",
    40204: "Access denied. Visit Plans and Subscriptions to activate your "
           "subscription and get access to this API: "
           "https://app.dataforseo.com/backlinks-subscription",
    40209: "Too many requests. You can send up to 30 simultaneous requests.",
    40210: "Insufficient funds. Please top up your balance: "
           "https://app.dataforseo.com/payment",
    40400: "Not Found.",
    40401: "Task Not Found.",
    40501: "Invalid Field: 'targets'.",
    40503: "POST Data Is Invalid.",
    40506: "Invalid Field value.",
    40601: "Task Handed.",
    40602: "Task in Queue.",
    50000: "Internal Error.",
    50301: "Service Temporarily Unavailable.",
    50303: "Database Unavailable.",
    50401: "Timeout exceeded.",
}

#: every fault kind the fake knows; anything else is rejected when queued so
#: that a typo in a test fails loudly instead of silently serving data.
FAULT_KINDS = ("http429", "http500", "http502_html", "http401", "task", "top",
               "truncated", "slow", "drop", "result_null", "raw", "edit",
               "encoding", "other_request")

# Dataset-defining task fields and the defaults the real API applies, so that
# sending a default explicitly yields the same data set as omitting it.
_DATASET_DEFAULTS = {
    "targets": None,
    "exclude_targets": [],
    "filters": [],
    "backlinks_filters": [],
    "backlinks_status_type": "live",
    "intersection_mode": "all",
    "rank_scale": "one_thousand",
    "internal_list_limit": 10,
}

DEFAULT_TOTAL_MOD = 3001  # default total_count = seed % 3001 (0..3000)
DRIFT_LOST = 0.15     # share of candidate domains a night leaves out
DRIFT_CHANGED = 0.2   # share of kept (domain, target) objects a night changes


def cost_for(rows):
    """Cost in USD the provider reports for a successful page of `rows` rows.

    About $0.02 per request plus $0.00003 per row (10 rows = 0.0203).
    """
    return round(0.02 + 0.00003 * rows, 6)


def _reported_cost(doc):
    """What an answer says its task was charged: tasks[0].cost (else the
    envelope's) when the task completed (20000) and the cost is a number in
    [0, 1e8), as a client counts it; 0 otherwise. Errored tasks are free."""
    try:
        task = doc["tasks"][0]
        if doc["status_code"] != 20000 or task["status_code"] != 20000:
            return 0.0
        cost = task.get("cost", doc.get("cost"))
    except (KeyError, IndexError, TypeError):
        return 0.0
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost < 1e8:
        return 0.0
    return float(cost)


# --------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------

# Field order of one per-target object (current shape); legacy objects are the
# same minus _LEGACY_MISSING, so both shapes share every common value.
TARGET_KEYS = (
    "type", "target", "rank", "backlinks", "first_seen", "lost_date",
    "backlinks_spam_score", "broken_backlinks", "broken_pages",
    "referring_domains", "referring_domains_nofollow",
    "referring_main_domains", "referring_main_domains_nofollow",
    "referring_ips", "referring_subnets", "referring_pages",
    "referring_pages_nofollow", "referring_links_tld", "referring_links_types",
    "referring_links_attributes", "referring_links_platform_types",
    "referring_links_semantic_locations", "referring_links_countries",
)
_LEGACY_MISSING = frozenset((
    "referring_links_countries", "backlinks_spam_score",
    "referring_domains_nofollow", "referring_main_domains_nofollow",
    "referring_pages_nofollow",
))
_INT_FIELDS = (
    "rank", "backlinks", "backlinks_spam_score", "broken_backlinks",
    "broken_pages", "referring_domains", "referring_domains_nofollow",
    "referring_main_domains", "referring_main_domains_nofollow",
    "referring_ips", "referring_subnets", "referring_pages",
    "referring_pages_nofollow",
)

# Pools for the breakdown maps. Several are larger than the default
# internal_list_limit (10) so that the cap is actually exercised; "" is a key
# the real API really returns (links outside any semantic element, unknown
# country).
_MAP_POOLS = {
    "referring_links_tld": (
        "com", "net", "org", "de", "ru", "jp", "co.uk", "io", "info", "fr",
        "it", "nl", "pl", "es", "br", "in", "biz", "рф"),
    "referring_links_types": (
        "anchor", "image", "link", "meta", "canonical", "alternate",
        "redirect"),
    "referring_links_attributes": (
        "nofollow", "noopener", "noreferrer", "external", "ugc", "sponsored",
        "alternate", "help"),
    "referring_links_platform_types": (
        "cms", "blogs", "ecommerce", "message-boards", "wikis", "news",
        "organization", "unknown"),
    "referring_links_semantic_locations": (
        "article", "", "section", "main", "header", "footer", "aside", "nav",
        "summary", "figure", "details", "table", "blockquote"),
    "referring_links_countries": (
        "US", "DE", "GB", "FR", "RU", "JP", "CN", "IN", "BR", "NL", "", "IT",
        "ES", "PL", "CA", "AU", "UA", "SE", "CH", "KR", "TR", "MX"),
}

# Name parts for referring domains. Words are letters only so that the index
# embedded after them can always be read back, which is what makes names
# unique within a data set (also after IDN->punycode normalisation).
_ASCII_WORDS = ("blog", "news", "shop", "forum", "wiki", "info", "media",
                "dev", "static", "portal", "seo", "links", "web", "my")
_ASCII_BASES = ("example.com", "example.net", "example.org", "sample.io",
                "test-site.co.uk", "demo.de", "foo.info", "com", "net", "org")
_IDN_NAMES = (  # (label stem, tld): German, Cyrillic, Japanese
    ("bücher", "de"), ("münchen", "de"), ("köln", "de"), ("grüne-wiese", "at"),
    ("пример", "рф"), ("новости", "рф"), ("магазин", "ru"),
    ("例え", "jp"), ("ニュース", "jp"), ("ブログ", "jp"),
)

_EPOCH_FIRST = 1388534400   # 2014-01-01: earliest first_seen
_EPOCH_LAST = 1722470399    # 2024-07-31 23:59:59: the data set's "now"
_TIME_FMT = "%Y-%m-%d %H:%M:%S +00:00"


def _fmt_time(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime(_TIME_FMT)


def _first_target(targets):
    """Scenario key of a targets object: targets["1"], else its first value."""
    if not isinstance(targets, dict) or not targets:
        return None
    if "1" in targets:
        return targets["1"]
    return next(iter(targets.values()))


def _target_order(targets):
    # Numeric keys in numeric order ("10" after "9"); anything else after,
    # in sent order. Items then depend on the data set, not on key order.
    keys = list(targets)
    return sorted(keys, key=lambda k: (0, int(k), "") if k.isdigit()
                  else (1, keys.index(k), k))


def _randint(rng, lo, hi):
    """Uniform int in [lo, hi]; random.randint is 4x slower and items are
    generated by the hundred thousand. 53 random bits cover hi <= 10**10."""
    return lo + int(rng.random() * (hi - lo + 1))


def _sample(rng, pool, k):
    """k distinct elements of pool in random order (partial Fisher-Yates,
    for the same reason as _randint)."""
    lst = list(pool)
    for j in range(k):
        r = j + int(rng.random() * (len(lst) - j))
        lst[j], lst[r] = lst[r], lst[j]
    return lst[:k]


class Dataset:
    """The full, virtual result of one domain-intersection query.

    Dataset(task) looks only at the dataset-defining fields of `task` (a task
    dict as sent to the API); offset, limit, order_by and tag do not matter.
    Items are generated on demand and are a pure function of (seed, i), so
    Dataset(task).item(i) is exactly what the server serves at position i.

    shape: "current" (items wrapped in "domain_intersection" with "summary")
           or "legacy" (pre-2023: {"1": {...}, "2": {...}}, fewer fields).
    total_count: overrides the default seed % 3001.
    night: None (the answer never changes) or an integer >= 0: the answer of
           that night, drifting from the night-less one as a real index does
           (see _drift_*): of the total_count candidate referring domains, a
           night drops about DRIFT_LOST of them (each night its own choice,
           so domains are lost and come back as new), and changes a few
           metrics of about DRIFT_CHANGED of the remaining (domain, target)
           objects; everything else is the night-less value. total_count is
           then the number of domains the night kept, positions count them
           in order, and the same night always gives the same answer, so a
           test that knows the night knows every row (Dataset(task,
           night=n).page(0, n_total)).
    """

    def __init__(self, task, shape="current", total_count=None, night=None):
        if shape not in ("current", "legacy"):
            raise ValueError("shape must be 'current' or 'legacy'")
        targets = task.get("targets") if isinstance(task, dict) else None
        if not isinstance(targets, dict) or not targets:
            raise ValueError("task has no targets object")
        self.shape = shape
        self.targets = targets
        self.target_keys = _target_order(targets)
        self.first_target = _first_target(targets)
        spec = {}
        for name, default in _DATASET_DEFAULTS.items():
            value = task.get(name)
            spec[name] = default if value is None else value
        self.spec = spec
        #: canonical JSON the seed is hashed from (sorted keys, no spaces)
        self.canonical = json.dumps(spec, sort_keys=True,
                                    separators=(",", ":"), ensure_ascii=True)
        self.key = hashlib.sha256(self.canonical.encode("ascii")).hexdigest()
        self.seed = int(self.key, 16)
        self.total_count = (self.seed % DEFAULT_TOTAL_MOD
                            if total_count is None else int(total_count))
        self.partial = spec["intersection_mode"] == "partial"
        self.rank_max = 100 if spec["rank_scale"] == "one_hundred" else 1000
        lim = spec["internal_list_limit"]
        self.list_limit = lim if isinstance(lim, int) and lim > 0 else 10
        if night is not None and (isinstance(night, bool) or not isinstance(night, int)
                                  or night < 0):
            raise ValueError("night must be a non-negative integer or None")
        self.night = night
        # position -> candidate index of the domains this night kept
        self._kept = None
        if night is not None:
            self._kept = [i for i in range(self.total_count)
                          if self._drift_roll(i, "lost") >= DRIFT_LOST]
            self.total_count = len(self._kept)

    # -- public ------------------------------------------------------------

    def item(self, i):
        """Item at 0-based position i (a fresh dict the caller may keep)."""
        if i < 0:
            raise IndexError("item index must be >= 0")
        if self._kept is not None:
            return self._drift_item(i)
        return self._item(i)

    def _item(self, i):
        rng = self._rng(i)
        domain = self._domain(rng, i)
        keys = list(self.target_keys)
        with_summary = True
        if self.partial:
            # Deterministically drop a proper, non-empty subset of targets
            # from some items, and the summary from some others.
            if len(keys) >= 2 and rng.random() < 0.35:
                drop = _randint(rng, 1, len(keys) - 1)
                gone = set(_sample(rng, keys, drop))
                keys = [k for k in keys if k not in gone]
            with_summary = rng.random() >= 0.2
        per_target = {k: self._target_obj(rng, domain) for k in keys}
        if self.shape == "legacy":
            for obj in per_target.values():
                for name in _LEGACY_MISSING:
                    del obj[name]
            return per_target
        item = {"domain_intersection": per_target}
        if with_summary:
            item["summary"] = {"intersections_count": len(keys)}
        return item

    def items(self, start, count):
        """Items start .. start+count-1 (not clipped to total_count)."""
        return [self.item(start + k) for k in range(count)]

    def page(self, offset, limit):
        """What an unscripted server returns for (offset, limit)."""
        end = min(offset + limit, self.total_count)
        return self.items(offset, max(0, end - offset))

    def referring_domain(self, i):
        """The referring domain ("target" field) of item i."""
        if self._kept is not None:
            i = self._kept[i] if i < len(self._kept) else i
        return self._domain(self._rng(i), i)

    # -- drift from night to night -----------------------------------------

    def _drift_roll(self, i, what, key=""):
        """A uniform [0, 1) number fixed by (data set, night, i, what, key)."""
        digest = hashlib.sha256(
            f"{self.key}:night{self.night}:{i}:{what}:{key}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2.0 ** 64

    def _drift_item(self, pos):
        # Positions past the night's kept domains continue the candidates
        # (never served by page(), which clips to total_count).
        kept = self._kept
        i = kept[pos] if pos < len(kept) else \
            (kept[-1] + 1 if kept else 0) + pos - len(kept)
        item = self._item(i)
        per_target = item["domain_intersection"] if "domain_intersection" in item else item
        for k, obj in per_target.items():
            if self._drift_roll(i, "changed", k) < DRIFT_CHANGED:
                self._drift_obj(obj, i, k)
        return item

    def _drift_obj(self, obj, i, k):
        # A night's change: rank, backlinks and the country breakdown move
        # (as an index refresh moves them); the other fields stay put.
        digest = hashlib.sha256(
            f"{self.key}:night{self.night}:{i}:{k}:values".encode("utf-8")).digest()
        rng = random.Random(int.from_bytes(digest[:16], "big"))
        obj["rank"] = _randint(rng, 0, self.rank_max)
        if obj.get("backlinks") is not None:
            obj["backlinks"] = obj["backlinks"] + _randint(rng, 1, 50)
        if "referring_links_countries" in obj:
            pool = _MAP_POOLS["referring_links_countries"]
            keys = _sample(rng, pool, _randint(rng, 1, 3))
            obj["referring_links_countries"] = dict(
                zip(keys, sorted((_randint(rng, 1, 500) for _ in keys), reverse=True)))

    # -- generation --------------------------------------------------------

    def _rng(self, i):
        # One independent, reproducible stream per item: hashing (key, i)
        # means item i never depends on which other items were generated.
        digest = hashlib.sha256(f"{self.key}:{i}".encode("ascii")).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))

    @staticmethod
    def _domain(rng, i):
        """A referring domain unique in the data set: i is always embedded."""
        roll = rng.random()
        if roll < 0.62:
            word = rng.choice(_ASCII_WORDS)
            sep = rng.choice(("", "", "-"))
            return f"{word}{sep}{i}.{rng.choice(_ASCII_BASES)}"
        stem, tld = rng.choice(_IDN_NAMES)
        name = f"{stem}-{i}.{tld}"
        if roll < 0.90:
            return name                          # IDN in Unicode
        return name.encode("idna").decode("ascii")  # same, in punycode

    def _target_obj(self, rng, domain):
        # One referring domain's links to one target. Values are loosely
        # consistent (pages <= backlinks, nofollow <= total) so that an ETL
        # check on such relations would not trip on noise.
        tier = rng.random()
        if tier < 0.60:
            backlinks = _randint(rng, 1, 50)
        elif tier < 0.90:
            backlinks = _randint(rng, 51, 5000)
        elif tier < 0.99:
            backlinks = _randint(rng, 5001, 5_000_000)
        else:
            backlinks = _randint(rng, 5_000_001, 10 ** 10)  # > 2^32 too
        first = _randint(rng, _EPOCH_FIRST, _EPOCH_LAST - 86400)
        lost = (_fmt_time(_randint(rng, first, _EPOCH_LAST))
                if rng.random() < 0.12 else None)
        ref_domains = 1 if rng.random() < 0.7 else _randint(rng, 1, 40)
        ref_main = _randint(rng, 1, ref_domains)
        ref_pages = _randint(rng, 1, min(backlinks, 2_000_000_000))
        obj = {
            "type": "backlinks_domain_intersection",
            "target": domain,
            "rank": _randint(rng, 0, self.rank_max),
            "backlinks": backlinks,
            "first_seen": _fmt_time(first),
            "lost_date": lost,
            "backlinks_spam_score": _randint(rng, 0, 100),
            "broken_backlinks": 0 if rng.random() < 0.7
            else _randint(rng, 0, min(backlinks, 500)),
            "broken_pages": 0 if rng.random() < 0.8
            else _randint(rng, 0, 50),
            "referring_domains": ref_domains,
            "referring_domains_nofollow": _randint(rng, 0, ref_domains),
            "referring_main_domains": ref_main,
            "referring_main_domains_nofollow": _randint(rng, 0, ref_main),
            "referring_ips": _randint(rng, 1, ref_domains),
            "referring_subnets": _randint(rng, 1, ref_domains),
            "referring_pages": ref_pages,
            "referring_pages_nofollow": _randint(rng, 0, ref_pages),
        }
        for name in TARGET_KEYS[17:]:
            obj[name] = self._breakdown(rng, name, backlinks)
        for name in _INT_FIELDS:  # the real API leaves metrics null at times
            if rng.random() < 0.015:
                obj[name] = None
        return obj

    def _breakdown(self, rng, name, backlinks):
        # Mostly a few keys, now and then more than internal_list_limit
        # before the cap; counts ordered high to low as the API sorts them.
        roll = rng.random()
        if roll < 0.08:
            return None
        if roll < 0.10:
            return {}
        pool = _MAP_POOLS[name]
        roll = rng.random()
        if roll < 0.6:
            size = _randint(rng, 1, 3)
        elif roll < 0.9:
            size = _randint(rng, 4, 8)
        else:
            size = _randint(rng, 9, 15)
        keys = _sample(rng, pool, min(size, len(pool)))[:self.list_limit]
        top = max(1, min(backlinks, 5000))
        counts = sorted((_randint(rng, 1, top) for _ in keys), reverse=True)
        return dict(zip(keys, counts))


# --------------------------------------------------------------------------
# Scenarios and faults
# --------------------------------------------------------------------------

_SCENARIO_FIELDS = ("total_count", "shape", "latency_ms", "short_pages",
                    "duplicate_at", "faults", "ensure_ascii", "night")


def _normalize_fault(fault):
    """Validated copy of a fault object; raises ValueError on a bad one."""
    if not isinstance(fault, dict):
        raise ValueError("a fault must be a JSON object")
    f = dict(fault)
    kind = f.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}")
    offset = f.get("offset")
    if offset is not None and (isinstance(offset, bool)
                               or not isinstance(offset, int)):
        raise ValueError("fault offset must be an integer or null")
    times = f.get("times", 1)
    if times is None or isinstance(times, bool) or not isinstance(times, int) \
            or times == 0:
        raise ValueError("fault times must be a non-zero integer "
                         "(negative = unlimited)")
    f["offset"], f["times"] = offset, times
    if kind in ("task", "top") and not isinstance(f.get("code"), int):
        raise ValueError(f"fault kind {kind!r} needs an integer 'code'")
    if kind == "raw" and not isinstance(f.get("body"), (str, bytes)):
        raise ValueError("raw fault needs a 'body' (str or bytes)")
    if kind == "edit" and not callable(f.get("fn")):
        raise ValueError("edit fault needs a callable 'fn' (in-process only)")
    if kind == "encoding" and not isinstance(f.get("as"), str):
        raise ValueError("encoding fault needs 'as' (a string)")
    if kind == "other_request" and not isinstance(f.get("as"), dict):
        raise ValueError("other_request fault needs 'as' (task fields to change)")
    if kind == "slow" and not isinstance(f.get("seconds", 1), (int, float)):
        raise ValueError("slow fault 'seconds' must be a number")
    return f


class _Scenario:
    """Per-first-target behaviour; see FakeServer.set_scenario()."""

    def __init__(self, first_target, total_count=None, short_pages=None,
                 faults=None, shape="current", duplicate_at=None,
                 latency_ms=0, ensure_ascii=False, night=None):
        if shape not in ("current", "legacy"):
            raise ValueError("shape must be 'current' or 'legacy'")
        if night is not None and (isinstance(night, bool) or not isinstance(night, int)
                                  or night < 0):
            raise ValueError("night must be a non-negative integer or null")
        self.night = night
        if total_count is not None and (isinstance(total_count, bool) or
                                        not isinstance(total_count, int) or
                                        total_count < 0):
            raise ValueError("total_count must be a non-negative integer")
        self.first_target = first_target
        self.total_count = total_count
        self.shape = shape
        self.latency_ms = latency_ms or 0
        self.ensure_ascii = bool(ensure_ascii)
        # JSON object keys are strings; offsets are compared as integers.
        self.short_pages = {int(k): int(v)
                            for k, v in (short_pages or {}).items()}
        self.duplicate_at = {int(o) for o in (duplicate_at or [])}
        self.faults = [_normalize_fault(f) for f in (faults or [])]


def _take_fault(queue, offset, first_target):
    """Consume and return the first fault in `queue` matching the request.

    Faults are scanned in order; an offset-targeted fault does not block
    later ones meant for other pages. Caller holds the server lock.
    """
    for idx, f in enumerate(queue):
        if f["offset"] is not None and f["offset"] != offset:
            continue
        if "first_target" in f and f["first_target"] != first_target:
            continue
        if f["times"] > 0:
            f["times"] -= 1
            if f["times"] == 0:
                del queue[idx]
        return dict(f)
    return None


# --------------------------------------------------------------------------
# Response construction
# --------------------------------------------------------------------------

class _Reply:
    """An HTTP answer to send, built before anything reaches the socket."""

    def __init__(self, status, body=b"", content_type="application/json",
                 headers=None, drop=False, wire_cut=False, gz=None,
                 encoding=None):
        self.status = status
        self.body = body                    # bytes, before gzip
        self.gz = gz                        # or else these, gzipped (cache)
        self.content_type = content_type
        self.headers = list(headers or [])  # extra (name, value) pairs
        self.drop = drop                    # close without any response
        self.wire_cut = wire_cut            # cut after compression instead
        self.encoding = encoding            # an "encoding" fault's "as"


def _json_bytes(obj, ensure_ascii=False):
    return json.dumps(obj, ensure_ascii=ensure_ascii).encode("utf-8")


def _task_id():
    # Provider ids look like "08221821-1535-0216-0000-f0b6b5a5d7b0"
    # (MMDDhhmm prefix); the tail is random, so keep ids out of comparisons.
    stamp = time.strftime("%m%d%H%M", time.gmtime())
    return f"{stamp}-1535-0406-0000-{secrets.token_hex(6)}"


def _secs(started):
    return f"{time.monotonic() - started:.4f} sec."


def _envelope(version, started, status_code, message, cost, tasks):
    errors = sum(1 for t in tasks or [] if t["status_code"] != 20000)
    return {
        "version": version, "status_code": status_code,
        "status_message": message, "time": _secs(started), "cost": cost,
        "tasks_count": len(tasks or []), "tasks_error": errors,
        "tasks": tasks,
    }


def _top_error(status_code, started, message=None, version=VERSION_CURRENT):
    return _envelope(version, started, status_code,
                     message or STATUS_MESSAGES.get(status_code,
                                                    "Unknown Error."), 0, None)


def _task_obj(task, status_code, message, cost, result, started):
    data = dict(task)
    data.update({"api": "backlinks", "function": "domain_intersection"})
    return {
        "id": _task_id(), "status_code": status_code,
        "status_message": message, "time": _secs(started), "cost": cost,
        "result_count": len(result) if result else 0, "path": TASK_PATH,
        "data": data, "result": result,
    }


def _failed_task(task, code, started, message=None):
    msg = message or STATUS_MESSAGES.get(code, "Unknown Error.")
    t = _task_obj(task, code, msg, 0, None, started)
    return _envelope(VERSION_CURRENT, started, 20000, "Ok.", 0, [t])


def _gateway_error(err_type, code, message):
    return {"error": {"type": err_type, "code": code, "message": message,
                      "request_id": "req_" + secrets.token_hex(12)}}


def _validate(task):
    """Name of the first invalid field of a task, or None if it is valid."""
    def bad_int(v, lo, hi):
        return isinstance(v, bool) or not isinstance(v, int) or \
            not lo <= v <= hi

    targets = task.get("targets")
    if not isinstance(targets, dict) or not 1 <= len(targets) <= 20 or \
            not all(isinstance(v, str) and v for v in targets.values()):
        return "targets"
    if "limit" in task and bad_int(task["limit"], 1, 1000):
        return "limit"
    if "offset" in task and bad_int(task["offset"], 0, 2 ** 62):
        return "offset"
    if "internal_list_limit" in task and \
            bad_int(task["internal_list_limit"], 1, 1000):
        return "internal_list_limit"
    ex = task.get("exclude_targets")
    if ex is not None and (not isinstance(ex, list) or len(ex) > 10):
        return "exclude_targets"
    enums = {"intersection_mode": ("all", "partial"),
             "rank_scale": ("one_hundred", "one_thousand"),
             "backlinks_status_type": ("all", "live", "lost")}
    for name, allowed in enums.items():
        if name in task and task[name] not in allowed:
            return name
    tag = task.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > 255):
        return "tag"
    return None


class _CIDict(dict):
    """A dict of request headers with case-insensitive lookup.

    Keys keep the case the client sent (so the JSON log shows them as-is),
    but entry["headers"]["authorization"] works as well as "Authorization".
    """

    def _real(self, key):
        if isinstance(key, str):
            low = key.lower()
            for k in dict.keys(self):
                if k.lower() == low:
                    return k
        return key

    def __getitem__(self, key):
        return dict.__getitem__(self, self._real(key))

    def __contains__(self, key):
        return dict.__contains__(self, self._real(key))

    def get(self, key, default=None):
        return dict.get(self, self._real(key), default)


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length on every answer, so clients keep the
    # connection alive exactly as they would against the real service.
    protocol_version = "HTTP/1.1"
    server_version = "fakeapi/1.0"
    sys_version = ""

    def do_POST(self):
        self._dispatch()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self):
        fake = self.server.fake
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        if url.path.startswith("/_fake/"):
            reply = fake._control(self.command, url, body)
        else:
            reply = fake._api(self, url.path, body)
        self._send(reply)

    def _send(self, reply):
        if reply.drop:
            # No status line, no bytes: the client sees the peer close.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = reply.body
        gz = (body or reply.gz) and reply.encoding != "identity" and \
            _accepts_gzip(self.headers.get("Accept-Encoding", ""))
        if gz:
            body = reply.gz if reply.gz is not None else \
                gzip.compress(body, mtime=0)
        elif reply.gz is not None:
            body = gzip.decompress(reply.gz)
        if reply.wire_cut:
            body = body[:len(body) // 2]
        coding = "gzip"
        if gz and reply.encoding == "garbled":
            mid = len(body) // 2  # inside the deflate data: CRC or data error
            body = body[:mid] + bytes(b ^ 0x55 for b in body[mid:mid + 64]) + \
                body[mid + 64:]
        elif gz and reply.encoding == "trailing":
            body = body + b"trailing bytes"
        elif gz and reply.encoding not in (None, "identity"):
            coding = reply.encoding  # e.g. "br": a coding never asked for
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Vary", "Accept-Encoding")
            if gz:
                self.send_header("Content-Encoding", coding)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            # The client gave up (e.g. timed out on a "slow" fault).
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.fake.verbose:
            sys.stderr.write("fakeapi: %s - %s\n" % (self.address_string(),
                                                     format % args))


def _accepts_gzip(header):
    for part in header.split(","):
        fields = [p.strip() for p in part.split(";")]
        if fields[0].lower() in ("gzip", "x-gzip", "*"):
            q = [p for p in fields[1:] if p.replace(" ", "").startswith("q=")]
            try:
                if q and float(q[0].split("=", 1)[1]) == 0:
                    continue
            except ValueError:
                continue
            return True
    return False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the ETL may open many connections at once

    def __init__(self, fake, port):
        self.fake = fake
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__((LISTEN_HOST, port), _Handler)

    # Track open connections so stop() can cut idle keep-alive sockets;
    # otherwise a stopped server would go on answering on them.
    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all(self):
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # a client hanging up is not news
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# The server object
# --------------------------------------------------------------------------

class FakeServer:
    """A fake Domain Intersection API on 127.0.0.1 (ephemeral port by default).

    token: the aisa profile's Bearer key; login/password: the dataforseo
    profile's Basic credentials; latency_ms: sleep before every API answer.
    verbose: write an access log to stderr.
    cache_pages: for benchmarks, where generating a page (about 0.3 s per
    1000 items of two targets, gzip included) would cost more than the
    client under test: the gzipped bytes of each good page are kept and
    served again to the same request (same task, any key order). Served
    data is unchanged, but a repeated page repeats its first task id and
    "time", and the request log keeps "served" without "items". Setting a
    scenario forgets that first target's pages; reset() forgets all. Faults
    are never cached.
    """

    def __init__(self, token="sk-aisa-demo", login="demo",
                 password="demo-password", latency_ms=0, port=0,
                 verbose=False, cache_pages=False):
        self.token = token
        self.login = login
        self.password = password
        self.latency_ms = latency_ms
        self.verbose = verbose
        self.cache_pages = cache_pages
        self._page_cache = {}  # first target -> {canonical task JSON: (start, count, gzip)}
        self._want_port = port
        self._lock = threading.Lock()
        self._log = []
        self._scenarios = {}
        self._global_faults = []
        self._httpd = None
        self._thread = None
        self.user_data = True  # False: answer the free endpoint 404, as a gateway without it

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Bind 127.0.0.1 and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self, self._want_port)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fakeapi", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and close every open connection (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_all()
        httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        """The bound TCP port (only after start())."""
        return self._httpd.server_address[1]

    @property
    def server_address(self):
        """(host, port) actually bound; host is always 127.0.0.1."""
        return self._httpd.server_address

    def base_url(self, profile):
        """What the ETL is configured with: ".../apis/v1" or ".../v3"."""
        return f"http://{LISTEN_HOST}:{self.port}{_BASES[profile]}"

    def url(self, profile):
        """Full endpoint URL of a profile."""
        return f"http://{LISTEN_HOST}:{self.port}{PATHS[profile]}"

    # -- test controls -----------------------------------------------------

    def set_scenario(self, first_target, total_count=None, short_pages=None,
                     faults=None, shape="current", duplicate_at=None,
                     latency_ms=0, ensure_ascii=False, night=None):
        """Script every request whose targets["1"] is `first_target`.

        Replaces any earlier scenario for that target.
          total_count   overrides the data set's default (seed % 3001)
          shape         "current" | "legacy" response shape
          latency_ms    sleep before answering each request of this set
          short_pages   {offset: n}: the page at offset holds only n items
          duplicate_at  [offset, ...]: that page starts with item offset-1
          faults        [fault, ...]: consumed as matching requests arrive
          ensure_ascii  escape non-ASCII in JSON bodies as \\uXXXX
          night         serve that night's drifting answer (see Dataset):
                        total_count is then the candidates the nights draw
                        from; None: the same answer every time
        """
        scen = _Scenario(first_target, total_count=total_count,
                         short_pages=short_pages, faults=faults, shape=shape,
                         duplicate_at=duplicate_at, latency_ms=latency_ms,
                         ensure_ascii=ensure_ascii, night=night)
        with self._lock:
            self._scenarios[first_target] = scen
            self._page_cache.pop(first_target, None)

    def inject(self, *faults):
        """Queue faults for the next matching requests of any target set.

        Global faults are tried before scenario faults. A fault is a dict
        {"kind": K, "offset": int|None, "times": n, ...params}: offset null
        matches any page, times defaults to 1 (negative = unlimited), and
        "first_target" (optional) aims it at one set. Kinds and params:
          http429       retry_after (1), code ("rate_limited"), message
          http500       JSON body: gateway error (aisa) or 50000 (dataforseo)
          http502_html  nginx-style HTML page
          http401       the profile's authentication error
          task          code (required), message: failed task, HTTP 200
          top           code (required), message, http_status (200)
          truncated     wire (false): cut the body after gzip, not before
          slow          seconds (1): sleep, then serve the page normally
          drop          close the connection without a response
          result_null   status 20000 throughout but "result": null
          raw           body (str|bytes), status (200), content_type: any bytes
          edit          fn (callable, in-process only): fn(doc) edits the real
                        page's JSON before it is sent
          encoding      as (required): the real page, but "identity" sends it
                        uncompressed although gzip was asked for, "garbled"
                        corrupts 64 gzip bytes mid-body, "trailing" adds bytes
                        after the gzip stream, any other value is sent as the
                        Content-Encoding of the gzip bytes (e.g. "br")
          other_request as (required, dict): the real answer, echo included,
                        to the task with these fields changed ({"offset": 0},
                        {"targets": {...}}): a gateway or cache mixing answers
        """
        norm = [_normalize_fault(f) for f in faults]
        with self._lock:
            self._global_faults.extend(norm)

    def reset(self):
        """Forget the request log, all scenarios and all queued faults."""
        with self._lock:
            self._log.clear()
            self._scenarios.clear()
            self._global_faults.clear()
            self._page_cache.clear()

    @property
    def requests(self):
        """Snapshot of the request log (API requests only, arrival order).

        Each entry: time (epoch float), path, profile ("aisa", "dataforseo"
        or None), headers (dict, case-insensitive lookup), body (str), task
        (dict or None), first_target, offset/limit (effective values or
        None), status (HTTP status sent; None when dropped), fault (kind or
        None), served ([start, count] when a good page was sent, else None),
        items (exactly the items in that page, else None; always None
        with cache_pages), charged (the USD the answer reports its completed
        task cost, as a client would count it, good page or fault; 0 for an
        error or an unreadable body). Control-endpoint
        requests are not logged. The entry is complete before the client
        receives the first byte of the answer.
        """
        with self._lock:
            return list(self._log)

    # -- request handling --------------------------------------------------

    def _api(self, handler, path, raw):
        started = time.monotonic()
        profile = next((p for p, pp in PATHS.items() if pp == path), None)
        entry = {
            "time": time.time(), "path": path, "profile": profile,
            "headers": _CIDict(handler.headers.items()),
            "body": raw.decode("utf-8", errors="replace"), "task": None,
            "first_target": None, "offset": None, "limit": None,
            "status": None, "fault": None, "served": None, "items": None,
            "charged": 0.0,
        }
        with self._lock:
            self._log.append(entry)
        reply = self._api_reply(handler, profile, raw, entry, started)
        entry["status"] = None if reply.drop else reply.status
        return reply

    def _user_data_reply(self, handler, path, started):
        """appendix/user_data: free of charge; the account, with no secret in it."""
        profile = next(p for p, pp in USER_DATA_PATHS.items() if pp == path)
        if handler.command != "GET" or not self.user_data:
            return _Reply(404, _json_bytes(_top_error(40400, started)))
        if not self._authorized(profile, handler.headers.get("Authorization")):
            return self._unauthorized(profile, started)
        result = [{"login": self.login, "timezone": "UTC",
                   "money": {"total": 100.0, "balance": 42.5}}]
        task = {"id": _task_id(), "status_code": 20000, "status_message": "Ok.",
                "time": _secs(started), "cost": 0, "result_count": 1,
                "path": ["v3", "appendix", "user_data"],
                "data": {"api": "appendix", "function": "user_data"}, "result": result}
        return _Reply(200, _json_bytes(_envelope(VERSION_CURRENT, started, 20000, "Ok.", 0, [task])))

    def _api_reply(self, handler, profile, raw, entry, started):
        if entry["path"] in USER_DATA_PATHS.values():
            return self._user_data_reply(handler, entry["path"], started)
        if profile is None or handler.command != "POST":
            return _Reply(404, _json_bytes(_top_error(40400, started)))
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        if not self._authorized(profile, handler.headers.get("Authorization")):
            return self._unauthorized(profile, started)

        # Body: one task object, or an array holding exactly one.
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        if isinstance(doc, list) and len(doc) >= 2:
            return _Reply(200, _json_bytes(_top_error(40006, started)))
        if isinstance(doc, list) and len(doc) == 1:
            doc = doc[0]
        if not isinstance(doc, dict):
            return _Reply(200, _json_bytes(_top_error(40503, started)))
        task = doc
        entry["task"] = task
        offset, limit = task.get("offset", 0), task.get("limit", 100)
        entry["offset"], entry["limit"] = offset, limit
        first = _first_target(task.get("targets"))
        entry["first_target"] = first

        with self._lock:
            scen = self._scenarios.get(first) if isinstance(first, str) \
                else None
        if scen is not None and scen.latency_ms:
            time.sleep(scen.latency_ms / 1000.0)

        bad = _validate(task)
        if bad is not None:
            return _Reply(200, _json_bytes(_failed_task(
                task, 40501, started, f"Invalid Field: '{bad}'.")))

        # Faults come after auth and validation on purpose: they imitate
        # trouble on the provider's side, so only a request the real API
        # would have served can consume one, and a test's fault budget is
        # not eaten by a client bug that already failed on its own.
        with self._lock:
            fault = _take_fault(self._global_faults, offset, first)
            if fault is None and scen is not None:
                fault = _take_fault(scen.faults, offset, first)
        if fault is not None:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "slow":
                time.sleep(float(fault.get("seconds", 1)))
            elif fault["kind"] == "encoding":
                # the real page; only its HTTP encoding goes wrong (or, for
                # "identity", merely differs from what was asked)
                reply = self._page_reply(task, scen, entry, started)
                reply.encoding = fault["as"]
                if fault["as"] != "identity":
                    entry["served"] = entry["items"] = None
                    entry["charged"] = 0.0  # unreadable: no client can know it
                return reply
            else:
                return self._fault_reply(fault, profile, task, started, scen, entry)
        return self._page_reply(task, scen, entry, started)

    def _authorized(self, profile, header):
        if not header:
            return False
        scheme, _, cred = header.strip().partition(" ")
        cred = cred.strip()
        if profile == "aisa":
            return scheme.lower() == "bearer" and \
                hmac.compare_digest(cred.encode(), self.token.encode())
        if scheme.lower() != "basic":
            return False
        try:
            pair = base64.b64decode(cred, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        want = f"{self.login}:{self.password}"
        return hmac.compare_digest(pair.encode(), want.encode())

    @staticmethod
    def _unauthorized(profile, started):
        if profile == "aisa":
            body = _gateway_error("authentication_error", "invalid_api_key",
                                  "Invalid or missing API key. Pass it as "
                                  "'Authorization: Bearer <key>'.")
            return _Reply(401, _json_bytes(body),
                          headers=[("WWW-Authenticate", "Bearer")])
        return _Reply(401, _json_bytes(_top_error(40100, started)),
                      headers=[("WWW-Authenticate",
                                'Basic realm="DataForSEO API"')])

    def _fault_reply(self, fault, profile, task, started, scen, entry):
        kind = fault["kind"]
        if kind == "http429":
            retry = fault.get("retry_after", 1)
            body = _gateway_error(
                "rate_limit_error", fault.get("code", "rate_limited"),
                fault.get("message", "Rate limit exceeded. Please retry "
                                     "after the time in Retry-After."))
            return _Reply(429, _json_bytes(body), headers=[
                ("Retry-After", str(retry)),
                ("X-RateLimit-Limit", "60"), ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(int(time.time()) + int(retry)))])
        if kind == "http500":
            if profile == "aisa":
                body = _gateway_error("api_error", "internal_error",
                                      "The upstream service failed.")
            else:
                body = _top_error(50000, started)
            return _Reply(500, _json_bytes(body))
        if kind == "http502_html":
            html = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
                    "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
                    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
            return _Reply(502, html.encode("ascii"),
                          content_type="text/html")
        if kind == "http401":
            return self._unauthorized(profile, started)
        if kind == "task":
            return _Reply(200, _json_bytes(_failed_task(
                task, fault["code"], started, fault.get("message"))))
        if kind == "top":
            return _Reply(fault.get("http_status", 200), _json_bytes(
                _top_error(fault["code"], started, fault.get("message"))))
        if kind == "drop":
            return _Reply(0, drop=True)
        if kind == "result_null":
            t = _task_obj(task, 20000, "Ok.", cost_for(0), None, started)
            return _Reply(200, _json_bytes(_envelope(
                VERSION_CURRENT, started, 20000, "Ok.", cost_for(0), [t])))
        if kind == "truncated":
            # A well-formed page cut in half: HTTP framing stays valid
            # (Content-Length matches), only the JSON is broken. With
            # "wire": true the cut is made after gzip instead.
            full = self._page_body(task, scen, started)[0]
            if fault.get("wire"):
                return _Reply(200, full, wire_cut=True)
            return _Reply(200, full[:len(full) // 2])
        if kind == "raw":
            # Any bytes at all, as the body of a response with this status.
            body = fault["body"]
            if isinstance(body, str):
                body = body.encode("utf-8")
            return _Reply(fault.get("status", 200), body,
                          content_type=fault.get("content_type", "application/json"))
        if kind == "edit":
            # The real page as a dict, changed by the test's own function
            # (e.g. a field of the wrong type, more items than asked for).
            doc = json.loads(self._page_body(task, scen, started)[0])
            fault["fn"](doc)
            entry["charged"] = _reported_cost(doc)
            return _Reply(200, _json_bytes(doc))
        if kind == "other_request":
            # What a confused gateway or cache does: the real answer, echo
            # included, to another request (the task with "as" applied, e.g.
            # {"offset": 0} or {"targets": {"1": "x.com"}}).
            other = dict(task, **fault["as"])
            body, _, items = self._page_body(other, scen, started)
            entry["charged"] = cost_for(len(items))
            return _Reply(200, body)
        raise AssertionError(kind)  # _normalize_fault admits nothing else

    def _page_body(self, task, scen, started):
        """(JSON bytes, start, items) of the page this request asks for."""
        shape = scen.shape if scen else "current"
        ds = Dataset(task, shape=shape,
                     total_count=scen.total_count if scen else None,
                     night=scen.night if scen else None)
        offset, limit = task.get("offset", 0), task.get("limit", 100)
        start = offset
        count = max(0, min(offset + limit, ds.total_count) - offset)
        if scen is not None and count:
            if offset in scen.duplicate_at and offset > 0:
                start = offset - 1  # repeat the previous page's last item
            if offset in scen.short_pages:
                count = min(count, max(0, scen.short_pages[offset]))
        items = ds.items(start, count)
        result = [{"targets": task["targets"], "total_count": ds.total_count,
                   "items_count": len(items), "items": items}]
        cost = cost_for(len(items))
        t = _task_obj(task, 20000, "Ok.", cost, result, started)
        version = VERSION_LEGACY if shape == "legacy" else VERSION_CURRENT
        doc = _envelope(version, started, 20000, "Ok.", cost, [t])
        body = _json_bytes(doc, ensure_ascii=bool(scen and scen.ensure_ascii))
        return body, start, items

    def _page_reply(self, task, scen, entry, started):
        if self.cache_pages:
            return self._cached_page_reply(task, scen, entry, started)
        body, start, items = self._page_body(task, scen, started)
        entry["served"], entry["items"] = [start, len(items)], items
        entry["charged"] = cost_for(len(items))
        return _Reply(200, body)

    def _cached_page_reply(self, task, scen, entry, started):
        # The scenario is part of what a page is; a first target's pages
        # are forgotten whenever its scenario changes, so within it the task
        # alone keys them. Two first requests of one page may both generate
        # it: harmless.
        first = entry["first_target"]
        key = json.dumps(task, sort_keys=True, separators=(",", ":"))
        with self._lock:
            hit = self._page_cache.get(first, {}).get(key)
        if hit is None:
            body, start, items = self._page_body(task, scen, started)
            hit = (start, len(items), gzip.compress(body, mtime=0))
            with self._lock:
                self._page_cache.setdefault(first, {})[key] = hit
        entry["served"] = [hit[0], hit[1]]
        entry["charged"] = cost_for(hit[1])
        return _Reply(200, gz=hit[2])

    # -- control endpoints -------------------------------------------------

    def _control(self, method, url, raw):
        def ok(obj=None):
            return _Reply(200, _json_bytes(obj if obj is not None
                                           else {"ok": True}))

        try:
            doc = json.loads(raw.decode("utf-8")) if raw.strip() else None
            if method == "POST" and url.path == "/_fake/scenario":
                if not isinstance(doc, dict) or "first_target" not in doc:
                    raise ValueError("need a JSON object with first_target")
                unknown = set(doc) - set(_SCENARIO_FIELDS) - {"first_target"}
                if unknown:
                    raise ValueError(
                        f"unknown scenario keys {sorted(unknown)}")
                args = dict(doc)
                self.set_scenario(args.pop("first_target"), **args)
                return ok()
            if method == "POST" and url.path == "/_fake/inject":
                self.inject(*(doc if isinstance(doc, list) else [doc]))
                return ok()
            if method == "POST" and url.path == "/_fake/reset":
                self.reset()
                return ok()
            if method == "GET" and url.path == "/_fake/requests":
                with_items = parse_qs(url.query).get("items") == ["1"]
                log = [e if with_items else
                       {k: v for k, v in e.items() if k != "items"}
                       for e in self.requests]
                return ok(log)
        except (ValueError, TypeError) as exc:
            return _Reply(400, _json_bytes({"ok": False, "error": str(exc)}))
        return _Reply(404, _json_bytes(_top_error(40400, time.monotonic())))

    def load_scenario_file(self, path):
        """Apply a JSON file: a list of scenario objects (each with
        "first_target"), or {"scenarios": [...], "faults": [...]} where
        "faults" go to the global queue."""
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if isinstance(doc, dict) and "first_target" in doc:
            doc = [doc]
        scenarios = doc if isinstance(doc, list) else doc.get("scenarios", [])
        for s in scenarios:
            args = dict(s)
            self.set_scenario(args.pop("first_target"), **args)
        if isinstance(doc, dict) and doc.get("faults"):
            self.inject(*doc["faults"])


# --------------------------------------------------------------------------
# Script mode
# --------------------------------------------------------------------------

def main(argv=None):
    """Run the fake until SIGTERM/SIGINT; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    ap.add_argument("--port-file", help="write the bound port here")
    ap.add_argument("--token", default="sk-aisa-demo")
    ap.add_argument("--login", default="demo")
    ap.add_argument("--password", default="demo-password")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--scenario-file", help="JSON scenarios to preload")
    ap.add_argument("--cache-pages", action="store_true",
                    help="serve each good page's bytes again to the same "
                         "request (benchmarks; see FakeServer)")
    ap.add_argument("--verbose", action="store_true",
                    help="access log on stderr")
    args = ap.parse_args(argv)

    srv = FakeServer(token=args.token, login=args.login,
                     password=args.password, latency_ms=args.latency_ms,
                     port=args.port, verbose=args.verbose,
                     cache_pages=args.cache_pages)
    if args.scenario_file:
        srv.load_scenario_file(args.scenario_file)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv.start()
    if args.port_file:
        # Write then rename, so a poller never reads a half-written number.
        tmp = f"{args.port_file}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{srv.port}\n")
        os.replace(tmp, args.port_file)
    print(f"fakeapi listening on http://{LISTEN_HOST}:{srv.port}", flush=True)
    while not stop.wait(0.2):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

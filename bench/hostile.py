#!/usr/bin/env python3
"""hostile.py - time and memory of hostile response bodies, one line each.

    python3 bench/hostile.py [--build DIR] [--keep DIR]

Not a test (nothing here is asserted; ctest does not run it): a benchmark
line per body that issue 12 found amplifying, with its targets, each under
1 s and within 4x the body's size in RSS beyond the idle process:

  keys-40k      an object of 40000 keys differing only in their middle bytes
                (the repeated-key check was quadratic: 6.9 s)
  zeros-64MiB   `[0,0,...]`, 64 MiB gzipped to ~65 KB (833 MB RSS in the
                parser: a 24-byte node per 2 body bytes)
  backslash-32MiB  1 item, 20 target keys, an item-level unknown field of
                16M backslashes (a 1.34 GB COPY batch: the field in every row)
  bomb-under-cap   a page after 64 MiB less 64 KiB of spaces, gzipped
  bomb-over-cap    256 MiB of zeros, gzipped: refused at the 64 MiB cap
                (gzip's buffer doubled before the cap was checked: 134 MB)

With --overlap (issue 16), the other measurement: the whole binary against
a loopback server that answers every request with a maximal page, so that
such answers are in flight, queued and loading all at once (see
overlap_main() below and bench/README.md "Hostile answers at once").

Each body goes through bench/hostile_page.c, a small driver that runs the
library's own steps in run.c's order (gunzip_all to the fetcher's cap,
response_parse, transform_page into a batch; see its comment), built here
with cc against BUILD/libintersect.a. Running the whole binary against the
fake API would add the fake's cost of serving 64 MiB (and a database) to
the measurement without exercising anything more of these steps. One
process per body, so that each peak RSS (the kernel's high-water mark,
VmHWM) is that body's; "beyond idle" is the peak less the process's RSS before it read
the body, so the body's own bytes, as received and decoded, count against
it. The ratio is to the decoded body's size (for the bomb over the cap, to
the bytes decoded before refusing it). Standard library only.
"""

import argparse
import gzip
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
MIB = 1 << 20
CAP = 64 * MIB  # FETCH_MAX_RESPONSE_BYTES


def envelope(items_json):
    """A usable page whose items array is items_json (bytes)."""
    return (b'{"status_code":20000,"status_message":"Ok.","tasks_error":0,"tasks":[{'
            b'"id":"hostile","status_code":20000,"status_message":"Ok.","cost":0.02,'
            b'"result":[{"total_count":1,"items":' + items_json + b'}]}]}')


def body_keys():
    keys = b",".join(b'"%s%08d%s":%d' % (b"a" * 24, i, b"b" * 32, i) for i in range(40000))
    item = b'[{"domain_intersection":{"1":{"target":"r.example","x":{' + keys + b'}}}}]'
    return envelope(item)


def body_zeros():
    n = CAP // 2 - 1  # "[" + "0," * (n-1) + "0]" = 2n bytes: 64 MiB less 2
    return b"[" + b"0," * (n - 1) + b"0]"


def body_backslashes():
    per_key = b",".join(b'"%d":{"target":"r.example"}' % k for k in range(1, 21))
    head = b'[{"domain_intersection":{' + per_key + b'},"bulk":"'
    tail = b'"}]'
    page = envelope(head + b"@@" + tail)
    fill = 32 * MIB - (len(page) - 2)
    return page.replace(b"@@", b"\\\\" * (fill // 2))


def body_bomb_under():
    page = envelope(b'[{"domain_intersection":{"1":{"target":"r.example"}}}]')
    return b" " * (CAP - 64 * 1024) + page


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def gz_zeros(n):
    """n zero bytes gzipped, in chunks (never n bytes in memory)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(MIB)
    out = [c.compress(chunk) for _ in range(n // MIB)]
    out.append(c.flush())
    return b"".join(out)


BODIES = [
    ("keys-40k", lambda: gz(body_keys())),
    ("zeros-64MiB", lambda: gz(body_zeros(), 9)),
    ("backslash-32MiB", lambda: gz(body_backslashes(), 9)),
    ("bomb-under-cap", lambda: gz(body_bomb_under(), 9)),
    ("bomb-over-cap", lambda: gz_zeros(256 * MIB)),
]


def build_driver(build, out):
    lib = os.path.join(build, "libintersect.a")
    if not os.path.exists(lib):
        sys.exit(f"hostile.py: {lib} not found: build first (BUILD_DIR={build} scripts/build)")
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
           "-Werror", "-I", os.path.join(SOURCE, "include"),
           os.path.join(HERE, "hostile_page.c"), lib, "-lz", "-lpthread", "-lm", "-o", out]
    subprocess.run(cmd, check=True)


# --overlap -----------------------------------------------------------------

TARGETS = 20  # keys of the maximal page's one item; the set has as many targets


def body_max(size):
    """A usable page of `size` bytes: one item of 20 targets and an item
    field of backslashes filling the rest (the largest COPY text per body
    byte: every decoded backslash is written as two)."""
    per_key = b",".join(b'"%d":{"target":"r.example"}' % k for k in range(1, TARGETS + 1))
    page = envelope(b'[{"domain_intersection":{' + per_key + b'},"bulk":"@@"}]')
    fill = size - (len(page) - 2)
    return page.replace(b"@@", b"\\\\" * (fill // 2))


class MaxServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def max_handler(plain, gzipped, kinds, delay):
    """Answers every POST with the plain or gzip body, by `kinds` in turn,
    after `delay` s (so that a round of requests is in flight together)."""
    count = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                kind = kinds[count[0] % len(kinds)]
                count[0] += 1
            body = gzipped if kind == "gzip" else plain
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if kind == "gzip":
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            view = memoryview(body)
            try:
                for i in range(0, len(body), MIB):
                    self.wfile.write(view[i:i + MIB])
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def overlap_job(port, db_url, sets, concurrency, connections):
    lines = ["version: 1", "job: hostile", "api:", "  provider: aisa",
             f"  base_url: http://127.0.0.1:{port}/apis/v1", "  token: bench",
             f"  concurrency: {concurrency}", "  requests_per_minute: 10000", "  max_attempts: 1",
             f'database: {{url: "{db_url}", connections: {connections}}}',
             "defaults: {limit: 100, max_rows: 100}", "target_sets:"]
    targets = ", ".join(f"t{k}.example" for k in range(1, TARGETS + 1))
    lines += [f"  - {{name: s{i:03d}, targets: [{targets}]}}" for i in range(sets)]
    return "\n".join(lines) + "\n"


def overlap_run(binary, work, db_url, port, sets, concurrency, connections, date):
    """One run; returns (exit status, peak RSS in KiB, wall s, last stderr line)."""
    job = os.path.join(work, "hostile.yaml")
    with open(job, "w") as f:
        f.write(overlap_job(port, db_url, sets, concurrency, connections))
    err_path = os.path.join(work, "stderr.txt")
    rss_path = os.path.join(work, "rss.txt")
    started = time.monotonic()
    # GNU time's child is forked from it, not from this process: a child
    # forked from Python would count Python's pages (the bodies) in its
    # ru_maxrss until it execs.
    with open(err_path, "w") as err:
        p = subprocess.run(["/usr/bin/time", "-o", rss_path, "-f", "%M", binary, "-v", "run", job,
                            "--migrate", "--snapshot-date", date],
                           stdout=subprocess.DEVNULL, stderr=err)
    wall = time.monotonic() - started
    with open(rss_path) as f:
        rss = int(f.read().split()[-1])
    with open(err_path) as f:
        lines = [ln.rstrip() for ln in f if ln.strip() and not ln.startswith("Command exited")]
    budget = next((ln for ln in lines if "memory budget:" in ln), "")
    return p.returncode, rss, wall, lines[-1] if lines else "", budget


def overlap_main(args):
    """Peak RSS of `intersect-etl run` with maximal answers overlapping: one
    page of 63 MiB per target set, every set's page asked at once, answered
    after 0.5 s each (plain, gzip, or the two in turn), archive on (the
    default), in a throwaway PostgreSQL cluster (scripts/pg-tmp)."""
    binary = os.path.join(args.build, "intersect-etl")
    if not os.path.exists(binary):
        sys.exit(f"hostile.py: {binary} not found: build first")
    plain = body_max(CAP - MIB)
    gzipped = gz(plain, 6)
    work = tempfile.mkdtemp(prefix="hostile-overlap-")
    pgdir = os.path.join(work, "pg")
    subprocess.run([os.path.join(SOURCE, "scripts", "pg-tmp"), "start", pgdir], check=True,
                   capture_output=True)
    try:
        env = dict(ln.strip().split("=", 1) for ln in open(os.path.join(pgdir, "env")) if "=" in ln)
        print(f"body: {len(plain)} bytes plain, {len(gzipped)} gzipped; one page per set, "
              f"{TARGETS} rows, {len(plain) * 2 >> 20} MiB of COPY text each", flush=True)
        print(f"{'answers':<8} {'conc':>4} {'conns':>5} {'pages':>5} {'exit':>4} {'peak RSS MiB':>12} "
              f"{'wall s':>7}  outcome")
        day = 1
        for concurrency, connections in args.settings:
            for kinds in (["plain"], ["gzip"], ["plain", "gzip"]):
                server = MaxServer(("127.0.0.1", 0), max_handler(plain, gzipped, kinds, 0.5))
                t = threading.Thread(target=server.serve_forever, daemon=True)
                t.start()
                pages = concurrency * args.rounds
                try:
                    code, rss, wall, last, budget = overlap_run(
                        binary, work, env["DATABASE_URL"], server.server_address[1], pages,
                        concurrency, connections, "2026-01-%02d" % day)
                finally:
                    server.shutdown()
                    server.server_close()
                day += 1
                print(f"{'+'.join(kinds):<8} {concurrency:>4} {connections:>5} {pages:>5} {code:>4} "
                      f"{rss / 1024:>12.0f} {wall:>7.1f}  {last[:120]}", flush=True)
                if args.verbose and budget:
                    print("         " + budget.strip())
    finally:
        subprocess.run([os.path.join(SOURCE, "scripts", "pg-tmp"), "stop", pgdir], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def settings(text):
    c, n = text.split("/")
    return int(c), int(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"),
                    help="a build directory holding libintersect.a (default: build)")
    ap.add_argument("--keep", help="write the bodies (gzipped) into this directory")
    ap.add_argument("--overlap", action="store_true",
                    help="peak RSS of whole runs with maximal answers at once (needs PostgreSQL)")
    ap.add_argument("--settings", type=settings, nargs="+", default=[(8, 2), (30, 8)],
                    metavar="CONC/CONNS", help="--overlap: concurrency/connections (default: 8/2 30/8)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="--overlap: pages per run, as rounds of `concurrency` (default: 1)")
    ap.add_argument("--verbose", action="store_true", help="--overlap: the budget's own peak too")
    args = ap.parse_args()
    if args.overlap:
        overlap_main(args)
        return
    work = args.keep or tempfile.mkdtemp(prefix="hostile-")
    os.makedirs(work, exist_ok=True)
    driver = os.path.join(work, "hostile_page")
    build_driver(args.build, driver)

    print(f"{'body':<16} {'wire':>10} {'decoded':>10} {'time s':>7} {'RSS+ MiB':>9} "
          f"{'ratio':>6}  verdict")
    for name, make in BODIES:
        path = os.path.join(work, name + ".json.gz")
        with open(path, "wb") as f:
            f.write(make())
        out = subprocess.run([driver, path, "gzip"], check=True, capture_output=True,
                             text=True).stdout
        r = json.loads(out)
        beyond = (r["peak_kib"] - r["idle_kib"]) * 1024
        ratio = beyond / r["decoded_bytes"] if r["decoded_bytes"] else float("nan")
        verdict = (f"ok: {r['rows']} rows, {r['copy_bytes']} bytes of COPY text"
                   if r["ok"] else "refused: " + r["msg"])
        print(f"{name:<16} {r['wire_bytes']:>10} {r['decoded_bytes']:>10} {r['wall_s']:>7.3f} "
              f"{beyond / MIB:>9.1f} {ratio:>6.2f}  {verdict[:150]}", flush=True)
        if not args.keep:
            os.unlink(path)
    if not args.keep:
        os.unlink(driver)
        os.rmdir(work)


if __name__ == "__main__":
    main()

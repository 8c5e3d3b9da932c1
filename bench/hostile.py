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
import json
import os
import subprocess
import sys
import tempfile
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"),
                    help="a build directory holding libintersect.a (default: build)")
    ap.add_argument("--keep", help="write the bodies (gzipped) into this directory")
    args = ap.parse_args()
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

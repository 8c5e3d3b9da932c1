#!/usr/bin/env python3
"""fake_changed.py - the fake API with a tenth of its data changed, for bench.py.

Runs tests/fake_api/fakeapi.py's script mode (same options, e.g.
--port 0 --port-file F --cache-pages) after one change to its data: item i of
every data set has each target's `rank` raised by one when i % EVERY == 0
(`rank` null becomes 0). So with EVERY = 10 exactly a tenth of the items, and
of the table rows, differ from what the plain fake serves, and everything
else is identical.

This is what the fake's `edit` fault would do with fn(doc) changing a tenth
of the items of every page, but as a change of the data set it stays a pure
function of the request, so --cache-pages can keep the pages: an edit fault
re-parses and re-serialises every page on every request (~0.1 s per page of
1000 items), which on a 2-core machine would be charged to the ETL under
test. An edit fault also needs a callable, so it exists only in-process.

    python3 bench/fake_changed.py --every 10 -- --port 0 --port-file F --cache-pages
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "fake_api"))

import fakeapi  # noqa: E402  (path set just above)


def changed(every):
    """Dataset.item with a tenth (1/every) of the items' ranks raised."""
    plain = fakeapi.Dataset.item

    def item(self, i):
        it = plain(self, i)
        if i % every == 0:
            per_target = it.get("domain_intersection", it)  # current or legacy shape
            for obj in per_target.values():
                obj["rank"] = 0 if obj.get("rank") is None else obj["rank"] + 1
        return it
    return item


def main(argv):
    every = 10
    if len(argv) >= 2 and argv[0] == "--every":
        every = int(argv[1])
        argv = argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    if every < 1:
        sys.exit("fake_changed.py: --every must be at least 1")
    fakeapi.Dataset.item = changed(every)
    return fakeapi.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

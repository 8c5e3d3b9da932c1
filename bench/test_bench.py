"""test_bench.py - the benchmark's own arithmetic, checked where it can be
exhaustively: schedule_rounds() (the latency case's ideal schedule, which
issue 18's target is judged against) gives the fewest rounds any schedule
can take, for every small layout.

    python3 bench/test_bench.py     (ctest: unit.test_bench)
"""

import functools
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def fewest_rounds(n_sets, per_set, conc, first_alone):
    """Every schedule, searched: each round sends any f first pages and r
    pages already unlocked, f + r <= conc; a first page unlocks its set's
    other per_set - 1 pages for the next round. Pages are alike, so the
    state is two counts."""

    @functools.lru_cache(maxsize=None)
    def rounds(firsts, ready):
        if firsts == 0 and ready == 0:
            return 0
        best = None
        for f in range(min(firsts, conc) + 1):
            for r in range(min(ready, conc - f) + 1):
                if f + r == 0:
                    continue
                n = 1 + rounds(firsts - f, ready - r + f * (per_set - 1))
                best = n if best is None else min(best, n)
        return best

    return rounds(n_sets, 0) if first_alone else rounds(0, n_sets * per_set)


class ScheduleRounds(unittest.TestCase):
    def test_against_every_schedule(self):
        for n_sets in range(1, 5):
            for per_set in range(1, 6):
                for conc in range(1, 6):
                    for first_alone in (True, False):
                        with self.subTest(n_sets=n_sets, per_set=per_set, conc=conc,
                                          first_alone=first_alone):
                            self.assertEqual(bench.schedule_rounds(n_sets, per_set, conc, first_alone),
                                             fewest_rounds(n_sets, per_set, conc, first_alone))

    def test_issue_18_case(self):
        # 1 set of 80 pages, 16 in flight: the first page alone, then 5 rounds
        self.assertEqual(bench.schedule_rounds(1, 80, 16, True), 6)
        self.assertEqual(bench.schedule_rounds(1, 80, 16, False), 5)
        # the report's other layouts at 16 in flight
        self.assertEqual(bench.schedule_rounds(8, 25, 16, True), 13)
        self.assertEqual(bench.schedule_rounds(1, 200, 16, True), 14)


if __name__ == "__main__":
    unittest.main()

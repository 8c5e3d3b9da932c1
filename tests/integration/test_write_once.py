"""A night writes once (issue 18): a set's first answer goes straight into the
versions, an unchanged night writes no row, a changed night writes only what
changed, and what a run staged that way never shows before its publish and
goes with the job's next run (sql/016_direct_load.sql).

Writes are counted by row triggers on the two tables rows can go to
(domain_intersection_pending, domain_intersection_version). Each test failed
before 016: every page was COPYed into domain_intersection_pending and every
row inserted again at publish.
"""

import time
import unittest

from harness import EtlTestCase

S = "dataforseo"

JOB = """\
version: 1
job: once
api: {base_url: "${AISA_BASE_URL}", token: "${AISA_API_KEY}", concurrency: 3, max_attempts: 1}
database: {url: "${DATABASE_URL}"}
defaults: {limit: 100, max_rows: 100000}
target_sets:
  - {name: one, targets: [once-a.com, once-b.com]}
"""

COUNT_WRITES = """
CREATE TABLE public.write_count (tbl text, op text, n bigint, PRIMARY KEY (tbl, op));
CREATE FUNCTION public.count_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.write_count VALUES (TG_TABLE_NAME, TG_OP, 1)
    ON CONFLICT (tbl, op) DO UPDATE SET n = write_count.n + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON dataforseo.domain_intersection_pending
    FOR EACH ROW EXECUTE FUNCTION public.count_write();
CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON dataforseo.domain_intersection_version
    FOR EACH ROW EXECUTE FUNCTION public.count_write();
CREATE TABLE public.domain_write (via text, op text, n bigint, PRIMARY KEY (via, op));
CREATE FUNCTION public.count_domain_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.domain_write
    VALUES (CASE WHEN current_query() ILIKE 'COPY%' THEN 'copy' ELSE 'sql' END, TG_OP, 1)
    ON CONFLICT (via, op) DO UPDATE SET n = domain_write.n + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER count_domain_write AFTER INSERT OR UPDATE OR DELETE
    ON dataforseo.domain_intersection_domain_version
    FOR EACH ROW EXECUTE FUNCTION public.count_domain_write();
"""


class WriteOnceTest(EtlTestCase):

    def setUp(self):
        super().setUp()
        self.job_path = self.job(JOB)
        self.etl("migrate", self.job_path)
        self.db.psql(COUNT_WRITES)

    def night(self, date, total=250, night=None, faults=None, expect=0, verbose=False):
        self.fake.set_scenario("once-a.com", total_count=total, night=night, faults=faults or [])
        return self.etl("run", self.job_path, "--snapshot-date", date, *(["-v"] if verbose else []),
                        expect=expect)

    def writes(self):
        """{(table, op): rows} since the last call."""
        rows = self.db.rows("SELECT tbl, op, n FROM public.write_count")
        self.db.psql("TRUNCATE public.write_count")
        return {(r["tbl"], r["op"]): int(r["n"]) for r in rows}

    def track_calls(self):
        """Counts calls of plpgsql functions in this database (calls())."""
        self.db.admin("ALTER DATABASE %s SET track_functions = 'pl'" % self.db.name)

    def calls(self, function):
        """Calls of `function` so far, the run's sessions having reported them."""
        self.db.sessions_ended()
        return int(self.db.value("SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
                                 " WHERE funcname = '%s'" % function))

    def value(self, sql):
        return self.db.value(sql % {"s": S})

    def domain_writes(self):
        """{(how, op): domain rows} since the last call: how is "copy" (the
        loader's page COPY) or "sql" (a statement: the publish, a cleanup)."""
        rows = self.db.rows("SELECT via, op, n FROM public.domain_write")
        self.db.psql("TRUNCATE public.domain_write")
        return {(r["via"], r["op"]): int(r["n"]) for r in rows}

    def assert_domains_folded(self, date):
        """The date's domain rows are its rows folded, as first_domains() folds them."""
        want = self.db.rows(
            "SELECT referring_domain, count(*) AS target_keys, max(intersections_count) AS ic,"
            " min(rank) AS min_rank, sum(backlinks) AS backlinks, max(first_seen) AS seen,"
            " max(backlinks_spam_score) AS spam, sum(referring_pages) AS pages"
            " FROM %s.domain_intersection WHERE snapshot_date = '%s' GROUP BY 1 ORDER BY 1" % (S, date))
        got = self.db.rows(
            "SELECT referring_domain, target_keys, intersections_count AS ic, min_rank, backlinks,"
            " links_to_all_since AS seen, max_spam_score AS spam, referring_pages AS pages"
            " FROM %s.domain_intersection_domains WHERE snapshot_date = '%s' ORDER BY 1" % (S, date))
        self.assertTrue(want)
        self.assertEqual(got, want)

    def assert_summaries_recomputed(self, date):
        """The date's breakdown totals and measures, however the publish took
        them (the loader's page sums, sums of the staged rows, sql/021), are
        those of its rows."""
        want = self.db.rows(
            "SELECT e.dimension, e.key, sum(e.links) AS links, count(*) AS target_rows"
            " FROM %s.domain_intersection_version_entries e"
            " WHERE e.valid_from <= '%s' AND e.valid_to > '%s' GROUP BY 1, 2 ORDER BY 1, 2"
            % (S, date, date))
        got = self.db.rows(
            "SELECT dimension, key, links, target_rows FROM %s.domain_intersection_breakdown_total"
            " WHERE snapshot_date = '%s' ORDER BY 1, 2" % (S, date))
        self.assertTrue(want)
        self.assertEqual(got, want)
        cols = "rows, distinct_domains, avg_rank, total_backlinks"
        want = self.db.rows(
            "SELECT count(*) AS rows, count(DISTINCT referring_domain) AS distinct_domains,"
            " round(avg(rank), 2) AS avg_rank, sum(backlinks) AS total_backlinks"
            " FROM %s.domain_intersection WHERE snapshot_date = '%s'" % (S, date))
        got = self.db.rows("SELECT %s FROM %s.domain_intersection_daily WHERE snapshot_date = '%s'"
                           % (cols, S, date))
        self.assertEqual(got, want)
        # against the date before: domains new and lost, keys changed
        prev = self.value("SELECT max(snapshot_date) FROM %%(s)s.domain_intersection_daily"
                          " WHERE snapshot_date < '%s'" % date)
        if not prev:
            return
        doms = "SELECT DISTINCT referring_domain FROM %s.domain_intersection WHERE snapshot_date = '%s'"
        want = self.db.rows(
            "SELECT (SELECT count(*) FROM (%s EXCEPT %s) x) AS new_domains,"
            " (SELECT count(*) FROM (%s EXCEPT %s) x) AS lost_domains,"
            " (SELECT count(*) FROM %s.domain_intersection_version n JOIN %s.domain_intersection_version o"
            "  USING (target_set_id, referring_domain, target_key)"
            "  WHERE n.valid_from = '%s' AND o.valid_to = '%s') AS changed_rows"
            % (doms % (S, date), doms % (S, prev), doms % (S, prev), doms % (S, date), S, S, date, date))
        got = self.db.rows("SELECT new_domains, lost_domains, changed_rows FROM %s.domain_intersection_daily"
                           " WHERE snapshot_date = '%s'" % (S, date))
        self.assertEqual(got, want)

    def test_a_first_load_writes_each_row_once(self):
        self.night("2026-08-01")
        self.assertEqual(self.writes(), {("domain_intersection_version", "INSERT"): 500})
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection "
                                    "WHERE snapshot_date = '2026-08-01'"), "500")
        self.assertEqual(self.value("SELECT direct FROM %(s)s.etl_run_set"), "t")
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.etl_page_keys"), "0")
        self.assert_summaries_recomputed("2026-08-01")

    def test_a_first_load_writes_its_domain_rows_with_its_pages(self):
        """sql/019: the loader folds each item into its domain row and COPYs
        it with the page; the publish keeps them and folds nothing."""
        self.night("2026-08-01")
        self.assertEqual(self.domain_writes(), {("copy", "INSERT"): 250})
        self.assert_domains_folded("2026-08-01")
        # sql/021: a night's too, for the domains whose rows changed; the
        # publish only ends the versions they replace, and those of the
        # domains that left
        self.night("2026-08-02", night=1)
        w = self.domain_writes()
        changed = int(self.value("SELECT count(DISTINCT referring_domain) FROM"
                                 " %(s)s.domain_intersection_version WHERE valid_from = '2026-08-02'"))
        ended = int(self.value("SELECT count(*) FROM %(s)s.domain_intersection_domain_version"
                               " WHERE valid_to = '2026-08-02'"))
        self.assertGreater(changed, 0)
        self.assertLess(changed, 250)
        self.assertEqual(w, {("copy", "INSERT"): changed, ("sql", "UPDATE"): ended})
        self.assert_domains_folded("2026-08-02")
        self.assert_domains_folded("2026-08-01")
        self.assert_summaries_recomputed("2026-08-02")  # new and lost from the domain rows

    def test_a_domain_that_lost_a_key_and_sent_no_row_is_folded_by_the_publish(self):
        """sql/021: a night's domain rows are the loader's only when they are
        every changed domain's. One item changes (its row is sent), another
        loses a key and sends nothing: its domain has no row from the
        loader, so the publish drops theirs and folds the night in SQL."""
        self.night("2026-08-01")
        self.domain_writes()

        def edit(doc):
            items = doc["tasks"][0]["result"][0]["items"]
            items[0]["domain_intersection"].pop("2")
            items[1]["domain_intersection"]["1"]["rank"] = 7
        self.night("2026-08-02", faults=[{"kind": "edit", "fn": edit, "offset": 0}])
        w = self.domain_writes()
        self.assertEqual(w.get(("copy", "INSERT")), 1, w)   # the changed item's
        self.assertEqual(w.get(("sql", "DELETE")), 1, w)    # dropped
        self.assertEqual(w.get(("sql", "INSERT")), 2, w)    # both folded in SQL
        self.assert_domains_folded("2026-08-02")
        self.assert_domains_folded("2026-08-01")
        keys = self.db.rows("SELECT target_keys FROM %s.domain_intersection_domains"
                            " WHERE snapshot_date = '2026-08-02' ORDER BY target_keys LIMIT 1" % S)
        self.assertEqual(keys[0]["target_keys"], 1)
        self.assert_summaries_recomputed("2026-08-02")

    def test_a_night_page_whose_item_does_not_fold_sends_no_domain_rows(self):
        """A new referring domain whose first_seen has no zone cannot be
        folded in C (fold.h): its page sends no domain rows, the night's
        other pages do, and the publish, missing the new domain's row, drops
        theirs and folds the night in SQL, exactly."""
        self.night("2026-08-01")
        self.domain_writes()

        def edit(doc):
            keys = doc["tasks"][0]["result"][0]["items"][0]["domain_intersection"]
            for obj in keys.values():
                obj["target"] = "brand-new-0.example"
            keys["1"]["first_seen"] = "2020-01-02 03:04:05"

        def bump(doc):  # a changed domain on another page, which folds
            doc["tasks"][0]["result"][0]["items"][0]["domain_intersection"]["1"]["rank"] = 7
        self.night("2026-08-02", faults=[{"kind": "edit", "fn": edit, "offset": 0},
                                         {"kind": "edit", "fn": bump, "offset": 100}])
        w = self.domain_writes()
        self.assertEqual(w.get(("copy", "INSERT")), 1, w)  # the other page's
        self.assertEqual(w.get(("sql", "DELETE")), 1, w)   # dropped
        self.assertEqual(w.get(("sql", "INSERT")), 2, w)   # both changed domains, in SQL
        self.assert_domains_folded("2026-08-02")
        self.assert_domains_folded("2026-08-01")
        self.assert_summaries_recomputed("2026-08-02")

    def test_a_failed_first_load_leaves_no_domain_row_in_sight(self):
        """A first load that fails keeps its loaded pages' domain rows out of
        every view; the next run drops them and writes its own."""
        self.night("2026-08-01", faults=[{"kind": "task", "code": 40501, "offset": 200, "times": -1}],
                   expect=1)
        self.assertEqual(self.domain_writes(), {("copy", "INSERT"): 200})
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_domain_version"), "200")
        for view in ("domain_intersection_domains", "domain_intersection_latest_domains",
                     "domain_intersection_domain_series"):
            self.assertEqual(self.value("SELECT count(*) FROM %(s)s." + view), "0", view)
        self.night("2026-08-02")
        self.assertEqual(self.domain_writes(), {("copy", "INSERT"): 250, ("sql", "DELETE"): 200})
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_domain_version"), "250")
        self.assert_domains_folded("2026-08-02")

    def test_a_domain_on_two_items_of_a_page_is_folded_by_the_publish(self):
        """An answer that gives one referring domain two items of one page
        (one target key each): the versions go in (their keys differ), its
        second domain row meets the first's key, the page is redone and
        sends none, and the publish folds the night in SQL: one domain row
        of both keys."""
        def split(doc):
            items = doc["tasks"][0]["result"][0]["items"]
            second = items[0]["domain_intersection"].pop("2")
            items[1]["domain_intersection"] = {"2": second}

        self.night("2026-08-01", faults=[{"kind": "edit", "offset": 100, "fn": split}])
        w = self.domain_writes()
        self.assertEqual(w[("sql", "DELETE")], w[("copy", "INSERT")], w)  # the loader's went
        self.assertEqual(w[("copy", "INSERT")], 150, w)  # pages 0 and 200 (100 + 50 items)
        self.assert_domains_folded("2026-08-01")
        # the domain takes its first place, with both keys; the place after it is nobody's
        at = self.db.rows("SELECT position, referring_domain, target_key FROM %s.domain_intersection"
                          " WHERE position IN (100, 101) ORDER BY 1, 3" % S)
        self.assertEqual([(r["position"], r["target_key"]) for r in at], [(100, 1), (100, 2)], at)
        self.assertEqual(at[0]["referring_domain"], at[1]["referring_domain"])
        self.assertEqual(self.db.value("SELECT target_keys FROM %s.domain_intersection_domains"
                                       " WHERE referring_domain = '%s'" % (S, at[0]["referring_domain"])),
                         "2")
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_domains"), "249")

    def test_a_rerun_right_after_a_first_load_plans_with_statistics(self):
        """sql/020: a run --fresh of a date right after its first load, before
        autovacuum has analyzed the domain versions, analyzes them before
        snapshot_domains() joins them (it took 35 s at 100k rows without);
        a table analyzed since its last change is not analyzed again."""
        self.db.psql("ALTER TABLE %s.domain_intersection_domain_version SET (autovacuum_enabled = false)" % S)
        self.night("2026-08-01", total=1500)
        # (the counters outlive the tables' rows between tests: compare)
        analyzed = "SELECT coalesce(last_analyze::text, '') FROM pg_stat_user_tables" \
                   " WHERE relid = '%s.domain_intersection_domain_version'::regclass" % S
        before = self.db.value(analyzed)
        self.fake.set_scenario("once-a.com", total_count=1500, night=1)
        self.etl("run", self.job_path, "--snapshot-date", "2026-08-01", "--fresh")
        self.assertNotEqual(self.db.value(analyzed), before)
        self.assert_domains_folded("2026-08-01")
        # analyzed (that rerun replaced every domain row after its analysis),
        # nothing changed since: not again
        stale = "SELECT %(s)s.analyze_if_stale('%(s)s.domain_intersection_domain_version')"
        self.assertEqual(self.value(stale), "t")
        self.assertEqual(self.value(stale), "f")

    def test_an_unchanged_night_writes_no_row(self):
        _, _, err = self.night("2026-08-01", verbose=True)
        self.assertNotIn("current row digests", err)  # a first load has none to read
        self.writes()
        _, _, err = self.night("2026-08-02", verbose=True)
        self.assertEqual(self.writes(), {})
        # what the night's start waited for, told with -v
        self.assertRegex(err, r"one: 500 current row digests read in \d+ ms: rows equal to them "
                              r"are not sent")
        daily = self.db.rows("SELECT snapshot_date, rows, distinct_domains, new_domains, lost_domains,"
                             " changed_rows FROM %s.domain_intersection_daily ORDER BY 1" % S)
        self.assertEqual([(d["rows"], d["distinct_domains"]) for d in daily], [(500, 250), (500, 250)])
        self.assertEqual([(d["new_domains"], d["lost_domains"], d["changed_rows"]) for d in daily[1:]],
                         [(0, 0, 0)])
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_history"), "500")
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection "
                                    "WHERE snapshot_date = '2026-08-02'"), "500")

    def test_a_changed_night_writes_what_changed(self):
        self.night("2026-08-01", night=0)
        self.writes()
        self.night("2026-08-02", night=1)
        w = self.writes()
        first = self.first_load_of(night=1)
        self.db.psql("DROP TABLE once2_daily")
        started = int(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version "
                                 "WHERE valid_from = '2026-08-02'"))
        ended = int(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version "
                               "WHERE valid_to = '2026-08-02'"))
        rows = int(self.value("SELECT rows FROM %(s)s.domain_intersection_daily "
                              "WHERE snapshot_date = '2026-08-02'"))
        self.assertGreater(started, 0)
        self.assertLess(started, rows)
        # new and changed rows inserted once, the ranges they end closed once
        self.assertEqual(w.get(("domain_intersection_version", "INSERT")), started, w)
        self.assertEqual(w.get(("domain_intersection_version", "UPDATE")), ended, w)
        self.assertNotIn(("domain_intersection_pending", "INSERT"), w)
        # and the night reads as a first load of the same answer does
        self.assertEqual(self.snapshot("2026-08-02"), first)
        self.assert_summaries_recomputed("2026-08-02")

    def test_a_night_ends_versions_by_place_not_by_reading_the_history(self):
        """sql/022: the versions a night replaces, and their domains', are
        ended by their place (a tid scan), not found again by joining their
        places to every version of every night: the planner, told how many
        places there are, scanned the whole table instead (sequentially, or
        to hash it), a cost that grows with the history. The publish is
        held, then run by hand with its statements' plans logged."""
        for i, date in enumerate(("2026-08-01", "2026-08-02", "2026-08-03")):
            self.night(date, total=1500, night=i)
        self.db.psql("ANALYZE %s.domain_intersection_version; ANALYZE %s.domain_intersection_domain_version"
                     % (S, S))
        self.db.psql("CREATE FUNCTION public.held() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$BEGIN RAISE EXCEPTION 'held'; END$$;"
                     " CREATE TRIGGER held BEFORE INSERT ON %s.etl_snapshot FOR EACH ROW"
                     " WHEN (NEW.status = 'complete') EXECUTE FUNCTION public.held()" % S)
        self.night("2026-08-04", total=1500, night=3, expect=None)
        self.db.psql("DROP TRIGGER held ON %s.etl_snapshot" % S)
        run = self.value("SELECT max(run_id) FROM %(s)s.etl_run")
        plans = self.plans_of("SELECT outcome FROM %s.publish_snapshot(%s, 1, '2026-08-04', 1500)" % (S, run))
        ends = [p for q, p in plans if q.startswith("UPDATE domain_intersection_")
                and "SET valid_to = p_date" in q and "ctid" in q]
        self.assertEqual(len(ends), 2, plans)  # the versions', the domain versions'
        for plan in ends:
            self.assertIn("Tid Scan on domain_intersection_", plan)
            self.assertNotIn("Seq Scan on domain_intersection_", plan)
        ended = int(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version"
                               " WHERE valid_to = '2026-08-04'"))
        self.assertGreater(ended, 100)
        self.assertEqual(self.snapshot("2026-08-04"), self.first_load_of(night=3, total=1500))
        self.db.psql("DROP TABLE once2_daily")
        self.assert_domains_folded("2026-08-04")
        self.assert_summaries_recomputed("2026-08-04")

    def assert_night_exact(self, date, night, total):
        """The night reads as a first load of its answer, with one current
        version a key, and its summaries and domain rows are its rows'."""
        self.assertEqual(self.snapshot(date), self.first_load_of(night=night, total=total))
        self.db.psql("DROP TABLE once2_daily")
        current = self.db.rows("SELECT count(*) AS n, count(DISTINCT (referring_domain, target_key))"
                               " AS keys FROM %s.domain_intersection_version"
                               " WHERE valid_to = 'infinity'" % S)[0]
        self.assertEqual(current["n"], current["keys"])
        self.assert_summaries_recomputed(date)
        self.assert_domains_folded(date)

    def test_a_nights_pages_find_the_versions_their_rows_replace(self):
        """sql/023: each page of a night finds the current versions its sent
        rows replace and keeps their places; the publish ends those, and
        looks for none itself (find_replaced_versions())."""
        self.track_calls()
        for i, date in enumerate(("2026-08-01", "2026-08-02", "2026-08-03")):
            self.night(date, total=1500, night=i)
            self.assertEqual(self.calls("find_replaced_versions"), 0, date)
        self.assertGreater(int(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version"
                                          " WHERE valid_to = '2026-08-03'")), 100)
        self.assert_night_exact("2026-08-03", 2, 1500)

    def test_a_place_the_publish_cannot_take_is_found_again(self):
        """sql/023: the publish finds the versions itself when the pages'
        places cannot be taken: kept against the set as it was before a
        publish, failure or purge of it (their sync number moved), no longer
        holding the version (its row moved: here an update), or missing one
        (the versions kept, ended and lost do not add up). The night's
        publish is held (its control rows refused, so that nothing of the
        set changes), then run by hand. Exact every time."""
        self.track_calls()
        for i, date in enumerate(("2026-08-01", "2026-08-02")):
            self.night(date, total=1500, night=i)
        first = "(SELECT min(page_offset) FROM %s.etl_page_keys WHERE cardinality(ends) > 0)" % S
        spoil = {"stale": "UPDATE %s.etl_page_keys SET ends_seq = ends_seq - 1" % S,
                 "moved": "UPDATE %s.domain_intersection_version SET sync_seq = sync_seq WHERE ctid ="
                          " (SELECT ends[1] FROM %s.etl_page_keys WHERE page_offset = %s)" % (S, S, first),
                 "missed": "UPDATE %s.etl_page_keys SET ends = ends[2:] WHERE page_offset = %s" % (S, first)}
        for n, case in enumerate(("stale", "moved", "missed")):
            date, night = "2026-08-0%d" % (3 + n), 2 + n
            self.db.psql("CREATE FUNCTION public.held() RETURNS trigger LANGUAGE plpgsql AS"
                         " $$BEGIN RAISE EXCEPTION 'held'; END$$;"
                         " CREATE TRIGGER held BEFORE INSERT OR UPDATE ON %s.etl_snapshot"
                         " FOR EACH ROW EXECUTE FUNCTION public.held()" % S)
            self.night(date, total=1500, night=night, expect=None)
            self.db.psql("DROP TRIGGER held ON %s.etl_snapshot; DROP FUNCTION public.held()" % S)
            run = self.value("SELECT max(run_id) FROM %(s)s.etl_run")
            keys = self.db.rows("SELECT count(*) AS pages, count(ends) AS found,"
                                " sum(cardinality(ends)) AS ends"
                                " FROM %s.etl_page_keys WHERE run_id = %s" % (S, run))[0]
            self.assertEqual(keys["pages"], keys["found"], case)
            self.assertGreater(keys["ends"], 50, case)
            before = self.calls("find_replaced_versions")
            self.db.psql(spoil[case])
            self.db.psql("SELECT outcome FROM %s.publish_snapshot(%s, 1, '%s', 1500)" % (S, run, date))
            self.assertEqual(self.calls("find_replaced_versions"), before + 1, case)
            self.assert_night_exact(date, night, 1500)

    def test_a_night_takes_the_loaders_word_that_no_domain_came_twice(self):
        """sql/022 2.: on a night the loader, which sees every item, says
        whether a referring domain came twice; the publish counts the
        answer's domains (answer_distinct()) only when it does not say so.
        An item repeated on a page, its rows equal to their versions (so
        that none of them is sent), silences it: counted, the answer is not
        exact, and the night reads as a first load of the same answer."""
        self.track_calls()
        self.night("2026-08-01", night=0)
        counted = self.calls("answer_distinct")
        self.night("2026-08-02", night=0)  # unchanged
        self.night("2026-08-03", night=1)  # changed
        self.assertEqual(self.calls("answer_distinct"), counted)
        self.assert_summaries_recomputed("2026-08-03")

        def repeat(doc):
            items = doc["tasks"][0]["result"][0]["items"]
            items[1] = items[0]
        faults = [{"kind": "edit", "fn": repeat, "offset": 100}]
        self.night("2026-08-04", night=1, faults=faults)
        self.assertEqual(self.snapshot("2026-08-04"), self.first_load_of(night=1, faults=faults))
        self.db.psql("DROP TABLE once2_daily")
        # (the first load's, in a schema since dropped, is not counted)
        self.assertEqual(self.calls("answer_distinct"), counted + 1)
        self.assert_domains_folded("2026-08-04")

    def test_a_nights_breakdown_totals_are_the_loaders_page_sums(self):
        """A night's loader sums each page's breakdown maps, as a first
        load's does, and an exact answer's totals are their sum: the
        publish compares no changed row's maps with its version's
        (snapshot_breakdown(), about 5 us a changed row). An answer with a
        repeated item is not exact: the publish then takes them from the
        date before and what changed, in SQL. Exact either way."""
        self.track_calls()
        self.night("2026-08-01", night=0)
        before = self.calls("snapshot_breakdown")
        self.night("2026-08-02", night=1)  # ranks, backlinks and country maps move
        self.assertEqual(self.calls("snapshot_breakdown"), before)
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.etl_page_keys"), "0")
        self.assert_summaries_recomputed("2026-08-02")
        self.night("2026-08-03", night=2)
        self.assertEqual(self.calls("snapshot_breakdown"), before)
        self.assert_summaries_recomputed("2026-08-03")

        def repeat(doc):
            items = doc["tasks"][0]["result"][0]["items"]
            items[1] = items[0]
        self.night("2026-08-04", night=3, faults=[{"kind": "edit", "fn": repeat, "offset": 100}])
        self.assertEqual(self.calls("snapshot_breakdown"), before + 1)
        self.assert_summaries_recomputed("2026-08-04")

    def test_a_page_lost_after_its_commit_is_never_published_over(self):
        """sql/022 3.: a direct load's page commits without waiting for its
        WAL flush, so a crash of the server (or a failover) can lose one the
        loader counts as loaded. Lost here by hand, everything page 0 wrote
        deleted while the last page is served: the publish finds two of the
        three pages in the ledger and refuses, nothing is published, and the
        run's next attempt fetches page 0 alone and publishes the whole
        answer. Without the check the publish took the two for the answer."""
        run_sql = "(SELECT max(run_id) FROM %s.etl_run)" % S
        lose = ("DELETE FROM {s}.domain_intersection_version v USING {s}.etl_page_keys k"
                " WHERE k.run_id = {r} AND k.page_offset = 0 AND v.target_set_id = k.target_set_id"
                "   AND v.valid_from = '2026-08-01' AND v.referring_domain = ANY (k.item_domains);"
                " DELETE FROM {s}.domain_intersection_domain_version w USING {s}.etl_page_keys k"
                " WHERE k.run_id = {r} AND k.page_offset = 0 AND w.target_set_id = k.target_set_id"
                "   AND w.valid_from = '2026-08-01' AND w.referring_domain = ANY (k.item_domains);"
                " DELETE FROM {s}.etl_page_keys WHERE run_id = {r} AND page_offset = 0;"
                " DELETE FROM {s}.raw_page WHERE run_id = {r} AND page_offset = 0;"
                " DELETE FROM {s}.etl_page WHERE run_id = {r} AND page_offset = 0").format(s=S, r=run_sql)

        def lost(doc):
            time.sleep(1.0)  # page 0 went alone and has long committed
            self.db.psql(lose)
        code, _, err = self.night("2026-08-01", faults=[{"kind": "edit", "fn": lost, "offset": 200}],
                                  expect=None)
        self.assertEqual(code, 1, err)  # a database failure (README "Exit status")
        self.assertIn("the ledger holds 2 of the 3 pages", err)
        self.assertIn("fetches only the pages lost", err)
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection"), "0")
        self.fake.reset()
        self.night("2026-08-01")
        self.assertEqual([r["offset"] for r in self.fake.requests], [0])
        self.assertEqual(self.snapshot("2026-08-01"), self.first_load_of(night=None))
        self.db.psql("DROP TABLE once2_daily")
        self.assert_summaries_recomputed("2026-08-01")

    def test_a_failed_night_never_shows_and_goes_with_the_next_run(self):
        self.night("2026-08-01", night=0)
        before = self.snapshot("2026-08-01")
        self.night("2026-08-02", night=1,
                   faults=[{"kind": "task", "code": 40501, "offset": 200, "times": -1}], expect=1)
        staged = self.value("SELECT count(*) FROM %(s)s.domain_intersection_version "
                            "WHERE valid_from = '2026-08-02'")
        self.assertNotEqual(staged, "0")  # its loaded pages' changed rows wait there
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_history "
                                    "WHERE valid_from = '2026-08-02'"), "0")
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_latest "
                                    "WHERE snapshot_date = '2026-08-02'"), "0")
        self.assertEqual(self.snapshot("2026-08-01"), before)
        # the next night's run drops them, and publishes its own answer exactly
        self.night("2026-08-03", night=2)
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version "
                                    "WHERE valid_from = '2026-08-02'"), "0")
        self.assertEqual(self.snapshot("2026-08-01"), before)
        self.assertEqual(self.snapshot("2026-08-03"), self.first_load_of(night=2))
        self.db.psql("DROP TABLE once2_daily")
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.etl_page_keys"), "0")

    def test_a_night_after_a_failed_one_is_judged_against_what_was_published(self):
        """A night that failed leaves its loaded pages' changed rows staged
        (open-ended, unseen). What changed that night is usually still so
        the next night: the next run drops those rows before it reads the
        current versions (load.c, drop_stale_pending()), or its rows would
        be judged against them, taken as unchanged, not sent, and the
        publish would keep the values from before."""
        self.night("2026-08-01", night=0)
        self.night("2026-08-02", night=1,
                   faults=[{"kind": "task", "code": 40501, "offset": 200, "times": -1}], expect=1)
        published = self.value("SELECT rows FROM %(s)s.etl_snapshot WHERE snapshot_date = '2026-08-01'")
        self.assertNotEqual(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version "
                                       "WHERE valid_from = '2026-08-02'"), "0")
        # the same answer as the failed night's
        _, _, err = self.night("2026-08-03", night=1, verbose=True)
        self.assertEqual(self.snapshot("2026-08-03"), self.first_load_of(night=1))
        self.assertIn("one: %s current row digests read" % published, err)
        self.db.psql("DROP TABLE once2_daily")

    def test_a_night_judges_by_the_digests_the_last_publish_kept(self):
        """sql/024: a night's publish keeps every row's fingerprint; the
        next night judges its rows by them instead of reading the versions,
        exactly: a changed night writes what a night that read them does, an
        unchanged one nothing."""
        kept = "(as the last publish kept them)"
        self.night("2026-08-01", night=0)
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.etl_kept_digests"), "0")  # not judged
        _, _, err = self.night("2026-08-02", night=1, verbose=True)
        self.assertIn("current row digests read in", err)
        self.assertNotIn(kept, err)
        rows = int(self.value("SELECT rows FROM %(s)s.etl_snapshot WHERE snapshot_date = '2026-08-02'"))
        self.assertEqual(self.db.rows("SELECT octet_length(fps) AS b, sync_seq = (SELECT max(sync_seq)"
                                      " FROM %s.etl_snapshot) AS latest FROM %s.etl_kept_digests"
                                      % (S, S)), [{"b": 12 * rows, "latest": True}])
        self.writes()
        _, _, err = self.night("2026-08-03", night=2, verbose=True)
        self.assertIn("one: %d current row digests read in" % rows, err)
        self.assertIn(kept, err)
        w = self.writes()
        self.assertEqual(self.snapshot("2026-08-03"), self.first_load_of(night=2))
        self.db.psql("DROP TABLE once2_daily")
        started = int(self.value("SELECT count(*) FROM %(s)s.domain_intersection_version "
                                 "WHERE valid_from = '2026-08-03'"))
        self.assertEqual(w.get(("domain_intersection_version", "INSERT")), started, w)
        _, _, err = self.night("2026-08-04", night=2, verbose=True)
        self.assertIn(kept, err)
        self.assertEqual(self.writes(), {})
        self.assertEqual(self.snapshot("2026-08-04"), self.snapshot("2026-08-03"))

    def test_kept_digests_are_not_taken_once_the_set_moved(self):
        """The kept fingerprints are the current versions' only while no
        publish or failure of the set came after the one that kept them: a
        rerun of the latest date with another answer changes the current
        versions without keeping any, and the next night reads the versions
        (with the kept ones it would take the rows the rerun replaced for
        current, and send nothing of them)."""
        self.night("2026-08-01", night=0)
        self.night("2026-08-02", night=1)
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.etl_kept_digests"), "1")
        self.fake.set_scenario("once-a.com", total_count=250, night=2)
        self.etl("run", self.job_path, "--snapshot-date", "2026-08-02", "--fresh")
        _, _, err = self.night("2026-08-03", night=1, verbose=True)
        self.assertEqual(self.snapshot("2026-08-03"), self.first_load_of(night=1))
        self.assertNotIn("as the last publish kept them", err)
        self.db.psql("DROP TABLE once2_daily")
        # and a failed night moves them too
        self.night("2026-08-04", night=2,
                   faults=[{"kind": "task", "code": 40501, "offset": 200, "times": -1}], expect=1)
        _, _, err = self.night("2026-08-05", night=2, verbose=True)
        self.assertEqual(self.snapshot("2026-08-05"), self.first_load_of(night=2))
        self.assertNotIn("as the last publish kept them", err)
        self.db.psql("DROP TABLE once2_daily")

    def test_kept_digests_outlive_a_purge(self):
        """A purge (retention, after each run that published every set)
        moves the set's sync number too, but changes no current version's
        fingerprint (it deletes ended versions, and moves the others'
        valid_from): a night after one that purged still takes the kept
        ones, exactly."""
        self.job_path = self.job(JOB + "retention: {keep_snapshots: 1 days}\n", name="once-kept.yaml")
        for i, date in enumerate(("2026-08-01", "2026-08-02", "2026-08-03")):
            self.night(date, night=i)
        self.assertNotEqual(self.value("SELECT purged_at FROM %(s)s.etl_snapshot"
                                       " WHERE snapshot_date = '2026-08-01'"), "")
        _, _, err = self.night("2026-08-04", night=3, verbose=True)
        self.assertEqual(self.snapshot("2026-08-04"), self.first_load_of(night=3))
        self.assertIn("(as the last publish kept them)", err)
        self.db.psql("DROP TABLE once2_daily")

    def test_a_repeated_key_keeps_its_first_place(self):
        """Offset paging repeats the previous page's last item at the top of
        the next: the first place wins, on a first load and on a night that
        sends nothing."""
        dup = [100, 200]
        self.fake.set_scenario("once-a.com", total_count=250, duplicate_at=dup)
        self.etl("run", self.job_path, "--snapshot-date", "2026-08-01")
        first = self.snapshot("2026-08-01")
        domains = {r["referring_domain"] for r in first}
        # the repeat's page went the other way and sent no domain rows: the
        # publish dropped the loader's and folded the night itself
        w = self.domain_writes()
        self.assertEqual(w[("sql", "INSERT")], len(domains), w)
        self.assertEqual(w[("sql", "DELETE")], w[("copy", "INSERT")], w)
        self.assert_domains_folded("2026-08-01")
        # the pages' sums count the repeat twice: not taken (sql/021)
        self.assert_summaries_recomputed("2026-08-01")
        self.assertEqual(len(first), 2 * len(domains))  # each (domain, key) once
        pages = self.db.rows("SELECT page_offset, items FROM %s.etl_page ORDER BY 1" % S)
        self.assertEqual(sum(int(p["items"]) for p in pages) - len(domains), 1, pages)  # one repeat
        # its place is the first one: positions are those of a load without the repeat
        positions = sorted({(r["referring_domain"], r["position"]) for r in first}, key=lambda x: x[1])
        self.assertEqual(len({p for _, p in positions}), len(positions))
        self.etl("run", self.job_path, "--snapshot-date", "2026-08-02")
        self.assertEqual(self.writes().get(("domain_intersection_version", "INSERT"), 0),
                         len(first))  # the first load's, none the second night
        # a key came twice: no fingerprint kept for the next night (sql/024)
        self.assertEqual(self.value("SELECT count(*) FROM %(s)s.etl_kept_digests"), "0")
        self.assertEqual([dict(r, snapshot_date=None) for r in self.snapshot("2026-08-02")],
                         [dict(r, snapshot_date=None) for r in first])

    def test_measures_follow_the_change_and_mend_a_night_measured_before(self):
        """A night's measures are the previous night's plus what changed; a
        previous night measured before sql/016 (no sums) is measured whole
        once. Either way they are those of a first load of the same answer."""
        cols = "rows, distinct_domains, avg_rank, total_backlinks"
        self.night("2026-08-01", night=0)
        self.night("2026-08-02", night=1)
        self.db.psql("UPDATE %s.etl_snapshot SET rank_sum = NULL, rank_count = NULL,"
                     " backlinks_count = NULL WHERE snapshot_date = '2026-08-02'" % S)
        self.night("2026-08-03", night=2)
        self.night("2026-08-04", night=3)
        got = self.db.rows("SELECT snapshot_date, %s FROM %s.domain_intersection_daily ORDER BY 1" % (cols, S))
        for night, row in enumerate(got):
            self.first_load_of(night=night)
            want = self.db.rows("SELECT %s FROM once2_daily" % cols)[0]
            self.db.psql("DROP TABLE once2_daily")
            self.assertEqual({k: row[k] for k in want}, want, "night %d" % night)

    # ------------------------------------------------------------------

    def plans_of(self, sql):
        """Runs sql (and commits it) with the plan of every statement it runs,
        nested ones too, logged by auto_explain: (query, plan) texts, in order."""
        out = self.db.psql("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                           " SET auto_explain.log_nested_statements = on;"
                           " SET auto_explain.log_level = notice; SET client_min_messages = notice;"
                           " %s" % sql, stderr=True)
        found = []
        for notice in out.split("NOTICE:  duration: ")[1:]:
            lines = notice.split("\n")[1:]  # (after "N ms  plan:")
            n = 1 + next((i for i, x in enumerate(lines[1:]) if not x[:1].isspace()), len(lines))
            found.append((" ".join(x.strip() for x in lines[:n])[len("Query Text: "):],
                          "\n".join(lines[n:])))
        return found

    def snapshot(self, date):
        rows = self.db.rows("SELECT * FROM %s.domain_intersection WHERE snapshot_date = '%s' "
                            "ORDER BY referring_domain, target_key" % (S, date))
        for r in rows:
            r.pop("run_id")
            r.pop("snapshot_date")
            r.pop("target_set_id")
        return rows

    def first_load_of(self, night, total=250, faults=None):
        """The rows a first load of that night's answer publishes, in another job's schema."""
        other = self.job(JOB.replace("job: once", "job: once2").replace(
            'database: {url: "${DATABASE_URL}"}', 'database: {url: "${DATABASE_URL}", schema: once2}'),
            name="once2.yaml")
        self.fake.set_scenario("once-a.com", total_count=total, night=night, faults=faults or [])
        self.etl("run", other, "--migrate", "--snapshot-date", "2026-09-01")
        rows = self.db.rows("SELECT * FROM once2.domain_intersection ORDER BY referring_domain, target_key")
        self.db.psql("CREATE TABLE once2_daily AS SELECT * FROM once2.domain_intersection_daily;"
                     " DROP SCHEMA once2 CASCADE")
        for r in rows:
            r.pop("run_id")
            r.pop("snapshot_date")
            r.pop("target_set_id")
        return rows


if __name__ == "__main__":
    unittest.main()

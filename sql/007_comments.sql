-- 007_comments.sql - the schema describes itself.
--
-- COMMENT ON every table, view and column (and on the functions) that
-- 001..006 leave in the schema, for whoever reads it from psql (\d+) or from
-- a BI tool's catalog: meaning, unit, grain, NULL semantics, and for the
-- report views the incremental-sync rules of sql/006_history_views.sql.
-- 005 and 006 dropped and recreated the report views, which took 003's
-- comments with them; etl_run_summary (recreated as 003 had it, under
-- 005's wider cost column) gets 003's again, re-stated where 005 changed
-- what a value counts (a page can now be 'discarded').
-- schema_migrations (created by src/migrate.c, not by a migration) is
-- described too when it exists.
--
-- A migration that adds a table, view or column adds its comment as well:
-- tests/integration/test_comments.py fails, naming it, on one without.
-- COMMENT takes a SHARE UPDATE EXCLUSIVE lock per object: readers and the
-- loader's writes go on; only DDL and VACUUM of that object wait.

-- ---------------------------------------------------------------------------
-- Definitions and runs

COMMENT ON TABLE target_set IS
    'One row per (job, target set name) of the job files: what the set asks the API for. Updated in place '
    'when the job file changes the set; request_hash (and updated_at) then change, and each run and snapshot '
    'records the hash it was fetched with.';
COMMENT ON COLUMN target_set.target_set_id IS 'Surrogate key; every other table refers to the set by it.';
COMMENT ON COLUMN target_set.job IS 'Job name (the job file''s job:).';
COMMENT ON COLUMN target_set.name IS 'Target set name, unique within the job.';
COMMENT ON COLUMN target_set.targets IS
    'The requested targets in key order: targets[k] is target_key k (1..20).';
COMMENT ON COLUMN target_set.request IS
    'The request sent for each page, minus offset and limit (jsonb); never holds credentials.';
COMMENT ON COLUMN target_set.request_hash IS
    'md5 of request with page_limit and max_rows: the set''s definition. Equal definitions hash equal; '
    'snapshots of different hashes are never compared.';
COMMENT ON COLUMN target_set.page_limit IS 'Items (referring domains) requested per page: the job''s limit.';
COMMENT ON COLUMN target_set.max_rows IS
    'At most this many items (referring domains) are fetched per snapshot, whatever total_count says.';
COMMENT ON COLUMN target_set.created_at IS 'When the set was first recorded.';
COMMENT ON COLUMN target_set.updated_at IS
    'When its definition (request_hash) last changed; created_at if never.';

COMMENT ON TABLE etl_run IS
    'One row per run of a job for one snapshot date (a UTC calendar date). A run that did not finish is '
    'continued by the next run of the same job and date (same run_id); etl_run_summary is the report view of '
    'it.';
COMMENT ON COLUMN etl_run.run_id IS 'Run id, increasing with time.';
COMMENT ON COLUMN etl_run.job IS 'Job name.';
COMMENT ON COLUMN etl_run.snapshot_date IS
    'The snapshot date the run fetches, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN etl_run.started_at IS 'When the run started (a continued run keeps its first start).';
COMMENT ON COLUMN etl_run.finished_at IS
    'When the run last finished; NULL while running or when it was killed.';
COMMENT ON COLUMN etl_run.status IS
    '''running'', ''succeeded'' (every set complete), ''partial'' (some sets failed) or ''failed''. A killed '
    'run stays ''running'' (the next run of its job and date continues it, unless run --fresh).';
COMMENT ON COLUMN etl_run.pages IS
    'Pages loaded (etl_page status ''loaded''), as counted when the run finished.';
COMMENT ON COLUMN etl_run.rows IS
    'Rows its pages produced (etl_page.rows summed when the run finished; a referring domain that paging '
    'showed twice counts twice, so it can exceed the rows of the snapshots).';
COMMENT ON COLUMN etl_run.cost_usd IS 'What the API reported the run''s requests cost, in USD.';
COMMENT ON COLUMN etl_run.error IS 'Why the run failed or was partial; NULL on success and while running.';
COMMENT ON COLUMN etl_run.host IS 'Host name of the machine that ran it.';
COMMENT ON COLUMN etl_run.pid IS 'Process id of the run (of its latest continuation).';
COMMENT ON COLUMN etl_run.version IS 'intersect-etl version that started the run.';
COMMENT ON COLUMN etl_run.replay_of IS
    'The run a replay re-did from the raw archive (raw_page); NULL for runs that fetched from the API.';

COMMENT ON TABLE etl_run_set IS
    'One row per (run, target set): the set''s outcome in that run. The report views read etl_snapshot '
    'instead, which says per (set, date) which run''s answer is the snapshot.';
COMMENT ON COLUMN etl_run_set.run_id IS 'etl_run.run_id.';
COMMENT ON COLUMN etl_run_set.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN etl_run_set.request_hash IS
    'The definition this run fetched (target_set.request_hash at the time).';
COMMENT ON COLUMN etl_run_set.status IS
    '''running'' (being fetched, or the run was killed doing so), ''complete'' (answer published) or '
    '''failed''.';
COMMENT ON COLUMN etl_run_set.total_count IS
    'Referring domains the API said it has for the request (total_count of the first page); NULL until a '
    'page came back.';
COMMENT ON COLUMN etl_run_set.pages IS 'Pages of the set loaded in this run; set when the set finished.';
COMMENT ON COLUMN etl_run_set.rows IS
    'Rows its loaded pages produced (etl_page.rows summed, repeats across pages included); set when the set '
    'finished.';
COMMENT ON COLUMN etl_run_set.cost_usd IS
    'What the API reported this run''s requests for the set cost, in USD.';
COMMENT ON COLUMN etl_run_set.error IS 'Why the set failed; NULL when complete or running.';
COMMENT ON COLUMN etl_run_set.finished_at IS 'When the set finished in this run; NULL while running.';
COMMENT ON COLUMN etl_run_set.direct IS
    'Historical: true when a run before migration 005 loaded the set straight into its date''s partition (a '
    'first load). No longer set: false for every run since.';

COMMENT ON TABLE etl_page IS
    'The page ledger: one row per (run, target set, page offset), written in the same transaction as the '
    'page''s staged rows (and its raw_page body), so a page is ''loaded'' exactly when its rows are staged. '
    'A continued run skips loaded pages and fetches ''failed'' (except refused) and ''discarded'' ones '
    'again. A page fetched again replaces its row (attempts add up).';
COMMENT ON COLUMN etl_page.run_id IS 'etl_run.run_id.';
COMMENT ON COLUMN etl_page.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN etl_page.page_offset IS 'The offset sent: items skipped in the API''s result order.';
COMMENT ON COLUMN etl_page.page_limit IS 'The limit sent: items asked for.';
COMMENT ON COLUMN etl_page.status IS
    '''loaded'': its rows are staged in domain_intersection_pending (and published with the set); '
    '''failed'': no rows, after all its attempts (error says why); ''discarded'': it was loaded, but a later '
    'run of the job removed its staged rows, so a continuation of this run fetches it again.';
COMMENT ON COLUMN etl_page.attempts IS
    'Requests made for the page, over every try and continuation of the run.';
COMMENT ON COLUMN etl_page.http_status IS 'HTTP status of the last attempt; NULL when no HTTP answer came.';
COMMENT ON COLUMN etl_page.api_status_code IS
    'The API''s status_code of the last answer (the task''s, else the top level''s; 20000 = OK); NULL when '
    'the answer had none.';
COMMENT ON COLUMN etl_page.api_status_message IS 'The API''s status_message with it; NULL when none.';
COMMENT ON COLUMN etl_page.task_id IS 'The API''s task id of the last answer; NULL when none.';
COMMENT ON COLUMN etl_page.items IS 'Items (referring domains) in the answer; NULL when failed.';
COMMENT ON COLUMN etl_page.rows IS
    'Rows the items became (one per referring domain and target key), repeats of earlier pages included; '
    'NULL when failed.';
COMMENT ON COLUMN etl_page.total_count IS 'total_count the answer reported; NULL when unknown.';
COMMENT ON COLUMN etl_page.cost_usd IS 'What the API reported the request cost, in USD; NULL when failed.';
COMMENT ON COLUMN etl_page.duration_ms IS
    'Milliseconds from the page''s first request to its ledger row, retries and waits included.';
COMMENT ON COLUMN etl_page.error IS 'Why the page failed; NULL when loaded.';
COMMENT ON COLUMN etl_page.finished_at IS 'When this ledger row was last written.';
COMMENT ON COLUMN etl_page.staged IS
    'Rows the page staged for the first time (rows of earlier pages it repeated not counted). Before '
    'publishing, the staged rows of a set must equal the sum over its loaded pages, else nothing is '
    'published. NULL when failed; for pages loaded before migration 005, their rows.';
COMMENT ON COLUMN etl_page.refused IS
    'True when the database refused the page''s rows (a value out of range: SQLSTATE class 22). The page is '
    '''failed''; the same answer would be refused again, so a continued run does not fetch it and fails the '
    'set (run --fresh fetches everything again).';

COMMENT ON TABLE raw_page IS
    'The raw archive: one row per loaded (run, target set, page offset), the request sent and the response '
    'body as received, so a fix to the transformer never means paying for the data again (intersect-etl '
    'replay). Written in the page''s transaction unless the job says archive: false; retention.keep_archive '
    'removes old runs'' bodies.';
COMMENT ON COLUMN raw_page.run_id IS 'etl_run.run_id.';
COMMENT ON COLUMN raw_page.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN raw_page.page_offset IS 'The offset sent (etl_page.page_offset).';
COMMENT ON COLUMN raw_page.page_limit IS 'The limit sent.';
COMMENT ON COLUMN raw_page.request IS
    'The JSON body sent, targets included (jsonb); never holds credentials.';
COMMENT ON COLUMN raw_page.body IS
    'The response body as text, when it came uncompressed (and every body archived before migration 004); '
    'NULL when body_gzip holds it. Exactly one of body and body_gzip is set.';
COMMENT ON COLUMN raw_page.fetched_at IS 'When the page was archived.';
COMMENT ON COLUMN raw_page.body_gzip IS
    'The response body as the gzip bytes it came in (bytea, stored uncompressed out of line); NULL when body '
    'holds it. From a shell: psql -XAtc "SELECT encode(body_gzip, ''base64'') ..." | base64 -d | gunzip.';

-- ---------------------------------------------------------------------------
-- The versioned history (sql/005_versioned_history.sql)

COMMENT ON TABLE domain_intersection_version IS
    'The history of the rows: one row per (target set, referring domain, target key) and run of consecutive '
    'complete snapshots with identical values, valid for the complete snapshot dates in [valid_from, '
    'valid_to). A new row only when a value changes; a referring domain the answer no longer has ends its '
    'range. position is not here: it is per snapshot, in domain_intersection_order. Read it through the '
    'views domain_intersection (one snapshot) and domain_intersection_history (the ranges). Written only by '
    'publish_snapshot() and purge_snapshots().';
COMMENT ON COLUMN domain_intersection_version.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_version.referring_domain IS
    'The referring domain (the API''s per-target "target" field).';
COMMENT ON COLUMN domain_intersection_version.target_key IS
    'Key of the target in the request, 1..20 (its place in target_set.targets).';
COMMENT ON COLUMN domain_intersection_version.valid_from IS
    'First complete snapshot date with these values (inclusive), a UTC calendar date (the night the data is '
    'for).';
COMMENT ON COLUMN domain_intersection_version.valid_to IS
    'The complete snapshot date from which these values no longer hold (exclusive); ''infinity'' while '
    'current, i.e. in the set''s latest complete snapshot. Dates inside the range that are not complete '
    'snapshots (failed, never run) are not snapshots: etl_snapshot says which are.';
COMMENT ON COLUMN domain_intersection_version.target IS
    'The requested target of target_key (target_set.targets[target_key]).';
COMMENT ON COLUMN domain_intersection_version.intersections_count IS
    'How many of the set''s targets the referring domain links to (the item''s summary; the same in every '
    'row of the item); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection_version.type IS
    'The API''s type of the per-target object, as given; NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.rank IS
    'Rank of the referring domain (0..1000, or 0..100 with the job''s rank_scale: one_hundred); NULL when '
    'not given.';
COMMENT ON COLUMN domain_intersection_version.backlinks IS
    'Backlinks from the referring domain to the target (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.first_seen IS
    'When the API first saw a link from the referring domain to the target (timestamptz, as the API gave it '
    'in UTC); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.lost_date IS
    'When those links were lost (timestamptz); NULL while live or when not given.';
COMMENT ON COLUMN domain_intersection_version.backlinks_spam_score IS
    'Spam score of those backlinks, 0..100; NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.broken_backlinks IS
    'Broken backlinks (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.broken_pages IS
    'Broken pages linked to (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_domains IS
    'The API''s referring_domains of this pair (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_domains_nofollow IS
    'The API''s referring_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_main_domains IS
    'The API''s referring_main_domains (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_main_domains_nofollow IS
    'The API''s referring_main_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_ips IS
    'The API''s referring_ips (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_subnets IS
    'The API''s referring_subnets (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_pages IS
    'The API''s referring_pages (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_pages_nofollow IS
    'The API''s referring_pages_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_links_tld IS
    'Links per TLD (jsonb object key -> count, as the API gave it; long form in '
    'domain_intersection_breakdown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_links_types IS
    'Links per link type (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_links_attributes IS
    'Links per link attribute, e.g. nofollow (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_links_platform_types IS
    'Links per platform type of the linking page (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_links_semantic_locations IS
    'Links per semantic location in the page (jsonb object key -> count; "" = none); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.referring_links_countries IS
    'Links per country (jsonb object key -> count; "" = unknown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_version.extra IS
    'API fields this version does not know, as a jsonb object: the per-target object''s own unknown fields, '
    'and the item''s under "_item" and its summary''s under "_summary". Those item-level extras are stored '
    'once per item: only in the row of the item''s lowest target key (the item''s other rows lack them). '
    'NULL when there are none.';
COMMENT ON COLUMN domain_intersection_version.run_id IS
    'The run whose published answer first had these values (of a migrated row: the run that last wrote it '
    'before migration 005).';

COMMENT ON TABLE domain_intersection_order IS
    'The result order (position) per target set, valid for the complete snapshot dates in [valid_from, '
    'valid_to) like the versions: a new row only when the order changes. Kept apart from the versions '
    'because one domain more near the top moves every domain below it.';
COMMENT ON COLUMN domain_intersection_order.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_order.valid_from IS
    'First complete snapshot date with this order (inclusive).';
COMMENT ON COLUMN domain_intersection_order.valid_to IS
    'The complete snapshot date from which the order no longer holds (exclusive); ''infinity'' while '
    'current.';
COMMENT ON COLUMN domain_intersection_order.domains IS
    'The set''s referring domains in result order, each once (ties by name).';
COMMENT ON COLUMN domain_intersection_order.positions IS
    'positions[i] is the 0-based place of domains[i] in the API''s result order (its first place when paging '
    'showed it twice); as many elements as domains.';

COMMENT ON TABLE etl_snapshot IS
    'One control row per (target set, snapshot date) that a run finished: status, size, change counts, cost '
    'and the publish that made it; written in the publishing transaction. Every report view reads these rows '
    'first. A complete snapshot stays complete when a later rerun of its date fails; a date whose runs are '
    'still fetching the set (or were killed doing so) has no row yet. Republishing a date updates its row '
    '(published_at moves); retention sets purged_at and keeps the row.';
COMMENT ON COLUMN etl_snapshot.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN etl_snapshot.snapshot_date IS
    'The snapshot date, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN etl_snapshot.status IS
    '''complete'': a run published its answer for the date (the snapshot); ''failed'': runs finished the set '
    'for the date, none completed it, so the date has no snapshot.';
COMMENT ON COLUMN etl_snapshot.run_id IS
    'complete: the run whose answer is the snapshot; failed: the latest run that failed the set.';
COMMENT ON COLUMN etl_snapshot.request_hash IS 'The definition that run fetched (etl_run_set.request_hash).';
COMMENT ON COLUMN etl_snapshot.previous_snapshot_date IS
    'The latest complete snapshot before this date that was not purged when this one was published (compared '
    'with unless the definitions differ); NULL when none, and on failed dates.';
COMMENT ON COLUMN etl_snapshot.previous_request_hash IS 'Its request_hash; NULL when there is none.';
COMMENT ON COLUMN etl_snapshot.total_count IS
    'Referring domains the API said it has (total_count of the publishing run''s first page); NULL when '
    'unknown, as on failed dates (since migration 005 they record none).';
COMMENT ON COLUMN etl_snapshot.expected_domains IS
    'Referring domains the snapshot should have: least(total_count, target_set.max_rows); NULL when '
    'total_count is.';
COMMENT ON COLUMN etl_snapshot.domains IS
    'Distinct referring domains in the snapshot; NULL on failed dates (and for snapshots retention had '
    'dropped before migration 005).';
COMMENT ON COLUMN etl_snapshot.rows IS
    'Rows in the snapshot (referring domain x target key); NULL like domains.';
COMMENT ON COLUMN etl_snapshot.new_domains IS
    'Referring domains not in the previous snapshot; NULL when there is none of the same definition (a '
    'restart), and on failed dates.';
COMMENT ON COLUMN etl_snapshot.lost_domains IS
    'Referring domains of the previous snapshot not in this one; NULL like new_domains.';
COMMENT ON COLUMN etl_snapshot.changed_rows IS
    'Rows in both this and the previous snapshot whose values differ (position aside); NULL like '
    'new_domains.';
COMMENT ON COLUMN etl_snapshot.avg_rank IS
    'Average rank over the snapshot''s rows that have one, 2 decimals; NULL like domains.';
COMMENT ON COLUMN etl_snapshot.total_backlinks IS
    'Backlinks summed over the snapshot''s rows; NULL like domains.';
COMMENT ON COLUMN etl_snapshot.cost_usd IS
    'What every run of that date spent on the set, in USD as the API reported (etl_run_set.cost_usd summed '
    'when a run finishes the set).';
COMMENT ON COLUMN etl_snapshot.published_at IS
    'When the snapshot was last (re)published: moves each time the (set, date) is published again (a rerun '
    'or replay), whose rows then replace the old ones as a whole. NULL on failed dates. With purged_at, the '
    'key of incremental sync.';
COMMENT ON COLUMN etl_snapshot.purged_at IS
    'When retention purged the snapshot (its rows are gone from the history; this row and its '
    'domain_intersection_change rows stay); NULL while kept.';
COMMENT ON COLUMN etl_snapshot.last_run_id IS
    'The latest run that finished the set for this date, complete or failed (differs from run_id when a '
    'rerun failed after the snapshot was published).';
COMMENT ON COLUMN etl_snapshot.last_error IS 'Why that latest run failed the set; NULL when it completed it.';

COMMENT ON TABLE domain_intersection_change IS
    'The referring domains new and lost at each complete snapshot, compared with the previous complete '
    'snapshot of the same definition: computed once when the snapshot is published (snapshot_stats()), '
    'replaced as a whole when it or the snapshot before it is republished. A snapshot with nothing to '
    'compare with has no rows. Kept when retention purges the snapshot.';
COMMENT ON COLUMN domain_intersection_change.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_change.snapshot_date IS
    'The complete snapshot compared, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN domain_intersection_change.referring_domain IS
    'The referring domain that appeared or disappeared.';
COMMENT ON COLUMN domain_intersection_change.change IS
    '''new'' (not in the previous snapshot) or ''lost'' (in the previous snapshot, not in this one).';
COMMENT ON COLUMN domain_intersection_change.intersections_count IS
    'Its intersections_count (largest over its target keys; for ''lost'': in the previous snapshot).';
COMMENT ON COLUMN domain_intersection_change.min_rank IS
    'Lowest rank over its target keys (for ''lost'': in the previous snapshot); NULL when none has one.';
COMMENT ON COLUMN domain_intersection_change.backlinks IS
    'Backlinks summed over its target keys (for ''lost'': in the previous snapshot); NULL when none has a '
    'count.';

COMMENT ON TABLE domain_intersection_pending IS
    'Staging: the rows of sets being fetched, one per (run, target set, referring domain, target key). Each '
    'page''s rows land here in the transaction of its ledger row (etl_page); when the set''s answer is '
    'complete, publish_snapshot() makes them the snapshot of the date and deletes them. Rows of an '
    'unfinished run wait for it to be continued; the job''s next run that does not continue it (another '
    'date, or run --fresh) removes them (their pages become ''discarded''). Not for reports.';
COMMENT ON COLUMN domain_intersection_pending.snapshot_date IS
    'The run''s snapshot date (etl_run.snapshot_date).';
COMMENT ON COLUMN domain_intersection_pending.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_pending.referring_domain IS
    'The referring domain (the API''s per-target "target" field).';
COMMENT ON COLUMN domain_intersection_pending.target_key IS
    'Key of the target in the request, 1..20 (its place in target_set.targets).';
COMMENT ON COLUMN domain_intersection_pending.target IS
    'The requested target of target_key (target_set.targets[target_key]).';
COMMENT ON COLUMN domain_intersection_pending.position IS
    '0-based place of the referring domain in the API''s result order (page offset + index); when paging '
    'showed it twice, the first place wins.';
COMMENT ON COLUMN domain_intersection_pending.intersections_count IS
    'How many of the set''s targets the referring domain links to (the item''s summary; the same in every '
    'row of the item); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection_pending.type IS
    'The API''s type of the per-target object, as given; NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.rank IS
    'Rank of the referring domain (0..1000, or 0..100 with the job''s rank_scale: one_hundred); NULL when '
    'not given.';
COMMENT ON COLUMN domain_intersection_pending.backlinks IS
    'Backlinks from the referring domain to the target (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.first_seen IS
    'When the API first saw a link from the referring domain to the target (timestamptz, as the API gave it '
    'in UTC); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.lost_date IS
    'When those links were lost (timestamptz); NULL while live or when not given.';
COMMENT ON COLUMN domain_intersection_pending.backlinks_spam_score IS
    'Spam score of those backlinks, 0..100; NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.broken_backlinks IS
    'Broken backlinks (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.broken_pages IS
    'Broken pages linked to (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_domains IS
    'The API''s referring_domains of this pair (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_domains_nofollow IS
    'The API''s referring_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_main_domains IS
    'The API''s referring_main_domains (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_main_domains_nofollow IS
    'The API''s referring_main_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_ips IS
    'The API''s referring_ips (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_subnets IS
    'The API''s referring_subnets (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_pages IS
    'The API''s referring_pages (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_pages_nofollow IS
    'The API''s referring_pages_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_links_tld IS
    'Links per TLD (jsonb object key -> count, as the API gave it; long form in '
    'domain_intersection_breakdown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_links_types IS
    'Links per link type (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_links_attributes IS
    'Links per link attribute, e.g. nofollow (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_links_platform_types IS
    'Links per platform type of the linking page (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_links_semantic_locations IS
    'Links per semantic location in the page (jsonb object key -> count; "" = none); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.referring_links_countries IS
    'Links per country (jsonb object key -> count; "" = unknown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_pending.extra IS
    'API fields this version does not know, as a jsonb object: the per-target object''s own unknown fields, '
    'and the item''s under "_item" and its summary''s under "_summary". Those item-level extras are stored '
    'once per item: only in the row of the item''s lowest target key (the item''s other rows lack them). '
    'NULL when there are none.';
COMMENT ON COLUMN domain_intersection_pending.run_id IS 'The run that staged the row (etl_run.run_id).';

-- ---------------------------------------------------------------------------
-- The compatibility view (sql/005_versioned_history.sql)

COMMENT ON VIEW domain_intersection IS
    'The snapshots as one table, as before migration 005 (read-only): one row per target set, snapshot date, '
    'referring domain and target key, for every complete snapshot that retention has not purged; failed '
    'dates and dates still being fetched have none. Assembled from domain_intersection_version and '
    'domain_intersection_order per etl_snapshot row: filter on target_set_id and snapshot_date, and a query '
    'for one snapshot reads only that snapshot.';
COMMENT ON COLUMN domain_intersection.snapshot_date IS
    'The complete snapshot''s date, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN domain_intersection.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection.referring_domain IS
    'The referring domain (the API''s per-target "target" field).';
COMMENT ON COLUMN domain_intersection.target_key IS
    'Key of the target in the request, 1..20 (its place in target_set.targets).';
COMMENT ON COLUMN domain_intersection.target IS
    'The requested target of target_key (target_set.targets[target_key]).';
COMMENT ON COLUMN domain_intersection.position IS
    'Place of the referring domain in the API''s result order for this snapshot, 0-based (page offset + '
    'index; the first place when paging showed it twice); the same for all its target keys. Per snapshot: '
    'kept in domain_intersection_order, not in the versions.';
COMMENT ON COLUMN domain_intersection.intersections_count IS
    'How many of the set''s targets the referring domain links to (the item''s summary; the same in every '
    'row of the item); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection.type IS
    'The API''s type of the per-target object, as given; NULL when not given.';
COMMENT ON COLUMN domain_intersection.rank IS
    'Rank of the referring domain (0..1000, or 0..100 with the job''s rank_scale: one_hundred); NULL when '
    'not given.';
COMMENT ON COLUMN domain_intersection.backlinks IS
    'Backlinks from the referring domain to the target (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.first_seen IS
    'When the API first saw a link from the referring domain to the target (timestamptz, as the API gave it '
    'in UTC); NULL when not given.';
COMMENT ON COLUMN domain_intersection.lost_date IS
    'When those links were lost (timestamptz); NULL while live or when not given.';
COMMENT ON COLUMN domain_intersection.backlinks_spam_score IS
    'Spam score of those backlinks, 0..100; NULL when not given.';
COMMENT ON COLUMN domain_intersection.broken_backlinks IS 'Broken backlinks (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.broken_pages IS 'Broken pages linked to (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_domains IS
    'The API''s referring_domains of this pair (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_domains_nofollow IS
    'The API''s referring_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_main_domains IS
    'The API''s referring_main_domains (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_main_domains_nofollow IS
    'The API''s referring_main_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_ips IS
    'The API''s referring_ips (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_subnets IS
    'The API''s referring_subnets (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_pages IS
    'The API''s referring_pages (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_pages_nofollow IS
    'The API''s referring_pages_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_links_tld IS
    'Links per TLD (jsonb object key -> count, as the API gave it; long form in '
    'domain_intersection_breakdown); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_links_types IS
    'Links per link type (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_links_attributes IS
    'Links per link attribute, e.g. nofollow (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_links_platform_types IS
    'Links per platform type of the linking page (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_links_semantic_locations IS
    'Links per semantic location in the page (jsonb object key -> count; "" = none); NULL when not given.';
COMMENT ON COLUMN domain_intersection.referring_links_countries IS
    'Links per country (jsonb object key -> count; "" = unknown); NULL when not given.';
COMMENT ON COLUMN domain_intersection.extra IS
    'API fields this version does not know, as a jsonb object: the per-target object''s own unknown fields, '
    'and the item''s under "_item" and its summary''s under "_summary". Those item-level extras are stored '
    'once per item: only in the row of the item''s lowest target key (the item''s other rows lack them). '
    'NULL when there are none.';
COMMENT ON COLUMN domain_intersection.run_id IS
    'The run whose published answer first had the row''s values (domain_intersection_daily.run_id is the run '
    'that published this snapshot).';

-- ---------------------------------------------------------------------------
-- Report views (sql/006_history_views.sql)

COMMENT ON VIEW domain_intersection_latest IS
    'Per target set, the rows of its latest complete snapshot that is not purged: one row per referring '
    'domain and target key. A later run that fails, or is still fetching, never hides it: the set keeps '
    'showing its last complete answer. snapshot_date is a UTC calendar date. Incremental sync: a set''s rows '
    'are replaced as a whole whenever one of its dates is (re)published '
    '(domain_intersection_daily.published_at moves): re-read the whole set then.';
COMMENT ON COLUMN domain_intersection_latest.job IS 'Job name (target_set.job).';
COMMENT ON COLUMN domain_intersection_latest.target_set IS 'Target set name, unique within the job.';
COMMENT ON COLUMN domain_intersection_latest.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_latest.snapshot_date IS
    'Date of the set''s latest complete snapshot, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN domain_intersection_latest.referring_domain IS
    'The referring domain (the API''s per-target "target" field).';
COMMENT ON COLUMN domain_intersection_latest.target_key IS
    'Key of the target in the request, 1..20 (its place in target_set.targets).';
COMMENT ON COLUMN domain_intersection_latest.target IS
    'The requested target of target_key (target_set.targets[target_key]).';
COMMENT ON COLUMN domain_intersection_latest.position IS
    'Place of the referring domain in the API''s result order for this snapshot, 0-based (page offset + '
    'index; the first place when paging showed it twice); the same for all its target keys. Per snapshot: '
    'kept in domain_intersection_order, not in the versions.';
COMMENT ON COLUMN domain_intersection_latest.intersections_count IS
    'How many of the set''s targets the referring domain links to (the item''s summary; the same in every '
    'row of the item); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection_latest.type IS
    'The API''s type of the per-target object, as given; NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.rank IS
    'Rank of the referring domain (0..1000, or 0..100 with the job''s rank_scale: one_hundred); NULL when '
    'not given.';
COMMENT ON COLUMN domain_intersection_latest.backlinks IS
    'Backlinks from the referring domain to the target (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.first_seen IS
    'When the API first saw a link from the referring domain to the target (timestamptz, as the API gave it '
    'in UTC); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.lost_date IS
    'When those links were lost (timestamptz); NULL while live or when not given.';
COMMENT ON COLUMN domain_intersection_latest.backlinks_spam_score IS
    'Spam score of those backlinks, 0..100; NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.broken_backlinks IS
    'Broken backlinks (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.broken_pages IS
    'Broken pages linked to (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_domains IS
    'The API''s referring_domains of this pair (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_domains_nofollow IS
    'The API''s referring_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_main_domains IS
    'The API''s referring_main_domains (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_main_domains_nofollow IS
    'The API''s referring_main_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_ips IS
    'The API''s referring_ips (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_subnets IS
    'The API''s referring_subnets (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_pages IS
    'The API''s referring_pages (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_pages_nofollow IS
    'The API''s referring_pages_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_tld IS
    'Links per TLD (jsonb object key -> count, as the API gave it; long form in '
    'domain_intersection_breakdown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_types IS
    'Links per link type (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_attributes IS
    'Links per link attribute, e.g. nofollow (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_platform_types IS
    'Links per platform type of the linking page (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_semantic_locations IS
    'Links per semantic location in the page (jsonb object key -> count; "" = none); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.referring_links_countries IS
    'Links per country (jsonb object key -> count; "" = unknown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_latest.extra IS
    'API fields this version does not know, as a jsonb object: the per-target object''s own unknown fields, '
    'and the item''s under "_item" and its summary''s under "_summary". Those item-level extras are stored '
    'once per item: only in the row of the item''s lowest target key (the item''s other rows lack them). '
    'NULL when there are none.';
COMMENT ON COLUMN domain_intersection_latest.run_id IS
    'The run whose published answer first had the row''s values (an unchanged rerun keeps it; '
    'domain_intersection_daily.run_id is the run that published the snapshot).';

COMMENT ON VIEW domain_intersection_changes IS
    'Per target set and complete snapshot, the referring domains new since the previous complete snapshot of '
    'the same definition (change = ''new'') and those no longer there (''lost''), computed once at publish. '
    'Failed dates are skipped: the comparison is with the last complete snapshot before. A snapshot with '
    'nothing to compare with (the set''s first, the first after a definition change, or the oldest one '
    'retention left) has no rows here: domain_intersection_daily.restart says so. Incremental sync: keep the '
    'greatest published_at and purged_at seen (domain_intersection_daily) and re-read every (set, date) '
    'whose published_at or purged_at is later; the rows of a (set, snapshot_date) are replaced as a whole '
    'when it is republished. A date published before the set''s latest (a backfill, rerun or replay) also '
    'recomputes the comparison of the set''s next complete date, whose published_at moves with it. Purged '
    'snapshots keep their rows (purged_at set).';
COMMENT ON COLUMN domain_intersection_changes.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_changes.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_changes.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_changes.snapshot_date IS
    'The complete snapshot compared, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN domain_intersection_changes.previous_snapshot_date IS
    'The complete snapshot it is compared with.';
COMMENT ON COLUMN domain_intersection_changes.change IS
    '''new'' (not in the previous snapshot) or ''lost'' (in the previous snapshot, not in this one).';
COMMENT ON COLUMN domain_intersection_changes.referring_domain IS
    'The referring domain that appeared or disappeared.';
COMMENT ON COLUMN domain_intersection_changes.intersections_count IS
    'Its intersections_count (for ''lost'': in the previous snapshot); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection_changes.min_rank IS
    'Lowest rank over its target keys (for ''lost'': in the previous snapshot); NULL when none has one.';
COMMENT ON COLUMN domain_intersection_changes.backlinks IS
    'Backlinks summed over its target keys (for ''lost'': in the previous snapshot); NULL when none has a '
    'count.';
COMMENT ON COLUMN domain_intersection_changes.published_at IS
    'When snapshot_date was last (re)published (etl_snapshot.published_at): the incremental-sync key; when '
    'it moves, the rows of this (set, snapshot_date) were replaced as a whole.';
COMMENT ON COLUMN domain_intersection_changes.run_id IS 'The run whose answer is the snapshot.';
COMMENT ON COLUMN domain_intersection_changes.purged_at IS
    'When retention purged the snapshot (its rows stay here); NULL while kept.';

COMMENT ON VIEW domain_intersection_daily IS
    'One row per target set and snapshot date (a UTC calendar date) that a run finished, complete or failed: '
    'the size of the snapshot, what changed since the previous complete snapshot, what the runs of that date '
    'spent on the set. A complete snapshot stays complete when a later rerun of its date fails (last_run_id '
    'and last_error say so); a date still being fetched is listed once a run finishes it. Measures are NULL '
    'on failed dates; new/lost/changed are NULL on restarts. Purged snapshots stay, with purged_at set '
    '(their rows leave latest and history). Incremental sync: keep the greatest published_at and purged_at '
    'seen (domain_intersection_daily) and re-read every (set, date) whose published_at or purged_at is '
    'later; a date published before the set''s latest (a backfill, rerun or replay) also recomputes the '
    'comparison of the set''s next complete date, whose published_at moves with it.';
COMMENT ON COLUMN domain_intersection_daily.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_daily.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_daily.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_daily.snapshot_date IS
    'The snapshot date, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN domain_intersection_daily.status IS
    '''complete'' (a run published the date''s snapshot) or ''failed'' (runs finished the set for the date, '
    'none completed it).';
COMMENT ON COLUMN domain_intersection_daily.distinct_domains IS
    'Distinct referring domains in the snapshot; NULL when failed (and for snapshots retention had dropped '
    'before migration 005).';
COMMENT ON COLUMN domain_intersection_daily.new_domains IS
    'Referring domains new since the previous complete snapshot; NULL on restart or failed.';
COMMENT ON COLUMN domain_intersection_daily.lost_domains IS
    'Referring domains gone since the previous complete snapshot; NULL on restart or failed.';
COMMENT ON COLUMN domain_intersection_daily.avg_rank IS
    'Average rank over the snapshot''s rows (referring domain x target key) that have one, 2 decimals; NULL '
    'when failed.';
COMMENT ON COLUMN domain_intersection_daily.total_backlinks IS
    'Backlinks summed over the snapshot''s rows; NULL when failed.';
COMMENT ON COLUMN domain_intersection_daily.cost_usd IS
    'What all runs of that date spent on the set, in USD as the API reported.';
COMMENT ON COLUMN domain_intersection_daily.definition_changed IS
    'True when the previous complete snapshot was fetched with another definition (targets, filters, limit '
    'or max_rows); false when failed or when there is no previous one.';
COMMENT ON COLUMN domain_intersection_daily.restart IS
    'True for a complete snapshot with nothing to compare with (the set''s first, the first after a '
    'definition change, or the oldest one retention left): new/lost/changed are NULL and '
    'domain_intersection_changes has no rows for it. NULL when failed, and for a snapshot retention had '
    'dropped before migration 005 (its measures are unknown).';
COMMENT ON COLUMN domain_intersection_daily.previous_snapshot_date IS
    'The latest complete snapshot before this one that was not purged when this one was published (compared '
    'with unless restart); NULL when none, and on failed dates.';
COMMENT ON COLUMN domain_intersection_daily.total_count IS
    'Referring domains the API said it has for the request (total_count); NULL when unknown, as on failed '
    'dates (since migration 005 they record none).';
COMMENT ON COLUMN domain_intersection_daily.expected_domains IS
    'Referring domains the snapshot should have: least(total_count, target_set.max_rows); NULL when '
    'total_count is.';
COMMENT ON COLUMN domain_intersection_daily.rows IS
    'Rows in the snapshot (referring domain x target key); NULL when failed.';
COMMENT ON COLUMN domain_intersection_daily.changed_rows IS
    'Rows in both this and the previous snapshot whose values differ (position aside); NULL on restart or '
    'failed.';
COMMENT ON COLUMN domain_intersection_daily.short IS
    'True when a complete snapshot has fewer distinct referring domains than expected_domains (the API '
    'returned fewer than it announced); false when failed; NULL when either count is unknown.';
COMMENT ON COLUMN domain_intersection_daily.published_at IS
    'When the snapshot was last (re)published; moves each time the (set, date) is published again (a rerun '
    'or replay), its rows in latest and changes then being replaced as a whole. NULL when failed. The '
    'incremental-sync key, with purged_at.';
COMMENT ON COLUMN domain_intersection_daily.run_id IS
    'complete: the run whose answer is the snapshot; failed: the latest run that failed the set.';
COMMENT ON COLUMN domain_intersection_daily.purged_at IS
    'When retention purged the snapshot (its rows left latest, history and domain_intersection; this row and '
    'its changes stay); NULL while kept. The incremental-sync key, with published_at.';
COMMENT ON COLUMN domain_intersection_daily.last_run_id IS
    'The latest run that finished the set for this date, complete or failed (differs from run_id when a '
    'rerun failed after the snapshot was published).';
COMMENT ON COLUMN domain_intersection_daily.last_error IS
    'Why that latest run failed the set; NULL when it completed it.';

COMMENT ON VIEW domain_intersection_breakdown IS
    'The six referring_links_* maps of domain_intersection_latest in long form, one row per (referring '
    'domain, target key, dimension, key), so a dashboard can group without JSON functions. Incremental sync: '
    'follows domain_intersection_latest (a set''s rows are replaced as a whole when one of its dates is '
    '(re)published).';
COMMENT ON COLUMN domain_intersection_breakdown.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_breakdown.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_breakdown.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_breakdown.snapshot_date IS
    'Date of the set''s latest complete snapshot, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN domain_intersection_breakdown.referring_domain IS 'The referring domain.';
COMMENT ON COLUMN domain_intersection_breakdown.target_key IS 'Key of the target in the request (1..20).';
COMMENT ON COLUMN domain_intersection_breakdown.target IS 'The requested target of target_key.';
COMMENT ON COLUMN domain_intersection_breakdown.dimension IS
    '''tld'' (referring_links_tld), ''link_type'' (referring_links_types), ''attribute'' '
    '(referring_links_attributes), ''platform'' (referring_links_platform_types), ''semantic_location'' '
    '(referring_links_semantic_locations) or ''country'' (referring_links_countries).';
COMMENT ON COLUMN domain_intersection_breakdown.key IS
    'The map''s key as the API gave it; "" (no semantic element, unknown country) is kept.';
COMMENT ON COLUMN domain_intersection_breakdown.links IS
    'Links for that key (count); NULL when the API gave something other than a number.';

COMMENT ON VIEW domain_intersection_history IS
    'The history as ranges: one row per target set, referring domain, target key and run of consecutive '
    'complete snapshots with identical values (position aside: it is per snapshot, in '
    'domain_intersection_order, and not in this view). The row holds for the complete snapshot dates in '
    '[valid_from, valid_to): valid_to is exclusive and NULL while current. A date inside a range that is not '
    'a complete snapshot (failed, never run) is not a snapshot: domain_intersection_daily lists which are. A '
    'referring domain lost at a snapshot ends its range there; one that comes back starts a new one. Purged '
    'snapshots leave: ranges reaching past them start at the oldest kept snapshot. Incremental sync: '
    'publishing a date D (its daily.published_at later than the last sync) rewrites the set''s rows with '
    'valid_to NULL or >= D; a purge (daily.purged_at) deletes or trims rows before the oldest kept snapshot.';
COMMENT ON COLUMN domain_intersection_history.job IS 'Job name.';
COMMENT ON COLUMN domain_intersection_history.target_set IS 'Target set name.';
COMMENT ON COLUMN domain_intersection_history.target_set_id IS 'target_set.target_set_id.';
COMMENT ON COLUMN domain_intersection_history.referring_domain IS
    'The referring domain (the API''s per-target "target" field).';
COMMENT ON COLUMN domain_intersection_history.target_key IS
    'Key of the target in the request, 1..20 (its place in target_set.targets).';
COMMENT ON COLUMN domain_intersection_history.valid_from IS
    'First complete snapshot date with these values (inclusive), a UTC calendar date (the night the data is '
    'for).';
COMMENT ON COLUMN domain_intersection_history.valid_to IS
    'The complete snapshot date from which these values no longer hold (exclusive: the range is [valid_from, '
    'valid_to)); NULL while current, i.e. in the set''s latest complete snapshot.';
COMMENT ON COLUMN domain_intersection_history.is_current IS
    'True when the row is in the set''s latest complete snapshot (valid_to IS NULL).';
COMMENT ON COLUMN domain_intersection_history.last_snapshot_date IS
    'The last complete snapshot date (not purged) with these values: the latest one before valid_to.';
COMMENT ON COLUMN domain_intersection_history.target IS
    'The requested target of target_key (target_set.targets[target_key]).';
COMMENT ON COLUMN domain_intersection_history.intersections_count IS
    'How many of the set''s targets the referring domain links to (the item''s summary; the same in every '
    'row of the item); NULL when the API gave none.';
COMMENT ON COLUMN domain_intersection_history.type IS
    'The API''s type of the per-target object, as given; NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.rank IS
    'Rank of the referring domain (0..1000, or 0..100 with the job''s rank_scale: one_hundred); NULL when '
    'not given.';
COMMENT ON COLUMN domain_intersection_history.backlinks IS
    'Backlinks from the referring domain to the target (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.first_seen IS
    'When the API first saw a link from the referring domain to the target (timestamptz, as the API gave it '
    'in UTC); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.lost_date IS
    'When those links were lost (timestamptz); NULL while live or when not given.';
COMMENT ON COLUMN domain_intersection_history.backlinks_spam_score IS
    'Spam score of those backlinks, 0..100; NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.broken_backlinks IS
    'Broken backlinks (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.broken_pages IS
    'Broken pages linked to (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_domains IS
    'The API''s referring_domains of this pair (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_domains_nofollow IS
    'The API''s referring_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_main_domains IS
    'The API''s referring_main_domains (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_main_domains_nofollow IS
    'The API''s referring_main_domains_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_ips IS
    'The API''s referring_ips (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_subnets IS
    'The API''s referring_subnets (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_pages IS
    'The API''s referring_pages (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_pages_nofollow IS
    'The API''s referring_pages_nofollow (count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_links_tld IS
    'Links per TLD (jsonb object key -> count, as the API gave it; long form in '
    'domain_intersection_breakdown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_links_types IS
    'Links per link type (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_links_attributes IS
    'Links per link attribute, e.g. nofollow (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_links_platform_types IS
    'Links per platform type of the linking page (jsonb object key -> count); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_links_semantic_locations IS
    'Links per semantic location in the page (jsonb object key -> count; "" = none); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.referring_links_countries IS
    'Links per country (jsonb object key -> count; "" = unknown); NULL when not given.';
COMMENT ON COLUMN domain_intersection_history.extra IS
    'API fields this version does not know, as a jsonb object: the per-target object''s own unknown fields, '
    'and the item''s under "_item" and its summary''s under "_summary". Those item-level extras are stored '
    'once per item: only in the row of the item''s lowest target key (the item''s other rows lack them). '
    'NULL when there are none.';
COMMENT ON COLUMN domain_intersection_history.run_id IS
    'The run whose published answer first had these values (of a migrated row: the run that last wrote it '
    'before migration 005).';

-- ---------------------------------------------------------------------------
-- etl_run_summary, recreated by 006 as 003 had it: 003's comments, then what
-- 005 changed

COMMENT ON VIEW etl_run_summary IS
    'One row per run of any job: outcome, duration, pages, rows, sets and cost.';
COMMENT ON COLUMN etl_run_summary.run_id IS 'etl_run.run_id.';
COMMENT ON COLUMN etl_run_summary.job IS 'Job name.';
COMMENT ON COLUMN etl_run_summary.snapshot_date IS 'The snapshot date the run wrote.';
COMMENT ON COLUMN etl_run_summary.status IS
    '''running'', ''succeeded'', ''partial'' (some sets failed) or ''failed''.';
COMMENT ON COLUMN etl_run_summary.started_at IS 'When the run started (a resumed run keeps its first start).';
COMMENT ON COLUMN etl_run_summary.finished_at IS 'End of the run; NULL while running or when it was killed.';
COMMENT ON COLUMN etl_run_summary.duration_seconds IS
    'finished_at - started_at in seconds (a resumed run counts from its first start); NULL when not '
    'finished.';
COMMENT ON COLUMN etl_run_summary.pages IS 'Pages loaded (as recorded when the run finished).';
COMMENT ON COLUMN etl_run_summary.failed_pages IS
    'Pages that failed after all their attempts (the page ledger, etl_page).';
COMMENT ON COLUMN etl_run_summary.rows IS 'Rows loaded (as recorded when the run finished).';
COMMENT ON COLUMN etl_run_summary.sets_complete IS 'Target sets the run completed.';
COMMENT ON COLUMN etl_run_summary.sets_failed IS 'Target sets that failed in the run.';
COMMENT ON COLUMN etl_run_summary.cost_usd IS 'What the API reported the run cost, in USD.';
COMMENT ON COLUMN etl_run_summary.error IS 'Why the run failed or was partial; NULL on success.';
COMMENT ON COLUMN etl_run_summary.replay_of IS
    'The run a replay re-did from the raw archive; NULL for runs that fetched from the API.';

COMMENT ON VIEW etl_run_summary IS
    'One row per run of any job: outcome, duration, pages, rows, sets and cost. snapshot_date is a UTC '
    'calendar date. Whether a date has a snapshot is domain_intersection_daily''s to say: a failed rerun of '
    'a complete date leaves its snapshot as it was.';
COMMENT ON COLUMN etl_run_summary.snapshot_date IS
    'The snapshot date the run fetched, a UTC calendar date (the night the data is for).';
COMMENT ON COLUMN etl_run_summary.pages IS
    'Pages loaded (etl_page status ''loaded''), as counted when the run finished.';
COMMENT ON COLUMN etl_run_summary.failed_pages IS
    'Pages of the run whose last attempt failed (etl_page status ''failed''); pages whose staged rows a '
    'later run discarded are not counted.';
COMMENT ON COLUMN etl_run_summary.rows IS
    'Rows its pages produced, as counted when the run finished (repeats across pages included, so it can '
    'exceed the rows of the snapshots).';

-- ---------------------------------------------------------------------------
-- Functions (sql/005_versioned_history.sql): the loader's, not for reports

COMMENT ON FUNCTION snapshot_rows(bigint, date) IS
    'snapshot_rows(p_set, p_date): the rows of set p_set''s snapshot of p_date as the old '
    'domain_intersection table had them (position from the order row covering the date). Meaningful for a '
    'complete date that is not purged (the domain_intersection view calls it for exactly those). SECURITY '
    'DEFINER and planned with nested loops off, so the report views need no right on the tables and never '
    'take a quadratic plan on stale statistics; sql/bi_readonly.sql grants EXECUTE on it to the BI role.';
COMMENT ON FUNCTION publish_snapshot(bigint, bigint, date, bigint) IS
    'publish_snapshot(p_run, p_set, p_date, p_total): makes the rows run p_run staged for set p_set '
    '(domain_intersection_pending) the snapshot of p_date, leaving every other complete date of the set as '
    'it was (a date republished in the middle splits the ranges covering it); p_total is the API''s '
    'total_count. Writes the control row (published_at = now()) and the change rows, and deletes the staged '
    'rows. outcome: ''published''; ''already'' (this run published the set before: nothing changes); '
    '''short'' (fewer rows staged than the ledger says were loaded: nothing is published). staged, ledger: '
    'those two counts; domains, expected_domains: of the snapshot. The caller holds the job''s lock; the '
    'set''s etl_run_set row is locked here.';

COMMENT ON FUNCTION snapshot_stats(bigint, date) IS
    'snapshot_stats(p_set, p_date): computes the size, average rank and backlinks of the snapshot of (p_set, '
    'p_date) into its etl_snapshot row, and what changed since the previous complete snapshot not purged '
    '(when of the same definition) into domain_intersection_change, replacing the date''s rows there. Called '
    'by publish_snapshot() for the date just published and for the complete date after it, whose comparison '
    'changes.';

COMMENT ON FUNCTION fail_snapshot(bigint, bigint, date, text) IS
    'fail_snapshot(p_run, p_set, p_date, p_error): run p_run failed set p_set on p_date. The date''s control '
    'row becomes ''failed'' unless it has a complete snapshot, which stays as it was (a failed rerun never '
    'hides it); last_run_id and last_error record the failure either way.';

COMMENT ON FUNCTION snapshot_cost(bigint, date) IS
    'snapshot_cost(p_set, p_date): sets etl_snapshot.cost_usd of (p_set, p_date) to what every run of that '
    'date spent on the set (etl_run_set.cost_usd summed), after any of them finished the set.';

COMMENT ON FUNCTION purge_snapshots(bigint, date) IS
    'purge_snapshots(p_set, p_cutoff): retention for one target set. Complete snapshots before p_cutoff are '
    'purged (control rows kept, with purged_at), except the set''s newest complete one, which is never '
    'removed. Versions and order rows only purged dates used are deleted; those reaching past them start at '
    'the oldest kept date. Row locks only (DELETE/UPDATE), no DDL. Returns the number of dates purged.';

-- ---------------------------------------------------------------------------
-- schema_migrations (src/migrate.c), when it exists

DO $$
BEGIN
    IF to_regclass('schema_migrations') IS NOT NULL THEN
        COMMENT ON TABLE schema_migrations IS
            'The migrations (sql/NNN_*.sql, embedded in the binary) applied to this schema, one row '
            'each; written by intersect-etl migrate, which refuses a schema with an edited or unknown one.';
        COMMENT ON COLUMN schema_migrations.name IS 'File name of the migration, e.g. 007_comments.sql.';
        COMMENT ON COLUMN schema_migrations.checksum IS
            'md5 of the migration''s text as applied; migrate refuses the schema when it differs.';
        COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied.';
    END IF;
END $$;

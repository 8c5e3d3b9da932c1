-- 001_initial.sql - the tables of intersect-etl.
--
-- Applied by `intersect-etl migrate` with search_path set to the job's schema,
-- so no name here is schema-qualified. Column names of domain_intersection are
-- the API's own and are the interface reports and dashboards bind to: add,
-- never rename.

-- One row per (job, target set): what is asked for, and a hash of it so a
-- change of definition is visible in the history.
CREATE TABLE target_set (
    target_set_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job            text        NOT NULL,
    name           text        NOT NULL,
    targets        text[]      NOT NULL,
    request        jsonb       NOT NULL,   -- the request minus offset/limit; never holds credentials
    request_hash   text        NOT NULL,   -- md5 of the request with page_limit and max_rows
                                           -- (jsonb text is canonical, so equal definitions hash equal)
    page_limit     integer     NOT NULL,
    max_rows       bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job, name)
);

-- One row per run of a job for one snapshot date.
CREATE TABLE etl_run (
    run_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job            text        NOT NULL,
    snapshot_date  date        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    status         text        NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    pages          integer     NOT NULL DEFAULT 0,
    rows           bigint      NOT NULL DEFAULT 0,
    cost_usd       numeric(14, 6) NOT NULL DEFAULT 0,
    error          text,
    host           text,
    pid            integer,
    version        text
);
CREATE INDEX etl_run_job_date ON etl_run (job, snapshot_date, run_id);

-- One row per (run, target set): the set's outcome in that run. A snapshot is
-- complete exactly when its row here says 'complete'.
CREATE TABLE etl_run_set (
    run_id         bigint      NOT NULL REFERENCES etl_run ON DELETE CASCADE,
    target_set_id  bigint      NOT NULL REFERENCES target_set,
    request_hash   text        NOT NULL,   -- the definition this run fetched
    status         text        NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'complete', 'failed')),
    total_count    bigint,                 -- as the API reported on the first page
    pages          integer     NOT NULL DEFAULT 0,
    rows           bigint      NOT NULL DEFAULT 0,
    cost_usd       numeric(14, 6) NOT NULL DEFAULT 0,
    error          text,
    finished_at    timestamptz,
    PRIMARY KEY (run_id, target_set_id)
);

-- The page ledger: a page is 'loaded' exactly when its rows are, because both
-- commit in one transaction. A resumed run skips loaded pages.
CREATE TABLE etl_page (
    run_id             bigint      NOT NULL REFERENCES etl_run ON DELETE CASCADE,
    target_set_id      bigint      NOT NULL REFERENCES target_set,
    page_offset        bigint      NOT NULL,
    page_limit         integer     NOT NULL,
    status             text        NOT NULL CHECK (status IN ('loaded', 'failed')),
    attempts           integer     NOT NULL DEFAULT 1,
    http_status        integer,
    api_status_code    integer,
    api_status_message text,
    task_id            text,
    items              integer,
    rows               integer,
    total_count        bigint,
    cost_usd           numeric(14, 6),
    duration_ms        integer,
    error              text,
    finished_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, target_set_id, page_offset)
);

-- The facts: one row per referring domain and target key, per snapshot.
-- No foreign keys here on purpose: this table takes millions of rows per
-- load, the loader is its only writer and always writes ids it has just read
-- from target_set and etl_run.
CREATE TABLE domain_intersection (
    snapshot_date                      date        NOT NULL,
    target_set_id                      bigint      NOT NULL,
    referring_domain                   text        NOT NULL,
    target_key                         smallint    NOT NULL CHECK (target_key BETWEEN 1 AND 20),
    target                             text        NOT NULL,  -- the requested target for target_key
    position                           integer     NOT NULL,  -- place in the API's result order (offset + index)
    intersections_count                integer,
    type                               text,
    rank                               integer,
    backlinks                          bigint,
    first_seen                         timestamptz,
    lost_date                          timestamptz,
    backlinks_spam_score               integer,
    broken_backlinks                   bigint,
    broken_pages                       bigint,
    referring_domains                  bigint,
    referring_domains_nofollow         bigint,
    referring_main_domains             bigint,
    referring_main_domains_nofollow    bigint,
    referring_ips                      bigint,
    referring_subnets                  bigint,
    referring_pages                    bigint,
    referring_pages_nofollow           bigint,
    referring_links_tld                jsonb,
    referring_links_types              jsonb,
    referring_links_attributes         jsonb,
    referring_links_platform_types     jsonb,
    referring_links_semantic_locations jsonb,
    referring_links_countries          jsonb,
    extra                              jsonb,     -- fields the API added that this version does not know
    run_id                             bigint      NOT NULL,  -- the run that inserted or last changed this row
    PRIMARY KEY (target_set_id, snapshot_date, referring_domain, target_key)
);
CREATE INDEX domain_intersection_snapshot ON domain_intersection (snapshot_date, target_set_id);

-- Rows of a snapshot being fetched. A set's pages land here first, each in
-- the transaction of its ledger row; when the set's answer is complete, one
-- transaction applies the difference to domain_intersection (new rows in,
-- changed rows updated, rows the answer no longer has deleted). So the
-- published snapshot only ever changes from one complete answer to the next,
-- and an unchanged rerun writes nothing there.
CREATE TABLE domain_intersection_pending (LIKE domain_intersection INCLUDING DEFAULTS);
ALTER TABLE domain_intersection_pending
    ADD PRIMARY KEY (run_id, target_set_id, referring_domain, target_key);

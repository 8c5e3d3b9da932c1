-- intersect-etl migration 008: what a page cost is every answer it was charged for.
--
-- The API charges a task that completed (status 20000) whatever the loader
-- then does with it: an answer to another request, a page with a field out
-- of range, a page the database refused, each retried or failed, was paid
-- for. etl_page.cost_usd now sums every charged answer of the page over its
-- attempts (earlier processes' included), and the cost ceilings count it.
-- The sum of several attempts may pass the per-answer bound numeric(14,6)
-- was chosen for, so the column takes any numeric, as the run's and the
-- set's sums already do (005). Relaxing a numeric's typmod rewrites nothing;
-- the brief ACCESS EXCLUSIVE lock is taken with the migration's lock_timeout.

ALTER TABLE etl_page ALTER COLUMN cost_usd TYPE numeric;
UPDATE etl_page SET cost_usd = 0 WHERE cost_usd IS NULL;
ALTER TABLE etl_page ALTER COLUMN cost_usd SET DEFAULT 0;
ALTER TABLE etl_page ALTER COLUMN cost_usd SET NOT NULL;

COMMENT ON COLUMN etl_page.cost_usd IS
    'What the API charged for this page''s answers, in USD, summed over every attempt of this run (an answer '
    'retried, refused or failed for another reason was charged too; errored tasks are not); 0 when none was.';

-- 004: the raw archive keeps a gzip body as it came over the wire.
--
-- Storing the decoded text (~2 MB for a page of 1000 items) made PostgreSQL
-- check the encoding of, compress (lz4) and write ten times the bytes the API
-- had sent: at 1M rows it took 31% of a run's time. The fetcher now decodes
-- gzip itself and keeps the compressed bytes (~200 kB a page), which go into
-- body_gzip as they are. STORAGE EXTERNAL: kept out of line and not
-- compressed a second time (it would not shrink). `body` keeps the text of
-- a response the API sent uncompressed, and every body archived before this
-- migration; exactly one of the two is set.
--
-- To read an archived gzip body from a shell:
--   psql -XAtc "SELECT encode(body_gzip, 'base64') FROM raw_page WHERE ..." | base64 -d | gunzip
ALTER TABLE raw_page ALTER COLUMN body DROP NOT NULL;
ALTER TABLE raw_page ADD COLUMN body_gzip bytea;
ALTER TABLE raw_page ALTER COLUMN body_gzip SET STORAGE EXTERNAL;
ALTER TABLE raw_page ADD CONSTRAINT raw_page_one_body
    CHECK ((body IS NULL) <> (body_gzip IS NULL));

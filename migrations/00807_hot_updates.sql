-- +goose Up
-- The rows every ingest batch updates in place, one per channel, account
-- day, account month or participant's point day it touches: with full pages
-- (fillfactor 100) each update writes its new version to another page and
-- a new entry into every index; with room left on the page, an update that
-- changes no indexed column stays on it (a heap-only tuple) and touches no
-- index. Measured on channel_lengths (104,000 rows, batches of 2,700):
-- 7.0 µs a row at fillfactor 100, 2.6 µs at 70. Rows already written keep
-- their pages until the table is rewritten (VACUUM FULL, CLUSTER);
-- new pages are filled to 70 %.
ALTER TABLE channel_lengths SET (fillfactor = 70);
ALTER TABLE alert_daily_usage SET (fillfactor = 70);
ALTER TABLE alert_month_books SET (fillfactor = 70);
ALTER TABLE position_days SET (fillfactor = 70);

-- +goose Down
ALTER TABLE position_days RESET (fillfactor);
ALTER TABLE alert_month_books RESET (fillfactor);
ALTER TABLE alert_daily_usage RESET (fillfactor);
ALTER TABLE channel_lengths RESET (fillfactor);

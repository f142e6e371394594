-- +goose Up
-- The missing-data hook (settlement/alerts/postgres/missing.go) upserts one
-- alert_meters row per meter an ingest batch touches, and each upsert moves
-- last_end forward. alert_meters_silent indexed (slot, last_end), with a
-- predicate on last_end and alerted_end, so no such update could stay on
-- its page (a heap-only tuple): each wrote a new row version elsewhere and
-- new entries into both indexes, the largest alert statement of
-- `gridsettle bench ingest` with 16-read records. No index holds last_end
-- or alerted_end any more; the meters a batch must read are found by:
--
--  - silence_floor, per reads partition: no meter of the partition that is
--    neither alerted for its gap nor uncovered has a last end before it.
--    While the window before the batch's watermark stays before the floor,
--    no such meter can be silent and none is read; otherwise the batch reads
--    the partition's meters not alerted (alert_meters_slot) and sets the
--    floor again. A batch lowers it to the last ends it writes. NULL: not
--    known, read the meters.
--  - uncovered, per meter: silent for the window by its partition's
--    watermark and not alerted, because no assignment covered the watermark;
--    read every batch (alert_meters_uncovered), as an assignment may cover
--    a later watermark; or written by a quarantine replay, which keeps no
--    floor, so that the partition's next batch evaluates it.
--
-- Both change only when a meter's candidacy does, so a batch's update of a
-- meter reporting again changes no indexed column.
ALTER TABLE alert_meters ADD COLUMN uncovered boolean NOT NULL DEFAULT false;
ALTER TABLE alert_watermarks ADD COLUMN silence_floor timestamptz;

-- Every floor starts unknown: the first batch of each partition reads its
-- meters not alerted, as every batch did, uncovered ones with them, and
-- sets both.
DROP INDEX alert_meters_silent;
CREATE INDEX alert_meters_slot ON alert_meters (slot);
CREATE INDEX alert_meters_uncovered ON alert_meters (slot) WHERE uncovered;

-- Room on each page for the new versions of its rows (as
-- migrations/00807_hot_updates.sql did for the other per-batch rows). A
-- catch-up batch updates most of a partition's meters, and the versions it
-- leaves are pruned only once the other partitions' batches running
-- meanwhile have ended: with `gridsettle bench ingest --reads 2000000`,
-- 66 % of the updates stayed on their page at fillfactor 70, 95 % at 50.
ALTER TABLE alert_meters SET (fillfactor = 50);

-- +goose Down
ALTER TABLE alert_meters RESET (fillfactor);
DROP INDEX alert_meters_uncovered;
DROP INDEX alert_meters_slot;
ALTER TABLE alert_watermarks DROP COLUMN silence_floor;
ALTER TABLE alert_meters DROP COLUMN uncovered;
CREATE INDEX alert_meters_silent ON alert_meters (slot, last_end)
    WHERE alerted_end IS NULL OR alerted_end < last_end;

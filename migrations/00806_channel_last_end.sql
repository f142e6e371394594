-- +goose Up
-- The end of each channel's latest stored block (start + values ×
-- interval_seconds, the greatest over every stored block of the channel,
-- NULL while it has none), kept by every writer of read_blocks under the
-- channel's row lock (settlement/ingest/readstore/doc.go).
--
-- Why: a head-end sends a channel's day in several records, in order. Each
-- batch looked up the stored blocks overlapping its range of the channel
-- (settlement/ingest/readstore/reads.go, loadReadState); in that common case
-- the look-up returns nothing, yet it visits and fetches every earlier block
-- of the day to test its end: with records of 16 reads, the largest
-- statement of `gridsettle bench ingest` (2.0 s of ~8.5 s of statement time
-- for 2 M reads, no row returned). A batch whose range of a channel starts
-- at or after last_end cannot overlap a stored block and skips it.
ALTER TABLE channel_lengths ADD COLUMN last_end timestamptz;

-- Exactly from what is stored: blocks written before this column was kept
-- (by ingest, or converted from the old reads table by
-- migrations/00801_reads_to_blocks.sql).
UPDATE channel_lengths c SET last_end = b.last_end
FROM (SELECT meter_id, channel,
             max(start + cardinality(values_micro) * interval_seconds * interval '1 second') AS last_end
      FROM read_blocks GROUP BY meter_id, channel) b
WHERE b.meter_id = c.meter_id AND b.channel = c.channel;

-- Ingest no longer looks up the blocks of a channel without a row (it has
-- none: every writer of read_blocks creates the row). Ingest always
-- created it; any channel with blocks but no row (loaded by hand) gets
-- one, with the length of its earliest block, as ingest would have.
INSERT INTO channel_lengths (meter_id, channel, interval_seconds, last_end)
SELECT f.meter_id, f.channel, f.interval_seconds, e.last_end
FROM (SELECT DISTINCT ON (meter_id, channel) meter_id, channel, interval_seconds
      FROM read_blocks ORDER BY meter_id, channel, start, version) f
JOIN (SELECT meter_id, channel,
             max(start + cardinality(values_micro) * interval_seconds * interval '1 second') AS last_end
      FROM read_blocks GROUP BY meter_id, channel) e USING (meter_id, channel)
WHERE NOT EXISTS (SELECT FROM channel_lengths c WHERE c.meter_id = f.meter_id AND c.channel = f.channel);

-- Down keeps the rows Up created: they hold what ingest would have stored.
-- +goose Down
ALTER TABLE channel_lengths DROP COLUMN last_end;

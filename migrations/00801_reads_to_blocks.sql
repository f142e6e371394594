-- +goose Up
-- The old reads table (migrations/00100_ingest.sql), one row per current
-- read, becomes read blocks (migrations/00800_read_blocks.sql) and is
-- dropped. Each old read is the current version of its interval, so it
-- becomes one stored version: the reads of one input record (same version,
-- source and lineage) at consecutive interval starts of one channel and UTC
-- day form one block, found with set-based SQL (gaps and islands) so that
-- millions of rows convert in one INSERT ... SELECT.

-- Values are stored exactly as micro-kWh (bigint): an old value that is not
-- a whole number of micro-kWh, is negative (readstore.NoRead is -1) or does
-- not fit a bigint cannot be stored, and rounding it would change a
-- settled quantity silently. The contract forbids all three, so finding one
-- means the table holds something ingest never wrote: stop and say which.
-- +goose StatementBegin
DO $$
DECLARE
    bad record;
BEGIN
    SELECT meter_id, channel, interval_start, interval_seconds, value INTO bad
    FROM reads
    WHERE value < 0 OR value > 9223372036854.775807 OR value * 1000000 <> trunc(value * 1000000)
       OR interval_seconds <= 0 OR interval_start <> date_trunc('second', interval_start)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot convert reads to read_blocks: the read of meter % channel % at % UTC (interval % s, value % kWh) %',
            bad.meter_id, bad.channel, bad.interval_start AT TIME ZONE 'UTC', bad.interval_seconds, bad.value,
            CASE
                WHEN bad.interval_seconds <= 0 THEN 'has no positive interval length'
                WHEN bad.interval_start <> date_trunc('second', bad.interval_start) THEN 'does not start on a whole second'
                WHEN bad.value < 0 THEN 'is negative'
                WHEN bad.value > 9223372036854.775807 THEN 'does not fit a bigint of micro-kWh'
                ELSE 'has more than 6 decimal places, so it is not a whole number of micro-kWh and would have to be rounded'
            END
            USING ERRCODE = 'data_exception',
                  HINT = 'Correct or remove the read in reads, then migrate again; nothing was converted.';
    END IF;
END
$$;
-- +goose StatementEnd

-- A block lies in the partition of its start's month; all its reads share
-- that month, since no block crosses a UTC day.
SELECT read_blocks_partition(m)
FROM (SELECT DISTINCT date_trunc('month', interval_start, 'UTC') AS m FROM reads) months;

-- Current statistics, so that the look-up of stored versions below is
-- planned as the join it is (read_blocks may hold blocks ingest wrote).
ANALYZE read_blocks;

-- Islands per (meter, channel) in interval start order (the primary key's
-- order): a read starts a new block unless the previous read of the channel
-- is the same record's (version, source, lineage, interval length), ends
-- where it starts and lies in the same UTC day and the same run of 288
-- intervals of that day (at most 288 values a block; every accepted length
-- is at least 300 s, so with them this never cuts). A read of another record
-- between two reads of one record is between their starts, so those two are
-- never consecutive: islands by channel and by record are the same, and the
-- channel's order needs no sort.
--
-- A read already stored in read_blocks with the same version (written by
-- ingest after 00800, or kept when this migration was undone and redone) is
-- not stored twice: two stored reads of one interval never share a version
-- (settlement/ingest/readstore/blocks.go, Current).
INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, quality,
                         source, topic, partition, "offset")
SELECT meter_id, channel, block_start, interval_seconds, version,
       array_agg((value * 1000000)::bigint ORDER BY interval_start),
       CASE WHEN bool_and(quality = 'A') THEN '' ELSE string_agg(quality, '' ORDER BY interval_start) END,
       source, topic, partition, "offset"
FROM (
    SELECT r.*,
           -- the start of the read's block: the latest block start so far
           max(CASE WHEN starts_block THEN interval_start END)
               OVER (PARTITION BY meter_id, channel ORDER BY interval_start) AS block_start
    FROM (
        SELECT r.*,
               lag(interval_start) OVER w IS NULL
               OR lag(interval_start) OVER w + lag(interval_seconds) OVER w * interval '1 second' <> interval_start
               OR lag(interval_seconds) OVER w <> interval_seconds
               OR lag(version) OVER w <> version
               OR lag(source) OVER w <> source
               OR lag(topic) OVER w <> topic
               OR lag(partition) OVER w <> partition
               OR lag("offset") OVER w <> "offset"
               OR lag(day) OVER w <> day
               OR lag(run) OVER w <> run AS starts_block
        FROM (
            SELECT r.*, (r.interval_start AT TIME ZONE 'UTC')::date AS day,
                   CASE WHEN r.interval_seconds >= 300 THEN 0 -- 288 of them span the day
                        ELSE floor(extract(epoch FROM r.interval_start - date_trunc('day', r.interval_start, 'UTC'))
                                   / (288 * r.interval_seconds))
                   END AS run
            FROM reads r
            WHERE NOT EXISTS (
                SELECT 1 FROM read_versions v
                WHERE v.meter_id = r.meter_id AND v.channel = r.channel
                  AND v.interval_start = r.interval_start AND v.version = r.version)
        ) r
        WINDOW w AS (PARTITION BY meter_id, channel ORDER BY interval_start)
    ) r
) r
GROUP BY meter_id, channel, block_start, interval_seconds, version, source, topic, partition, "offset";

DROP TABLE reads;

-- +goose Down
-- The old table again, as migrations/00100_ingest.sql made it, holding the
-- current reads. read_blocks keeps its blocks: they may hold superseded
-- versions and reads written since, and redoing the Up stores nothing twice.
CREATE TABLE reads (
    meter_id         text        NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('import', 'export')),
    interval_start   timestamptz NOT NULL,
    interval_seconds int         NOT NULL,
    value            numeric     NOT NULL,          -- kWh
    quality          text        NOT NULL CHECK (quality IN ('A', 'E', 'S')),
    version          bigint      NOT NULL,
    source           text        NOT NULL DEFAULT '',
    topic            text        NOT NULL,
    partition        int         NOT NULL,
    "offset"         bigint      NOT NULL,
    PRIMARY KEY (meter_id, channel, interval_start)
);
CREATE INDEX reads_interval_start ON reads (interval_start);

INSERT INTO reads (meter_id, channel, interval_start, interval_seconds, value, quality, version, source,
                   topic, partition, "offset")
SELECT meter_id, channel, interval_start, interval_seconds, trim_scale(value), quality, version, source,
       topic, partition, "offset"
FROM current_reads;

-- +goose Up
-- The read store (settlement/ingest/readstore/doc.go): reads are kept in
-- blocks, one row per applied input record and UTC day, never one row per
-- read, and every version is kept. A correction appends a block with a
-- higher version; it never rewrites the block it supersedes. The current
-- read of (meter_id, channel, interval start) is the one of highest version
-- among the blocks that hold it.
--
-- Why blocks: measured on a 2-core machine (cmd/gridsettle/PERFORMANCE.md),
-- a row per read costs ~180 bytes on disk and caps COPY near 200,000 reads/s; a
-- row per record of 16 reads costs ~20 bytes per read and COPYs at over
-- 1.5 M reads/s.
--
-- A block never crosses a UTC day boundary (ingest cuts a record that
-- does), so the blocks that can hold a read starting at t all start in
-- [utc day of t, t]: every look-up by key is a bounded index range, however
-- long the records producers send (up to 10,000 values).
CREATE TABLE read_blocks (
    meter_id         text        NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('import', 'export')),
    start            timestamptz NOT NULL,          -- start of values[1]
    interval_seconds int         NOT NULL,
    version          bigint      NOT NULL,
    -- micro-kWh, exact (values have at most 6 decimal places by value).
    -- A NULL element is an interval this record did not change (its read
    -- there was stale or a duplicate): only reads that became current are
    -- stored, so every stored read is a version that was current once.
    values_micro     bigint[]    NOT NULL,
    -- '' when every stored read is actual (A), else one letter per element
    quality          text        NOT NULL DEFAULT '',
    source           text        NOT NULL DEFAULT '',
    -- lineage: the input record
    topic            text        NOT NULL,
    partition        int         NOT NULL,
    "offset"         bigint      NOT NULL,
    CHECK (cardinality(values_micro) BETWEEN 1 AND 288),
    CHECK (quality = '' OR length(quality) = cardinality(values_micro))
) PARTITION BY RANGE (start);
CREATE INDEX read_blocks_key ON read_blocks (meter_id, channel, start);
-- The scheduler asks, every minute, for the span of stored reads and which
-- operating days have any (settlement/postgres/scheduler.go): without an
-- index leading on start, each asking scans the whole store. Blocks arrive
-- roughly in time order, so this index grows at its right edge.
CREATE INDEX read_blocks_start ON read_blocks (start);

-- Monthly partitions by block start, created ahead by ingest (and by
-- read_blocks_partition below, which is idempotent and safe to race). None
-- is ever dropped automatically: true-ups, resettlements, explain and export
-- regeneration need old versions.
--
-- Ingest runs as the runtime role, which does not own read_blocks and so
-- may not create its partitions (migrations/roles.go): the function runs
-- with its owner's rights (SECURITY DEFINER), in the schema it was created
-- in, and can do nothing but create the partition of one month.
-- +goose StatementBegin
CREATE FUNCTION read_blocks_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    lo   timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := lo + interval '1 month';
    name text := 'read_blocks_' || to_char(lo AT TIME ZONE 'UTC', 'YYYY"m"MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF read_blocks FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        -- another session created it first
    END;
    RETURN name;
END
$$;
-- +goose StatementEnd

-- Every stored read version, and the current reads, one row per read as
-- the old reads table had them: for people and tests reading by hand. The
-- code reads blocks (settlement/ingest/readstore/blocks.go), never these.
CREATE VIEW read_versions AS
SELECT b.meter_id, b.channel,
       b.start + (v.i - 1) * b.interval_seconds * interval '1 second' AS interval_start,
       b.interval_seconds, v.micro * 0.000001 AS value,
       CASE WHEN b.quality = '' THEN 'A' ELSE substr(b.quality, v.i::int, 1) END AS quality,
       b.version, b.source, b.topic, b.partition, b."offset"
FROM read_blocks b, unnest(b.values_micro) WITH ORDINALITY AS v(micro, i)
WHERE v.micro IS NOT NULL;

CREATE VIEW current_reads AS
SELECT DISTINCT ON (meter_id, channel, interval_start) *
FROM read_versions
ORDER BY meter_id, channel, interval_start, version DESC;

SELECT read_blocks_partition(now() - interval '1 month');
SELECT read_blocks_partition(now());
SELECT read_blocks_partition(now() + interval '1 month');

-- +goose Down
DROP VIEW current_reads, read_versions;
DROP FUNCTION read_blocks_partition(timestamptz);
DROP TABLE read_blocks;

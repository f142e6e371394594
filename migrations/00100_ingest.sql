-- +goose Up
-- Consumed positions, stored in the same transaction as every effect
-- (settlement/README.md "Exactly-once"). next_offset moves past transaction
-- markers too, so lag reaches 0 once everything committed is applied.
CREATE TABLE ingest_offsets (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL DEFAULT 0,
    -- latest interval end seen on this partition: the event-time watermark
    watermark   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Current reads only: one row per (meter, channel, interval start), the
-- highest version seen, with its lineage (the input record it came from).
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

-- The first interval length seen for a meter channel is its length.
CREATE TABLE channel_lengths (
    meter_id         text NOT NULL,
    channel          text NOT NULL,
    interval_seconds int  NOT NULL,
    PRIMARY KEY (meter_id, channel)
);

-- Current prices: one row per (market, settlement point, interval start).
CREATE TABLE prices (
    market           text        NOT NULL CHECK (market IN ('RT', 'DA')),
    settlement_point text        NOT NULL,
    interval_start   timestamptz NOT NULL,
    interval_seconds int         NOT NULL,
    price            numeric     NOT NULL,          -- currency per MWh
    currency         text        NOT NULL,
    version          bigint      NOT NULL,
    topic            text        NOT NULL,
    partition        int         NOT NULL,
    "offset"         bigint      NOT NULL,
    PRIMARY KEY (market, settlement_point, interval_start)
);

-- The first interval length seen for a (market, settlement point).
CREATE TABLE price_lengths (
    market           text NOT NULL,
    settlement_point text NOT NULL,
    interval_seconds int  NOT NULL,
    PRIMARY KEY (market, settlement_point)
);

-- +goose Down
DROP TABLE price_lengths, prices, channel_lengths, reads, ingest_offsets;

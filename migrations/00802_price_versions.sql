-- +goose Up
-- Every superseded price version (settlement/README.md "Every version of every
-- input is kept"): prices keeps the current one per key; when a correction
-- replaces it, ingest (settlement/ingest/readstore/prices.go) moves the
-- replaced row here in the same transaction, with the input record that
-- replaced it. A row is never updated: a version is superseded once.
CREATE TABLE price_versions (
    market               text        NOT NULL CHECK (market IN ('RT', 'DA')),
    settlement_point     text        NOT NULL,
    interval_start       timestamptz NOT NULL,
    interval_seconds     int         NOT NULL,
    price                numeric     NOT NULL,          -- currency per MWh
    currency             text        NOT NULL,
    version              bigint      NOT NULL,
    -- lineage: the input record of this version
    topic                text        NOT NULL,
    partition            int         NOT NULL,
    "offset"             bigint      NOT NULL,
    -- the input record whose version replaced this one
    superseded_topic     text        NOT NULL,
    superseded_partition int         NOT NULL,
    superseded_offset    bigint      NOT NULL,
    -- two versions of a key never share a number (a same-version different
    -- price is quarantined as a conflict), and listings read in this order
    PRIMARY KEY (market, settlement_point, interval_start, version)
);

-- +goose Down
DROP TABLE price_versions;

-- +goose Up
-- Rejected input records (meters/README.md "Validation and quarantine"),
-- written in the transaction that advances past their offset. One row per input
-- record: a replay updates the row (replayed_at when it is applied, reason and
-- detail when it fails again), it never adds one.
CREATE TABLE quarantine (
    id          bigserial   PRIMARY KEY,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    topic       text        NOT NULL,
    partition   int         NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,       -- the original record value, unchanged
    received_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (topic, partition, "offset")
);
CREATE INDEX quarantine_reason ON quarantine (reason, id);
CREATE INDEX quarantine_topic ON quarantine (topic, id);

-- Live (unsettled) energy per participant x settlement point x settlement
-- interval, kept as partial sums per slot so that consumers of different
-- input partitions never contend on one row: slot is the ami.interval-reads
-- partition whose consumer applied the reads, -1 for quarantine replays. The
-- position is the sum over slots; prices and amounts are derived when read.
CREATE TABLE positions (
    participant_id   text        NOT NULL,
    settlement_point text        NOT NULL,
    interval_start   timestamptz NOT NULL,
    slot             int         NOT NULL,
    energy_mwh       numeric     NOT NULL,  -- exact: Σ (import − export) kWh × loss factor / 1000
    PRIMARY KEY (participant_id, settlement_point, interval_start, slot)
);
CREATE INDEX positions_interval ON positions (interval_start);

-- +goose Down
DROP TABLE positions, quarantine;

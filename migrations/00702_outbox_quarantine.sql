-- +goose Up
-- What keeps an output stream moving when the log refuses it
-- (settlement/publish, "Poison rows and parked streams").
--
-- A row the broker refuses outright (larger than the topic accepts, or
-- invalid) is moved here from outbox in one transaction: its sequence is
-- then never published, and the rows after it go on.
CREATE TABLE outbox_quarantine (
    id             bigserial   PRIMARY KEY,
    topic          text        NOT NULL,
    partition      int         NOT NULL,
    seq            bigint      NOT NULL,
    record_id      text        NOT NULL,
    schema         text        NOT NULL,
    key            bytea,
    value          bytea       NOT NULL,
    headers        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL,  -- when the row was enqueued
    reason         text        NOT NULL CHECK (reason IN ('record_too_large', 'record_invalid')),
    detail         text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, seq)
);

-- The relay's own state of each stream, written only by its lease holder
-- (never in outbox_streams, whose row every enqueueing transaction locks
-- until it commits: the relay would wait behind ingest).
-- log_*: the last committed record the relay confirmed in the log, so the
-- next session reads the log's tail forward from there instead of
-- searching backwards through aborted transactions.
-- parked_*: the stream's topic or partition does not exist in the cluster
-- (deleted, or recreated with fewer partitions); the relay checks again
-- slowly instead of restarting in a loop, and clears it when it resumes.
CREATE TABLE outbox_relay (
    topic         text        NOT NULL,
    partition     int         NOT NULL,
    log_seq       bigint,
    log_offset    bigint,
    parked_reason text        CHECK (parked_reason IN ('topic_missing', 'partition_missing')),
    parked_at     timestamptz,
    PRIMARY KEY (topic, partition)
);

-- +goose Down
DROP TABLE outbox_relay, outbox_quarantine;

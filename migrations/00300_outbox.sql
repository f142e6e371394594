-- +goose Up
-- The transactional outbox (settlement/README.md "Exactly-once"). Every output
-- stream (topic, partition) has a gapless sequence handed out under the
-- stream row's lock, so sequence order is commit order and the relay can
-- never skip a row.
CREATE TABLE outbox_streams (
    topic     text   NOT NULL,
    partition int    NOT NULL,
    next_seq  bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE outbox (
    topic     text   NOT NULL,
    partition int    NOT NULL,
    seq       bigint NOT NULL,
    record_id text   NOT NULL,   -- the gridsettle-id header
    schema    text   NOT NULL,   -- the gridsettle-schema header
    key       bytea,
    value     bytea  NOT NULL,
    headers   jsonb  NOT NULL DEFAULT '[]',  -- extra headers: [{"key": k, "value": base64}]
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, seq),
    FOREIGN KEY (topic, partition) REFERENCES outbox_streams
);

-- +goose Down
DROP TABLE outbox, outbox_streams;

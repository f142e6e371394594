-- +goose Up
-- Wakes the outbox relay (settlement/publish) when rows commit: one
-- notification per output stream written by a statement, payload
-- "topic/partition" (Kafka topic names cannot contain '/'). Notifications are
-- delivered only at commit, and identical ones in a transaction are folded
-- into one, so a run that enqueues thousands of rows wakes each stream once.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridsettle_outbox', s.topic || '/' || s.partition)
    FROM (SELECT DISTINCT topic, partition FROM new_rows) s;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();

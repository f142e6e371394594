-- +goose Up
-- The outbox's foreign key to outbox_streams was checked per row (an index
-- lookup and a key-share lock of the stream row for every message), which
-- more than doubled the cost of writing a run's outbox rows (measured). It
-- guarded nothing: outbox.Writer.Enqueue upserts a stream's row
-- (INSERT ... ON CONFLICT DO UPDATE ... RETURNING next_seq) in the same
-- transaction before it writes any message of that stream, and keeps that
-- row locked until commit; no code deletes stream rows.
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_partition_fkey;

-- +goose Down
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_partition_fkey FOREIGN KEY (topic, partition) REFERENCES outbox_streams;

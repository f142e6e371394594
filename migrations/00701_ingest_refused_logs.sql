-- +goose Up
-- A partition whose input log ends below its stored position (the topic was
-- deleted and recreated, or the broker lost data) is refused: ingest stops
-- consuming it and records here what it saw, so that the refusal survives a
-- restart or a rebalance and shows in the status, until an operator sets
-- next_offset and clears refused_at (settlement/ingest/doc.go).
ALTER TABLE ingest_offsets
    ADD COLUMN refused_at      timestamptz,
    ADD COLUMN refused_log_end bigint;

-- +goose Down
ALTER TABLE ingest_offsets DROP COLUMN refused_at, DROP COLUMN refused_log_end;

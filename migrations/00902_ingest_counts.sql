-- +goose Up
-- Completeness counts (settlement/README.md "Completeness: every input
-- record accounted for"), kept on each partition's offset row and moved in
-- the statement that closes every ingest transaction, so that they commit
-- exactly when the offset does: a retried batch never counts twice, and a
-- REPEATABLE READ snapshot sees offsets and counts that agree. A quarantine
-- replay moves its records between quarantined and applied on their original
-- partition's row. Always records = applied + Σ quarantined.
-- counted_from is the offset counting began at: rows consumed before this
-- migration have counts for [counted_from, next_offset) only, so a run's
-- completeness is not stored until every partition counts from 0.
ALTER TABLE ingest_offsets
    ADD COLUMN records         bigint NOT NULL DEFAULT 0,
    ADD COLUMN applied         bigint NOT NULL DEFAULT 0,
    ADD COLUMN quarantined     jsonb  NOT NULL DEFAULT '{}',  -- reason → records
    ADD COLUMN reads_applied   bigint NOT NULL DEFAULT 0,
    ADD COLUMN reads_stale     bigint NOT NULL DEFAULT 0,
    ADD COLUMN reads_duplicate bigint NOT NULL DEFAULT 0,
    ADD COLUMN counted_from    bigint NOT NULL DEFAULT 0;
UPDATE ingest_offsets SET counted_from = next_offset;

-- +goose Down
ALTER TABLE ingest_offsets
    DROP COLUMN records, DROP COLUMN applied, DROP COLUMN quarantined, DROP COLUMN reads_applied,
    DROP COLUMN reads_stale, DROP COLUMN reads_duplicate, DROP COLUMN counted_from;

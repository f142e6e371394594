-- +goose Up
-- Completeness (settlement/README.md "Completeness: every input record
-- accounted for"): the per-input-partition counts ingest keeps, as they
-- stood in a run's snapshot, stored with the run beside its lineage and
-- carried by its exports' manifests, so that regenerating an export
-- reproduces them whatever replays came after:
-- {"inputs": [{"topic", "partition", "offset_through", "records", "applied",
--   "quarantined": {reason: n}, "reads_applied", "reads_stale",
--   "reads_duplicate"}]}. Runs made before completeness was counted have
-- NULL: nothing was counted for them.
ALTER TABLE runs ADD COLUMN completeness jsonb;

-- +goose Down
ALTER TABLE runs DROP COLUMN completeness;

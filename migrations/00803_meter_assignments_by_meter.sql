-- +goose Up
-- Every ingest batch looks up the assignments of its meters
-- (settlement/ingest/readstore/reads.go, the missing-data check in
-- settlement/alerts/postgres/missing.go). The exclusion constraint's GiST
-- index does not serve meter_id = ANY(array): Postgres scanned the whole
-- table once per batch and compared each row with every meter of the batch
-- (26 µs per assignment returned with 57,000 meters, the second largest
-- part of ingest's database time in `gridsettle bench ingest`).
CREATE INDEX meter_assignments_meter ON meter_assignments (meter_id, effective_from);

-- +goose Down
DROP INDEX meter_assignments_meter;

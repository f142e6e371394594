// Package ingest consumes the input topics (ami.interval-reads,
// market.prices) exactly once into Postgres, following
// design/exactly-once.md: the Consumer is a consumer-group member reading
// read_committed with transaction markers kept, and each batch of one
// partition is one Postgres transaction that starts with a compare-and-set of
// the offset stored in ingest_offsets, then applies the records (through the
// Applier: decoding and validation in package meters, versioning, positions
// and quarantine in meters/postgres), runs the Hooks (customer alerts), and
// ends with the outbox rows (dead letters and hook messages). It also serves
// quarantine replays, live positions and the ingest status.
//
// It does not own the SQL (meters/postgres), the decoding rules (meters),
// the settlement arithmetic (settlement) or publishing to Kafka (the outbox
// relay in settlement/publish).
//
// Invariants:
//   - a record's effects, its quarantine row and dead letter, and the stored
//     offset past it commit together or not at all; offsets are never
//     committed to Kafka, so the stored offset is the only position;
//   - a batch [from, to) commits only if the stored offset is still `from`:
//     a zombie or a stale owner of the partition rolls back, reloads and
//     seeks;
//   - the stored offset moves past transaction markers, so lag reaches 0
//     once everything committed upstream has been applied;
//   - any error rolls the batch back. A transient one (errors.go: the
//     connection, a serialization failure, a timeout, the deployment)
//     restarts the partition from the stored offset after a backoff, forever,
//     quarantining nothing. Any other is a refusal of a record: the batch
//     is applied in halves down to that record, which is quarantined as
//     unprocessable with its dead letter (or, if that is refused too,
//     without it, or at worst only skipped by the offset, logged), in the
//     same pass: no record can stop its partition, none is applied twice;
//   - every partition a member owns has a position or a pending reload,
//     which is retried with backoff until it succeeds and then seeks,
//     whether or not new records arrive;
//   - only applied records move the partition's event-time watermark and
//     appear in Applied.Ends; a quarantined record never does;
//   - a dead letter (key, value, headers) fits Limits.MaxDeadLetterBytes,
//     minus a reserve for what the relay adds; a larger value is cut, with
//     its length and SHA-256 in headers; the quarantine keeps it whole;
//   - a quarantine item is replayed at most once: replays lock the items and
//     mark them replayed in the transaction that applies them.
package ingest

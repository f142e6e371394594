// Package ingest consumes the input topics (ami.interval-reads,
// market.prices) exactly once into Postgres, following
// settlement/README.md "Exactly-once": the Consumer is a consumer-group member
// reading read_committed with transaction markers kept, and each batch of one
// partition is one Postgres transaction that starts with a compare-and-set of
// the offset stored in ingest_offsets, then applies the records (through the
// Applier: decoding and validation in package meters, versioning, positions
// and quarantine in settlement/ingest/readstore), runs the Hooks (customer alerts), and
// ends with the outbox rows (dead letters and hook messages). It also serves
// quarantine replays, live positions and the ingest status.
//
// It does not own the SQL (settlement/ingest/readstore), the decoding rules (meters),
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
//     whether or not new records arrive; while its backoff runs its
//     fetching is paused, the other partitions' is not;
//   - a batch holds at most Config.MaxBatchRecords records and, unless it
//     is a single record, Config.MaxBatchReads reads;
//   - a round of the poll loop applies up to Config.Concurrency partitions
//     at once, each partition's records of the round by one goroutine in
//     offset order, even when the round took them in several polls (it
//     drains what the client has fetched already, up to a bound: one poll
//     held a producer batch of one or two partitions);
//   - no batch waits for a lock longer than Config.LockTimeout: a batch
//     behind a lock fails as transient and is retried, so one partition
//     stuck behind a lock holds the others' next poll for that long at
//     most, not for the batch's deadline;
//   - the read store months a batch needs are created before its
//     transaction begins, holding no connection (readstore.Partitions):
//     creating one locks read_blocks, and batches waiting for a month must
//     not hold the connections its creator needs;
//   - only applied records move the partition's event-time watermark and
//     appear in Applied.Ends; a quarantined record never does;
//   - a dead letter (key, value, headers) fits Limits.MaxDeadLetterBytes,
//     minus a reserve for what the relay adds; a larger value is cut, with
//     its length and SHA-256 in headers; the quarantine keeps it whole;
//   - a quarantine item is replayed at most once: replays lock the items and
//     mark them replayed in the transaction that applies them;
//   - every data record a batch consumes is counted on its partition's
//     ingest_offsets row (completeness: records, applied, quarantined by
//     reason, and the reads of applied reads records as applied, stale or
//     duplicate) by the statement that closes the batch
//     (readstore.CloseBatch), so counts commit exactly with the offset and
//     records = applied + Σ quarantined; a record skipped by the offset
//     alone counts as quarantined. A replay locks the rows of its records'
//     partitions before it applies anything and moves each record it
//     applies from quarantined to applied there (its reads too);
//   - a partition whose log was reset under its stored offset is refused,
//     never followed silently (below).
//
// # A reset input log
//
// The stored offset of a partition points into the log its records were
// applied from. If that log is replaced (the topic deleted and created
// again) or cut short (a broker that lost data), resuming at the stored
// offset would skip, unseen, every record the new log holds below it. So
// the consumer refuses the partition when the client reports the topic
// recreated (UNKNOWN_TOPIC_ID: every owned partition that had consumed
// anything), or reports data loss, or fetches a log whose high watermark is
// below the stored offset. Refusing means: the stored row gets refused_at
// and refused_log_end (where the log ended when found) in ingest_offsets,
// the error is logged with topic, partition, stored offset and log end, the
// gauge gridsettle_ingest_log_refused{topic,partition} is 1 on the owning
// instance, GET /api/v1/status shows "refused": {"since", "log_end"} on the
// partition, and the partition is paused: nothing of it is applied or
// quarantined, and its stored offset does not move. The refusal is in
// Postgres, so it survives restarts and rebalances; the other partitions go
// on. (Records below the stored offset in a log that reaches past it again
// cannot be told from a reset: they are skipped, logged and counted in
// gridsettle_ingest_skipped_records_total. One case goes unseen: a
// recreated topic whose new log already reaches past the stored offset of
// a partition that no running member owned when it was recreated, since
// ingest_offsets keeps no topic ID to compare.)
//
// An operator decides where the partition resumes in the new log (0 to
// apply all of it: reads and prices are versioned, so records applied
// before are ignored as duplicates or stale) and says so in one statement;
// the owner sees it within refusedRecheck and consumes from there. The
// completeness counts describe the log consumed, so they start again with
// the new one, from the resume offset (counted_from; a run stores no
// completeness while it is above 0):
//
//	UPDATE ingest_offsets SET next_offset = 0, refused_at = NULL, refused_log_end = NULL,
//		records = 0, applied = 0, quarantined = '{}', reads_applied = 0, reads_stale = 0, reads_duplicate = 0,
//		counted_from = 0
//	WHERE topic = 'ami.interval-reads' AND partition = 3;
package ingest

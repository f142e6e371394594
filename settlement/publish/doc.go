// Package publish is the outbox relay: it moves the rows of the
// transactional outbox (settlement/outbox) to their Kafka topics inside Kafka
// transactions, so a read_committed consumer sees every output record exactly
// once (settlement/README.md "Exactly-once").
//
// It owns the relay loop, its leases, its metrics and the NOTIFY trigger of
// migrations/00301. It does not own what is published: statement lines,
// account charges, alerts and dead letters are enqueued by their own areas
// with outbox.Writer, in the Postgres transaction that produced them.
//
// How one output stream (topic, partition) is relayed:
//
//  1. lease: a session-level advisory lock keyed by the stream, held on one
//     dedicated connection per Relay (which also LISTENs for new rows); other
//     instances stand by and retry, and take over when the holder's session
//     ends (see "Leases" below);
//  2. the topic's partitions and max.message.bytes are read (a stream whose
//     topic or partition is gone is parked, below); a new transactional
//     client, id gridsettle-{env}-{topic}-{partition}, whose batches never
//     exceed that limit; its ProducerID (bounded by 3 transaction timeouts)
//     fences every older instance and aborts its open transaction;
//  3. the committed tail of the partition is read (read_committed) to find
//     the highest gridsettle-seq header, the last sequence the log
//     confirms: forward from the log position recorded in outbox_relay
//     (log_seq, log_offset) when the log still holds that record there,
//     else backwards from the last stable offset in widening windows. Each
//     wait is bounded (tailTimeout) but a read that makes progress goes on,
//     so aborted transactions behind the last commit only slow it;
//  4. rows at or below it are deleted and the position recorded; then, per
//     batch of rows with higher sequences (at most limit rows and
//     BatchBytes of keys and values, the first row always):
//     BeginTransaction, produce, Flush, EndTransaction(TryCommit).
//     A committed batch's rows are deleted by the next read of the outbox,
//     in the same round trip (one pipelined implicit transaction: delete,
//     head, next rows), or before the stream goes idle or the session ends.
//     The next batch is read while the current one is produced. Rows are
//     decoded straight into the Kafka records, their bytes copied into a
//     few chunks per batch;
//  5. any Kafka error closes the client and goes back to 2: an outcome is
//     never guessed, the log decides.
//
// Poison rows and parked streams (migrations/00702_outbox_quarantine.sql):
// a failure that would recur on every attempt must not stop the stream.
//   - A record the log refuses for what it is (larger than the topic
//     accepts, invalid) fails alone when the client knows before sending,
//     or with its batch at the broker. One refused record is moved, in one
//     statement, from outbox to outbox_quarantine (reason record_too_large
//     or record_invalid); several make the next session try half the rows,
//     until one is alone. Its sequence never appears in the log.
//   - A transaction that runs out of time makes the next session try half
//     the rows; each commit doubles the limit back up to BatchSize.
//   - Both restart at once, not after a growing backoff: they are progress.
//   - A stream whose topic does not exist, or has fewer partitions than
//     its partition, is parked: outbox_relay.parked_reason says why (the
//     status endpoint shows it), a gauge counts it, its rows stay, and it
//     is checked again every DiscoverInterval rather than restarted in a
//     loop; the session that finds it back clears the state.
//
// Waking up: the outbox trigger (migrations/00301) notifies channel
// gridsettle_outbox with "topic/partition" when rows commit, and the lease
// connection LISTENs; a notification wakes only its stream's worker. There is
// no polling of the outbox, so an idle relay costs one round trip per
// LeaseRetry or LeaseTimeout/3, whichever is shorter (lease liveness,
// standby attempts) and nothing per stream; rows
// committed while nobody listened are found by the query every session
// starts with.
//
// Leases: the server, not the holder, ends a lease, because a frozen or
// vanished holder can do nothing. The lease connection runs with
// idle_session_timeout = LeaseTimeout (PostgreSQL 14 or later), and
// tcp_user_timeout and TCP keepalives of about as long, so a holder that
// sends nothing for LeaseTimeout (SIGSTOPped, paused, its host gone) loses
// its session and with it every lease, and a standby takes them at its next
// attempt (LeaseRetry). A live holder proves itself with a round trip on
// the connection at least three times per LeaseTimeout (taking free leases,
// or a ping). It counts its leases as held only until LeaseTimeout after
// sending its last round trip that succeeded: a worker checks that before
// every transaction and before a new client's ProducerID, and a round trip
// that fails or gets no answer by then ends the lease session, whose
// workers then abandon (not finish, not abort) their open transactions.
//
// Fencing, not the lease, makes this safe: a holder frozen between its last
// check and its commit does go on producing once it continues, but the new
// holder's ProducerID has fenced it and aborted its open transaction, so
// its commit fails and the new holder's tail read sees only committed
// records. The lease only keeps live instances from fencing each other.
//
// Invariants:
//   - records of a stream appear in the log in sequence order, each once
//     among committed records; every record carries gridsettle-schema,
//     gridsettle-id and gridsettle-seq, and the CloudEvents 1.0 binary-mode
//     headers (ce_specversion, ce_id, ce_source, ce_type, ce_time) with a
//     content-type, application/json unless the row sets its own;
//   - an outbox row is deleted only at or below a sequence confirmed in the
//     log (our own committed EndTransaction, or found in the tail). Deletes
//     commit asynchronously (synchronous_commit off for that transaction):
//     one a crash loses leaves rows at or below the log's last sequence,
//     which no read returns (reads start after it) and the next session
//     deletes first;
//   - the log is never ahead of the outbox's sequence counter; if it is (the
//     database was reset under a kept broker), the stream is refused rather
//     than having new rows mistaken for published ones;
//   - a row leaves the outbox only confirmed in the log or moved, whole, to
//     outbox_quarantine by the lease holder after the log refused it;
//   - stopping (Run's context canceled) finishes the in-flight transaction
//     (or aborts it if it cannot finish) before the lease is released;
//   - no transaction begins, and no ProducerID is called, past the lease's
//     lifetime as the holder counts it (LeaseTimeout after its last
//     confirmed round trip); the server ends the session no earlier.
//
// For fault injection, WithStepHook runs a function at each named Step of
// the loop; an error it returns is treated like a crash at that point (the
// client is closed without cleanup and the stream restarts from the log).
package publish

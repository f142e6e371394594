// Package bridge is the edge bridge of meters/README.md "Edge ingest: the MQTT
// bridge": it subscribes to an MQTT broker and moves what field devices publish
// there into the input topics (ami.interval-reads, market.prices) with Kafka
// transactions, so that MQTT's at-least-once delivery becomes an exactly-once
// effect in settlement.
//
// It owns the MQTT session (paho, QoS 1, clean session off, a stable client
// id, manual acknowledgements), the batching of messages into transactions
// (closed by records, bytes, interval or idleness: Limits), the record keys
// (Key), the bridge's headers and metrics, and the dead letters it writes
// itself (a payload too large for a Kafka record; a message on a topic it no
// longer subscribes to). It does not validate records: ingest does, and
// quarantines a bad payload the bridge forwarded with its reason. It does
// not create topics: a missing one fails transactions, retried until it
// exists. Run wiring, flags and the HTTP endpoints live in
// cmd/gridsettle; mosquittotest starts a real broker for tests.
//
// It lives under settlement/ingest, not under meters, because what it writes
// is ingest's: the input topics ingest consumes, and dead letters in ingest's
// format (its headers and schema, publish's CloudEvents headers, outbox's
// content type). meters stays a leaf that settlement imports; a bridge under
// meters would make meters import settlement.
//
// Invariants:
//   - a message's PUBACK is sent only after the Kafka transaction holding it
//     committed; a bridge that dies before that gets the message again from
//     the broker (DUP set, counted as a redelivery) and commits it again:
//     each message reaches Kafka at least once, and a copy of a read is a
//     duplicate that ingest ignores;
//   - nothing is dropped: a payload is forwarded byte for byte, keyed by its
//     meter_id / settlement_point, or by its MQTT topic when no valid
//     identifier can be read from it (invalid UTF-8, NUL, not JSON, not an
//     object); a payload whose record would exceed MaxRecordBytes goes to
//     the dead-letter topic instead, cut to fit, with reason
//     payload_too_large, its length (gridsettle-truncated) and SHA-256,
//     keyed by its MQTT topic (it is not parsed);
//   - a failed transaction is aborted and retried with the same messages
//     and a new producer, forever, unacknowledged meanwhile; only a fenced
//     producer (another bridge took the transactional id) ends Run;
//   - one transactional id per MQTT client id (TransactionalID), so a
//     restarted bridge fences its predecessor and aborts its open
//     transaction at once;
//   - memory is bounded: a batch holds at most BatchRecords messages and
//     about 64 MiB of payload, and the broker's in-flight window bounds
//     what waits beyond it; a message is as large as the broker allows
//     (Mosquitto: message_size_limit).
//
// Concurrency: paho calls the handlers in order on its router goroutine;
// they hand each message to Run's goroutine over a channel of BatchRecords,
// and block (pausing delivery) while it is full. Run alone produces and
// acknowledges.
package bridge

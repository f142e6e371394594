// Package kafka puts imported meter data on the ami.interval-reads topic:
// the meters/README.md JSON of a meters.ReadBlock, and the production of one
// file's blocks in one Kafka transaction.
//
// It owns the record encoding (decimals as plain-notation strings, RFC 3339
// UTC start, quality per value, key = meter_id) and the transactional
// produce of a file. It does not parse files (meters/nem12,
// meters/greenbutton do), does not consume, and does not wrap the franz-go
// client: each import uses its own *kgo.Client, built from the options the
// caller gives (Config.Client, e.g. settlement/kafka's Config.ClientOpts).
// Taking options rather than settlement/kafka's Config keeps meters a leaf
// that settlement imports; the reads topic's default name (DefaultTopic) is
// owned here, and settlement/kafka's DefaultTopics takes it from here.
//
// Invariants:
//   - a file is all or nothing: its records are produced in ONE transaction
//     with a transactional id unique to the import run, committed only
//     after every record is acknowledged, and aborted on any error, so a
//     read_committed consumer sees either every record or none;
//   - every block is checked against the meters/README.md rules before the
//     transaction begins, so the ingest never quarantines an import for its
//     shape;
//   - encoding is deterministic: the same block always gives the same bytes
//     and the same key, so re-importing a file gives the same reads with the
//     same version, which the ingest treats as duplicates.
package kafka

// Package ingesttest holds the hostile-input suite: records a
// hostile producer or a broken head-end could send to the input topics,
// interleaved with valid ones, each with what the contract
// (meters/README.md "Validation and quarantine" and "Nothing a producer sends
// can stop ingest") says must become of it. The expectations are derived from
// the contract's text and check order, never from what the decoder answers.
//
// Both the in-process suite (settlement/ingest) and the end-to-end suite
// against a running `gridsettle dev` (cmd/gridsettle) send these records; it
// holds data and pure checks only, no I/O.
//
// Invariants:
//   - the records assume the registry of Registry: meters M1 and M2 assigned
//     from 2026-01-01 without end, settlement points HB_NORTH and HB_SOUTH,
//     and nothing else; M9 and HB_WEST are unknown;
//   - the same seed and now give the same records;
//   - every applied record has a (meter, channel, start) or (market, point,
//     start) of its own, so exactly-once is checked read by read.
package ingesttest

// Package intervalrows reads a completed run's settled interval rows (table
// run_intervals, written by settlement/postgres): the rows of
// intervals.parquet, which exports stream whole (reporting/postgres) and the
// API serves one statement line at a time
// (GET /api/v1/statements/{statement_id}/intervals), from this one query so
// the two cannot differ.
//
// Invariants:
//   - Rows come in natural-key order (participant, settlement point,
//     interval start) with byte-wise ("C") collation, so an export does not
//     depend on the database's locale.
//   - Rows are streamed, never held: a run's interval rows are the bulk of
//     an export.
//   - Values are decoded from Postgres's binary forms (decode.go) into
//     exactly what pgx's Scan gives, which it falls back to for any other
//     form.
package intervalrows

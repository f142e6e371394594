// Package postgres produces regulatory exports from the database: it reads
// a completed run's rows (runs, statement_lines, run_intervals,
// run_estimates, and the journal entries the run posted) and hands them to package reporting,
// which writes, signs and verifies the folder; it keeps the exports
// registry (table exports, migrations 004xx); and its Exporter is what the
// rest of gridsettle calls: its worker (Run) exports each completed run,
// woken by the runs' completion hook or on a cron schedule, and the API
// lists, gets, serves, verifies and produces exports.
//
// It does not own the runs' tables (settlement/postgres, ledger/postgres
// write them) or the folder format (reporting).
//
// Invariants:
//   - Exports of one operating day are produced one at a time across all
//     instances (a transaction-scoped advisory lock per day), so the chain
//     of previous_manifest_sha256 never forks and no export is written twice.
//   - The previous manifest of an export is the manifest of the export of
//     the same day registered just before it (registry order); regenerating
//     an export uses the same one, so it is byte-identical.
//   - A registered export is never overwritten: asking for it again
//     regenerates it into a scratch folder and compares byte for byte.
//   - An export's Files name every file of its folder (the Parquet files
//     with their manifest entries, manifest.json, its signature and the
//     public key, hashed), so downloading each gives the whole folder;
//     exports registered when only the Parquet files were listed are
//     completed from their folder when read.
//   - The chain heads exports recorded (lineage.ledger) anchor ledger
//     verification (VerifyLedger): the journal must still hold them.
//   - Export schedules fire in the market's time zone unless they name
//     CRON_TZ (ParseSchedule); a malformed one, or one that never fires, is
//     an error, never a panic; the schedule loop waits at least 15 minutes
//     when a schedule names no time ahead, so it never spins.
//   - Exports happen apart from the runs: RunCompleted only wakes the
//     worker (a coalescing signal, no queue), which finds the runs to export
//     in the database, so a run, the scheduler and an API call never wait
//     for the export folder.
//   - Every wait is bounded. One export attempt runs at a time per
//     Exporter, on a goroutine and a connection (out of the pool) of its
//     own, bounded by Config.Timeout; it honours cancellation everywhere
//     but inside a file-system call, which nothing can interrupt. An
//     attempt that has not returned a second after its context ended is
//     left behind: counted as failed and shown on gridsettle_exports_stuck
//     when it timed out, and no other attempt starts until it returns (no
//     pile-up), while shutdown and the pool's closing do not wait for it.
//     A run whose export failed is tried again after a backoff, without
//     holding up the others.
//   - A manifest's completeness is the run's runs.completeness as the run
//     stored it (NULL: none), so a replay after the run never changes what
//     its export regenerates to. It is decoded strictly: a field the
//     manifest has no place for stops the export instead of being dropped
//     from a signed account.
//   - Rows are read in natural-key order with byte-wise ("C") collation, so
//     the files do not depend on the database's locale.
//   - A run's interval rows are read by package intervalrows (shared with
//     the API), decoded from Postgres's binary forms.
package postgres

// Package postgres produces regulatory exports from the database: it reads
// a completed run's rows (runs, statement_lines, run_intervals, and the
// journal entries the run posted) and hands them to package reporting,
// which writes, signs and verifies the folder; it keeps the exports
// registry (table exports, migrations 004xx); and its Exporter is what the
// rest of gridsettle calls: after each completed run, on a cron schedule,
// and from the API (list, get, files, verify, produce).
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
//   - Rows are read in natural-key order with byte-wise ("C") collation, so
//     the files do not depend on the database's locale.
//   - A run's interval rows are decoded from Postgres's binary forms by this
//     package (decode.go) into exactly the values pgx's Scan gives, which
//     it falls back to for any other form.
package postgres

// Package reporting owns regulatory exports (reporting/README.md): for one
// completed run, a folder {export_root}/{operating_day}/{run_type}-v{version}/
// with statements.parquet, intervals.parquet, ledger.parquet and (format
// gridsettle-export/v2) estimates.parquet, a manifest
// (files with sha256, size and row count, control totals, lineage, in v2
// the run's completeness, the hash of the day's previous manifest), its
// ed25519 signature and the signing public key; and the offline
// verification of such a folder.
//
// It does not own where rows come from (reporting/postgres reads them from
// the runs' tables and records exports in the database), the Parquet
// encoding (reporting/parquet), or the HTTP and command-line surfaces (api,
// cmd), which call Verify and VerifyCommand.
//
// Invariants:
//   - An export keeps its format: new exports are written as Format (v2:
//     estimates.parquet, the estimate columns, the estimated_energy_mwh
//     control total); Regenerate writes the format (and generator) of the
//     stored manifest, so a v1 export regenerates as v1, byte for byte, and
//     Verify checks each folder against the layout its manifest names. A run
//     with estimates is never written as v1 (v1 has nowhere to put them).
//   - Deterministic: a folder's bytes depend only on the run's rows, the
//     run's metadata, the previous manifest's hash, the configuration
//     (generator, market, codec) and the key: never on the wall clock, map
//     order or the host. Regenerating an export yields identical bytes.
//   - Control totals, row counts and the ledger lineage are computed from
//     the rows as they are written, and Verify recomputes them by reading
//     the files back; Publish verifies every folder before renaming it into
//     place.
//   - Completeness (v2, settlement/README.md "Completeness: every input record
//     accounted for") is the run's own count of its input records
//     (Run.Completeness, from runs.completeness), copied, never recounted: a
//     later replay changes later runs' counts only, so regenerating an export
//     reproduces it. It accounts for every lineage partition through its
//     offset_through (and lists the partitions the snapshot read nothing of,
//     which the lineage leaves out, through -1), with records = applied + Σ
//     quarantined and no count negative in each (Completeness.Check); Build
//     refuses a run whose counts break this, before writing, and Verify fails a
//     manifest that does. A run made before counting existed (NULL) gets no
//     completeness field, rather than a null one, so the v2 exports
//     written before counting regenerate byte for byte; a v1 manifest
//     never has one.
//   - Consistent: each statement line's energy, unpriced energy, amount and
//     interval counts are those of its interval rows (rounded half-even
//     where settlement/README.md rounds); every ledger entry balances. A run
//     whose rows break this is not exported.
//   - The signed files are the export: Verify with a trusted key needs no
//     signing-key.pub.pem (a convenience copy, checked when present); without
//     one it uses that file and reports the signer as not authenticated.
//   - Atomic: a folder is written under a temporary name in the same parent,
//     every file and the folder are fsynced, then it is renamed into place;
//     an existing folder is never overwritten.
//   - Cancellable: Publish, Build and Regenerate check their context between
//     files and steps, and the row pipe's hand-overs select on it, so a
//     cancelled export returns without waiting for a write stuck in the
//     file system (which cannot be interrupted; it ends on its own). Every
//     file an export writes is created with Config.OpenFile.
//
// A regulator can check a folder without gridsettle: sha256sum the files,
// base64-decode manifest.json.sig and verify it over the exact bytes of
// manifest.json with an ed25519 tool (for example `openssl pkeyutl -verify
// -pubin -inkey KEY.pem -rawin -in manifest.json -sigfile SIG.bin`), sum
// the columns with DuckDB, and recount each input partition up to its
// offset_through with any Kafka client (read_committed) to reconcile it with
// completeness.
package reporting

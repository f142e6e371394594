// Package parquet writes and reads the Parquet files of a regulatory
// export (exports.md): statements.parquet, intervals.parquet,
// ledger.parquet and, from layout v2 on, estimates.parquet. It writes them with github.com/xitongsys/parquet-go (the
// files' bytes depend on it, see Libraries) and reads them back with
// github.com/parquet-go/parquet-go, an independent implementation that
// decodes typed values without reflection, after checking the schema
// against the writer's own.
//
// It owns the files' schemas (the struct tags that standard readers such as
// DuckDB, Arrow and Spark understand, see design/parquet.md), the exact
// conversion of decimals to Parquet DECIMAL unscaled integers, and streaming
// writers and readers. It does not own where rows come from, manifests,
// signatures or folders: package reporting does.
//
// Invariants:
//   - A decimal is written only if it is exact at its column's scale and fits
//     its precision; anything else is an error, never a rounding or a
//     truncation. Timestamps are UTC instants in whole microseconds.
//   - Rows are written, and must be read back, in strictly increasing
//     natural-key order (statement_id; participant, settlement point,
//     interval start; entry id, line number; meter, channel, interval
//     start).
//   - Layouts are frozen once written: LayoutV1 (gridsettle-export/v1) has
//     its own records, so its files keep their bytes; LayoutV2 appends the
//     estimate columns after v1's. A v1 writer refuses a row whose estimate
//     figures are not zero rather than drop them.
//   - Decimals are converted through exact 128-bit integers
//     (settlement/exact), and through big.Int only for coefficients
//     of more than 18 digits; both give the same unscaled values.
//   - The bytes of a file depend only on its rows and the codec: one writer
//     goroutine (np = 1), fixed page and row-group sizes, no wall clock, and
//     the footer written exactly once (Close refuses a second call).
package parquet

// Package exact owns the integer forms that the hot loops of settlement
// and reporting share: 128-bit two's-complement arithmetic (Int128), the
// decoding of Postgres's binary numeric into a decimal without big.Int
// (NumericDecimal), and Postgres's timestamp epoch (PGEpochMicros).
//
// Each of these had a copy in settlement/postgres (the run's exact kWh and
// amount sums), in settlement/ingest/readstore (the read blocks' binary
// timestamps) and in reporting (the export's Parquet DECIMAL(38, scale)
// values and the interval rows' binary decoding); one home keeps them
// agreeing.
//
// It exists so that the work does not allocate: shopspring decimals carry
// a *big.Int, and doing the same work through it cost more than writing
// the Parquet files or settling the reads (measured). Every operation is
// exact; where a value or a result does not fit, the checked operations
// say so (ok false) and the caller uses big.Int arithmetic.
//
// Why here: exact imports only the standard library and shopspring
// decimal, so every gridsettle package may import it without a cycle.
// Its users are settlement/postgres, settlement/ingest/readstore and
// reporting (which already depends on settlement); a Go internal package
// under settlement would be invisible to reporting, and meters, the layer
// below both, is the read model and has no use for Postgres's binary forms.
package exact

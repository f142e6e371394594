package readstore

import (
	"context"
	"fmt"
	"time"
)

// Stats is what the read store holds and what it costs on disk: the
// figures the store's design is judged by (cmd/gridsettle/bench_ingest.go).
//
// Versions counts every stored read, superseded ones included: the non-NULL
// elements of values_micro (a NULL element is a read its record did not
// change, migrations/00800_read_blocks.sql). Bytes is
// pg_total_relation_size (heap, TOAST, free space and visibility maps,
// indexes) summed over every partition of read_blocks: the partitioned
// parent has no storage of its own and reports 0. Dead tuples and free space
// are counted as they are: run VACUUM (ANALYZE) read_blocks first for the
// steady-state size, which Stats does not do since it cannot run inside a
// transaction and takes a while on a large store.
func Stats(ctx context.Context, db Querier) (versions, bytes int64, err error) {
	err = db.QueryRow(ctx, `SELECT
			(SELECT coalesce(sum(cardinality(values_micro) - coalesce(cardinality(array_positions(values_micro, NULL)), 0)), 0)::bigint
			 FROM read_blocks),
			(SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
			 FROM pg_partition_tree('read_blocks'))`).Scan(&versions, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("read store stats: %w", err)
	}
	return versions, bytes, nil
}

// CurrentTotals counts the current reads of the whole store and sums their
// values in micro-kWh, resolving versions as every reader does (Current):
// the check that each read ingested is stored once with its exact value.
func CurrentTotals(ctx context.Context, db Querier) (reads, sumMicro int64, err error) {
	// Every block starts within these bounds: timestamptz ends in 294276 AD.
	w := BlockWindow{From: time.Unix(utcDay(-62135596800), 0), To: time.Date(100000, 1, 1, 0, 0, 0, 0, time.UTC)}
	err = StreamChannels(ctx, db, w, func(blocks []StoredBlock) error {
		Current(blocks, func(b *StoredBlock, i int) {
			reads++
			sumMicro += b.Values[i]
		})
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("current read totals: %w", err)
	}
	return reads, sumMicro, nil
}

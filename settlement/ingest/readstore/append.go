package readstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// CopyFromer is what AppendBlocks needs: a pool, a connection or a
// transaction.
type CopyFromer interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

var blockColumnNames = []string{"meter_id", "channel", "start", "interval_seconds", "version", "values_micro", "quality",
	"source", "topic", "partition", "offset"}

// AppendBlocks appends blocks to read_blocks with COPY. Each block must lie
// within one UTC day (SplitDays) and its month's partition must exist
// (Partitions.Ensure, EnsurePartitions).
func AppendBlocks(ctx context.Context, db CopyFromer, blocks []StoredBlock) error {
	if len(blocks) == 0 {
		return nil
	}
	row := make([]any, len(blockColumnNames))
	var vals []pgtype.Int8
	src := pgx.CopyFromSlice(len(blocks), func(i int) ([]any, error) {
		b := &blocks[i]
		vals = vals[:0]
		for _, v := range b.Values {
			vals = append(vals, pgtype.Int8{Int64: v, Valid: v != NoRead})
		}
		row[0], row[1], row[2], row[3], row[4] = b.MeterID, string(b.Channel), time.Unix(b.Start, 0), int32(b.IntervalSeconds), b.Version
		row[5], row[6], row[7] = vals, b.Quality, b.Source
		row[8], row[9], row[10] = b.Origin.Topic, b.Origin.Partition, b.Origin.Offset
		return row, nil
	})
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"read_blocks"}, blockColumnNames, src); err != nil {
		return fmt.Errorf("copy %d read blocks: %w", len(blocks), err)
	}
	return nil
}

// SplitDays cuts b at UTC day boundaries, so that no stored block crosses
// one (migrations/00800_read_blocks.sql); the parts share b's slices.
func SplitDays(b StoredBlock) []StoredBlock {
	var out []StoredBlock
	for len(b.Values) > 0 {
		n := int((utcDay(b.Start) + secondsPerDay - b.Start + b.IntervalSeconds - 1) / b.IntervalSeconds)
		if n >= len(b.Values) {
			return append(out, b)
		}
		part := b
		part.Values = b.Values[:n:n]
		b.Values = b.Values[n:]
		if b.Quality != "" {
			part.Quality, b.Quality = b.Quality[:n], b.Quality[n:]
		}
		b.Start += int64(n) * b.IntervalSeconds
		out = append(out, part)
	}
	return out
}

// EnsurePartitions creates, in db, the read_blocks partitions of the months
// of starts (unix seconds) that do not exist yet. It locks read_blocks
// exclusively when it creates one: ingest uses Partitions instead, outside
// its batch transactions.
func EnsurePartitions(ctx context.Context, db Querier, starts []int64) error {
	months := map[int64]bool{}
	var ts []time.Time
	for _, s := range starts {
		if m := monthOf(s); !months[m] {
			months[m] = true
			ts = append(ts, time.Unix(m, 0).UTC())
		}
	}
	if len(ts) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, `SELECT read_blocks_partition(m) FROM unnest($1::timestamptz[]) AS m`, ts); err != nil {
		return fmt.Errorf("create read_blocks partitions for %d months: %w", len(ts), err)
	}
	return nil
}

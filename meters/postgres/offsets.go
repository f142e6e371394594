package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdvanceOffset is the compare-and-set that opens every ingest transaction
// (design/exactly-once.md): it moves the stored position of (topic,
// partition) from `from` to `to` and returns the partition's watermark (zero
// when there is none yet). It reports false, changing nothing, when the
// stored position is not `from`: someone else (another consumer, or a zombie
// of this one) owns that range. The row stays locked until tx ends, which
// serialises concurrent owners of one partition.
//
// The watermark is not moved here: only applied records move it
// (messages.md), and which records apply is known only after the batch's
// effects; RaiseWatermark moves it then, in the same transaction.
func AdvanceOffset(ctx context.Context, tx pgx.Tx, topic string, partition int32, from, to int64) (bool, time.Time, error) {
	var wm *time.Time
	err := tx.QueryRow(ctx, `
		UPDATE ingest_offsets SET next_offset = $4, updated_at = now()
		WHERE topic = $1 AND partition = $2 AND next_offset = $3
		RETURNING watermark`, topic, partition, from, to).Scan(&wm)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, time.Time{}, nil
	case err != nil:
		return false, time.Time{}, fmt.Errorf("advance %s/%d from %d to %d: %w", topic, partition, from, to, err)
	case wm == nil:
		return true, time.Time{}, nil
	}
	return true, wm.UTC(), nil
}

// RaiseWatermark raises the stored watermark of (topic, partition) to at
// least watermark, inside the transaction whose AdvanceOffset locked the
// row, and returns the resulting watermark. The watermark only ever moves
// up.
func RaiseWatermark(ctx context.Context, tx pgx.Tx, topic string, partition int32, watermark time.Time) (time.Time, error) {
	var wm time.Time
	err := tx.QueryRow(ctx, `
		UPDATE ingest_offsets SET watermark = GREATEST(watermark, $3)
		WHERE topic = $1 AND partition = $2
		RETURNING watermark`, topic, partition, watermark).Scan(&wm)
	if err != nil {
		return time.Time{}, fmt.Errorf("raise watermark of %s/%d to %s: %w", topic, partition, watermark.Format(time.RFC3339), err)
	}
	return wm.UTC(), nil
}

// LoadOffsets returns the stored next offset of each partition of topic,
// first creating the rows of partitions never consumed (at offset 0).
func LoadOffsets(ctx context.Context, db Querier, topic string, partitions []int32) (map[int32]int64, error) {
	if _, err := db.Exec(ctx, `
		INSERT INTO ingest_offsets (topic, partition) SELECT $1, p FROM unnest($2::int[]) AS p
		ON CONFLICT DO NOTHING`, topic, partitions); err != nil {
		return nil, fmt.Errorf("create offsets of %s: %w", topic, err)
	}
	rows, err := db.Query(ctx, `SELECT partition, next_offset FROM ingest_offsets WHERE topic = $1 AND partition = ANY($2::int[])`,
		topic, partitions)
	if err != nil {
		return nil, fmt.Errorf("load offsets of %s: %w", topic, err)
	}
	out := make(map[int32]int64, len(partitions))
	var p int32
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &n}, func() error {
		out[p] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load offsets of %s: %w", topic, err)
	}
	return out, nil
}

// StoredOffset is the stored consumer position of one input partition.
type StoredOffset struct {
	Topic      string
	Partition  int32
	NextOffset int64
	Watermark  *time.Time // latest interval end seen; nil before any
}

// StoredOffsets returns every stored position of the given topics.
func StoredOffsets(ctx context.Context, db Querier, topics []string) ([]StoredOffset, error) {
	rows, err := db.Query(ctx, `
		SELECT topic, partition, next_offset, watermark FROM ingest_offsets
		WHERE topic = ANY($1::text[]) ORDER BY topic, partition`, topics)
	if err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredOffset, error) {
		var o StoredOffset
		err := row.Scan(&o.Topic, &o.Partition, &o.NextOffset, &o.Watermark)
		if o.Watermark != nil {
			t := o.Watermark.UTC()
			o.Watermark = &t
		}
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	return out, nil
}

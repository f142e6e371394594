package readstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdvanceOffset is the compare-and-set that opens every ingest transaction
// (settlement/README.md "Exactly-once"): it moves the stored position of
// (topic, partition) from `from` to `to` and returns the partition's watermark
// (zero when there is none yet). It reports false, changing nothing, when the
// stored position is not `from`: someone else (another consumer, or a zombie
// of this one) owns that range. The row stays locked until tx ends, which
// serialises concurrent owners of one partition.
//
// The watermark and the counts are not moved here: CloseBatch moves them
// once the batch's effects are known, in the same transaction.
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

// LoadedOffset is the stored position of one partition as its consumer
// loads it.
type LoadedOffset struct {
	Next int64
	// Refused: the partition's log was refused (RefuseLog) and nothing of it
	// may be consumed until an operator sets next_offset and clears
	// refused_at.
	Refused bool
}

// LoadOffsets returns the stored position of each partition of topic,
// first creating the rows of partitions never consumed (at offset 0).
func LoadOffsets(ctx context.Context, db Querier, topic string, partitions []int32) (map[int32]LoadedOffset, error) {
	if _, err := db.Exec(ctx, `
		INSERT INTO ingest_offsets (topic, partition) SELECT $1, p FROM unnest($2::int[]) AS p
		ON CONFLICT DO NOTHING`, topic, partitions); err != nil {
		return nil, fmt.Errorf("create offsets of %s: %w", topic, err)
	}
	rows, err := db.Query(ctx, `
		SELECT partition, next_offset, refused_at IS NOT NULL FROM ingest_offsets
		WHERE topic = $1 AND partition = ANY($2::int[])`, topic, partitions)
	if err != nil {
		return nil, fmt.Errorf("load offsets of %s: %w", topic, err)
	}
	out := make(map[int32]LoadedOffset, len(partitions))
	var p int32
	var o LoadedOffset
	if _, err := pgx.ForEachRow(rows, []any{&p, &o.Next, &o.Refused}, func() error {
		out[p] = o
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load offsets of %s: %w", topic, err)
	}
	return out, nil
}

// RefuseLog records that the log of (topic, partition) ends at logEnd, below
// the stored position `stored`: records between them were applied from a log
// that no longer exists (a recreated topic, a broker's data loss), and what
// the new log holds there cannot be told apart from them. It reports false,
// changing nothing, if the stored position is no longer `stored` (another
// owner moved it, or an operator did). A refusal already recorded keeps its
// time.
func RefuseLog(ctx context.Context, db Querier, topic string, partition int32, stored, logEnd int64) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE ingest_offsets SET refused_at = coalesce(refused_at, now()), refused_log_end = $4
		WHERE topic = $1 AND partition = $2 AND next_offset = $3`, topic, partition, stored, logEnd)
	if err != nil {
		return false, fmt.Errorf("refuse the log of %s/%d (stored offset %d, log end %d): %w", topic, partition, stored, logEnd, err)
	}
	return tag.RowsAffected() == 1, nil
}

// StoredOffset is the stored consumer position of one input partition.
type StoredOffset struct {
	Topic      string
	Partition  int32
	NextOffset int64
	Watermark  *time.Time // latest interval end seen; nil before any
	// RefusedAt and RefusedLogEnd are set while the partition's log is
	// refused (RefuseLog): when, and where that log ended.
	RefusedAt     *time.Time
	RefusedLogEnd *int64
}

// StoredOffsets returns every stored position of the given topics.
func StoredOffsets(ctx context.Context, db Querier, topics []string) ([]StoredOffset, error) {
	rows, err := db.Query(ctx, `
		SELECT topic, partition, next_offset, watermark, refused_at, refused_log_end FROM ingest_offsets
		WHERE topic = ANY($1::text[]) ORDER BY topic, partition`, topics)
	if err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredOffset, error) {
		var o StoredOffset
		err := row.Scan(&o.Topic, &o.Partition, &o.NextOffset, &o.Watermark, &o.RefusedAt, &o.RefusedLogEnd)
		o.Watermark, o.RefusedAt = utc(o.Watermark), utc(o.RefusedAt)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	return out, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

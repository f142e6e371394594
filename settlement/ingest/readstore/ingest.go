package readstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gridsettle/gridsettle/meters"
)

// Querier is what the read-side functions need: a pool, a connection or a
// transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrConcurrentWrite means a row this batch read changed under it before it
// wrote (another writer of the same key committed in between). Nothing of the
// batch may be committed; retrying it on fresh state is correct.
var ErrConcurrentWrite = errors.New("a concurrent writer changed the rows this batch read")

// Origin is the input record a stored read or price came from: its lineage.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Source is an input record: where it came from and its original bytes.
type Source struct {
	Origin
	Key   []byte
	Value []byte
}

// Quarantined is a record that cannot be used, with the first reason that
// failed and a detail naming what.
type Quarantined struct {
	Source
	Reason meters.Reason
	Detail string
}

func quarantined(src Source, rej *meters.Rejection) Quarantined {
	return Quarantined{Source: src, Reason: rej.Reason, Detail: rej.Detail}
}

// writeQuarantine stores rejected records. A record already quarantined (a
// replay that failed again) keeps its row and takes the new reason.
func writeQuarantine(b *pgx.Batch, qs []Quarantined) {
	if len(qs) == 0 {
		return
	}
	n := len(qs)
	reasons, details, topics := make([]string, n), make([]string, n), make([]string, n)
	parts, offsets := make([]int32, n), make([]int64, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	for i, q := range qs {
		reasons[i], details[i], topics[i] = string(q.Reason), q.Detail, q.Topic
		parts[i], offsets[i], keys[i], values[i] = q.Partition, q.Offset, q.Key, q.Value
		if values[i] == nil {
			values[i] = []byte{} // a tombstone is still a record
		}
	}
	b.Queue(`
		INSERT INTO quarantine (reason, detail, topic, partition, "offset", key, value)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::bytea[], $7::bytea[])
		ON CONFLICT (topic, partition, "offset") DO UPDATE SET reason = excluded.reason, detail = excluded.detail`,
		reasons, details, topics, parts, offsets, keys, values)
}

// Quarantine stores records set aside outside ApplyReads and ApplyPrices:
// those the database or an output encoder refused (meters.Unprocessable),
// found by the consumer after their batch failed.
func Quarantine(ctx context.Context, tx pgx.Tx, qs ...Quarantined) error {
	b := &pgx.Batch{}
	writeQuarantine(b, qs)
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write quarantine: %w", err)
	}
	return nil
}

// expectRows fails with ErrConcurrentWrite when a guarded statement did not
// touch exactly the rows it was meant to.
func expectRows(what string, want int) func(pgconn.CommandTag) error {
	return func(tag pgconn.CommandTag) error {
		if got := tag.RowsAffected(); got != int64(want) {
			return fmt.Errorf("%s: %d of %d rows: %w", what, got, want, ErrConcurrentWrite)
		}
		return nil
	}
}

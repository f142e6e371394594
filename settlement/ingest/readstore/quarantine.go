package readstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
)

// QuarantineItem is one rejected input record.
type QuarantineItem struct {
	ID         int64
	Reason     meters.Reason
	Detail     string
	Source     Source
	ReceivedAt time.Time
	ReplayedAt *time.Time // set once a replay applied it
}

// QuarantineFilter selects quarantine items in id order.
type QuarantineFilter struct {
	Reason  meters.Reason // "" = all
	Topic   string        // "" = all
	AfterID int64         // keyset: items with a larger id
}

const quarantineColumns = `id, reason, detail, topic, partition, "offset", key, value, received_at, replayed_at`

func scanQuarantine(row pgx.CollectableRow) (QuarantineItem, error) {
	var q QuarantineItem
	err := row.Scan(&q.ID, &q.Reason, &q.Detail, &q.Source.Topic, &q.Source.Partition, &q.Source.Offset,
		&q.Source.Key, &q.Source.Value, &q.ReceivedAt, &q.ReplayedAt)
	q.ReceivedAt = q.ReceivedAt.UTC()
	if q.ReplayedAt != nil {
		t := q.ReplayedAt.UTC()
		q.ReplayedAt = &t
	}
	return q, err
}

// QuarantineItems lists quarantine items matching f, at most limit.
func QuarantineItems(ctx context.Context, db Querier, f QuarantineFilter, limit int) ([]QuarantineItem, error) {
	rows, err := db.Query(ctx, `
		SELECT `+quarantineColumns+` FROM quarantine
		WHERE ($1 = '' OR reason = $1) AND ($2 = '' OR topic = $2) AND id > $3
		ORDER BY id LIMIT $4`, string(f.Reason), f.Topic, f.AfterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanQuarantine)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}

// LockReplayable returns the items with reason that were never replayed, in
// id order (the order they were consumed in), locking them until tx ends: a
// concurrent replay waits, then finds them replayed and skips them.
func LockReplayable(ctx context.Context, tx pgx.Tx, reason meters.Reason) ([]QuarantineItem, error) {
	rows, err := tx.Query(ctx, `
		SELECT `+quarantineColumns+` FROM quarantine
		WHERE reason = $1 AND replayed_at IS NULL ORDER BY id FOR UPDATE`, string(reason))
	if err != nil {
		return nil, fmt.Errorf("lock quarantine items %s: %w", reason, err)
	}
	out, err := pgx.CollectRows(rows, scanQuarantine)
	if err != nil {
		return nil, fmt.Errorf("lock quarantine items %s: %w", reason, err)
	}
	return out, nil
}

// MarkReplayed records that the items with these ids have been applied, with
// the replay's number: taken here, from the one row of replay_version, which
// stays locked until tx ends, so replays commit in the order of their
// numbers and a run's snapshot includes exactly the replays numbered up to
// the one it sees (migrations/00903_explain.sql). It is taken last, after
// the counts' rows, so replays lock in the order batches do and then one
// row batches never touch.
func MarkReplayed(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	var replay int64
	if err := tx.QueryRow(ctx, `UPDATE replay_version SET version = nextval('replay_version_seq') RETURNING version`).
		Scan(&replay); err != nil {
		return fmt.Errorf("number the replay: %w", err)
	}
	tag, err := tx.Exec(ctx, `UPDATE quarantine SET replayed_at = now(), replay_version = $2
		WHERE id = ANY($1::bigint[]) AND replayed_at IS NULL`, ids, replay)
	if err != nil {
		return fmt.Errorf("mark quarantine replayed: %w", err)
	}
	if tag.RowsAffected() != int64(len(ids)) {
		return fmt.Errorf("mark quarantine replayed: %d of %d rows: %w", tag.RowsAffected(), len(ids), ErrConcurrentWrite)
	}
	return nil
}

package readstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Partitions creates the monthly partitions of read_blocks before a batch
// writes into them (migrations/00800_read_blocks.sql).
//
// Creating a partition locks read_blocks exclusively until it commits, so
// the consumer creates a batch's months before it begins the batch's
// transaction (which would otherwise hold that lock for the whole batch),
// on a connection of its own, in a short transaction with a short lock
// timeout (a timeout fails the batch as transient, and it is retried).
// Ensure must be called holding no connection of the pool: callers that
// wait for one another here would otherwise hold the connections the
// creator needs. Each month is created once per process; the month after
// the latest one asked for is created with it, so that live data finds its
// next month ready.
type Partitions struct {
	pool        *pgxpool.Pool
	lockTimeout time.Duration
	// creating is held by the one Ensure creating months, across its I/O,
	// so that a concurrent batch needing the same month waits for it to
	// exist rather than taking it for created. mu guards created and is
	// never held across I/O: createdAll runs inside batch transactions,
	// which hold connections the creator may need.
	creating sync.Mutex
	mu       sync.Mutex
	created  map[int64]bool // month starts, unix seconds
}

// createdAll reports whether Ensure created every month of starts.
func (p *Partitions) createdAll(starts []int64) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range starts {
		if !p.created[monthOf(s)] {
			return false
		}
	}
	return true
}

// NewPartitions returns a Partitions creating on pool, waiting at most
// lockTimeout for the table's lock.
func NewPartitions(pool *pgxpool.Pool, lockTimeout time.Duration) *Partitions {
	return &Partitions{pool: pool, lockTimeout: lockTimeout, created: map[int64]bool{}}
}

func monthOf(unix int64) int64 {
	t := time.Unix(unix, 0).UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
}

func nextMonth(month int64) int64 {
	return time.Unix(month, 0).UTC().AddDate(0, 1, 0).Unix()
}

// Ensure makes sure a partition exists for every block start in starts
// (unix seconds). p may be nil: then it does nothing, and batches check
// their months in their own transactions.
func (p *Partitions) Ensure(ctx context.Context, starts []int64) error {
	if p == nil {
		return nil
	}
	if len(p.missing(starts)) == 0 {
		return nil
	}
	p.creating.Lock()
	defer p.creating.Unlock()
	missing := p.missing(starts) // another Ensure may have created them meanwhile
	if len(missing) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
			fmt.Sprint(p.lockTimeout.Milliseconds())); err != nil {
			return err
		}
		return EnsurePartitions(ctx, tx, missing)
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range missing {
		p.created[m] = true
	}
	return nil
}

// missing are the months of starts, and the month after the latest, that
// Ensure has not created.
func (p *Partitions) missing(starts []int64) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var missing []int64
	latest := int64(0)
	for _, s := range starts {
		m := monthOf(s)
		latest = max(latest, m)
		if !p.created[m] && !slices.Contains(missing, m) {
			missing = append(missing, m)
		}
	}
	if next := nextMonth(latest); latest > 0 && !p.created[next] && !slices.Contains(missing, next) {
		missing = append(missing, next)
	}
	return missing
}

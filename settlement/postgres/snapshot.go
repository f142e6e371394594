package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// maxReadSeconds is the longest read interval of the contract: a read that
// starts up to this long before the day can still reach into it.
const maxReadSeconds = 3600

// snapshot is what one run settles from, read in one REPEATABLE READ
// transaction.
type snapshot struct {
	lineage      Lineage
	completeness *Completeness
	prices       map[string][]decimal.NullDecimal // per point, per interval of the day
	lines        map[lineKey]*lineCells
	charges      map[chargeKey]chargeSums
	// estimates are gridsettle's estimates of the day's missing channel
	// intervals (estimate.go), in no particular order.
	estimates []runEstimate
}

// lineCells are the exact per-interval sums of one (participant, point).
type lineCells struct {
	cells []cell // indexed like Market.Intervals(day)
	reads settlement.ReadCounts
}

type cell struct {
	mwh               decimal.Decimal
	actual, estimated int
	estMWh            decimal.Decimal // the part of mwh gridsettle's estimates make
	gsEstimated       int             // estimate pieces
}

type chargeSums struct {
	importKWh, exportKWh decimal.Decimal // raw, after mapping, before loss factor, estimates included
	estimatedKWh         decimal.Decimal // Σ import − Σ export of gridsettle's estimates, exact
	pricedAmount         decimal.Decimal // Σ over priced intervals of mwh × price, exact
}

// snapshot reads the inputs of day: lineage, settlement prices and the exact
// per-interval sums of current reads under the assignments that cover them.
func (r *Runs) snapshot(ctx context.Context, conn *pgx.Conn, day settlement.Day) (*snapshot, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot of %s: %w", day, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	s := &snapshot{lines: map[lineKey]*lineCells{}, charges: map[chargeKey]chargeSums{}}
	// The reads query is a large, simple scan: JIT compilation costs more
	// than it saves.
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("configure snapshot: %w", err)
	}
	if s.lineage, err = readLineage(ctx, tx); err != nil {
		return nil, err
	}
	if s.completeness, err = readCompleteness(ctx, tx, r.cfg.ReadsTopic); err != nil {
		return nil, err
	}
	m := r.cfg.Market
	starts := m.Intervals(day)
	if len(starts) == 0 {
		return s, nil
	}
	if s.prices, err = readPrices(ctx, tx, m, day); err != nil {
		return nil, err
	}
	if err := s.readEnergy(ctx, tx, m, starts); err != nil {
		return nil, err
	}
	return s, tx.Commit(ctx)
}

func readLineage(ctx context.Context, tx pgx.Tx) (Lineage, error) {
	rows, err := tx.Query(ctx, `SELECT topic, partition, next_offset - 1 FROM ingest_offsets
		WHERE next_offset > 0 ORDER BY topic, partition`)
	if err != nil {
		return Lineage{}, fmt.Errorf("read input offsets: %w", err)
	}
	in, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LineageInput])
	if err != nil {
		return Lineage{}, fmt.Errorf("read input offsets: %w", err)
	}
	if in == nil {
		in = []LineageInput{}
	}
	l := Lineage{Inputs: in, ReplaysThrough: new(int64), RegistryVersion: new(int64)}
	if err := tx.QueryRow(ctx, `SELECT (SELECT version FROM replay_version), (SELECT version FROM registry_version)`).
		Scan(l.ReplaysThrough, l.RegistryVersion); err != nil {
		return Lineage{}, fmt.Errorf("read replay and registry versions: %w", err)
	}
	return l, nil
}

// readCompleteness reads ingest's counts of every input partition it knows,
// in the snapshot that read the lineage, so that both stop at the same
// offsets: a batch commits its counts with its offset. nil when some
// partition was consumed before ingest counted (its counts do not start at
// offset 0).
func readCompleteness(ctx context.Context, tx pgx.Tx, readsTopic string) (*Completeness, error) {
	stored, err := readstore.ReadCounts(ctx, tx)
	if err != nil {
		return nil, err
	}
	c := &Completeness{Inputs: make([]CompletenessInput, 0, len(stored))}
	for _, s := range stored {
		if s.CountedFrom > 0 {
			return nil, nil
		}
		in := CompletenessInput{Topic: s.Topic, Partition: s.Partition, OffsetThrough: s.NextOffset - 1,
			Records: s.Records, Applied: s.Applied, Quarantined: make(map[string]int64, len(s.Quarantined))}
		for reason, n := range s.Quarantined {
			in.Quarantined[string(reason)] = n
		}
		if s.Topic == readsTopic {
			in.ReadsApplied, in.ReadsStale, in.ReadsDuplicate = &s.ReadsApplied, &s.ReadsStale, &s.ReadsDuplicate
		}
		c.Inputs = append(c.Inputs, in)
	}
	return c, nil
}

// readPrices settles the price of every point with RT prices near the day,
// for every interval of the day.
func readPrices(ctx context.Context, tx pgx.Tx, m settlement.Market, day settlement.Day) (map[string][]decimal.NullDecimal, error) {
	start, end := m.Bounds(day)
	rows, err := tx.Query(ctx, `SELECT settlement_point, interval_start, interval_seconds, price FROM prices
		WHERE market = 'RT' AND interval_start > $1 AND interval_start < $2`,
		start.Add(-maxReadSeconds*time.Second), end)
	if err != nil {
		return nil, fmt.Errorf("read prices of %s: %w", day, err)
	}
	series := map[string]*settlement.Prices{}
	var (
		point   string
		at      time.Time
		seconds int
		price   decimal.Decimal
	)
	_, err = pgx.ForEachRow(rows, []any{&point, &at, &seconds, &price}, func() error {
		p := series[point]
		if p == nil {
			p = &settlement.Prices{}
			series[point] = p
		}
		if err := p.Add(at, seconds, price); err != nil {
			return fmt.Errorf("RT prices of %s: %w", point, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read prices of %s: %w", day, err)
	}
	out := make(map[string][]decimal.NullDecimal, len(series))
	for point, p := range series {
		out[point] = m.DayPrices(day, p)
	}
	return out, nil
}

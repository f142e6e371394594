package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
)

// maxReadSeconds is the longest read interval of the contract: a read that
// starts up to this long before the day can still reach into it.
const maxReadSeconds = 3600

// snapshot is what one run settles from, read in one REPEATABLE READ
// transaction.
type snapshot struct {
	lineage Lineage
	prices  map[string][]decimal.NullDecimal // per point, per interval of the day
	lines   map[lineKey]*lineCells
	charges map[chargeKey]chargeSums
}

// lineCells are the exact per-interval sums of one (participant, point).
type lineCells struct {
	cells []cell // indexed like Market.Intervals(day)
	reads settlement.ReadCounts
}

type cell struct {
	mwh               decimal.Decimal
	actual, estimated int
}

type chargeSums struct {
	importKWh, exportKWh decimal.Decimal // raw, after mapping, before loss factor
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
	if s.lineage, err = readLineage(ctx, tx); err != nil {
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
	if err := s.readEnergy(ctx, tx, m, day, starts); err != nil {
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
	return Lineage{Inputs: in}, nil
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

// energySQL settles reads in SQL, set-based, in one pass:
//   - each current read joins the assignment in force at its start;
//   - it maps onto settlement intervals of L ($4 seconds) as settlement.md
//     step 2 says: a read no longer than L lands whole in the interval
//     containing it; a longer one is split into n = len/L pieces, each
//     value/n rounded half-even to 9 places, the last taking the remainder
//     (meters.ToSettlementIntervals; reads are never negative, so the integer
//     arithmetic below is that rounding);
//   - pieces outside the day's intervals [$3, $2) are dropped;
//   - sums are exact numeric: per (participant, point, interval) the
//     settlement energy Σ net kWh × loss factor / 1000 and read counts, and
//     per (account, participant) raw import and export kWh and the amount
//     over priced intervals, with the settlement prices passed in ($5-$7).
//
// A read counts once in its line's read counts (at its first piece in the
// day) and once in every interval it contributes to.
const energySQL = `
WITH pr AS (
	SELECT * FROM unnest($5::text[], $6::timestamptz[], $7::numeric[]) AS pr(settlement_point, t, price)
), src AS (
	SELECT a.account_id, a.participant_id, a.settlement_point, a.loss_factor,
	       r.channel, r.quality, r.value, r.interval_start, r.interval_seconds
	FROM reads r
	JOIN meter_assignments a ON a.meter_id = r.meter_id
	 AND a.effective_from <= r.interval_start
	 AND (a.effective_to IS NULL OR r.interval_start < a.effective_to)
	WHERE r.interval_start >= $1 AND r.interval_start < $2
), pieces AS (
	SELECT account_id, participant_id, settlement_point, loss_factor, channel, quality,
	       date_bin($4::int * interval '1 second', interval_start, timestamptz '1970-01-01 00:00:00+00') AS t,
	       value AS kwh, true AS first
	FROM src WHERE interval_seconds <= $4::int
	UNION ALL
	SELECT s.account_id, s.participant_id, s.settlement_point, s.loss_factor, s.channel, s.quality,
	       s.interval_start + k * $4::int * interval '1 second',
	       CASE WHEN k < d.n - 1 THEN p.piece ELSE s.value - (d.n - 1) * p.piece END,
	       k = 0 OR s.interval_start + k * $4::int * interval '1 second' = $3
	FROM src s
	CROSS JOIN LATERAL (SELECT s.interval_seconds / $4::int AS n, s.value * 1000000000 AS v) d
	CROSS JOIN LATERAL (SELECT div(d.v, d.n) AS q) q
	CROSS JOIN LATERAL (SELECT (q.q + CASE WHEN 2 * (d.v - q.q * d.n) > d.n
	                                       OR (2 * (d.v - q.q * d.n) = d.n AND mod(q.q, 2) = 1)
	                                  THEN 1 ELSE 0 END) * 0.000000001 AS piece) p
	CROSS JOIN LATERAL generate_series(0, d.n - 1) AS k
	WHERE s.interval_seconds > $4::int
), net AS (
	SELECT pc.*, CASE WHEN pc.channel = 'import' THEN pc.kwh ELSE -pc.kwh END * pc.loss_factor AS lf_kwh, pr.price
	FROM pieces pc LEFT JOIN pr ON pr.settlement_point = pc.settlement_point AND pr.t = pc.t
	WHERE pc.t >= $3::timestamptz AND pc.t < $2::timestamptz
)
SELECT GROUPING(account_id) = 1 AS line_row,
       participant_id, coalesce(settlement_point, ''), coalesce(t, $3), coalesce(account_id, ''),
       sum(lf_kwh) * 0.001,
       coalesce(sum(kwh) FILTER (WHERE channel = 'import'), 0),
       coalesce(sum(kwh) FILTER (WHERE channel = 'export'), 0),
       coalesce(sum(lf_kwh * price) FILTER (WHERE price IS NOT NULL), 0) * 0.001,
       count(*) FILTER (WHERE quality = 'A'),
       count(*) FILTER (WHERE quality <> 'A'),
       count(*) FILTER (WHERE first AND quality = 'A'),
       count(*) FILTER (WHERE first AND quality = 'E'),
       count(*) FILTER (WHERE first AND quality = 'S')
FROM net
GROUP BY GROUPING SETS ((participant_id, settlement_point, t), (account_id, participant_id))`

func (s *snapshot) readEnergy(ctx context.Context, tx pgx.Tx, m settlement.Market, day settlement.Day, starts []time.Time) error {
	_, end := m.Bounds(day)
	index := make(map[int64]int, len(starts))
	for i, t := range starts {
		index[t.Unix()] = i
	}
	var points []string
	var at []time.Time
	var prices []decimal.Decimal
	for point, ps := range s.prices {
		for i, p := range ps {
			if p.Valid {
				points, at, prices = append(points, point), append(at, starts[i]), append(prices, p.Decimal)
			}
		}
	}
	rows, err := tx.Query(ctx, energySQL, starts[0].Add(-maxReadSeconds*time.Second), end, starts[0],
		m.IntervalSeconds, points, at, prices)
	if err != nil {
		return fmt.Errorf("settle reads: %w", err)
	}
	var (
		lineRow                       bool
		participant, point, account   string
		t                             time.Time
		mwh, imp, exp, amount         decimal.Decimal
		actual, estimated, rA, rE, rS int
	)
	_, err = pgx.ForEachRow(rows, []any{&lineRow, &participant, &point, &t, &account, &mwh, &imp, &exp, &amount,
		&actual, &estimated, &rA, &rE, &rS}, func() error {
		if !lineRow {
			s.charges[chargeKey{account, participant}] = chargeSums{importKWh: imp, exportKWh: exp, pricedAmount: amount}
			return nil
		}
		i, ok := index[t.Unix()]
		if !ok {
			return fmt.Errorf("energy at %s is not in an interval of the day", t.UTC().Format(time.RFC3339))
		}
		k := lineKey{participant, point}
		lc := s.lines[k]
		if lc == nil {
			lc = &lineCells{cells: make([]cell, len(starts))}
			s.lines[k] = lc
		}
		lc.cells[i] = cell{mwh: mwh, actual: actual, estimated: estimated}
		lc.reads.Actual += rA
		lc.reads.Estimated += rE
		lc.reads.Substituted += rS
		return nil
	})
	if err != nil {
		return fmt.Errorf("settle reads: %w", err)
	}
	return nil
}

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
	// The per-read queries are large, simple scans and hash aggregates: JIT
	// compilation costs more than it saves, and sorts must not spill.
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("configure snapshot: %w", err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '128MB'`); err != nil {
		return nil, fmt.Errorf("configure snapshot: %w", err)
	}
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

// piecesSQL maps current reads onto the settlement intervals of the day,
// set-based, as a CTE "pieces" for the two queries below:
//   - each current read joins the assignment in force at its start;
//   - a read no longer than L ($3 seconds) lands whole in the interval
//     containing it; it is in the day when its start is in [$1, $2), the
//     first interval's start to the last one's end (both multiples of L);
//   - a longer read is split into n = len/L pieces, each value/n rounded
//     half-even to 9 places and the last taking the remainder
//     (settlement.md step 2, meters.ToSettlementIntervals; reads are never
//     negative, so the integer arithmetic below is that rounding); pieces
//     outside [$1, $2) are dropped, so a read may straddle days;
//   - first marks the read's first piece in the day, where it is counted.
//
// The two branches keep the common case (len <= L) free of a set-returning
// call per read and give the planner plain ranges to estimate.
const piecesSQL = `
WITH pieces AS (
	SELECT a.account_id, a.participant_id, a.settlement_point, a.loss_factor, r.channel, r.quality,
	       date_bin($3::int * interval '1 second', r.interval_start, timestamptz '1970-01-01 00:00:00+00') AS t,
	       r.value AS kwh, true AS first
	FROM reads r
	JOIN meter_assignments a ON a.meter_id = r.meter_id
	 AND a.effective_from <= r.interval_start AND (a.effective_to IS NULL OR r.interval_start < a.effective_to)
	WHERE r.interval_start >= $1 AND r.interval_start < $2 AND r.interval_seconds <= $3::int
	UNION ALL
	SELECT * FROM (
		SELECT a.account_id, a.participant_id, a.settlement_point, a.loss_factor, r.channel, r.quality,
		       r.interval_start + k * $3::int * interval '1 second' AS t,
		       CASE WHEN k < d.n - 1 THEN p.piece ELSE r.value - (d.n - 1) * p.piece END AS kwh,
		       k = 0 OR r.interval_start + k * $3::int * interval '1 second' = $1 AS first
		FROM reads r
		JOIN meter_assignments a ON a.meter_id = r.meter_id
		 AND a.effective_from <= r.interval_start AND (a.effective_to IS NULL OR r.interval_start < a.effective_to)
		CROSS JOIN LATERAL (SELECT r.interval_seconds / $3::int AS n, r.value * 1000000000 AS v) d
		CROSS JOIN LATERAL (SELECT div(d.v, d.n) AS q) q
		CROSS JOIN LATERAL (SELECT (q.q + CASE WHEN 2 * (d.v - q.q * d.n) > d.n
		                                       OR (2 * (d.v - q.q * d.n) = d.n AND mod(q.q, 2) = 1)
		                                  THEN 1 ELSE 0 END) * 0.000000001 AS piece) p
		CROSS JOIN LATERAL generate_series(0, d.n - 1) AS k
		WHERE r.interval_start > $1 - $4::int * interval '1 second' AND r.interval_start < $2
		  AND r.interval_seconds > $3::int
	) long WHERE long.t >= $1 AND long.t < $2
)`

// lineSQL sums the pieces per (participant, point, interval) and loss
// factor and channel: kWh exactly, and reads by quality (each read once per
// interval it reaches, and once per line at its first piece). Keeping the
// loss factor out of the per-read work leaves one numeric sum per read; Go
// applies the few distinct loss factors to the sums.
const lineSQL = piecesSQL + `
SELECT participant_id, settlement_point, t, loss_factor, channel = 'export', sum(kwh),
       count(*) FILTER (WHERE quality = 'A'), count(*) FILTER (WHERE quality <> 'A'),
       count(*) FILTER (WHERE first AND quality = 'A'), count(*) FILTER (WHERE first AND quality = 'E'),
       count(*) FILTER (WHERE first AND quality = 'S')
FROM pieces
GROUP BY participant_id, settlement_point, t, loss_factor, channel`

// chargeSQL sums the pieces per (account, participant) and loss factor:
// raw import and export kWh, and Σ net kWh × settlement price over priced
// intervals, with the settlement prices passed in ($5-$7).
const chargeSQL = piecesSQL + `, pr AS (
	SELECT * FROM unnest($5::text[], $6::timestamptz[], $7::numeric[]) AS pr(settlement_point, t, price)
)
SELECT pc.account_id, pc.participant_id, pc.loss_factor,
       coalesce(sum(pc.kwh) FILTER (WHERE pc.channel = 'import'), 0),
       coalesce(sum(pc.kwh) FILTER (WHERE pc.channel = 'export'), 0),
       coalesce(sum(CASE WHEN pc.channel = 'import' THEN pc.kwh ELSE -pc.kwh END * pr.price), 0)
FROM pieces pc LEFT JOIN pr ON pr.settlement_point = pc.settlement_point AND pr.t = pc.t
GROUP BY pc.account_id, pc.participant_id, pc.loss_factor`

// readEnergy runs lineSQL and chargeSQL and applies the loss factors:
// settlement energy is settlement.MWh of the summed kWh, and the amount of
// an account is settlement.MWh of its summed kWh × price, both exact.
func (s *snapshot) readEnergy(ctx context.Context, tx pgx.Tx, m settlement.Market, starts []time.Time) error {
	index := make(map[int64]int, len(starts))
	for i, t := range starts {
		index[t.Unix()] = i
	}
	first, end := starts[0], starts[len(starts)-1].Add(m.Interval())
	args := []any{first, end, m.IntervalSeconds, maxReadSeconds}

	rows, err := tx.Query(ctx, lineSQL, args...)
	if err != nil {
		return fmt.Errorf("settle reads per line: %w", err)
	}
	var (
		participant, point, account   string
		t                             time.Time
		lf, kwh, imp, exp, priced     decimal.Decimal
		export                        bool
		actual, estimated, rA, rE, rS int
	)
	_, err = pgx.ForEachRow(rows, []any{&participant, &point, &t, &lf, &export, &kwh, &actual, &estimated, &rA, &rE, &rS}, func() error {
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
		if export {
			kwh = kwh.Neg()
		}
		c := &lc.cells[i]
		c.mwh = c.mwh.Add(settlement.MWh(kwh, lf))
		c.actual += actual
		c.estimated += estimated
		lc.reads.Actual += rA
		lc.reads.Estimated += rE
		lc.reads.Substituted += rS
		return nil
	})
	if err != nil {
		return fmt.Errorf("settle reads per line: %w", err)
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
	rows, err = tx.Query(ctx, chargeSQL, append(args, points, at, prices)...)
	if err != nil {
		return fmt.Errorf("settle reads per account: %w", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&account, &participant, &lf, &imp, &exp, &priced}, func() error {
		k := chargeKey{account, participant}
		c := s.charges[k]
		s.charges[k] = chargeSums{
			importKWh:    c.importKWh.Add(imp),
			exportKWh:    c.exportKWh.Add(exp),
			pricedAmount: c.pricedAmount.Add(settlement.MWh(priced, lf)),
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("settle reads per account: %w", err)
	}
	return nil
}

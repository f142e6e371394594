package postgres

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
)

// dayBook is an account's operating day under evaluation for daily_usage:
// its import figure as committed before the transaction, moved record by
// record.
type dayBook struct {
	key       dayKey
	threshold decimal.Decimal
	usage
	done bool // fired for this identity
	seen int  // the last step (1-based) that moved the book
}

// check fires the book's alert the first time its figure reaches the
// threshold.
func (b *dayBook) check(h *Hook) (alerts.Alert, bool) {
	if b.done {
		return alerts.Alert{}, false
	}
	al, ok := alerts.CheckDailyUsage(alerts.Usage{
		AccountID: b.key.account, OperatingDay: b.key.day, KWh: b.kwh, AllActual: b.estimated == 0, EventTime: b.lastEnd,
	}, b.threshold, h.locale)
	b.done = ok
	return al, ok
}

// monthBook is an account's month under evaluation for monthly_budget: the
// settlement energy of each cell of the month (all its meters, summed over
// slots) and the month-to-date cost Σ energy × settlement price over priced
// cells, kept current as energy and prices move record by record.
type monthBook struct {
	key      monthKey
	budget   decimal.Decimal
	from, to time.Time // the month's bounds
	cells    map[cell]*energy
	cost     decimal.Decimal
	done     bool
	seen     int
}

// cellPrices is the settlement price of cells from the current RT prices.
type cellPrices struct {
	seconds int // the settlement interval L
	series  map[string]*settlement.Prices
}

func (p cellPrices) at(c cell) decimal.NullDecimal {
	return p.series[c.point].At(p.seconds, time.Unix(c.start, 0).UTC())
}

// addEnergy moves the book's cell by e, and the cost by its priced amount.
func (b *monthBook) addEnergy(c cell, e energy, prices cellPrices) {
	cur := b.cells[c]
	if cur == nil {
		cur = &energy{mwh: decimal.Zero}
		b.cells[c] = cur
	}
	cur.add(e)
	if p := prices.at(c); p.Valid {
		b.cost = b.cost.Add(e.mwh.Mul(p.Decimal))
	}
}

// reprice moves the cost by the cell's energy times the change of its
// settlement price (an unpriced cell counts nothing).
func (b *monthBook) reprice(c cell, before, after decimal.NullDecimal) {
	e := b.cells[c]
	if e == nil {
		return
	}
	if before.Valid {
		b.cost = b.cost.Sub(e.mwh.Mul(before.Decimal))
	}
	if after.Valid {
		b.cost = b.cost.Add(e.mwh.Mul(after.Decimal))
	}
}

// check fires the book's alert the first time the cost reaches the budget.
// data_quality and event_time describe the priced cells behind the figure.
func (b *monthBook) check(h *Hook, prices cellPrices) (alerts.Alert, bool) {
	if b.done || b.cost.LessThan(b.budget) {
		return alerts.Alert{}, false
	}
	allActual := true
	var latest int64
	for c, e := range b.cells {
		if !prices.at(c).Valid {
			continue
		}
		allActual = allActual && e.estimated == 0
		latest = max(latest, c.start)
	}
	event := time.Unix(latest, 0).UTC().Add(h.market.Interval())
	al, ok := alerts.CheckMonthlyBudget(alerts.Spend{
		AccountID: b.key.account, Month: b.key.month, Amount: b.cost, AllActual: allActual, EventTime: event,
	}, b.budget, h.locale)
	b.done = ok
	return al, ok
}

// rawPrices are current RT prices by point: interval length and price by
// interval start.
type rawPrices map[string]*rawSeries

type rawSeries struct {
	seconds int
	byStart map[int64]decimal.Decimal
}

func (r rawPrices) set(point string, start time.Time, seconds int, price decimal.Decimal) {
	s := r[point]
	if s == nil {
		s = &rawSeries{seconds: seconds, byStart: map[int64]decimal.Decimal{}}
		r[point] = s
	}
	s.byStart[start.Unix()] = price
}

// scan reads rows of (settlement_point, interval_start, interval_seconds,
// price) into r.
func (r rawPrices) scan(rows pgx.Rows) error {
	var point string
	var start time.Time
	var seconds int
	var price decimal.Decimal
	_, err := pgx.ForEachRow(rows, []any{&point, &start, &seconds, &price}, func() error {
		r.set(point, start, seconds, price)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read prices: %w", err)
	}
	return nil
}

// prices turns r into settlement price series (settlement.Prices: the one
// settlement price function of gridsettle).
func (r rawPrices) prices(seconds int) (cellPrices, error) {
	out := cellPrices{seconds: seconds, series: map[string]*settlement.Prices{}}
	for point, s := range r {
		p := &settlement.Prices{}
		for start, v := range s.byStart {
			if err := p.Add(time.Unix(start, 0).UTC(), s.seconds, v); err != nil {
				return cellPrices{}, fmt.Errorf("prices of %s: %w", point, err)
			}
		}
		out.series[point] = p
	}
	return out, nil
}

// longestPrice is the longest price interval of the contract: a price that
// covers a settlement interval may start this much before it.
const longestPrice = time.Hour

// newMonthBook is an empty book of key with its month's bounds.
func (h *Hook) newMonthBook(key monthKey, budget decimal.Decimal) (*monthBook, error) {
	from, to, err := h.monthBounds(key.month)
	if err != nil {
		return nil, fmt.Errorf("month of %s: %w", key.account, err)
	}
	return &monthBook{key: key, budget: budget, from: from, to: to, cells: map[cell]*energy{}, cost: decimal.Zero}, nil
}

// queueBooks queues, after the accounts' locks, what month books need: the
// energy of each account's months (summed over slots) and the RT prices of
// every point the accounts have energy at in those months, plus points.
func (h *Hook) queueBooks(b *pgx.Batch, cal *calendar, books map[monthKey]*monthBook, points []string, raw rawPrices) {
	var accts []string
	var starts, ends []time.Time
	var lo, hi time.Time
	for _, bk := range books {
		accts, starts, ends = append(accts, bk.key.account), append(starts, bk.from), append(ends, bk.to)
		if lo.IsZero() || bk.from.Before(lo) {
			lo = bk.from
		}
		if bk.to.After(hi) {
			hi = bk.to
		}
	}
	if len(accts) == 0 {
		return
	}
	b.Queue(`
		SELECT e.account_id, e.settlement_point, e.interval_start, sum(e.energy_mwh), sum(e.estimated_reads)::int
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(account_id, s, e)
		JOIN alert_energy e ON e.account_id = k.account_id AND e.interval_start >= k.s AND e.interval_start < k.e
		GROUP BY 1, 2, 3`, accts, starts, ends,
	).Query(func(rows pgx.Rows) error {
		var acct, point string
		var start time.Time
		var e energy
		_, err := pgx.ForEachRow(rows, []any{&acct, &point, &start, &e.mwh, &e.estimated}, func() error {
			// An account may have two months under evaluation: the
			// interval's own month is its book.
			if bk := books[monthKey{acct, cal.month(start)}]; bk != nil {
				v := e
				v.stored = true
				bk.cells[cell{point, start.Unix()}] = &v
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read month energy: %w", err)
		}
		return nil
	})
	b.Queue(`
		SELECT p.settlement_point, p.interval_start, p.interval_seconds, p.price FROM prices p
		WHERE p.market = 'RT' AND p.interval_start >= $3 AND p.interval_start < $4
		  AND p.settlement_point IN (
		      SELECT settlement_point FROM alert_energy
		      WHERE account_id = ANY($1::text[]) AND interval_start >= $5 AND interval_start < $4
		      UNION SELECT unnest($2::text[]))`,
		accts, points, lo.Add(-longestPrice), hi, lo,
	).Query(func(rows pgx.Rows) error { return raw.scan(rows) })
}

// priceAll computes the book's cost from its cells and prices.
func (b *monthBook) priceAll(prices cellPrices) {
	b.cost = decimal.Zero
	for c, e := range b.cells {
		if p := prices.at(c); p.Valid {
			b.cost = b.cost.Add(e.mwh.Mul(p.Decimal))
		}
	}
}

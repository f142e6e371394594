package postgres

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
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
		AccountID: b.key.account, OperatingDay: b.key.day, KWh: b.kwh(), AllActual: b.estimated == 0, EventTime: b.lastEnd,
	}, b.threshold, h.locale)
	b.done = ok
	return al, ok
}

// spend is a month's running figures as alert_month_books keeps them: the
// month-to-date cost Σ energy × settlement price over the priced intervals
// with energy, the non-actual reads behind those intervals (each interval's
// count is at least 0, so 0 means every read behind the cost is actual) and
// the start of the latest of them (zero: none). A settlement price, once an
// interval has one, is corrected but never removed (settlement.Prices), so
// the set of priced intervals with energy only grows and the figures move
// by differences.
type spend struct {
	cost      decimal.Decimal
	estimated int
	latest    time.Time
}

// priced adds an interval that has (or just got) a settlement price: its
// energy's estimated reads and its start.
func (s *spend) priced(c cell, estimated int) {
	s.estimated += estimated
	if t := time.Unix(c.start, 0).UTC(); t.After(s.latest) {
		s.latest = t
	}
}

// monthBook is an account's month under evaluation for monthly_budget: its
// running figures as committed before the transaction (alert_month_books),
// moved record by record.
type monthBook struct {
	key      monthKey
	budget   decimal.Decimal
	from, to time.Time // the month's bounds
	spend
	// cells is the energy the book needs, summed over every block: a price
	// batch's repriced intervals, or, for a book built now, the whole month.
	cells map[cell]*energy
	// built: the month had no alert_month_books row and was summed from its
	// energy and prices in this transaction.
	built bool
	dirty bool // the figures moved: the row is written
	done  bool
	seen  int
}

// cellPrices is the settlement price of cells from the current RT prices.
type cellPrices struct {
	seconds int // the settlement interval L
	series  map[string]*settlement.Prices
}

func (p cellPrices) at(c cell) decimal.NullDecimal {
	return p.series[c.point].At(p.seconds, time.Unix(c.start, 0).UTC())
}

// addEnergy moves the book by a record's energy f at k: by its priced
// amount, when the cell has a settlement price.
func (b *monthBook) addEnergy(k energyKey, f flow, prices cellPrices) {
	if p := prices.at(k.cell); p.Valid {
		b.cost = b.cost.Add(mwhOf(f.nano, decimal.New(k.lossMicro, -6)).Mul(p.Decimal))
		b.priced(k.cell, f.estimated)
		b.dirty = true
	}
}

// reprice moves the cost by the cell's energy times the change of its
// settlement price (an unpriced cell counts nothing); a cell priced for the
// first time joins the priced cells.
func (b *monthBook) reprice(c cell, before, after decimal.NullDecimal) {
	e := b.cells[c]
	if e == nil || !after.Valid {
		return
	}
	if before.Valid {
		b.cost = b.cost.Sub(e.mwh.Mul(before.Decimal))
	} else {
		b.priced(c, e.estimated)
	}
	b.cost = b.cost.Add(e.mwh.Mul(after.Decimal))
	b.dirty = true
}

// check fires the book's alert the first time the cost reaches the budget.
// data_quality and event_time describe the priced cells behind the figure.
func (b *monthBook) check(h *Hook) (alerts.Alert, bool) {
	if b.done || b.cost.LessThan(b.budget) {
		return alerts.Alert{}, false
	}
	al, ok := alerts.CheckMonthlyBudget(alerts.Spend{
		AccountID: b.key.account, Month: b.key.month, Amount: b.cost, AllActual: b.estimated == 0,
		EventTime: b.latest.Add(h.market.Interval()),
	}, b.budget, h.locale)
	b.done = ok
	return al, ok
}

// priceAll sums a built book's figures from its month of cells and prices.
func (b *monthBook) priceAll(prices cellPrices) {
	b.spend = spend{cost: decimal.Zero}
	for c, e := range b.cells {
		if p := prices.at(c); p.Valid {
			b.cost = b.cost.Add(e.mwh.Mul(p.Decimal))
			b.priced(c, e.estimated)
		}
	}
	b.dirty = true
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

// queuePricesAround queues the RT prices a settlement price of the cells
// can use, per point from its earliest cell less the longest price interval
// to its latest cell's end.
func (h *Hook) queuePricesAround(b *pgx.Batch, cells []cell, raw rawPrices) {
	if len(cells) == 0 {
		return
	}
	b.Queue(`
		SELECT p.settlement_point, p.interval_start, p.interval_seconds, p.price
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(point, lo, hi)
		JOIN prices p ON p.market = 'RT' AND p.settlement_point = k.point
		 AND p.interval_start >= k.lo - $4::interval AND p.interval_start < k.hi + $5::interval`,
		append(boundsArgs(cells), meters.LongestPrice, h.market.Interval())...,
	).Query(func(rows pgx.Rows) error { return raw.scan(rows) })
}

// boundsArgs are the points of cells with the earliest and the latest cell
// start at each, as the three arrays ($1 points, $2 earliest, $3 latest) a
// look-up by point and time range takes. The bounds are taken here: a
// batch has up to a few hundred thousand cells at a handful of points.
func boundsArgs(cells []cell) []any {
	type bounds struct{ lo, hi int64 }
	byPoint := map[string]*bounds{}
	for _, c := range cells {
		if bd := byPoint[c.point]; bd == nil {
			byPoint[c.point] = &bounds{c.start, c.start}
		} else {
			bd.lo, bd.hi = min(bd.lo, c.start), max(bd.hi, c.start)
		}
	}
	points := sortedKeys(byPoint, cmp.Compare[string])
	los, his := make([]time.Time, len(points)), make([]time.Time, len(points))
	for i, pt := range points {
		los[i], his[i] = time.Unix(byPoint[pt].lo, 0).UTC(), time.Unix(byPoint[pt].hi, 0).UTC()
	}
	return []any{points, los, his}
}

// newMonthBook is an empty book of key with its month's bounds.
func (h *Hook) newMonthBook(key monthKey, budget decimal.Decimal) (*monthBook, error) {
	from, to, err := h.monthBounds(key.month)
	if err != nil {
		return nil, fmt.Errorf("month of %s: %w", key.account, err)
	}
	return &monthBook{key: key, budget: budget, from: from, to: to, cells: map[cell]*energy{}, spend: spend{cost: decimal.Zero}}, nil
}

// queueSpends queues, after the accounts' locks, the stored figures of the
// books; a book without a row is marked built, for buildBooks.
func queueSpends(b *pgx.Batch, books map[monthKey]*monthBook) {
	if len(books) == 0 {
		return
	}
	keys := sortedKeys(books, cmpMonth)
	accts, months := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		accts[i], months[i] = k.account, k.month
		books[k].built = true
	}
	b.Queue(`
		SELECT s.account_id, s.month, s.cost, s.estimated_reads, s.latest_priced
		FROM unnest($1::text[], $2::text[]) AS k(account_id, month)
		JOIN alert_month_books s USING (account_id, month)`, accts, months,
	).Query(func(rows pgx.Rows) error {
		var k monthKey
		var s spend
		var latest *time.Time
		_, err := pgx.ForEachRow(rows, []any{&k.account, &k.month, &s.cost, &s.estimated, &latest}, func() error {
			if bk := books[k]; bk != nil {
				bk.spend, bk.built = s, false
				if latest != nil {
					bk.latest = latest.UTC()
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read month books: %w", err)
		}
		return nil
	})
}

// buildBooks loads, for the books without a stored row, their month of
// energy into cells and the RT prices of every point they have energy at
// into raw; the caller prices them (priceAll) once raw holds the prices it
// evaluates from.
func (h *Hook) buildBooks(ctx context.Context, tx pgx.Tx, cal *calendar, books map[monthKey]*monthBook, raw rawPrices) error {
	var accts []string
	var starts, ends []time.Time
	var lo, hi time.Time
	for _, k := range sortedKeys(books, cmpMonth) {
		bk := books[k]
		if !bk.built {
			continue
		}
		accts, starts, ends = append(accts, k.account), append(starts, bk.from), append(ends, bk.to)
		if lo.IsZero() || bk.from.Before(lo) {
			lo = bk.from
		}
		if bk.to.After(hi) {
			hi = bk.to
		}
	}
	if len(accts) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	// A block starts at most a UTC day before its first interval in the month.
	b.Queue(`
		SELECT e.account_id, e.settlement_point, e.first_start, e.interval_seconds, e.loss_factor, e.nano_kwh, e.estimated_reads
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(account_id, s, e)
		JOIN alert_energy_blocks e ON e.account_id = k.account_id AND e.first_start > k.s - interval '1 day' AND e.first_start < k.e`,
		accts, starts, ends,
	).Query(func(rows pgx.Rows) error {
		return scanEnergyBlocks(rows, func(acct string, c cell, e energy) {
			if bk := books[monthKey{acct, cal.month(time.Unix(c.start, 0))}]; bk != nil && bk.built {
				bk.cells[c] = addTo(bk.cells[c], e)
			}
		})
	})
	b.Queue(`
		SELECT p.settlement_point, p.interval_start, p.interval_seconds, p.price FROM prices p
		WHERE p.market = 'RT' AND p.interval_start >= $2 AND p.interval_start < $3
		  AND p.settlement_point IN (
		      SELECT settlement_point FROM alert_energy_blocks
		      WHERE account_id = ANY($1::text[]) AND first_start > $4 AND first_start < $3)`,
		accts, lo.Add(-meters.LongestPrice), hi, lo.Add(-24*time.Hour),
	).Query(func(rows pgx.Rows) error { return raw.scan(rows) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("alerts: build %d month books: %w", len(accts), err)
	}
	return nil
}

func addTo(cur *energy, e energy) *energy {
	if cur == nil {
		return &e
	}
	cur.add(e)
	return cur
}

// scanEnergyBlocks calls fn with every interval of rows of (account_id,
// settlement_point, first_start, interval_seconds, loss_factor, nano_kwh,
// estimated_reads, extra...) that the block moved, extra scanned first.
func scanEnergyBlocks(rows pgx.Rows, fn func(acct string, c cell, e energy), extra ...any) error {
	var acct, point string
	var first time.Time
	var seconds int64
	var lf decimal.Decimal
	var nano []*int64
	var est []int32
	_, err := pgx.ForEachRow(rows, append([]any{&acct, &point, &first, &seconds, &lf, &nano, &est}, extra...), func() error {
		for i, v := range nano {
			if v == nil {
				continue
			}
			e := energy{mwh: mwhOf(*v, lf)}
			if i < len(est) {
				e.estimated = int(est[i])
			}
			fn(acct, cell{point, first.Unix() + int64(i)*seconds}, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read energy blocks: %w", err)
	}
	return nil
}

// queueSpendWrites stores the books whose figures moved.
func queueSpendWrites(b *pgx.Batch, books map[monthKey]*monthBook) {
	var accts, months []string
	var costs []decimal.Decimal
	var est []int32
	var latest []*time.Time
	for _, k := range sortedKeys(books, cmpMonth) {
		bk := books[k]
		if !bk.dirty {
			continue
		}
		var l *time.Time
		if !bk.latest.IsZero() {
			l = &bk.latest
		}
		accts, months, costs, est, latest = append(accts, k.account), append(months, k.month), append(costs, bk.cost),
			append(est, int32(bk.estimated)), append(latest, l)
	}
	if len(accts) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO alert_month_books (account_id, month, cost, estimated_reads, latest_priced)
		SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::int[], $5::timestamptz[])
		ON CONFLICT (account_id, month) DO UPDATE SET
			cost = excluded.cost, estimated_reads = excluded.estimated_reads, latest_priced = excluded.latest_priced`,
		accts, months, costs, est, latest)
}

var energyBlockColumns = []string{"account_id", "settlement_point", "loss_factor", "slot", "first_start", "last_start",
	"interval_seconds", "nano_kwh", "estimated_reads"}

// appendEnergy appends m's energy differences to slot as blocks: one row
// per account, point, loss factor and UTC day, an element per settlement
// interval from the first one moved (NULL between moved ones). Cells are
// grouped into blocks by a map first and only the blocks are sorted by
// their strings (a batch moves up to a few hundred thousand cells).
func (h *Hook) appendEnergy(ctx context.Context, tx pgx.Tx, m map[energyKey]flow, slot int32) error {
	if len(m) == 0 {
		return nil
	}
	type blockKey struct {
		account, point string
		lossMicro      int64
		day            int64 // unix seconds of the UTC day
	}
	type cellFlow struct {
		start int64
		flow
	}
	groups := map[blockKey][]cellFlow{}
	for k, f := range m {
		bk := blockKey{k.account, k.point, k.lossMicro, meters.Floor(k.start, 86400)}
		groups[bk] = append(groups[bk], cellFlow{k.start, f})
	}
	keys := sortedKeys(groups, func(a, b blockKey) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.point, b.point), cmp.Compare(a.lossMicro, b.lossMicro),
			cmp.Compare(a.day, b.day))
	})
	L := int64(h.market.IntervalSeconds)
	rows := make([][]any, 0, len(keys))
	for _, bk := range keys {
		cells := groups[bk]
		first, last := cells[0].start, cells[0].start
		for _, c := range cells[1:] {
			first, last = min(first, c.start), max(last, c.start)
		}
		n := (last-first)/L + 1
		nano := make([]*int64, n)
		var est []int32
		for i := range cells {
			at := (cells[i].start - first) / L
			nano[at] = &cells[i].nano
			if cells[i].estimated != 0 {
				if est == nil {
					est = make([]int32, n)
				}
				est[at] = int32(cells[i].estimated)
			}
		}
		rows = append(rows, []any{bk.account, bk.point, decimal.New(bk.lossMicro, -6), slot, time.Unix(first, 0).UTC(),
			time.Unix(last, 0).UTC(), int32(L), nano, est})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"alert_energy_blocks"}, energyBlockColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("alerts: append %d energy blocks: %w", len(rows), err)
	}
	return nil
}

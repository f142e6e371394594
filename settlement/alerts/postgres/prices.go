package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// pointDay is a settlement point on an operating day.
type pointDay struct {
	point, day string
}

// accountCell is an account's energy in one cell, over every loss factor.
type accountCell struct {
	account string
	cell
}

// cellsOf are the settlement intervals whose settlement price a price of
// the interval [start, start+seconds) takes part in, in time order.
func (h *Hook) cellsOf(p meters.Price) []cell {
	L := int64(h.market.IntervalSeconds)
	s := p.Start.Unix()
	if int64(p.IntervalSeconds) <= L {
		return []cell{{p.SettlementPoint, meters.Floor(s, L)}}
	}
	var out []cell
	for t := s; t < s+int64(p.IntervalSeconds); t += L {
		out = append(out, cell{p.SettlementPoint, t})
	}
	return out
}

// prices handles a batch (or replay) of price changes: record by record, it
// fires price_spike and negative_price for the watching accounts of each
// settlement interval whose RT settlement price the record moved, and
// monthly_budget for the budgeted accounts with energy there.
func (h *Hook) prices(ctx context.Context, tx pgx.Tx, cal *calendar, a ingest.Applied) ([]alerts.Alert, error) {
	var changes []readstore.PriceChange
	for _, c := range a.Prices {
		if c.Price.Market == meters.RealTime {
			changes = append(changes, c)
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	sc := h.priceScopeOf(cal, changes)
	ld, err := h.loadPriceScope(ctx, tx, cal, sc)
	if err != nil {
		return nil, err
	}
	months, err := h.priceMonthBooks(ctx, tx, cal, sc, ld)
	if err != nil {
		return nil, err
	}

	// The prices as they were before the batch, then record by record.
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.Previous != nil {
			ld.raw.set(c.Price.SettlementPoint, c.Price.Start, c.Price.IntervalSeconds, c.Previous.Price)
		} else if s := ld.raw[c.Price.SettlementPoint]; s != nil {
			delete(s.byStart, c.Price.Start.Unix())
		}
	}
	prices, err := ld.raw.prices(h.market.IntervalSeconds)
	if err != nil {
		return nil, err
	}
	byCell := map[cell][]*monthBook{}
	for _, k := range sortedKeys(months, cmpMonth) {
		bk := months[k]
		if bk.built {
			bk.priceAll(prices)
		}
		for c := range bk.cells {
			if sc.affected[c] {
				byCell[c] = append(byCell[c], bk)
			}
		}
	}

	var fired []alerts.Alert
	done := map[string]bool{}
	for _, c := range changes {
		now, err := h.applyPrice(cal, c.Price, prices, byCell, ld.watchers, done)
		if err != nil {
			return nil, err
		}
		fired = append(fired, now...)
	}
	b := &pgx.Batch{}
	queueSpendWrites(b, months)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: write month books: %w", err)
	}
	return fired, nil
}

// priceScope is what a batch of RT price changes can move: the settlement
// intervals (cells) whose price they take part in, and those cells' points
// and operating days.
type priceScope struct {
	affected map[cell]bool
	cells    []cell   // the affected cells, by point then start
	points   []string // their settlement points, sorted
	days     map[pointDay]bool
}

// priceScopeOf is the scope of changes.
func (h *Hook) priceScopeOf(cal *calendar, changes []readstore.PriceChange) priceScope {
	sc := priceScope{affected: map[cell]bool{}, days: map[pointDay]bool{}}
	for _, c := range changes {
		for _, x := range h.cellsOf(c.Price) {
			sc.affected[x] = true
		}
	}
	sc.cells = sortedKeys(sc.affected, func(a, b cell) int { return cmp.Or(cmp.Compare(a.point, b.point), cmp.Compare(a.start, b.start)) })
	points := map[string]bool{}
	for _, c := range sc.cells {
		points[c.point] = true
		sc.days[pointDay{c.point, cal.day(time.Unix(c.start, 0))}] = true
	}
	sc.points = sortedKeys(points, cmp.Compare[string])
	return sc
}

// priceLoad is what one round trip loads for a priceScope.
type priceLoad struct {
	raw      rawPrices                    // every price a settlement price of the affected cells can use
	watchers map[pointDay][]string        // accounts with price alerts, by point and day
	budgets  map[monthKey]decimal.Decimal // budgeted accounts with energy at an affected cell
	energyAt map[accountCell]*energy      // their energy there
}

// loadPriceScope locks the scope's settlement points and loads, in one
// batch, the prices, the watching accounts and the budgeted accounts'
// energy of the scope.
func (h *Hook) loadPriceScope(ctx context.Context, tx pgx.Tx, cal *calendar, sc priceScope) (priceLoad, error) {
	ld := priceLoad{
		raw:      rawPrices{},
		watchers: map[pointDay][]string{},
		budgets:  map[monthKey]decimal.Decimal{},
		energyAt: map[accountCell]*energy{},
	}
	b := &pgx.Batch{}
	// Reads committed concurrently at these points by accounts with a budget
	// must either wait for this transaction or be seen by it (doc.go,
	// "Concurrency").
	b.Queue(`
		SELECT settlement_point FROM settlement_points WHERE settlement_point = ANY($1::text[])
		ORDER BY settlement_point FOR NO KEY UPDATE`, sc.points)
	h.queuePricesAround(b, sc.cells, ld.raw)
	var dPoints, dDays []string
	var dFrom, dTo []time.Time
	for pd := range sc.days {
		d, err := settlement.ParseDay(pd.day)
		if err != nil {
			return priceLoad{}, err
		}
		from, to := h.market.Bounds(d)
		dPoints, dDays, dFrom, dTo = append(dPoints, pd.point), append(dDays, pd.day), append(dFrom, from), append(dTo, to)
	}
	b.Queue(`
		SELECT DISTINCT k.point, k.day, m.account_id
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS k(point, day, s, e)
		JOIN meter_assignments m ON m.settlement_point = k.point AND m.effective_from < k.e
		 AND (m.effective_to IS NULL OR m.effective_to > k.s)
		JOIN accounts a ON a.account_id = m.account_id AND a.price_alerts
		ORDER BY 1, 2, 3`, dPoints, dDays, dFrom, dTo,
	).Query(func(rows pgx.Rows) error {
		var pd pointDay
		var acct string
		_, err := pgx.ForEachRow(rows, []any{&pd.point, &pd.day, &acct}, func() error {
			ld.watchers[pd] = append(ld.watchers[pd], acct)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read accounts with price alerts: %w", err)
		}
		return nil
	})
	// The energy of budgeted accounts at the affected cells: a block holding
	// t has its last element in [t, t + 1 day) and its first at or before t
	// (migrations/00804_alert_energy_blocks.sql).
	var budget decimal.Decimal
	b.Queue(`
		SELECT e.account_id, e.settlement_point, e.first_start, e.interval_seconds, e.loss_factor, e.nano_kwh, e.estimated_reads,
		       a.monthly_budget
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(point, lo, hi)
		JOIN alert_energy_blocks e ON e.settlement_point = k.point AND e.last_start >= k.lo
		 AND e.last_start < k.hi + interval '1 day' AND e.first_start <= k.hi
		JOIN accounts a ON a.account_id = e.account_id AND a.monthly_budget IS NOT NULL`, boundsArgs(sc.cells)...,
	).Query(func(rows pgx.Rows) error {
		return scanEnergyBlocks(rows, func(acct string, c cell, e energy) {
			if !sc.affected[c] {
				return
			}
			k := accountCell{acct, c}
			ld.energyAt[k] = addTo(ld.energyAt[k], e)
			ld.budgets[monthKey{acct, cal.month(time.Unix(c.start, 0))}] = budget
		}, &budget)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return priceLoad{}, fmt.Errorf("alerts: load prices and watching accounts: %w", err)
	}
	return ld, nil
}

// priceMonthBooks opens (or builds) the month book of every budgeted
// account the scope reaches; a stored book is given only its energy at the
// affected cells.
func (h *Hook) priceMonthBooks(ctx context.Context, tx pgx.Tx, cal *calendar, sc priceScope, ld priceLoad) (map[monthKey]*monthBook, error) {
	months := map[monthKey]*monthBook{}
	for k, budget := range ld.budgets {
		bk, err := h.newMonthBook(k, budget)
		if err != nil {
			return nil, err
		}
		months[k] = bk
	}
	if err := h.openBooks(ctx, tx, nil, months, false, sc.points, nil, ld.raw); err != nil {
		return nil, err
	}
	if err := h.buildBooks(ctx, tx, cal, months, ld.raw); err != nil {
		return nil, err
	}
	for k, e := range ld.energyAt {
		if bk := months[monthKey{k.account, cal.month(time.Unix(k.start, 0))}]; bk != nil && !bk.built {
			bk.cells[k.cell] = e
		}
	}
	return months, nil
}

// applyPrice adds price p to prices, reprices the month books at the cells
// it moved, and returns the alerts it fires, sorted by id; done holds the
// price alerts already fired by the batch.
func (h *Hook) applyPrice(cal *calendar, p meters.Price, prices cellPrices, byCell map[cell][]*monthBook,
	watchers map[pointDay][]string, done map[string]bool) ([]alerts.Alert, error) {
	xs := h.cellsOf(p)
	before := make([]decimal.NullDecimal, len(xs))
	for i, x := range xs {
		before[i] = prices.at(x)
	}
	s := prices.series[p.SettlementPoint]
	if s == nil {
		s = &settlement.Prices{}
		prices.series[p.SettlementPoint] = s
	}
	if err := s.Add(p.Start, p.IntervalSeconds, p.Price); err != nil {
		return nil, fmt.Errorf("alerts: prices of %s: %w", p.SettlementPoint, err)
	}
	var now []alerts.Alert
	touched := map[*monthBook]bool{}
	for i, x := range xs {
		after := prices.at(x)
		for _, bk := range byCell[x] {
			bk.reprice(x, before[i], after)
			touched[bk] = true
		}
		if !after.Valid {
			continue
		}
		start := time.Unix(x.start, 0).UTC()
		day := cal.day(start)
		for _, acct := range watchers[pointDay{x.point, day}] {
			al, ok := alerts.CheckPrice(alerts.PriceEvent{AccountID: acct, OperatingDay: day, SettlementPoint: x.point,
				IntervalStart: start, IntervalEnd: start.Add(h.market.Interval()), Price: after.Decimal},
				h.market.PriceSpikeThreshold, h.locale)
			if ok && !done[al.AlertID] {
				done[al.AlertID] = true
				now = append(now, al)
			}
		}
	}
	for bk := range touched {
		if al, ok := bk.check(h); ok {
			now = append(now, al)
		}
	}
	slices.SortFunc(now, func(x, y alerts.Alert) int { return cmp.Compare(x.AlertID, y.AlertID) })
	return now, nil
}

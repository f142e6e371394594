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
	affected := map[cell]bool{}
	for _, c := range changes {
		for _, x := range h.cellsOf(c.Price) {
			affected[x] = true
		}
	}
	cells := sortedKeys(affected, func(a, b cell) int { return cmp.Or(cmp.Compare(a.point, b.point), cmp.Compare(a.start, b.start)) })
	points := map[string]bool{}
	days := map[pointDay]bool{}
	for _, c := range cells {
		points[c.point] = true
		days[pointDay{c.point, cal.day(time.Unix(c.start, 0))}] = true
	}

	b := &pgx.Batch{}
	// Reads committed concurrently at these points by accounts with a budget
	// must either wait for this transaction or be seen by it (doc.go,
	// "Concurrency").
	b.Queue(`
		SELECT settlement_point FROM settlement_points WHERE settlement_point = ANY($1::text[])
		ORDER BY settlement_point FOR NO KEY UPDATE`, sortedKeys(points, cmp.Compare[string]))
	raw := rawPrices{}
	// Every price a settlement price of the affected cells can use.
	h.queuePricesAround(b, cells, raw)
	watchers := map[pointDay][]string{}
	var dPoints, dDays []string
	var dFrom, dTo []time.Time
	for pd := range days {
		d, err := settlement.ParseDay(pd.day)
		if err != nil {
			return nil, err
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
			watchers[pd] = append(watchers[pd], acct)
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
	budgets := map[monthKey]decimal.Decimal{}
	energyAt := map[accountCell]*energy{}
	var budget decimal.Decimal
	b.Queue(`
		SELECT e.account_id, e.settlement_point, e.first_start, e.interval_seconds, e.loss_factor, e.nano_kwh, e.estimated_reads,
		       a.monthly_budget
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(point, lo, hi)
		JOIN alert_energy_blocks e ON e.settlement_point = k.point AND e.last_start >= k.lo
		 AND e.last_start < k.hi + interval '1 day' AND e.first_start <= k.hi
		JOIN accounts a ON a.account_id = e.account_id AND a.monthly_budget IS NOT NULL`, boundsArgs(cells)...,
	).Query(func(rows pgx.Rows) error {
		return scanEnergyBlocks(rows, func(acct string, c cell, e energy) {
			if !affected[c] {
				return
			}
			k := accountCell{acct, c}
			energyAt[k] = addTo(energyAt[k], e)
			budgets[monthKey{acct, cal.month(time.Unix(c.start, 0))}] = budget
		}, &budget)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: load prices and watching accounts: %w", err)
	}

	months := map[monthKey]*monthBook{}
	for k, budget := range budgets {
		bk, err := h.newMonthBook(k, budget)
		if err != nil {
			return nil, err
		}
		months[k] = bk
	}
	if err := h.openBooks(ctx, tx, nil, months, false, sortedKeys(points, cmp.Compare[string]), nil, raw); err != nil {
		return nil, err
	}
	if err := h.buildBooks(ctx, tx, cal, months, raw); err != nil {
		return nil, err
	}
	// A stored book needs only its energy at the affected cells.
	for k, e := range energyAt {
		if bk := months[monthKey{k.account, cal.month(time.Unix(k.start, 0))}]; bk != nil && !bk.built {
			bk.cells[k.cell] = e
		}
	}

	// The prices as they were before the batch, then record by record.
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.Previous != nil {
			raw.set(c.Price.SettlementPoint, c.Price.Start, c.Price.IntervalSeconds, c.Previous.Price)
		} else if s := raw[c.Price.SettlementPoint]; s != nil {
			delete(s.byStart, c.Price.Start.Unix())
		}
	}
	prices, err := raw.prices(h.market.IntervalSeconds)
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
			if affected[c] {
				byCell[c] = append(byCell[c], bk)
			}
		}
	}

	var fired []alerts.Alert
	done := map[string]bool{}
	for _, c := range changes {
		p := c.Price
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
		fired = append(fired, now...)
	}
	b = &pgx.Batch{}
	queueSpendWrites(b, months)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: write month books: %w", err)
	}
	return fired, nil
}

package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement/alerts"
	"github.com/gridsettle/gridsettle/settlement/ingest"
)

// totals are a batch's differences, summed per aggregate row.
type totals struct {
	usage  map[dayKey]usage
	energy map[energyKey]flow
	meters map[string]meterTouch
}

func (t totals) add(s step) error {
	for _, d := range s.usage {
		u := t.usage[d.key]
		if !u.add(d.usage) {
			return usageOverflow(d.key)
		}
		t.usage[d.key] = u
	}
	for _, d := range s.energy {
		e := t.energy[d.key]
		if !e.add(d.flow) {
			return fmt.Errorf("alerts: the energy of account %s at %s, %s leaves the range of an int64 of nano-kWh",
				d.key.account, d.key.point, time.Unix(d.key.start, 0).UTC())
		}
		t.energy[d.key] = e
	}
	for _, d := range s.meters {
		if was, ok := t.meters[d.id]; !ok || d.end.After(was.end) {
			t.meters[d.id] = d.meterTouch
		}
	}
	return nil
}

func usageOverflow(k dayKey) error {
	return fmt.Errorf("alerts: the import of account %s on %s leaves the range of an int64 of micro-kWh", k.account, k.day)
}

// limits are an account's alert settings.
type limits struct {
	daily  decimal.NullDecimal // daily_kwh_threshold
	budget decimal.NullDecimal // monthly_budget
}

// reads handles a batch (or replay) of read changes: it evaluates
// daily_usage, monthly_budget and missing_data record by record, then adds
// the batch's differences to its slot's aggregates.
func (h *Hook) reads(ctx context.Context, tx pgx.Tx, cal *calendar, a ingest.Applied) ([]alerts.Alert, error) {
	watching, err := h.watchingAccounts(ctx, tx, a)
	if err != nil {
		return nil, err
	}
	steps, err := h.readSteps(a, cal, watching)
	if err != nil {
		return nil, err
	}
	total, err := sumSteps(steps)
	if err != nil {
		return nil, err
	}
	var ms *missing
	if !a.Replay && a.Topic == h.topics.Reads && len(a.Ends) > 0 {
		// The silent meters.
		if ms, err = h.loadMissing(ctx, tx, a, steps); err != nil {
			return nil, err
		}
	}
	bks, err := h.readBooks(ctx, tx, cal, total, watching)
	if err != nil {
		return nil, err
	}

	var fired []alerts.Alert
	for i, s := range steps {
		now, err := bks.apply(h, cal, i, s, ms)
		if err != nil {
			return nil, err
		}
		fired = append(fired, now...)
	}

	if err := h.appendEnergy(ctx, tx, total.energy, a.Partition); err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	queueUsage(b, total.usage, a.Partition)
	queueSpendWrites(b, bks.months)
	if ms != nil {
		ms.queueWrites(b)
	} else {
		queueMeters(b, touchedMeters(total.meters))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: write aggregates: %w", err)
	}
	return fired, nil
}

// watchingAccounts are the accounts behind the batch that watch for daily
// usage or a monthly budget: only their aggregates are kept and evaluated
// (scope.go).
func (h *Hook) watchingAccounts(ctx context.Context, tx pgx.Tx, a ingest.Applied) (map[string]limits, error) {
	accounts := map[string]bool{}
	for _, c := range a.Reads {
		accounts[c.Assignment.AccountID] = true
	}
	// Read after the scope lock (AfterApply), in a statement of its own:
	// every settings change committed before the lock is seen, and none
	// commits until this transaction ends. Only whether a threshold or
	// budget is set counts here; their values are read under the accounts'
	// locks (openBooks).
	watching := map[string]limits{}
	if len(accounts) > 0 {
		settings, err := h.registry.AlertSettings(ctx, tx, sortedKeys(accounts, cmp.Compare[string]))
		if err != nil {
			return nil, fmt.Errorf("alerts: load account settings: %w", err)
		}
		for id, s := range settings {
			if s.DailyThreshold || s.MonthlyBudget {
				watching[id] = limits{daily: decimal.NullDecimal{Valid: s.DailyThreshold}, budget: decimal.NullDecimal{Valid: s.MonthlyBudget}}
			}
		}
	}
	return watching, nil
}

// sumSteps adds up the steps' differences per aggregate row.
func sumSteps(steps []step) (totals, error) {
	// Sized for the deltas, most of which are distinct keys in a catch-up:
	// growing these maps from empty rehashed them over and over.
	var nUsage, nEnergy, nMeters int
	for _, s := range steps {
		nUsage, nEnergy, nMeters = nUsage+len(s.usage), nEnergy+len(s.energy), nMeters+len(s.meters)
	}
	total := totals{usage: make(map[dayKey]usage, nUsage), energy: make(map[energyKey]flow, nEnergy),
		meters: make(map[string]meterTouch, nMeters)}
	for _, s := range steps {
		if err := total.add(s); err != nil {
			return totals{}, err
		}
	}
	return total, nil
}

// batchBooks are the books a batch of reads moves, as committed before
// it, with the prices its energy is valued at.
type batchBooks struct {
	days   map[dayKey]*dayBook
	months map[monthKey]*monthBook
	prices cellPrices
}

// readBooks opens the day books of the accounts with a daily threshold and
// the month books of those with a budget that the batch's totals reach.
func (h *Hook) readBooks(ctx context.Context, tx pgx.Tx, cal *calendar, total totals, watching map[string]limits) (batchBooks, error) {
	days := map[dayKey]*dayBook{}
	for k := range total.usage {
		if l, ok := watching[k.account]; ok && l.daily.Valid {
			days[k] = &dayBook{key: k, threshold: l.daily.Decimal}
		}
	}
	// One pass over the energy: the month books of the accounts with a
	// budget, the points they need prices of (which they may have no
	// energy at yet), and the cells the batch's energy is priced at.
	months := map[monthKey]*monthBook{}
	points := map[string]bool{}
	around := make([]cell, 0, len(total.energy))
	for k := range total.energy {
		l, ok := watching[k.account]
		if !ok || !l.budget.Valid {
			continue
		}
		if mk := (monthKey{k.account, cal.month(time.Unix(k.start, 0))}); months[mk] == nil {
			bk, err := h.newMonthBook(mk, l.budget.Decimal)
			if err != nil {
				return batchBooks{}, err
			}
			months[mk] = bk
		}
		points[k.point] = true
		around = append(around, k.cell)
	}
	raw := rawPrices{}
	if err := h.openBooks(ctx, tx, days, months, true, sortedKeys(points, cmp.Compare[string]), around, raw); err != nil {
		return batchBooks{}, err
	}
	if err := h.buildBooks(ctx, tx, cal, months, raw); err != nil {
		return batchBooks{}, err
	}
	prices, err := raw.prices(h.market.IntervalSeconds)
	if err != nil {
		return batchBooks{}, err
	}
	for _, bk := range months {
		if bk.built {
			bk.priceAll(prices)
		}
	}
	return batchBooks{days: days, months: months, prices: prices}, nil
}

// apply adds step s, the batch's record i, to the books and to the silent
// meters ms (when tracked), and returns the alerts it fires, sorted by id.
// Books are checked once the whole record is in: a correction adds its
// value and takes the old one away, and only the sum is a figure.
func (o batchBooks) apply(h *Hook, cal *calendar, i int, s step, ms *missing) ([]alerts.Alert, error) {
	var now []alerts.Alert
	var dayBooks []*dayBook
	for _, d := range s.usage {
		if bk := o.days[d.key]; bk != nil {
			if !bk.add(d.usage) {
				return nil, usageOverflow(d.key)
			}
			if bk.seen != i+1 {
				bk.seen = i + 1
				dayBooks = append(dayBooks, bk)
			}
		}
	}
	var monthBooks []*monthBook
	// A record's energy is mostly one account's in one month: its
	// book is looked up again only when the month key changes.
	var mk monthKey
	var mb *monthBook
	for j, e := range s.energy {
		if k := (monthKey{e.key.account, cal.month(time.Unix(e.key.start, 0))}); j == 0 || k != mk {
			mk, mb = k, o.months[k]
		}
		if bk := mb; bk != nil {
			bk.addEnergy(e.key, e.flow, o.prices)
			if bk.seen != i+1 {
				bk.seen = i + 1
				monthBooks = append(monthBooks, bk)
			}
		}
	}
	for _, bk := range dayBooks {
		if al, ok := bk.check(h); ok {
			now = append(now, al)
		}
	}
	for _, bk := range monthBooks {
		if al, ok := bk.check(h); ok {
			now = append(now, al)
		}
	}
	if ms != nil {
		eachMeterRun(s.meters, ms.touch)
		if s.hasEnd {
			now = append(now, ms.advance(s.end)...)
		}
	}
	slices.SortFunc(now, func(x, y alerts.Alert) int { return cmp.Compare(x.AlertID, y.AlertID) })
	return now, nil
}

func scanLimits(rows pgx.Rows, into map[string]limits) error {
	var id string
	var l limits
	_, err := pgx.ForEachRow(rows, []any{&id, &l.daily, &l.budget}, func() error {
		into[id] = l
		return nil
	})
	if err != nil {
		return fmt.Errorf("read account alert settings: %w", err)
	}
	return nil
}

// openBooks prunes the books whose identity has fired already, then locks
// the remaining accounts and loads their figures as committed (a month book
// without a row is left for buildBooks), and into raw the RT prices of the
// cells around. With sharePoints, points are locked FOR SHARE first (doc.go,
// "Concurrency").
func (h *Hook) openBooks(ctx context.Context, tx pgx.Tx, days map[dayKey]*dayBook, months map[monthKey]*monthBook,
	sharePoints bool, points []string, around []cell, raw rawPrices) error {
	if len(days)+len(months) == 0 {
		return nil
	}
	ids := make([]string, 0, len(days)+len(months))
	for k := range days {
		ids = append(ids, alerts.DailyUsageID(k.account, k.day))
	}
	for k := range months {
		ids = append(ids, alerts.MonthlyBudgetID(k.account, k.month))
	}
	firedIDs, err := firedAmong(ctx, tx, ids)
	if err != nil {
		return err
	}
	maps.DeleteFunc(days, func(k dayKey, _ *dayBook) bool { return firedIDs[alerts.DailyUsageID(k.account, k.day)] })
	maps.DeleteFunc(months, func(k monthKey, _ *monthBook) bool { return firedIDs[alerts.MonthlyBudgetID(k.account, k.month)] })
	if len(days)+len(months) == 0 {
		return nil
	}
	accts := map[string]bool{}
	for k := range days {
		accts[k.account] = true
	}
	for k := range months {
		accts[k.account] = true
	}
	b := &pgx.Batch{}
	if sharePoints && len(months) > 0 && len(points) > 0 {
		b.Queue(`
			SELECT settlement_point FROM settlement_points WHERE settlement_point = ANY($1::text[])
			ORDER BY settlement_point FOR SHARE`, points)
	}
	locked := map[string]limits{}
	b.Queue(`
		SELECT account_id, daily_kwh_threshold, monthly_budget FROM accounts WHERE account_id = ANY($1::text[])
		ORDER BY account_id FOR NO KEY UPDATE`, sortedKeys(accts, cmp.Compare[string]),
	).Query(func(rows pgx.Rows) error { return scanLimits(rows, locked) })
	if len(days) > 0 {
		var dAccts, dDays []string
		for k := range days {
			dAccts, dDays = append(dAccts, k.account), append(dDays, k.day)
		}
		b.Queue(`
			SELECT u.account_id, to_char(u.operating_day, 'YYYY-MM-DD'), sum(u.import_kwh), sum(u.estimated_reads)::int, max(u.last_end)
			FROM unnest($1::text[], $2::text[]) AS k(account_id, operating_day)
			JOIN alert_daily_usage u ON u.account_id = k.account_id AND u.operating_day = k.operating_day::date
			GROUP BY 1, 2`, dAccts, dDays,
		).Query(func(rows pgx.Rows) error {
			var k dayKey
			var u usage
			var kwh decimal.Decimal
			_, err := pgx.ForEachRow(rows, []any{&k.account, &k.day, &kwh, &u.estimated, &u.lastEnd}, func() error {
				micro, ok := scaled(kwh, 6)
				if !ok {
					return fmt.Errorf("daily usage of %s on %s: %s kWh is not a whole number of micro-kWh", k.account, k.day, kwh)
				}
				if bk := days[k]; bk != nil {
					bk.usage = usage{micro: micro, estimated: u.estimated, lastEnd: u.lastEnd.UTC()}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("read daily usage: %w", err)
			}
			return nil
		})
	}
	queueSpends(b, months)
	if len(months) > 0 {
		h.queuePricesAround(b, around, raw)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("alerts: lock and load accounts: %w", err)
	}
	// Settings as of the lock.
	for k, bk := range days {
		if l := locked[k.account]; l.daily.Valid {
			bk.threshold = l.daily.Decimal
		} else {
			delete(days, k)
		}
	}
	for k, bk := range months {
		if l := locked[k.account]; l.budget.Valid {
			bk.budget = l.budget.Decimal
		} else {
			delete(months, k)
		}
	}
	return nil
}

// firedAmong returns which of ids are stored alerts.
//
// Always through the primary key, never a sequential scan: a plan made
// while alerts held few rows (a new database, or statistics not yet
// gathered since it was emptied) filtered every stored alert against every
// id, thousands of them, and stayed cached in the connection while the
// table grew: 0.16 - 1 s a batch, a 10 M-read bench run twice as long
// (auto_explain of `gridsettle bench ingest --repeat 3`).
func firedAmong(ctx context.Context, tx pgx.Tx, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	b := &pgx.Batch{}
	b.Queue(`SET LOCAL enable_seqscan = off`)
	b.Queue(`SELECT alert_id FROM alerts WHERE alert_id = ANY($1::text[])`, ids).Query(func(rows pgx.Rows) error {
		var id string
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			out[id] = true
			return nil
		})
		return err
	})
	b.Queue(`RESET enable_seqscan`)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: read fired identities: %w", err)
	}
	return out, nil
}

// queueUsage adds the batch's daily import differences to slot's rows, in
// key order (writers sharing a slot, only replays do, cannot deadlock).
func queueUsage(b *pgx.Batch, m map[dayKey]usage, slot int32) {
	if len(m) == 0 {
		return
	}
	keys := sortedKeys(m, cmpDay)
	n := len(keys)
	accts, days, kwh, est, ends := make([]string, n), make([]string, n), make([]decimal.Decimal, n), make([]int32, n), make([]time.Time, n)
	for i, k := range keys {
		u := m[k]
		accts[i], days[i], kwh[i], est[i], ends[i] = k.account, k.day, u.kwh(), int32(u.estimated), u.lastEnd
	}
	b.Queue(`
		INSERT INTO alert_daily_usage AS u (account_id, operating_day, slot, import_kwh, estimated_reads, last_end)
		SELECT k.account_id, k.operating_day::date, $6, k.kwh, k.est, k.last_end
		FROM unnest($1::text[], $2::text[], $3::numeric[], $4::int[], $5::timestamptz[]) AS k(account_id, operating_day, kwh, est, last_end)
		ON CONFLICT (account_id, operating_day, slot) DO UPDATE SET
			import_kwh = u.import_kwh + excluded.import_kwh,
			estimated_reads = u.estimated_reads + excluded.estimated_reads,
			last_end = GREATEST(u.last_end, excluded.last_end)`,
		accts, days, kwh, est, ends, slot)
}

package postgres

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// Aggregates are kept only for accounts that have a setting they serve:
// alert_daily_usage for accounts with a daily_kwh_threshold,
// alert_energy_blocks and alert_month_books for accounts with a
// monthly_budget (keeping them for every account halved ingest). Which accounts those are must not change
// while an ingest transaction works, or a transaction that saw an account
// without a setting would commit reads that a rebuild running meanwhile
// cannot see. So every hook transaction holds the scope lock shared, and a
// registry transaction that sets or clears settings holds it exclusively
// while it rebuilds: it waits for the ingest transactions in flight, and the
// next ones wait for it and then see the new settings.
const (
	lockScopeShared    = `SELECT pg_advisory_xact_lock_shared(hashtext('gridsettle.alert-scope'))`
	lockScopeExclusive = `SELECT pg_advisory_xact_lock(hashtext('gridsettle.alert-scope'))`
)

// rebuildChunk bounds the accounts whose reads are summed in memory at once.
const rebuildChunk = 500

var _ registrystore.SettingsHook = (*Hook)(nil).SettingsChanged

// SettingsChanged is the registry's settings hook (registrystore.SettingsHook):
// inside the registry transaction, before accounts gain or lose a daily
// threshold or a monthly budget, it drops their aggregates and rebuilds the
// ones their new settings need from the current reads, under the exclusive
// scope lock.
//
// A rebuilt figure maps each current read under the assignment covering it
// when the registry transaction began; an aggregate kept incrementally used
// the assignment in force when the read was applied. They differ only for
// reads applied before a retroactive registry change, as live positions do.
func (h *Hook) SettingsChanged(ctx context.Context, tx pgx.Tx, changes []registrystore.AlertSettings) error {
	if _, err := tx.Exec(ctx, lockScopeExclusive); err != nil {
		return fmt.Errorf("alerts: lock the aggregate scope: %w", err)
	}
	for len(changes) > 0 {
		n := min(len(changes), rebuildChunk)
		if err := h.rebuild(ctx, tx, changes[:n]); err != nil {
			return err
		}
		changes = changes[n:]
	}
	return nil
}

func (h *Hook) rebuild(ctx context.Context, tx pgx.Tx, changes []registrystore.AlertSettings) error {
	accounts := make([]string, len(changes))
	watching := map[string]limits{}
	for i, c := range changes {
		accounts[i] = c.AccountID
		if c.DailyThreshold || c.MonthlyBudget {
			// Only which settings are set matters here, not their values.
			watching[c.AccountID] = limits{daily: decimal.NullDecimal{Valid: c.DailyThreshold},
				budget: decimal.NullDecimal{Valid: c.MonthlyBudget}}
		}
	}
	if _, err := tx.Exec(ctx, `
		WITH u AS (DELETE FROM alert_daily_usage WHERE account_id = ANY($1::text[])),
		     m AS (DELETE FROM alert_month_books WHERE account_id = ANY($1::text[]))
		DELETE FROM alert_energy_blocks WHERE account_id = ANY($1::text[])`, accounts); err != nil {
		return fmt.Errorf("alerts: drop the aggregates of %d accounts: %w", len(accounts), err)
	}
	if len(watching) == 0 {
		return nil
	}
	cover, window, err := watchedAssignments(ctx, tx, sortedKeys(watching, cmp.Compare[string]))
	if err != nil {
		return err
	}
	cal := h.calendar()
	total := totals{usage: map[dayKey]usage{}, energy: map[energyKey]flow{}}
	sb := stepBuilder{watching: watching, cal: cal, L: int64(h.market.IntervalSeconds)}
	if window.MeterIDs != nil {
		err = readstore.StreamChannels(ctx, tx, window, func(blocks []readstore.StoredBlock) error {
			as := cover[blocks[0].MeterID]
			var readErr error
			readstore.Current(blocks, func(b *readstore.StoredBlock, i int) {
				r := b.ReadAt(i)
				// every assignment of the accounts covering the read's start,
				// as the join on the registry did
				for k := range as {
					if readErr == nil && as[k].Covers(r.Start) {
						if readErr = sb.add(&as[k], b.Channel, b.StartAt(i), b.IntervalSeconds, b.Values[i], b.QualityAt(i)); readErr == nil {
							readErr = total.add(step{usage: sb.usage, energy: sb.energy})
						}
						sb.usage, sb.energy = sb.usage[:0], sb.energy[:0]
					}
				}
			})
			return readErr
		})
		if err != nil {
			return fmt.Errorf("alerts: sum the current reads of %d accounts: %w", len(watching), err)
		}
	}
	// Month books are built from this energy when their accounts are next
	// evaluated (books.go).
	if err := h.appendEnergy(ctx, tx, total.energy, readstore.ReplaySlot); err != nil {
		return err
	}
	b := &pgx.Batch{}
	queueUsage(b, total.usage, readstore.ReplaySlot)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("alerts: write the rebuilt aggregates of %d accounts: %w", len(watching), err)
	}
	return nil
}

// farFuture bounds the reads of an open-ended assignment: read_blocks holds
// nothing starting this late.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// watchedAssignments reads the assignments of accounts by meter, and the
// window of blocks that can hold a read one of them covers: their meters,
// from the earliest effective_from to the latest effective_to.
func watchedAssignments(ctx context.Context, tx pgx.Tx, accounts []string) (map[string][]meters.Assignment, readstore.BlockWindow, error) {
	rows, err := tx.Query(ctx, `
		SELECT meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to
		FROM meter_assignments WHERE account_id = ANY($1::text[])
		ORDER BY meter_id, effective_from`, accounts)
	if err != nil {
		return nil, readstore.BlockWindow{}, fmt.Errorf("alerts: read the assignments of %d accounts: %w", len(accounts), err)
	}
	as, err := pgx.CollectRows(rows, pgx.RowToStructByPos[meters.Assignment])
	if err != nil {
		return nil, readstore.BlockWindow{}, fmt.Errorf("alerts: read the assignments of %d accounts: %w", len(accounts), err)
	}
	cover := map[string][]meters.Assignment{}
	var w readstore.BlockWindow
	for i, a := range as {
		a.EffectiveFrom = a.EffectiveFrom.UTC()
		to := farFuture
		if a.EffectiveTo != nil {
			to = a.EffectiveTo.UTC()
		}
		if i == 0 || a.EffectiveFrom.Before(w.From) {
			w.From = a.EffectiveFrom
		}
		if to.After(w.To) {
			w.To = to
		}
		if cover[a.MeterID] == nil {
			w.MeterIDs = append(w.MeterIDs, a.MeterID)
		}
		cover[a.MeterID] = append(cover[a.MeterID], a)
	}
	return cover, w, nil
}

package postgres

import (
	"cmp"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// Aggregates are kept only for accounts that have a setting they serve:
// alert_daily_usage for accounts with a daily_kwh_threshold, alert_energy for
// accounts with a monthly_budget (about one row per read: keeping it for every
// account halved ingest, issue 9). Which accounts those are must not change
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
		WITH u AS (DELETE FROM alert_daily_usage WHERE account_id = ANY($1::text[]))
		DELETE FROM alert_energy WHERE account_id = ANY($1::text[])`, accounts); err != nil {
		return fmt.Errorf("alerts: drop the aggregates of %d accounts: %w", len(accounts), err)
	}
	if len(watching) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `
		SELECT a.account_id, a.settlement_point, a.loss_factor, r.meter_id, r.channel, r.interval_start, r.interval_seconds,
		       r.value, r.quality
		FROM meter_assignments a
		JOIN reads r ON r.meter_id = a.meter_id AND r.interval_start >= a.effective_from
		 AND (a.effective_to IS NULL OR r.interval_start < a.effective_to)
		WHERE a.account_id = ANY($1::text[])`, sortedKeys(watching, cmp.Compare[string]))
	if err != nil {
		return fmt.Errorf("alerts: read the current reads of %d accounts: %w", len(watching), err)
	}
	cal := h.calendar()
	total := totals{usage: map[dayKey]usage{}, energy: map[energyKey]energy{}}
	sb := stepBuilder{watching: watching}
	var a meters.Assignment
	var r meters.Read
	_, err = pgx.ForEachRow(rows, []any{&a.AccountID, &a.SettlementPoint, &a.LossFactor, &r.MeterID, &r.Channel, &r.Start,
		&r.IntervalSeconds, &r.Value, &r.Quality}, func() error {
		r.Start = r.Start.UTC()
		sb.read(h, cal, &a, r, false)
		total.add(step{usage: sb.usage, energy: sb.energy})
		sb.usage, sb.energy = sb.usage[:0], sb.energy[:0]
		return nil
	})
	if err != nil {
		return fmt.Errorf("alerts: sum the current reads of %d accounts: %w", len(watching), err)
	}
	b := &pgx.Batch{}
	queueUsage(b, total.usage, readstore.ReplaySlot)
	queueEnergy(b, total.energy, readstore.ReplaySlot)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("alerts: write the rebuilt aggregates of %d accounts: %w", len(watching), err)
	}
	return nil
}

// Package pgcheck reads settlement's stored rows back whole, in the
// oracle's shape where the oracle has one, for the chaos suite
// (cmd/gridsettle chaos), which compares them with what the oracle
// computes from the same input, and ages stored runs for cmd/gridsettle's
// tests. The product never calls it: it reads whole tables, unpaged.
package pgcheck

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement/oracle"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// Querier is what the reads need: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Fixed formats a stored decimal at its field's scale, as the oracle writes
// its figures, marking a value with more places than the contract allows so
// that it never compares equal.
func Fixed(d decimal.Decimal, scale int32) string {
	if !d.Equal(d.Round(scale)) {
		return d.String() + " (more than " + strconv.Itoa(int(scale)) + " places)"
	}
	return d.StringFixed(scale)
}

// Run is a runs row.
type Run struct {
	ID, Day, RunType, Status, Error string
	Version                         int
	Lineage                         settlementpg.Lineage
	Completeness                    *settlementpg.Completeness
	ComputedAt                      *time.Time
}

// Runs are every stored run, by operating day and version.
func Runs(ctx context.Context, db Querier) ([]Run, error) {
	rows, err := db.Query(ctx, `SELECT run_id, operating_day::text, run_type, version, status, coalesce(error, ''), lineage, completeness,
		computed_at FROM runs ORDER BY operating_day, version`)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) {
		var r Run
		err := row.Scan(&r.ID, &r.Day, &r.RunType, &r.Version, &r.Status, &r.Error, &r.Lineage, &r.Completeness, &r.ComputedAt)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	return runs, nil
}

// StatementLines are the stored statement lines in the oracle's shape, by
// statement id.
func StatementLines(ctx context.Context, db Querier) (map[string]oracle.Line, error) {
	rows, err := db.Query(ctx, `SELECT statement_id, participant_id, settlement_point, operating_day::text, run_type,
		version, previous_version, currency, energy_mwh, amount, unpriced_energy_mwh, previous_energy_mwh, previous_amount,
		delta_energy_mwh, delta_amount, intervals, priced_intervals, reads_actual, reads_estimated, reads_substituted, run_id,
		estimated_energy_mwh, reads_estimated_lin, reads_estimated_ldy, reads_estimated_zer
		FROM statement_lines`)
	if err != nil {
		return nil, fmt.Errorf("read statement lines: %w", err)
	}
	defer rows.Close()
	out := map[string]oracle.Line{}
	for rows.Next() {
		var l oracle.Line
		var energy, amount, unpriced, prevEnergy, prevAmount, deltaEnergy, deltaAmount, estimated decimal.Decimal
		n := &l.Reads.GridsettleEstimated
		if err := rows.Scan(&l.StatementID, &l.ParticipantID, &l.SettlementPoint, &l.OperatingDay, &l.RunType, &l.Version,
			&l.PreviousVersion, &l.Currency, &energy, &amount, &unpriced, &prevEnergy, &prevAmount, &deltaEnergy, &deltaAmount,
			&l.Intervals, &l.PricedIntervals, &l.Reads.Actual, &l.Reads.Estimated, &l.Reads.Substituted, &l.RunID,
			&estimated, &n.LIN, &n.LDY, &n.ZER); err != nil {
			return nil, fmt.Errorf("read statement lines: %w", err)
		}
		l.EnergyMWh, l.Amount, l.UnpricedEnergyMWh = Fixed(energy, 6), Fixed(amount, 2), Fixed(unpriced, 6)
		l.PreviousEnergyMWh, l.PreviousAmount = Fixed(prevEnergy, 6), Fixed(prevAmount, 2)
		l.DeltaEnergyMWh, l.DeltaAmount = Fixed(deltaEnergy, 6), Fixed(deltaAmount, 2)
		l.EstimatedEnergyMWh = Fixed(estimated, 6)
		out[l.StatementID] = l
	}
	return out, rows.Err()
}

// AccountCharges are the stored account charges in the oracle's shape, by
// charge id.
func AccountCharges(ctx context.Context, db Querier) (map[string]oracle.Charge, error) {
	rows, err := db.Query(ctx, `SELECT charge_id, account_id, participant_id, operating_day::text, run_type, version,
		import_kwh, export_kwh, net_kwh, energy_cost, previous_energy_cost, delta_energy_cost, currency, estimated_kwh
		FROM account_charges`)
	if err != nil {
		return nil, fmt.Errorf("read account charges: %w", err)
	}
	defer rows.Close()
	out := map[string]oracle.Charge{}
	for rows.Next() {
		var ch oracle.Charge
		var imp, exp, net, cost, prevCost, deltaCost, estimated decimal.Decimal
		if err := rows.Scan(&ch.ChargeID, &ch.AccountID, &ch.ParticipantID, &ch.OperatingDay, &ch.RunType, &ch.Version,
			&imp, &exp, &net, &cost, &prevCost, &deltaCost, &ch.Currency, &estimated); err != nil {
			return nil, fmt.Errorf("read account charges: %w", err)
		}
		ch.ImportKWh, ch.ExportKWh, ch.NetKWh = Fixed(imp, 6), Fixed(exp, 6), Fixed(net, 6)
		ch.EnergyCost, ch.PreviousEnergyCost, ch.DeltaEnergyCost = Fixed(cost, 2), Fixed(prevCost, 2), Fixed(deltaCost, 2)
		ch.EstimatedKWh = Fixed(estimated, 6)
		out[ch.ChargeID] = ch
	}
	return out, rows.Err()
}

// RunIntervals calls f with each stored run_intervals row in the oracle's
// shape and the run it belongs to.
func RunIntervals(ctx context.Context, db Querier, f func(run string, fig oracle.IntervalFigure)) error {
	rows, err := db.Query(ctx, `SELECT run_id, participant_id, settlement_point, interval_start, energy_mwh, price, amount,
		actual_reads, estimated_reads, estimated_energy_mwh, gridsettle_estimated_reads FROM run_intervals`)
	if err != nil {
		return fmt.Errorf("read run intervals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var run string
		var fig oracle.IntervalFigure
		var price, amount decimal.NullDecimal
		if err := rows.Scan(&run, &fig.ParticipantID, &fig.SettlementPoint, &fig.Start, &fig.EnergyMWh, &price, &amount,
			&fig.ActualReads, &fig.EstimatedReads, &fig.EstimatedEnergyMWh, &fig.GridsettleEstimatedReads); err != nil {
			return fmt.Errorf("read run intervals: %w", err)
		}
		if price.Valid {
			fig.Price = &price.Decimal
		}
		if amount.Valid {
			fig.Amount = &amount.Decimal
		}
		f(run, fig)
	}
	return rows.Err()
}

// Estimate is a run_estimates row.
type Estimate struct {
	RunID, MeterID, Channel string
	Start                   time.Time
	IntervalSeconds         int64
	ValueKWh, LossFactor    decimal.Decimal
	Method                  string
	AccountID               string
	ParticipantID           string
	SettlementPoint         string
}

// Estimates calls f with each stored run_estimates row. f's argument is
// reused between calls.
func Estimates(ctx context.Context, db Querier, f func(*Estimate)) error {
	rows, err := db.Query(ctx, `SELECT run_id, meter_id, channel, interval_start, interval_seconds, value_kwh, method,
		account_id, participant_id, settlement_point, loss_factor FROM run_estimates`)
	if err != nil {
		return fmt.Errorf("read run estimates: %w", err)
	}
	var e Estimate
	_, err = pgx.ForEachRow(rows, []any{&e.RunID, &e.MeterID, &e.Channel, &e.Start, &e.IntervalSeconds, &e.ValueKWh, &e.Method,
		&e.AccountID, &e.ParticipantID, &e.SettlementPoint, &e.LossFactor}, func() error {
		f(&e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read run estimates: %w", err)
	}
	return nil
}

// CountMovedLines counts the statement lines whose amount moved (a non-zero
// delta amount): each has one journal entry.
func CountMovedLines(ctx context.Context, db Querier) (int, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM statement_lines WHERE delta_amount <> 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count moved statement lines: %w", err)
	}
	return n, nil
}

// LatestAmounts calls f with the amount of the latest version of each
// (operating day, participant, settlement point) statement line.
func LatestAmounts(ctx context.Context, db Querier, f func(participant, point string, amount decimal.Decimal)) error {
	rows, err := db.Query(ctx, `SELECT DISTINCT ON (operating_day, participant_id, settlement_point)
			participant_id, settlement_point, amount
		FROM statement_lines ORDER BY operating_day, participant_id, settlement_point, version DESC`)
	if err != nil {
		return fmt.Errorf("read latest statement lines: %w", err)
	}
	var participant, point string
	var amount decimal.Decimal
	if _, err := pgx.ForEachRow(rows, []any{&participant, &point, &amount}, func() error {
		f(participant, point, amount)
		return nil
	}); err != nil {
		return fmt.Errorf("read latest statement lines: %w", err)
	}
	return nil
}

// ForgetReplays makes the runs of version look as runs made before runs
// recorded their replays (a lineage without replays_through); the explain
// command's test uses it.
func ForgetReplays(ctx context.Context, db Querier, version int) error {
	if _, err := db.Exec(ctx, `UPDATE runs SET lineage = lineage - 'replays_through' WHERE version = $1`, version); err != nil {
		return fmt.Errorf("forget the replays of version %d runs: %w", version, err)
	}
	return nil
}

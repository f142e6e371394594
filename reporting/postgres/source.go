package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/reporting/postgres/intervalrows"
	"github.com/gridsettle/gridsettle/settlement"
)

// querier is what reading a run needs: a pool, a connection or a
// transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// runSource streams one run's rows to reporting.Build.
type runSource struct {
	q     querier
	runID string
}

// stream runs query and calls fn with each row as scan reads it, so a run
// is never held in memory.
func stream[R any](ctx context.Context, q querier, what, query string, args []any, scan func(pgx.Rows) (R, error), fn func(R) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

func dayOf(t time.Time) settlement.Day {
	return settlement.Day{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

func (s runSource) Statements(ctx context.Context, fn func(parquet.Statement) error) error {
	return stream(ctx, s.q, "statement lines", `
		SELECT statement_id, participant_id, settlement_point, operating_day, run_type, version, currency,
		       energy_mwh, unpriced_energy_mwh, amount, previous_amount, delta_amount, intervals, priced_intervals,
		       estimated_energy_mwh
		FROM statement_lines WHERE run_id = $1
		ORDER BY statement_id COLLATE "C"`, []any{s.runID},
		func(rows pgx.Rows) (parquet.Statement, error) {
			var st parquet.Statement
			var day time.Time
			err := rows.Scan(&st.StatementID, &st.ParticipantID, &st.SettlementPoint, &day, &st.RunType, &st.Version,
				&st.Currency, &st.EnergyMWh, &st.UnpricedEnergyMWh, &st.Amount, &st.PreviousAmount, &st.DeltaAmount,
				&st.Intervals, &st.PricedIntervals, &st.EstimatedEnergyMWh)
			st.OperatingDay = dayOf(day)
			return st, err
		}, fn)
}

// Intervals streams the run's interval rows (package intervalrows, which
// the API's per-line intervals share).
func (s runSource) Intervals(ctx context.Context, fn func(parquet.Interval) error) error {
	return intervalrows.Stream(ctx, s.q, s.runID, nil, fn)
}

func (s runSource) Ledger(ctx context.Context, fn func(parquet.LedgerLine) error) error {
	return stream(ctx, s.q, "journal lines", `
		SELECT e.entry_id, l.line_no, e.entry_key, l.account, l.amount, e.currency, e.effective_date, e.posted_at, e.hash
		FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.entry_id
		WHERE e.run_id = $1
		ORDER BY e.entry_id, l.line_no`, []any{s.runID},
		func(rows pgx.Rows) (parquet.LedgerLine, error) {
			var l parquet.LedgerLine
			var day time.Time
			err := rows.Scan(&l.EntryID, &l.LineNo, &l.EntryKey, &l.Account, &l.Amount, &l.Currency, &day, &l.PostedAt, &l.EntryHash)
			l.EffectiveDate, l.PostedAt = dayOf(day), l.PostedAt.UTC()
			return l, err
		}, fn)
}

// Estimates streams the run's estimates (table run_estimates) in
// estimates.parquet's natural-key order.
func (s runSource) Estimates(ctx context.Context, fn func(parquet.Estimate) error) error {
	return stream(ctx, s.q, "estimates", `
		SELECT meter_id, channel, interval_start, interval_seconds, value_kwh, method, account_id, participant_id,
		       settlement_point, loss_factor
		FROM run_estimates WHERE run_id = $1
		ORDER BY meter_id COLLATE "C", channel COLLATE "C", interval_start`, []any{s.runID},
		func(rows pgx.Rows) (parquet.Estimate, error) {
			var e parquet.Estimate
			err := rows.Scan(&e.MeterID, &e.Channel, &e.IntervalStart, &e.IntervalSeconds, &e.ValueKWh, &e.Method,
				&e.AccountID, &e.ParticipantID, &e.SettlementPoint, &e.LossFactor)
			e.IntervalStart = e.IntervalStart.UTC()
			return e, err
		}, fn)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/settlement"
)

// ErrNotFound is returned for a run id that does not exist.
var ErrNotFound = errors.New("not found")

const runColumns = `run_id, operating_day, run_type, version, status, coalesce(error, ''), started_at, finished_at,
	computed_at, lineage, completeness`

func scanRun(row pgx.Row) (Run, error) {
	var r Run
	var day time.Time
	var computed *time.Time
	err := row.Scan(&r.RunID, &day, &r.RunType, &r.Version, &r.Status, &r.Error, &r.StartedAt, &r.FinishedAt,
		&computed, &r.Lineage, &r.Completeness)
	if err != nil {
		return Run{}, err
	}
	r.OperatingDay = dayOf(day).String()
	r.StartedAt = r.StartedAt.UTC()
	if r.FinishedAt != nil {
		f := r.FinishedAt.UTC()
		r.FinishedAt = &f
	}
	if computed != nil {
		r.ComputedAt = computed.UTC()
	}
	if r.Lineage.Inputs == nil {
		r.Lineage.Inputs = []LineageInput{}
	}
	return r, nil
}

// RunKey is the position of a run in the listing order (operating day,
// version), for paging.
type RunKey struct {
	OperatingDay string `json:"operating_day"`
	Version      int    `json:"version"`
}

// List returns runs ordered by operating day and version: those of day
// (every day when nil), after the key (from the start when nil), at most
// limit.
func (r *Runs) List(ctx context.Context, day *settlement.Day, after *RunKey, limit int) ([]Run, error) {
	var dayArg, afterDay any
	afterVersion := 0
	if day != nil {
		dayArg = dayTime(*day)
	}
	if after != nil {
		d, err := settlement.ParseDay(after.OperatingDay)
		if err != nil {
			return nil, fmt.Errorf("run cursor: %w", err)
		}
		afterDay, afterVersion = dayTime(d), after.Version
	}
	rows, err := r.pool.Query(ctx, `SELECT `+runColumns+` FROM runs
		WHERE ($1::date IS NULL OR operating_day = $1)
		  AND ($2::date IS NULL OR (operating_day, version) > ($2, $3))
		ORDER BY operating_day, version LIMIT $4`, dayArg, afterDay, afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// Latest returns the n most recently started runs, newest first (the
// "runs" of GET /api/v1/status).
func (r *Runs) Latest(ctx context.Context, n int) ([]Run, error) {
	rows, err := r.pool.Query(ctx, `SELECT `+runColumns+` FROM runs ORDER BY started_at DESC, run_id DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("list latest runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list latest runs: %w", err)
	}
	return runs, nil
}

// Get returns the run with id, or ErrNotFound.
func (r *Runs) Get(ctx context.Context, id string) (Run, error) {
	run, err := scanRun(r.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE run_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	return run, nil
}

// StatementQuery selects statement lines. Zero fields do not filter;
// Version 0 means the latest completed version of each operating day.
type StatementQuery struct {
	Day             *settlement.Day
	ParticipantID   string
	SettlementPoint string
	Version         int
	After           *StatementKey // paging: lines after this one
	Limit           int
}

// StatementKey is the position of a line in the listing order.
type StatementKey struct {
	OperatingDay    string `json:"operating_day"`
	ParticipantID   string `json:"participant_id"`
	SettlementPoint string `json:"settlement_point"`
	Version         int    `json:"version"`
}

// Statements returns statement lines ordered by operating day, participant,
// settlement point and version.
//
// The SQL holds only the conditions that filter (at most 48 forms, each
// prepared once), and every form keeps one version per day, so Postgres reads
// a day's lines from the (operating_day, version, participant_id,
// settlement_point) index already in the listing order and stops at the
// limit. The single query with optional conditions checked a correlated
// max(version) per line and sorted: 17 ms for a page of 1,000 lines of a day
// with two versions (0.8 ms now), 0.8 s for a page across 50 such days
// (2.8 ms now, joining the latest version of each day).
func (r *Runs) Statements(ctx context.Context, q StatementQuery) ([]settlement.StatementLine, error) {
	var (
		args  []any
		where []string
		from  = "statement_lines s"
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	day := ""
	if q.Day != nil {
		day = arg(dayTime(*q.Day))
		where = append(where, "s.operating_day = "+day)
	}
	if q.ParticipantID != "" {
		where = append(where, "s.participant_id = "+arg(q.ParticipantID))
	}
	if q.SettlementPoint != "" {
		where = append(where, "s.settlement_point = "+arg(q.SettlementPoint))
	}
	switch {
	case q.Version > 0:
		where = append(where, "s.version = "+arg(q.Version))
	case day != "":
		// One value computed once (an InitPlan): the index then gives the
		// day's lines of that version already in order.
		where = append(where, "s.version = (SELECT max(version) FROM runs WHERE operating_day = "+day+" AND status = 'completed')")
	default:
		from += ` JOIN (SELECT operating_day, max(version) AS version FROM runs WHERE status = 'completed'
			GROUP BY operating_day) latest ON latest.operating_day = s.operating_day AND latest.version = s.version`
	}
	if q.After != nil {
		d, err := settlement.ParseDay(q.After.OperatingDay)
		if err != nil {
			return nil, fmt.Errorf("statement cursor: %w", err)
		}
		where = append(where, fmt.Sprintf("(s.operating_day, s.participant_id, s.settlement_point, s.version) > (%s, %s, %s, %s)",
			arg(dayTime(d)), arg(q.After.ParticipantID), arg(q.After.SettlementPoint), arg(q.After.Version)))
	}
	sql := `SELECT s.statement_id, s.participant_id, s.settlement_point, s.operating_day, s.run_type, s.version,
		       s.previous_version, s.currency, s.energy_mwh, s.unpriced_energy_mwh, s.amount, s.previous_energy_mwh,
		       s.previous_amount, s.delta_energy_mwh, s.delta_amount, s.intervals, s.priced_intervals, s.reads_actual,
		       s.reads_estimated, s.reads_substituted, s.run_id, s.computed_at, s.estimated_energy_mwh,
		       s.reads_estimated_lin, s.reads_estimated_ldy, s.reads_estimated_zer
		FROM ` + from
	if len(where) > 0 {
		sql += "\n\t\tWHERE " + strings.Join(where, "\n\t\t  AND ")
	}
	sql += "\n\t\tORDER BY s.operating_day, s.participant_id, s.settlement_point, s.version"
	if q.Limit > 0 {
		sql += " LIMIT " + arg(q.Limit)
	}
	rows, err := r.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read statements: %w", err)
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (settlement.StatementLine, error) {
		var l settlement.StatementLine
		var day time.Time
		var t string
		err := row.Scan(&l.StatementID, &l.ParticipantID, &l.SettlementPoint, &day, &t, &l.Run.Version,
			&l.Run.PreviousVersion, &l.Run.Currency, &l.EnergyMWh, &l.UnpricedEnergyMWh, &l.Amount,
			&l.PreviousEnergyMWh, &l.PreviousAmount, &l.DeltaEnergyMWh, &l.DeltaAmount, &l.Intervals,
			&l.PricedIntervals, &l.Reads.Actual, &l.Reads.Estimated, &l.Reads.Substituted, &l.Run.RunID, &l.Run.ComputedAt,
			&l.EstimatedEnergyMWh, &l.Reads.GridsettleEstimated.LIN, &l.Reads.GridsettleEstimated.LDY,
			&l.Reads.GridsettleEstimated.ZER)
		l.Run.Day, l.Run.Type = dayOf(day), settlement.RunType(t)
		l.Run.ComputedAt = l.Run.ComputedAt.UTC()
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("read statements: %w", err)
	}
	return lines, nil
}

// ChargeQuery selects the account charges of one account. Zero fields do
// not filter; Version 0 means the latest completed version of each day.
type ChargeQuery struct {
	AccountID string
	From, To  *settlement.Day // inclusive operating days
	Version   int
	After     *ChargeKey
	Limit     int
}

// ChargeKey is the position of a charge in the listing order.
type ChargeKey struct {
	OperatingDay  string `json:"operating_day"`
	ParticipantID string `json:"participant_id"`
	Version       int    `json:"version"`
}

// Charges returns an account's charges ordered by operating day,
// participant and version.
func (r *Runs) Charges(ctx context.Context, q ChargeQuery) ([]settlement.AccountCharge, error) {
	var from, to any
	if q.From != nil {
		from = dayTime(*q.From)
	}
	if q.To != nil {
		to = dayTime(*q.To)
	}
	after := []any{nil, "", 0}
	if q.After != nil {
		d, err := settlement.ParseDay(q.After.OperatingDay)
		if err != nil {
			return nil, fmt.Errorf("charge cursor: %w", err)
		}
		after = []any{dayTime(d), q.After.ParticipantID, q.After.Version}
	}
	rows, err := r.pool.Query(ctx, `
		SELECT charge_id, account_id, participant_id, operating_day, run_type, version, import_kwh, export_kwh,
		       net_kwh, energy_cost, previous_energy_cost, delta_energy_cost, currency, run_id, estimated_kwh
		FROM account_charges c
		WHERE c.account_id = $1
		  AND ($2::date IS NULL OR c.operating_day >= $2)
		  AND ($3::date IS NULL OR c.operating_day <= $3)
		  AND CASE WHEN $4 > 0 THEN c.version = $4
		      ELSE c.version = (SELECT max(version) FROM runs WHERE operating_day = c.operating_day AND status = 'completed') END
		  AND ($5::date IS NULL OR (c.operating_day, c.participant_id, c.version) > ($5, $6, $7))
		ORDER BY c.operating_day, c.participant_id, c.version
		LIMIT $8`, append(append([]any{q.AccountID, from, to, q.Version}, after...), limitArg(q.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("read account charges: %w", err)
	}
	charges, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (settlement.AccountCharge, error) {
		var c settlement.AccountCharge
		var day time.Time
		var t string
		err := row.Scan(&c.ChargeID, &c.AccountID, &c.ParticipantID, &day, &t, &c.Run.Version, &c.ImportKWh,
			&c.ExportKWh, &c.NetKWh, &c.EnergyCost, &c.PreviousEnergyCost, &c.DeltaEnergyCost, &c.Run.Currency, &c.Run.RunID,
			&c.EstimatedKWh)
		c.Run.Day, c.Run.Type = dayOf(day), settlement.RunType(t)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read account charges: %w", err)
	}
	return charges, nil
}

func limitArg(n int) any {
	if n <= 0 {
		return nil
	}
	return n
}

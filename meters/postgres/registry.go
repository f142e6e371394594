package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// Registry reads and writes the registry tables (migrations/00001_registry.sql).
type Registry struct {
	pool     *pgxpool.Pool
	settings SettingsHook
}

// SettingsHook is told, inside a registry transaction and before its
// accounts are written, of the stored accounts whose alert settings
// (daily_kwh_threshold, monthly_budget) the batch sets where unset or unsets
// where set, with the settings they will have. The customer-alert aggregates
// are kept only for accounts with a setting, so they must be rebuilt (or
// dropped) before the registry commits; an error rolls the whole batch back.
// It runs before the accounts rows are locked by their update, so that it
// may first wait for the ingest transactions in flight, which lock accounts
// rows too.
type SettingsHook func(ctx context.Context, tx pgx.Tx, changes []AlertSettings) error

// AlertSettings are which alert settings an account has.
type AlertSettings struct {
	AccountID      string
	DailyThreshold bool // daily_kwh_threshold is set
	MonthlyBudget  bool // monthly_budget is set
}

// NewRegistry is a Registry on pool (opened with migrations.Connect, so
// numeric columns scan into decimals). settings may be nil only where no
// alert aggregates are kept (the registry's own tests).
func NewRegistry(pool *pgxpool.Pool, settings SettingsHook) *Registry {
	return &Registry{pool: pool, settings: settings}
}

// Counts is what a batch did to one table.
type Counts struct {
	Rows      int `json:"rows"`      // rows in the batch
	Inserted  int `json:"inserted"`  // new rows
	Updated   int `json:"updated"`   // changed rows (names, thresholds; assignments closed)
	Unchanged int `json:"unchanged"` // rows already stored exactly so
}

// Result is what a batch did, per table.
type Result map[Table]Counts

// registryLock serialises registry writers so the overlap pre-check sees
// every committed assignment (the exclusion constraint stays the last word).
const registryLock = `SELECT pg_advisory_xact_lock(hashtext('gridsettle.registry'))`

// Apply writes the batch in one transaction, in dependency order
// (participants, settlement points, accounts, then meter assignments): all of
// it or nothing. Participants, settlement points and accounts are upserted
// by id. An assignment identical to a stored one is unchanged; one that
// equals a stored open assignment but sets effective_to closes it; any other
// assignment is new and must not overlap another of its meter. Errors that
// concern a row are *RowError naming it.
func (r *Registry) Apply(ctx context.Context, b *Batch) (Result, error) {
	var res Result
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var err error
		res, err = r.ApplyTx(ctx, tx, b)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ApplyTx is Apply in the caller's transaction tx, for a caller that must
// commit something else with the batch (the API's audit row).
func (r *Registry) ApplyTx(ctx context.Context, tx pgx.Tx, b *Batch) (Result, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	return applyTx(ctx, tx, b, r.settings)
}

func applyTx(ctx context.Context, tx pgx.Tx, b *Batch, settings SettingsHook) (Result, error) {
	if _, err := tx.Exec(ctx, registryLock); err != nil {
		return nil, fmt.Errorf("lock registry: %w", err)
	}
	res := Result{}
	var err error
	if res[Participants], err = upsertParticipants(ctx, tx, b.Participants); err != nil {
		return nil, err
	}
	if res[SettlementPoints], err = upsertPoints(ctx, tx, b.SettlementPoints); err != nil {
		return nil, err
	}
	if settings != nil {
		toggled, err := toggledSettings(ctx, tx, b.Accounts)
		if err != nil {
			return nil, err
		}
		if len(toggled) > 0 {
			if err := settings(ctx, tx, toggled); err != nil {
				return nil, fmt.Errorf("alert settings of %d accounts: %w", len(toggled), err)
			}
		}
	}
	if res[Accounts], err = upsertAccounts(ctx, tx, b.Accounts); err != nil {
		return nil, err
	}
	if res[Meters], err = applyAssignments(ctx, tx, b); err != nil {
		return nil, err
	}
	return res, nil
}

// upsert runs an INSERT ... ON CONFLICT DO UPDATE ... WHERE changed
// RETURNING (xmax = 0) and counts what it did to n rows.
func upsert(ctx context.Context, tx pgx.Tx, what string, n int, sql string, args ...any) (Counts, error) {
	c := Counts{Rows: n}
	if n == 0 {
		return c, nil
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return c, fmt.Errorf("upsert %s: %w", what, err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return c, fmt.Errorf("upsert %s: %w", what, err)
	}
	for _, ins := range inserted {
		if ins {
			c.Inserted++
		} else {
			c.Updated++
		}
	}
	c.Unchanged = n - len(inserted)
	return c, nil
}

func upsertParticipants(ctx context.Context, tx pgx.Tx, ps []meters.Participant) (Counts, error) {
	ids, names := make([]string, len(ps)), make([]string, len(ps))
	for i, p := range ps {
		ids[i], names[i] = p.ParticipantID, p.Name
	}
	return upsert(ctx, tx, "participants", len(ps), `
		INSERT INTO participants (participant_id, name)
		SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (participant_id) DO UPDATE SET name = EXCLUDED.name
		WHERE participants.name IS DISTINCT FROM EXCLUDED.name
		RETURNING (xmax = 0)`, ids, names)
}

func upsertPoints(ctx context.Context, tx pgx.Tx, ps []meters.SettlementPoint) (Counts, error) {
	ids, names, kinds := make([]string, len(ps)), make([]string, len(ps)), make([]string, len(ps))
	for i, p := range ps {
		ids[i], names[i], kinds[i] = p.SettlementPoint, p.Name, p.Kind
	}
	return upsert(ctx, tx, "settlement points", len(ps), `
		INSERT INTO settlement_points (settlement_point, name, kind)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
		ON CONFLICT (settlement_point) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind
		WHERE (settlement_points.name, settlement_points.kind) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.kind)
		RETURNING (xmax = 0)`, ids, names, kinds)
}

// decText is an optional decimal as exact text for a numeric[] parameter.
func decText(d *decimal.Decimal) *string {
	if d == nil {
		return nil
	}
	s := d.String()
	return &s
}

// toggledSettings returns the stored accounts of as whose daily threshold or
// monthly budget the batch sets where unset or unsets where set, with their
// new settings. New accounts have no reads yet: nothing to rebuild.
func toggledSettings(ctx context.Context, tx pgx.Tx, as []meters.Account) ([]AlertSettings, error) {
	if len(as) == 0 {
		return nil, nil
	}
	ids := make([]string, len(as))
	for i, a := range as {
		ids[i] = a.AccountID
	}
	rows, err := tx.Query(ctx, `SELECT account_id, daily_kwh_threshold IS NOT NULL, monthly_budget IS NOT NULL
		FROM accounts WHERE account_id = ANY($1::text[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("read accounts' alert settings: %w", err)
	}
	stored := map[string]AlertSettings{}
	var s AlertSettings
	if _, err := pgx.ForEachRow(rows, []any{&s.AccountID, &s.DailyThreshold, &s.MonthlyBudget}, func() error {
		stored[s.AccountID] = s
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read accounts' alert settings: %w", err)
	}
	var out []AlertSettings
	for _, a := range as {
		now := AlertSettings{AccountID: a.AccountID, DailyThreshold: a.DailyKWhThreshold != nil, MonthlyBudget: a.MonthlyBudget != nil}
		if was, ok := stored[a.AccountID]; ok && was != now {
			out = append(out, now)
		}
	}
	return out, nil
}

func upsertAccounts(ctx context.Context, tx pgx.Tx, as []meters.Account) (Counts, error) {
	n := len(as)
	ids, names, thresholds, budgets, alerts := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n), make([]bool, n)
	for i, a := range as {
		ids[i], names[i], alerts[i] = a.AccountID, a.Name, a.PriceAlerts
		thresholds[i], budgets[i] = decText(a.DailyKWhThreshold), decText(a.MonthlyBudget)
	}
	return upsert(ctx, tx, "accounts", n, `
		INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget, price_alerts)
		SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[], $5::boolean[])
		ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name,
			daily_kwh_threshold = EXCLUDED.daily_kwh_threshold, monthly_budget = EXCLUDED.monthly_budget,
			price_alerts = EXCLUDED.price_alerts
		WHERE (accounts.name, accounts.daily_kwh_threshold, accounts.monthly_budget, accounts.price_alerts)
			IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.daily_kwh_threshold, EXCLUDED.monthly_budget, EXCLUDED.price_alerts)
		RETURNING (xmax = 0)`, ids, names, thresholds, budgets, alerts)
}

// applyAssignments checks the batch's assignments against the registry
// (references exist, no overlap with stored assignments), closes the stored
// open assignments the batch closes, and inserts the new ones.
func applyAssignments(ctx context.Context, tx pgx.Tx, b *Batch) (Counts, error) {
	as := b.Assignments
	c := Counts{Rows: len(as)}
	if len(as) == 0 {
		return c, nil
	}
	if err := checkReferences(ctx, tx, b); err != nil {
		return c, err
	}
	stored, err := storedAssignments(ctx, tx, as)
	if err != nil {
		return c, err
	}
	// First the rows that name a stored assignment (same meter and start):
	// unchanged, or closing it; then the new rows, checked for overlap with
	// the stored ones as closed by this batch.
	var inserts, closes []int
	for i, a := range as {
		j := slices.IndexFunc(stored[a.MeterID], func(s meters.Assignment) bool { return s.EffectiveFrom.Equal(a.EffectiveFrom) })
		if j < 0 {
			inserts = append(inserts, i)
			continue
		}
		s := &stored[a.MeterID][j]
		switch {
		case sameAssignment(*s, a) && equalEnd(s.EffectiveTo, a.EffectiveTo):
			c.Unchanged++
		case sameAssignment(*s, a) && s.EffectiveTo == nil:
			closes = append(closes, i)
			s.EffectiveTo = a.EffectiveTo
		default:
			return c, b.at(Meters, i).errorf("effective_from", true,
				"meter %s already has an assignment from %s with other values; assignments never change in place: close it with effective_to and add a new one",
				a.MeterID, a.EffectiveFrom.Format(time.RFC3339))
		}
	}
	for _, i := range inserts {
		a := as[i]
		for _, s := range stored[a.MeterID] {
			if overlaps(s, a) {
				return c, b.at(Meters, i).errorf("effective_from", true,
					"assignment of meter %s overlaps its stored assignment %s (assignments of a meter must not overlap)",
					a.MeterID, span(s))
			}
		}
	}
	// Closing first, so a batch may close an assignment and open the next.
	if len(closes) > 0 {
		ids, froms, tos := make([]string, len(closes)), make([]time.Time, len(closes)), make([]time.Time, len(closes))
		for k, i := range closes {
			ids[k], froms[k], tos[k] = as[i].MeterID, as[i].EffectiveFrom, *as[i].EffectiveTo
		}
		if _, err := tx.Exec(ctx, `
			UPDATE meter_assignments m SET effective_to = u.effective_to
			FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) u(meter_id, effective_from, effective_to)
			WHERE m.meter_id = u.meter_id AND m.effective_from = u.effective_from AND m.effective_to IS NULL`,
			ids, froms, tos); err != nil {
			return c, fmt.Errorf("close meter assignments: %w", err)
		}
		c.Updated = len(closes)
	}
	if len(inserts) > 0 {
		n := len(inserts)
		mids, accs, pars, pts, lfs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		froms, tos := make([]time.Time, n), make([]*time.Time, n)
		for k, i := range inserts {
			a := as[i]
			mids[k], accs[k], pars[k], pts[k], lfs[k] = a.MeterID, a.AccountID, a.ParticipantID, a.SettlementPoint, a.LossFactor.String()
			froms[k], tos[k] = a.EffectiveFrom, a.EffectiveTo
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::timestamptz[], $7::timestamptz[])`,
			mids, accs, pars, pts, lfs, froms, tos); err != nil {
			return c, fmt.Errorf("insert meter assignments: %w", err)
		}
		c.Inserted = n
	}
	return c, nil
}

func sameAssignment(s, a meters.Assignment) bool {
	return s.AccountID == a.AccountID && s.ParticipantID == a.ParticipantID &&
		s.SettlementPoint == a.SettlementPoint && s.LossFactor.Equal(a.LossFactor)
}

func equalEnd(x, y *time.Time) bool {
	return (x == nil && y == nil) || (x != nil && y != nil && x.Equal(*y))
}

// overlaps reports whether two half-open assignments share an instant.
func overlaps(x, y meters.Assignment) bool {
	return (x.EffectiveTo == nil || x.EffectiveTo.After(y.EffectiveFrom)) &&
		(y.EffectiveTo == nil || y.EffectiveTo.After(x.EffectiveFrom))
}

func span(a meters.Assignment) string {
	end := "open-ended"
	if a.EffectiveTo != nil {
		end = a.EffectiveTo.Format(time.RFC3339)
	}
	return "[" + a.EffectiveFrom.Format(time.RFC3339) + ", " + end + ")"
}

// checkReferences names the first assignment whose account, participant or
// settlement point is in neither the batch nor the registry (the batch's
// own rows are already written in this transaction).
func checkReferences(ctx context.Context, tx pgx.Tx, b *Batch) error {
	n := len(b.Assignments)
	accs, pars, pts := make([]string, n), make([]string, n), make([]string, n)
	for i, a := range b.Assignments {
		accs[i], pars[i], pts[i] = a.AccountID, a.ParticipantID, a.SettlementPoint
	}
	var (
		ord          int
		noAcc, noPar bool
	)
	err := tx.QueryRow(ctx, `
		SELECT u.ord, a.account_id IS NULL, p.participant_id IS NULL
		FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY u(account_id, participant_id, settlement_point, ord)
		LEFT JOIN accounts a ON a.account_id = u.account_id
		LEFT JOIN participants p ON p.participant_id = u.participant_id
		LEFT JOIN settlement_points s ON s.settlement_point = u.settlement_point
		WHERE a.account_id IS NULL OR p.participant_id IS NULL OR s.settlement_point IS NULL
		ORDER BY u.ord LIMIT 1`, accs, pars, pts).Scan(&ord, &noAcc, &noPar)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check meter references: %w", err)
	}
	i := ord - 1
	a, pos := b.Assignments[i], b.at(Meters, i)
	switch {
	case noAcc:
		return pos.errorf("account_id", false, "unknown account %q", a.AccountID)
	case noPar:
		return pos.errorf("participant_id", false, "unknown participant %q", a.ParticipantID)
	}
	return pos.errorf("settlement_point", false, "unknown settlement point %q", a.SettlementPoint)
}

// storedAssignments are the stored assignments of the batch's meters.
func storedAssignments(ctx context.Context, tx pgx.Tx, as []meters.Assignment) (map[string][]meters.Assignment, error) {
	seen := map[string]bool{}
	var ids []string
	for _, a := range as {
		if !seen[a.MeterID] {
			seen[a.MeterID] = true
			ids = append(ids, a.MeterID)
		}
	}
	rows, err := tx.Query(ctx, `
		SELECT meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to
		FROM meter_assignments WHERE meter_id = ANY($1::text[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("read stored assignments: %w", err)
	}
	list, err := pgx.CollectRows(rows, ScanAssignment)
	if err != nil {
		return nil, fmt.Errorf("read stored assignments: %w", err)
	}
	out := map[string][]meters.Assignment{}
	for _, a := range list {
		out[a.MeterID] = append(out[a.MeterID], a)
	}
	return out, nil
}

// ScanAssignment scans a meter_assignments row selected as meter_id, account_id,
// participant_id, settlement_point, loss_factor, effective_from, effective_to.
func ScanAssignment(row pgx.CollectableRow) (meters.Assignment, error) {
	var a meters.Assignment
	err := row.Scan(&a.MeterID, &a.AccountID, &a.ParticipantID, &a.SettlementPoint, &a.LossFactor, &a.EffectiveFrom, &a.EffectiveTo)
	a.EffectiveFrom = a.EffectiveFrom.UTC()
	if a.EffectiveTo != nil {
		t := a.EffectiveTo.UTC()
		a.EffectiveTo = &t
	}
	return a, err
}

// ImportFiles loads registry CSV files, each table named by its file's base
// name (participants.csv, settlement_points.csv, accounts.csv, meters.csv),
// in one transaction and in dependency order whatever the order of paths.
// This is `gridsettle registry import FILE...`.
func ImportFiles(ctx context.Context, pool *pgxpool.Pool, settings SettingsHook, paths ...string) (Result, error) {
	var b Batch
	for _, path := range paths {
		t, err := TableOfFile(path)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open registry file: %w", err)
		}
		err = b.AddCSV(t, path, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return NewRegistry(pool, settings).Apply(ctx, &b)
}

// Participants lists participants ordered by id, after the id after ("" for
// the first page), at most limit.
func (r *Registry) Participants(ctx context.Context, after string, limit int) ([]meters.Participant, error) {
	rows, err := r.pool.Query(ctx, `SELECT participant_id, name FROM participants
		WHERE participant_id > $1 ORDER BY participant_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[meters.Participant])
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	return out, nil
}

// SettlementPoints lists settlement points ordered by id, after after, at
// most limit.
func (r *Registry) SettlementPoints(ctx context.Context, after string, limit int) ([]meters.SettlementPoint, error) {
	rows, err := r.pool.Query(ctx, `SELECT settlement_point, name, kind FROM settlement_points
		WHERE settlement_point > $1 ORDER BY settlement_point LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list settlement points: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[meters.SettlementPoint])
	if err != nil {
		return nil, fmt.Errorf("list settlement points: %w", err)
	}
	return out, nil
}

// Accounts lists accounts ordered by id, after after, at most limit.
func (r *Registry) Accounts(ctx context.Context, after string, limit int) ([]meters.Account, error) {
	rows, err := r.pool.Query(ctx, `SELECT account_id, name, daily_kwh_threshold, monthly_budget, price_alerts
		FROM accounts WHERE account_id > $1 ORDER BY account_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[meters.Account])
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// AssignmentFilter selects meter assignments; zero fields do not filter.
type AssignmentFilter struct {
	MeterID         string
	AccountID       string
	ParticipantID   string
	SettlementPoint string
	At              *time.Time // in force at this instant
	// After is the keyset position: assignments strictly after
	// (AfterMeterID, AfterFrom) in (meter_id, effective_from) order.
	AfterMeterID string
	AfterFrom    time.Time
}

// Assignments lists meter assignments ordered by meter and start, at most
// limit.
func (r *Registry) Assignments(ctx context.Context, f AssignmentFilter, limit int) ([]meters.Assignment, error) {
	rows, err := r.pool.Query(ctx, `
		SELECT meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to
		FROM meter_assignments
		WHERE (meter_id, effective_from) > ($1, $2)
		  AND ($3 = '' OR meter_id = $3)
		  AND ($4 = '' OR account_id = $4)
		  AND ($5 = '' OR participant_id = $5)
		  AND ($6 = '' OR settlement_point = $6)
		  AND ($7::timestamptz IS NULL OR (effective_from <= $7 AND (effective_to IS NULL OR effective_to > $7)))
		ORDER BY meter_id, effective_from
		LIMIT $8`,
		f.AfterMeterID, f.AfterFrom, f.MeterID, f.AccountID, f.ParticipantID, f.SettlementPoint, f.At, limit)
	if err != nil {
		return nil, fmt.Errorf("list meter assignments: %w", err)
	}
	out, err := pgx.CollectRows(rows, ScanAssignment)
	if err != nil {
		return nil, fmt.Errorf("list meter assignments: %w", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
)

// Querier is what List needs: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Filter selects stored alerts. Zero fields select everything.
type Filter struct {
	AccountID string
	Type      alerts.Type
	// From and To bound event_time, half-open [From, To).
	From, To time.Time
	// FromDay and ToDay bound the alert's day, inclusive: its operating day,
	// or for alerts without one (monthly_budget, missing_data) the operating
	// day of its event time.
	FromDay, ToDay *settlement.Day
	After          *Key
}

// Key is the position of an alert in the list order (event time, then
// identity), for keyset pagination.
type Key struct {
	EventTime time.Time `json:"t"`
	AlertID   string    `json:"id"`
}

// List returns the stored alerts matching f, as published, in (event_time,
// alert_id) order, at most limit. loc is the market time zone (for the day
// bounds).
func List(ctx context.Context, db Querier, loc *time.Location, f Filter, limit int) ([]alerts.Alert, error) {
	var after Key
	if f.After != nil {
		after = *f.After
	}
	day := func(d *settlement.Day) *string {
		if d == nil {
			return nil
		}
		s := d.String()
		return &s
	}
	rows, err := db.Query(ctx, `
		SELECT payload FROM alerts
		WHERE ($1 = '' OR account_id = $1) AND ($2 = '' OR type = $2)
		  AND ($3::timestamptz IS NULL OR event_time >= $3) AND ($4::timestamptz IS NULL OR event_time < $4)
		  AND ($5::date IS NULL OR coalesce(operating_day, (event_time AT TIME ZONE $7)::date) >= $5::date)
		  AND ($6::date IS NULL OR coalesce(operating_day, (event_time AT TIME ZONE $7)::date) <= $6::date)
		  AND (NOT $8 OR (event_time, alert_id) > ($9, $10))
		ORDER BY event_time, alert_id LIMIT $11`,
		f.AccountID, string(f.Type), nullTime(f.From), nullTime(f.To), day(f.FromDay), day(f.ToDay), loc.String(),
		f.After != nil, after.EventTime, after.AlertID, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (alerts.Alert, error) {
		var payload []byte
		if err := row.Scan(&payload); err != nil {
			return alerts.Alert{}, err
		}
		var a alerts.Alert
		if err := json.Unmarshal(payload, &a); err != nil {
			return alerts.Alert{}, fmt.Errorf("decode stored alert: %w", err)
		}
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Payloads are the stored alerts' payloads by alert id, whole (the chaos
// suite in cmd/gridsettle compares them with the published ones).
func Payloads(ctx context.Context, db Querier) (map[string][]byte, error) {
	rows, err := db.Query(ctx, `SELECT alert_id, payload FROM alerts`)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer rows.Close()
	stored := map[string][]byte{}
	for rows.Next() {
		var id string
		var payload []byte
		if err := rows.Scan(&id, &payload); err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		stored[id] = payload
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return stored, nil
}

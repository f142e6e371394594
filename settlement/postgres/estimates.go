package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Estimate is one channel interval a run estimated (table run_estimates,
// settlement/README.md "What a run records and publishes"): the whole
// interval's value, its method, and the assignment covering its start as the
// run saw it.
type Estimate struct {
	MeterID         string
	Channel         string
	IntervalStart   time.Time
	IntervalSeconds int
	ValueKWh        decimal.Decimal
	Method          string // settlement.MethodLinear, MethodLikeDay or MethodZero
	AccountID       string
	ParticipantID   string
	SettlementPoint string
	LossFactor      decimal.Decimal
}

// EstimateQuery selects the estimates of run RunID. Zero fields do not
// filter.
type EstimateQuery struct {
	RunID   string
	MeterID string
	Method  string
	After   *EstimateKey // paging: estimates after this one
	Limit   int
}

// EstimateKey is the position of an estimate in the listing order.
type EstimateKey struct {
	MeterID       string    `json:"meter_id"`
	Channel       string    `json:"channel"`
	IntervalStart time.Time `json:"interval_start"`
}

// Estimates returns a run's estimates ordered by meter, channel and
// interval start (run_estimates' primary key, so a page is read from the
// index in order and stops at the limit), or ErrNotFound when there is no
// such run. A run that estimated nothing has none.
func (r *Runs) Estimates(ctx context.Context, q EstimateQuery) ([]Estimate, error) {
	var exists bool
	if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM runs WHERE run_id = $1)`, q.RunID).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read run %s: %w", q.RunID, err)
	}
	if !exists {
		return nil, fmt.Errorf("run %s: %w", q.RunID, ErrNotFound)
	}
	var afterMeter, afterChannel, afterStart any
	if q.After != nil {
		afterMeter, afterChannel, afterStart = q.After.MeterID, q.After.Channel, q.After.IntervalStart
	}
	rows, err := r.pool.Query(ctx, `
		SELECT meter_id, channel, interval_start, interval_seconds, value_kwh, method, account_id, participant_id,
		       settlement_point, loss_factor
		FROM run_estimates
		WHERE run_id = $1
		  AND ($2 = '' OR meter_id = $2)
		  AND ($3 = '' OR method = $3)
		  AND ($4::text IS NULL OR (meter_id, channel, interval_start) > ($4, $5::text, $6::timestamptz))
		ORDER BY meter_id, channel, interval_start
		LIMIT $7`, q.RunID, q.MeterID, q.Method, afterMeter, afterChannel, afterStart, limitArg(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("read estimates of run %s: %w", q.RunID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Estimate, error) {
		var e Estimate
		err := row.Scan(&e.MeterID, &e.Channel, &e.IntervalStart, &e.IntervalSeconds, &e.ValueKWh, &e.Method,
			&e.AccountID, &e.ParticipantID, &e.SettlementPoint, &e.LossFactor)
		e.IntervalStart = e.IntervalStart.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read estimates of run %s: %w", q.RunID, err)
	}
	return out, nil
}

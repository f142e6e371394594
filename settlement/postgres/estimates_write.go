package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// runEstimate is one row of run_estimates (migrations/00900_estimates.sql):
// an estimated channel interval of the run's day with its whole value and
// the assignment covering its start, as the run saw it.
type runEstimate struct {
	meterID     string
	channel     meters.Channel
	start       time.Time
	seconds     int32
	valueKWh    decimal.Decimal
	method      string
	account     string
	participant string
	point       string
	lossFactor  decimal.Decimal
}

// rows are the day's estimates as run_estimates stores them.
func (e *dayEstimates) rows(d *dayReads) []runEstimate {
	out := make([]runEstimate, len(e.made))
	for i := range e.made {
		m := &e.made[i]
		g := d.chgKeys[m.a.chg]
		out[i] = runEstimate{
			meterID: m.meter, channel: m.channel, start: time.Unix(m.startUnix, 0).UTC(), seconds: int32(m.lenSeconds),
			valueKWh: decimal.New(m.microKWh, -microScale), method: m.method.String(),
			account: g.account, participant: g.participant, point: d.points[m.a.point], lossFactor: d.chgLF[m.a.chg],
		}
	}
	return out
}

// microScale is the decimal scale of a value in micro-kWh.
const microScale = 6

// writeEstimates copies a run's estimates into run_estimates.
func writeEstimates(ctx context.Context, tx pgx.Tx, runID string, es []runEstimate) error {
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"run_estimates"}, []string{
		"run_id", "meter_id", "channel", "interval_start", "interval_seconds", "value_kwh", "method",
		"account_id", "participant_id", "settlement_point", "loss_factor",
	}, pgx.CopyFromSlice(len(es), func(i int) ([]any, error) {
		e := &es[i]
		return []any{runID, e.meterID, string(e.channel), e.start, e.seconds, e.valueKWh, e.method,
			e.account, e.participant, e.point, e.lossFactor}, nil
	}))
	if err != nil {
		return fmt.Errorf("write %d estimates: %w", n, err)
	}
	return nil
}

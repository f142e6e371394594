package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// DefaultWindow is the silence of event time after which missing_data fires.
const DefaultWindow = 6 * time.Hour

// Config configures the alert hook.
type Config struct {
	// Market gives the time zone (operating days, months, local times in
	// messages), the currency, the settlement interval and the price spike
	// threshold.
	Market settlement.Market
	// Topics names the reads topic (whose watermarks drive missing_data) and
	// the alerts topic alerts are published to.
	Topics kafka.Topics
	// Window is how long a meter may be silent, in event time, before
	// missing_data fires. Default DefaultWindow.
	Window time.Duration
	// Registry keeps the accounts' alert settings across batches (one per
	// process, the ingest Applier's); nil: the Hook keeps its own.
	Registry *registrystore.Cache
}

// Hook evaluates customer alerts inside every ingest transaction (it is an
// ingest.Hook). Give the same Hook to the consumers' Applier and to the one
// that serves quarantine replays.
type Hook struct {
	market   settlement.Market
	topics   kafka.Topics
	window   time.Duration
	locale   alerts.Locale
	fired    *prometheus.CounterVec
	registry *registrystore.Cache
}

var _ ingest.Hook = (*Hook)(nil)

// New returns the alert hook. Its metric gridsettle_alerts_fired_total{type}
// is registered on reg (nil: none).
func New(cfg Config, reg prometheus.Registerer) (*Hook, error) {
	if cfg.Market.Location == nil || cfg.Market.IntervalSeconds <= 0 || cfg.Market.Currency == "" {
		return nil, fmt.Errorf("alerts: market needs a time zone, a currency and a settlement interval")
	}
	if cfg.Market.PriceSpikeThreshold.Sign() <= 0 {
		return nil, fmt.Errorf("alerts: price spike threshold %s must be positive", cfg.Market.PriceSpikeThreshold)
	}
	if cfg.Topics.Reads == "" || cfg.Topics.Alerts == "" {
		return nil, fmt.Errorf("alerts: the reads and alerts topics must be named")
	}
	if cfg.Window < 0 {
		return nil, fmt.Errorf("alerts: negative missing-data window %s", cfg.Window)
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Registry == nil {
		cfg.Registry = registrystore.NewCache(0)
	}
	h := &Hook{
		market: cfg.Market, topics: cfg.Topics, window: cfg.Window, registry: cfg.Registry,
		locale: alerts.Locale{Location: cfg.Market.Location, Currency: cfg.Market.Currency},
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_alerts_fired_total",
			Help: "Customer alerts fired (identity stored for the first time and queued for alerts.customer), by type. " +
				"A batch rolled back after its alerts were counted counts them again when it is retried.",
		}, []string{"type"}),
	}
	if reg != nil {
		if err := reg.Register(h.fired); err != nil {
			return nil, fmt.Errorf("register alert metrics: %w", err)
		}
	}
	return h, nil
}

// AfterApply evaluates the alerts the changes of a can fire, record by
// record in offset order, moves the aggregates, stores the new identities
// and returns their alerts.customer messages for the ingest transaction's
// outbox.
func (h *Hook) AfterApply(ctx context.Context, tx pgx.Tx, a ingest.Applied) ([]outbox.Message, error) {
	var fired []alerts.Alert
	cal := h.calendar()
	if len(a.Reads) > 0 || len(a.Ends) > 0 || len(a.Prices) > 0 {
		// The accounts whose aggregates are kept stay put until commit
		// (scope.go).
		if _, err := tx.Exec(ctx, lockScopeShared); err != nil {
			return nil, fmt.Errorf("alerts: lock the aggregate scope: %w", err)
		}
	}
	if len(a.Reads) > 0 || len(a.Ends) > 0 {
		f, err := h.reads(ctx, tx, cal, a)
		if err != nil {
			return nil, err
		}
		fired = append(fired, f...)
	}
	if len(a.Prices) > 0 {
		f, err := h.prices(ctx, tx, cal, a)
		if err != nil {
			return nil, err
		}
		fired = append(fired, f...)
	}
	return h.store(ctx, tx, fired)
}

// store inserts the fired alerts; only identities inserted now (never seen
// before) become messages, in firing order.
func (h *Hook) store(ctx context.Context, tx pgx.Tx, fired []alerts.Alert) ([]outbox.Message, error) {
	if len(fired) == 0 {
		return nil, nil
	}
	n := len(fired)
	ids, types, accounts, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	meterIDs, days, months := make([]*string, n), make([]*string, n), make([]*string, n)
	times := make([]time.Time, n)
	values := make([][]byte, n)
	for i, al := range fired {
		v, err := json.Marshal(al)
		if err != nil {
			return nil, fmt.Errorf("encode alert %s: %w", al.AlertID, err)
		}
		values[i] = v
		ids[i], types[i], accounts[i], payloads[i], times[i] = al.AlertID, string(al.Type), al.AccountID, string(v), al.EventTime
		meterIDs[i], days[i], months[i] = nonEmpty(al.MeterID), nonEmpty(al.OperatingDay), nonEmpty(al.Month)
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO alerts (alert_id, type, account_id, meter_id, operating_day, month, payload, event_time)
		SELECT u.alert_id, u.type, u.account_id, u.meter_id, u.operating_day::date, u.month, u.payload::jsonb, u.event_time
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
		     AS u(alert_id, type, account_id, meter_id, operating_day, month, payload, event_time)
		ON CONFLICT (alert_id) DO NOTHING
		RETURNING alert_id`, ids, types, accounts, meterIDs, days, months, payloads, times)
	if err != nil {
		return nil, fmt.Errorf("store alerts: %w", err)
	}
	inserted := map[string]bool{}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		inserted[id] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store alerts: %w", err)
	}
	var msgs []outbox.Message
	for i, al := range fired {
		if !inserted[al.AlertID] {
			continue
		}
		msgs = append(msgs, outbox.Message{
			Topic: h.topics.Alerts, Key: []byte(al.AccountID), Value: values[i], ID: al.AlertID, Schema: alerts.Schema,
		})
		h.fired.WithLabelValues(string(al.Type)).Inc()
	}
	return msgs, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var topics = kafka.DefaultTopics()

func testMarket(t testing.TB) settlement.Market {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900, PriceSpikeThreshold: decimal.NewFromInt(1000)}
}

// env is one test's Postgres database and Kafka cluster.
type env struct {
	t      testing.TB
	pool   *pgxpool.Pool
	addrs  []string
	market settlement.Market
	writer *outbox.Writer
	adm    *kadm.Client
	prod   *kgo.Client
}

func newEnv(t testing.TB) *env {
	pool, _ := pgtest.New(t)
	addrs := kafkatest.New(t)
	parts := map[string]int32{}
	for _, tp := range topics.Outputs() {
		parts[tp] = kafkatest.Partitions
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("test-headend"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &env{t: t, pool: pool, addrs: addrs, market: testMarket(t), writer: outbox.NewWriter(parts), adm: kadm.NewClient(admCl), prod: prod}
}

// registry: M1 at HB_NORTH with RETAILER-A (loss factor 1.5), M2 at HB_SOUTH
// with RETAILER-A (1.031200), both from 2026-01-01.
func (e *env) registry() {
	e.t.Helper()
	e.exec(`
		INSERT INTO participants VALUES ('RETAILER-A', 'A');
		INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub'), ('HB_SOUTH', 'South', 'hub');
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-2', 'two');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-1', 'RETAILER-A', 'HB_NORTH', 1.5, '2026-01-01T00:00:00Z'),
			('M2', 'ACC-2', 'RETAILER-A', 'HB_SOUTH', 1.031200, '2026-01-01T00:00:00Z')`)
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.pool.Exec(e.t.Context(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// rec is a record for partition p of topic.
func rec(topic string, p int32, key, value string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(key), Value: []byte(value)}
}

func read(meter, channel, start string, seconds, version int, values ...string) string {
	return fmt.Sprintf(`{"meter_id":%q,"channel":%q,"start":%q,"interval_seconds":%d,"values":["%s"],"version":%d,"source":"test"}`,
		meter, channel, start, seconds, strings.Join(values, `","`), version)
}

func price(market, point, start string, seconds, version int, p, currency string) string {
	return fmt.Sprintf(`{"market":%q,"settlement_point":%q,"start":%q,"interval_seconds":%d,"price":%q,"currency":%q,"version":%d}`,
		market, point, start, seconds, p, currency, version)
}

// produce writes recs in one committed (or, with abort, aborted) Kafka
// transaction and returns them with their offsets.
func (e *env) produce(abort bool, recs ...*kgo.Record) []*kgo.Record {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.prod.BeginTransaction(); err != nil {
		e.t.Fatal(err)
	}
	res := e.prod.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.prod.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// consumer is a running Consumer with its own metrics and logs.
type consumer struct {
	c      *Consumer
	reg    *prometheus.Registry
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// logBuffer keeps what a consumer logs, for tests that check it says why.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (e *env) start(cfg Config, hooks ...Hook) *consumer {
	e.t.Helper()
	return e.startApplier(cfg, NewApplier(e.market, topics, e.writer, hooks...))
}

// startApplier starts a consumer that applies records with a.
func (e *env) startApplier(cfg Config, a *Applier) *consumer {
	e.t.Helper()
	cfg.Kafka = kafka.Config{Brokers: e.addrs}
	cfg.Topics = topics
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 10 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	logs := &logBuffer{}
	c, err := New(cfg, e.pool, a, reg,
		slog.New(slog.NewTextHandler(logs, nil)),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.HeartbeatInterval(200*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.t.Context())
	run := &consumer{c: c, reg: reg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- c.Run(ctx) }()
	e.t.Cleanup(run.stop)
	return run
}

func (c *consumer) stop() {
	c.once.Do(func() {
		c.cancel()
		<-c.done
	})
}

// records is what this consumer committed: data records of topic.
func (c *consumer) records(topic string) int {
	return int(counterValue(c.c.m.records.WithLabelValues(topic)))
}

// caughtUp waits until every input partition has lag 0 and returns the
// status then.
func (e *env) caughtUp() Status {
	e.t.Helper()
	return e.caughtUpWithin(60 * time.Second)
}

// caughtUpWithin is caughtUp that fails after d.
func (e *env) caughtUpWithin(d time.Duration) Status {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, err := ReadStatus(e.t.Context(), e.pool, e.adm, topics)
		if err != nil {
			e.t.Fatal(err)
		}
		done := len(st.Inputs) == 2*kafkatest.Partitions
		for _, in := range st.Inputs {
			done = done && in.Lag == 0
		}
		if done {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ingest did not catch up within %s: %+v", d, st.Inputs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// positions are the live positions of 2026-11-01 as "participant/point/HH:MM"
// → "energy price amount" (price and amount "-" when unpriced).
func (e *env) positions() map[string]string {
	e.t.Helper()
	ps, err := Positions(e.t.Context(), e.pool, e.market, PositionQuery{Day: settlement.Day{Year: 2026, Month: 11, Day: 1}, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ps {
		v := p.EnergyMWh.String() + " - -"
		if p.Price.Valid {
			v = fmt.Sprintf("%s %s %s", p.EnergyMWh, p.Price.Decimal, p.Amount.Decimal)
		}
		out[p.ParticipantID+"/"+p.SettlementPoint+"/"+p.IntervalStart.Format("15:04")] = v
	}
	return out
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.t.Context(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// counterValue reads a counter or gauge.
func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

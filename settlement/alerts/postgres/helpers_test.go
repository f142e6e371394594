package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	alertspg "github.com/gridsettle/gridsettle/settlement/alerts/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
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

// cluster is one test's Kafka cluster with a transactional head-end
// producer.
type cluster struct {
	t      *testing.T
	addrs  []string
	prod   *kgo.Client
	adm    *kadm.Client
	market settlement.Market
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	addrs := kafkatest.New(t)
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("test-headend"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	return &cluster{t: t, addrs: addrs, prod: prod, adm: kadm.NewClient(admCl), market: testMarket(t)}
}

// produce writes recs in one committed Kafka transaction.
func (c *cluster) produce(recs ...*kgo.Record) {
	c.t.Helper()
	ctx := c.t.Context()
	if err := c.prod.BeginTransaction(); err != nil {
		c.t.Fatal(err)
	}
	if err := c.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
	if err := c.prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		c.t.Fatal(err)
	}
}

// readRec is an ami.interval-reads record for partition p: consecutive
// values of one channel, each "kWh" or "kWhQ" with a quality letter Q.
func readRec(p int32, meter, channel, start string, seconds, version int, values ...string) *kgo.Record {
	vs, qs := make([]string, len(values)), make([]string, len(values))
	for i, v := range values {
		vs[i], qs[i] = v, "A"
		if q := v[len(v)-1:]; q == "E" || q == "S" {
			vs[i], qs[i] = v[:len(v)-1], q
		}
	}
	value := fmt.Sprintf(`{"meter_id":%q,"channel":%q,"start":%q,"interval_seconds":%d,"values":["%s"],"quality":["%s"],"version":%d}`,
		meter, channel, start, seconds, strings.Join(vs, `","`), strings.Join(qs, `","`), version)
	return &kgo.Record{Topic: topics.Reads, Partition: p, Key: []byte(meter), Value: []byte(value)}
}

// priceRec is an RT market.prices record for partition p.
func priceRec(p int32, point, start string, seconds, version int, price string) *kgo.Record {
	value := fmt.Sprintf(`{"market":"RT","settlement_point":%q,"start":%q,"interval_seconds":%d,"price":%q,"version":%d}`,
		point, start, seconds, price, version)
	return &kgo.Record{Topic: topics.Prices, Partition: p, Key: []byte(point), Value: []byte(value)}
}

// db is one gridsettle database with the alert hook.
type db struct {
	t       *testing.T
	pool    *pgxpool.Pool
	hook    *alertspg.Hook
	reg     *prometheus.Registry
	applier *ingest.Applier
}

// newDB is a fresh database with the registry SQL applied.
func (c *cluster) newDB(registry string) *db {
	c.t.Helper()
	pool, _ := pgtest.New(c.t)
	reg := prometheus.NewRegistry()
	hook, err := alertspg.New(alertspg.Config{Market: c.market, Topics: topics}, reg)
	if err != nil {
		c.t.Fatal(err)
	}
	parts := map[string]int32{}
	for _, tp := range topics.Outputs() {
		parts[tp] = kafkatest.Partitions
	}
	d := &db{t: c.t, pool: pool, hook: hook, reg: reg,
		applier: ingest.NewApplier(c.market, topics, outbox.NewWriter(parts), hook)}
	d.exec(registry)
	return d
}

func (d *db) exec(sql string, args ...any) {
	d.t.Helper()
	if _, err := d.pool.Exec(d.t.Context(), sql, args...); err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
}

// testLog turns the consumer's warnings and errors (a failing hook) into
// test log lines.
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// consumer is a running ingest consumer of one database.
type consumer struct {
	stop func()
}

// consume starts an ingest consumer of group for d, batches of at most
// maxBatch records.
func (c *cluster) consume(d *db, group string, maxBatch int) *consumer {
	c.t.Helper()
	logs := &testLog{t: c.t}
	cfg := ingest.Config{Kafka: kafka.Config{Brokers: c.addrs}, Topics: topics, Group: group,
		MaxBatchRecords: maxBatch, RetryBackoff: 10 * time.Millisecond}
	cons, err := ingest.New(cfg, d.pool, d.applier, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.HeartbeatInterval(200*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	var once sync.Once
	run := &consumer{stop: func() {
		once.Do(func() {
			cancel()
			<-done
			logs.mu.Lock()
			logs.done = true
			logs.mu.Unlock()
		})
	}}
	c.t.Cleanup(run.stop)
	return run
}

// caughtUp waits until d has applied everything committed to the inputs.
func (c *cluster) caughtUp(d *db) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := ingest.ReadStatus(c.t.Context(), d.pool, c.adm, topics)
		if err != nil {
			c.t.Fatal(err)
		}
		done := len(st.Inputs) == 2*kafkatest.Partitions
		for _, in := range st.Inputs {
			done = done && in.Lag == 0
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ingest did not catch up: %+v", st.Inputs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alerts are the stored alerts by id.
func (d *db) alerts() map[string]alerts.Alert {
	d.t.Helper()
	rows, err := d.pool.Query(d.t.Context(), `SELECT alert_id, payload FROM alerts`)
	if err != nil {
		d.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]alerts.Alert{}
	for rows.Next() {
		var id string
		var payload []byte
		if err := rows.Scan(&id, &payload); err != nil {
			d.t.Fatal(err)
		}
		var a alerts.Alert
		if err := json.Unmarshal(payload, &a); err != nil {
			d.t.Fatal(err)
		}
		if a.AlertID != id {
			d.t.Fatalf("row %s holds alert %s", id, a.AlertID)
		}
		out[id] = a
	}
	if err := rows.Err(); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// published is what the outbox holds for alerts.customer, by id, failing on
// a duplicate id, a record that does not match its stored alert or one
// invalid against its schema.
func (d *db) published() map[string]alerts.Alert {
	d.t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		d.t.Fatal(err)
	}
	rows, err := d.pool.Query(d.t.Context(), `
		SELECT record_id, schema, key, value FROM outbox WHERE topic = $1 ORDER BY partition, seq`, topics.Alerts)
	if err != nil {
		d.t.Fatal(err)
	}
	defer rows.Close()
	stored := d.alerts()
	out := map[string]alerts.Alert{}
	for rows.Next() {
		var id, schema string
		var key, value []byte
		if err := rows.Scan(&id, &schema, &key, &value); err != nil {
			d.t.Fatal(err)
		}
		var a alerts.Alert
		if err := json.Unmarshal(value, &a); err != nil {
			d.t.Fatal(err)
		}
		if err := v.Value(schema, value); err != nil {
			d.t.Error(err)
		}
		if _, dup := out[id]; dup {
			d.t.Errorf("alert %s published twice", id)
		}
		if schema != alerts.Schema || string(key) != a.AccountID || a.AlertID != id {
			d.t.Errorf("outbox row %s: schema %s key %s alert %+v", id, schema, key, a)
		}
		if s, ok := stored[id]; !ok || !sameAlert(s, a) {
			d.t.Errorf("published %+v, stored %+v", a, s)
		}
		out[id] = a
	}
	if err := rows.Err(); err != nil {
		d.t.Fatal(err)
	}
	return out
}

func sameAlert(a, b alerts.Alert) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func equalIDs(t *testing.T, got map[string]alerts.Alert, want ...string) {
	t.Helper()
	g := slices.Sorted(maps.Keys(got))
	w := slices.Sorted(slices.Values(want))
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("alerts\n  %s\nwant\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
}

// ofType is the alerts of m of type t.
func ofType(m map[string]alerts.Alert, t alerts.Type) map[string]alerts.Alert {
	out := map[string]alerts.Alert{}
	for id, a := range m {
		if a.Type == t {
			out[id] = a
		}
	}
	return out
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

const baseRegistry = `
	INSERT INTO participants VALUES ('RET-A', 'Retailer A');
	INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub'), ('HB_SOUTH', 'South', 'hub'),
		('HB_WEST', 'West', 'hub'), ('HB_EAST', 'East', 'hub');
`

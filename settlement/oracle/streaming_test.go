package oracle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	alertspg "github.com/gridsettle/gridsettle/settlement/alerts/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStreamingAgreesOnAlertsAndQuarantine: a simulated scenario, with
// later-dated records quarantined as unknown_meter and
// interval_length_mismatch on its partitions, consumed by the streaming
// ingest with the customer-alerts hook (real Kafka protocol, real
// Postgres), quarantines exactly what the oracle does, with the same
// reasons, and publishes every alert the oracle says must fire and none it
// says never can. The quarantined records would make every meter of their
// partition silent for 12 hours if they moved event time; the contract says
// they do not (meters/README.md "Nothing a producer sends can stop ingest").
func TestStreamingAgreesOnAlertsAndQuarantine(t *testing.T) {
	ctx := t.Context()
	sc, err := simulate.Generate(simulate.Config{Seed: 5, Meters: 16, Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	records := slices.Concat(sc.Records, sc.Late, laterQuarantined(t, sc))

	addrs := kafkatest.New(t)
	kc := kafka.Config{Brokers: addrs}
	produced, err := simulate.Produce(ctx, kc, records, simulate.ProduceOptions{TransactionRecords: 100},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}

	pool, _ := pgtest.New(t)
	market, topics := sc.Config.Market, kafka.DefaultTopics()
	hook, err := alertspg.New(alertspg.Config{Market: market, Topics: topics}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := simulate.WriteRegistry(dir, sc); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, name := range []string{simulate.ParticipantsFile, simulate.SettlementPointsFile, simulate.AccountsFile, simulate.MetersFile} {
		files = append(files, filepath.Join(dir, name))
	}
	if _, err := registrystore.ImportFiles(ctx, pool, hook.SettingsChanged, files...); err != nil {
		t.Fatal(err)
	}
	// The consumer's clock of start_out_of_range: the wall clock, as the
	// Applier's; the scenario lies days before it.
	now := time.Now()
	parts := map[string]int32{}
	for _, tp := range topics.Outputs() {
		parts[tp] = kafkatest.Partitions
	}
	cons, err := ingest.New(ingest.Config{Kafka: kc, Topics: topics, MaxBatchRecords: 50, RetryBackoff: 10 * time.Millisecond},
		pool, ingest.NewApplier(market, topics, outbox.NewWriter(parts), hook), prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(io.Discard, nil)),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.HeartbeatInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	caughtUp(t, pool, addrs, topics)
	cancel()
	if err := <-done; err != nil && runCtx.Err() == nil {
		t.Fatal(err)
	}

	reg, err := oracle.ReadRegistry(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	o, err := oracle.New(reg, oracle.Market{Location: market.Location, Currency: market.Currency,
		IntervalSeconds: int64(market.IntervalSeconds), PriceSpikeThreshold: market.PriceSpikeThreshold, Now: now},
		oracle.Topics{Reads: topics.Reads, Prices: topics.Prices})
	if err != nil {
		t.Fatal(err)
	}
	log := make([]oracle.Input, len(produced))
	for i, p := range produced {
		log[i] = oracle.Input{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, Key: p.Key, Value: p.Value}
	}
	want, err := o.Ingest(log, nil)
	if err != nil {
		t.Fatal(err)
	}

	got := map[oracle.Position]string{}
	rows, err := pool.Query(ctx, `SELECT topic, partition, "offset", reason FROM quarantine`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p oracle.Position
		var reason string
		if err := rows.Scan(&p.Topic, &p.Partition, &p.Offset, &reason); err != nil {
			t.Fatal(err)
		}
		got[p] = reason
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for p, q := range want.Quarantine {
		if got[p] != q.Reason {
			t.Errorf("%s/%d/%d: quarantined as %q, the oracle says %q (%s)", p.Topic, p.Partition, p.Offset, got[p], q.Reason, q.Detail)
		}
	}
	for p, reason := range got {
		if _, ok := want.Quarantine[p]; !ok {
			t.Errorf("%s/%d/%d: quarantined as %q, the oracle accepts it", p.Topic, p.Partition, p.Offset, reason)
		}
	}

	var ids []string
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(alert_id), '{}') FROM alerts`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, id := range ids {
		stored[id] = true
		if _, ok := want.Alerts[id]; !ok {
			t.Errorf("alert %s stored, but the oracle says it can never fire", id)
		}
	}
	missing := 0
	for id, a := range want.Alerts {
		if a.Must && !stored[id] {
			t.Errorf("alert %s must fire (it holds in the final state), but was not stored", id)
		}
		if a.Type == "missing_data" && stored[id] {
			missing++
		}
	}
	// The scenario has outages: without them the missing_data rule, the
	// one the quarantined records would move, would not be compared.
	if missing == 0 {
		t.Errorf("no missing_data alert in %d stored alerts: the scenario does not exercise the watermark", len(ids))
	}
}

// laterQuarantined are two reads records dated 12 hours after the
// scenario's last day, well before now, each keyed by a scenario meter so
// that it shares that meter's partition: one for a meter the registry does
// not know, one with another interval length than the meter's channel has.
func laterQuarantined(t *testing.T, sc *simulate.Scenario) []simulate.Record {
	t.Helper()
	_, end := sc.Config.Market.Bounds(sc.Config.StartDay.AddDays(sc.Config.Days - 1))
	at := end.Add(12 * time.Hour).UTC().Format(time.RFC3339)
	var first struct {
		MeterID         string `json:"meter_id"`
		Channel         string `json:"channel"`
		IntervalSeconds int    `json:"interval_seconds"`
	}
	i := slices.IndexFunc(sc.Records, func(r simulate.Record) bool {
		return r.Topic == sc.Config.Topics.Reads && r.Reason == ""
	})
	if i < 0 {
		t.Fatal("the scenario has no accepted reads record")
	}
	if err := json.Unmarshal(sc.Records[i].Value, &first); err != nil {
		t.Fatal(err)
	}
	other := 900
	if first.IntervalSeconds == 900 {
		other = 300
	}
	channel := first.Channel
	if channel == "" {
		channel = "import"
	}
	reads := sc.Config.Topics.Reads
	return []simulate.Record{
		{Topic: reads, Key: []byte(first.MeterID), Reason: "unknown_meter",
			Value: fmt.Appendf(nil, `{"meter_id":"MTR-NOBODY","start":%q,"interval_seconds":900,"values":["1"]}`, at)},
		{Topic: reads, Key: []byte(first.MeterID), Reason: "interval_length_mismatch",
			Value: fmt.Appendf(nil, `{"meter_id":%q,"channel":%q,"start":%q,"interval_seconds":%d,"values":["1"]}`,
				first.MeterID, channel, at, other)},
	}
}

// caughtUp waits until the database has applied everything committed to
// the input topics.
func caughtUp(t *testing.T, pool *pgxpool.Pool, addrs []string, topics kafka.Topics) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(2 * time.Minute) // a safety net, not an assertion
	for {
		st, err := ingest.ReadStatus(t.Context(), pool, adm, topics)
		if err != nil {
			t.Fatal(err)
		}
		done := len(st.Inputs) == 2*kafkatest.Partitions
		for _, in := range st.Inputs {
			done = done && in.Lag == 0
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not catch up: %+v", st.Inputs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

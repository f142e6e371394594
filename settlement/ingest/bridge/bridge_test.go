package bridge_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge/mosquittotest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

// validator checks the bridge's dead letters against the message schemas.
var validator = func() *schemas.Validator {
	v, err := schemas.NewValidator()
	if err != nil {
		panic(err)
	}
	return v
}()

const wait = 10 * time.Second

// testOut receives the bridges' logs; os.Stderr when debugging.
var testOut = io.Discard

// message is one MQTT publication of a test and where it must end up.
type message struct {
	topic   string
	payload []byte
	key     string // the Kafka key it must carry
	kafka   string // the Kafka topic it must reach
}

func read(meter string, i int) []byte {
	return fmt.Appendf(nil, `{"meter_id":%q,"start":"2026-11-01T%02d:00:00Z","interval_seconds":3600,"values":["0.5"]}`, meter, i%24)
}

// hostile are payloads the bridge must forward (keyed by their MQTT topic
// when no key can be read) or dead-letter, never drop or choke on.
func hostile() []message {
	huge := bytes.Repeat([]byte("x"), 1_200_000)
	return []message{
		{topic: "gridsettle/prices/rt", payload: []byte(`{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":300,"price":"-12.5"}`),
			key: "HB_NORTH", kafka: "market.prices"},
		{topic: "gridsettle/reads/bad/utf8", payload: []byte("{\"meter_id\":\"M\xff\xfe\"}"), key: "gridsettle/reads/bad/utf8", kafka: "ami.interval-reads"},
		{topic: "gridsettle/reads/bad/nul", payload: []byte("{\"meter_id\":\"M1\x00\"}\x00"), key: "gridsettle/reads/bad/nul", kafka: "ami.interval-reads"},
		{topic: "gridsettle/reads/bad/notjson", payload: []byte("not json"), key: "gridsettle/reads/bad/notjson", kafka: "ami.interval-reads"},
		{topic: "gridsettle/reads/bad/empty", payload: []byte{}, key: "gridsettle/reads/bad/empty", kafka: "ami.interval-reads"},
		{topic: "gridsettle/reads/bad/badid", payload: []byte(`{"meter_id":"a b"}`), key: "gridsettle/reads/bad/badid", kafka: "ami.interval-reads"},
		{topic: "gridsettle/reads/bad/case", payload: []byte(`{"METER_ID":"M1"}`), key: "gridsettle/reads/bad/case", kafka: "ami.interval-reads"},
		{topic: "gridsettle/reads/bad/huge", payload: huge, key: "gridsettle/reads/bad/huge", kafka: "gridsettle.dead-letter"},
	}
}

func newBridge(t *testing.T, mq, clientID string, brokers []string, reg prometheus.Registerer, opts ...bridge.Option) *bridge.Bridge {
	t.Helper()
	b, err := bridge.New(bridge.Config{Broker: mq, ClientID: clientID, Kafka: kafka.Config{Brokers: brokers},
		Topics: kafka.DefaultTopics(), BatchRecords: 50}, slogDiscard(), reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs b, once it is subscribed, until the returned stop is called,
// which returns Run's error.
func run(t *testing.T, b *bridge.Bridge) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(cancel)
	// The broker keeps messages only for subscribed sessions.
	for deadline := time.Now().Add(wait); b.Ready(ctx) != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bridge not ready within %v: %v", wait, b.Ready(ctx))
		}
	}
	return func() error { cancel(); return <-done }
}

func publish(t *testing.T, mq string, msgs []message) { publishTo(t, mq, "", "", "", msgs) }

// publishTo publishes msgs with QoS 1, over TLS verified against the CA
// file ca when it is given, as user when given.
func publishTo(t *testing.T, mq, ca, user, password string, msgs []message) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(mq).SetClientID("test-publisher-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))).
		SetUsername(user).SetPassword(password)
	if ca != "" {
		pool, err := kafka.CertPool(ca)
		if err != nil {
			t.Fatal(err)
		}
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, m := range msgs {
		if tok := c.Publish(m.topic, 1, false, m.payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish to %s: %v", m.topic, tok.Error())
		}
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(testOut, nil)) }

// consume reads the input and dead-letter topics read_committed until n
// records arrived.
func consume(t *testing.T, brokers []string, n int) []*kgo.Record {
	t.Helper()
	topics := kafka.DefaultTopics()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.Reads, topics.Prices, topics.DeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Errorf("read %d of %d records within %v", len(out), n, wait)
			return out
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestForwards: every payload reaches its topic unchanged, keyed and with
// its headers; a payload over the record limit reaches the dead letter cut,
// with its length and SHA-256; Stop commits and acknowledges what it holds.
func TestForwards(t *testing.T) {
	mq := mosquittotest.Start(t)
	brokers := kafkatest.New(t)
	msgs := hostile()
	for i := range 120 {
		m := "MTR-" + strconv.Itoa(i%7)
		msgs = append(msgs, message{topic: "gridsettle/reads/" + m, payload: read(m, i), key: m, kafka: "ami.interval-reads"})
	}
	reg := prometheus.NewRegistry()
	stop := run(t, newBridge(t, mq.URL, "bridge-forwards", brokers, reg))
	publish(t, mq.URL, msgs)
	recs := consume(t, brokers, len(msgs))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(recs) != len(msgs) {
		t.Errorf("%d records for %d messages", len(recs), len(msgs))
	}
	byTopic := map[string][]*kgo.Record{}
	for _, r := range recs {
		byTopic[header(r, bridge.HeaderMQTTTopic)] = append(byTopic[header(r, bridge.HeaderMQTTTopic)], r)
	}
	for _, m := range msgs {
		got := byTopic[m.topic]
		if len(got) == 0 {
			t.Errorf("%s: no record", m.topic)
			continue
		}
		r := got[0]
		byTopic[m.topic] = got[1:]
		if r.Topic != m.kafka || string(r.Key) != m.key || header(r, bridge.HeaderMQTTClient) != "bridge-forwards" {
			t.Errorf("%s: topic %s key %q client %q, want %s %q", m.topic, r.Topic, r.Key, header(r, bridge.HeaderMQTTClient), m.kafka, m.key)
		}
		if m.kafka != "gridsettle.dead-letter" {
			if !bytes.Equal(r.Value, m.payload) {
				t.Errorf("%s: value %q, want %q unchanged", m.topic, r.Value, m.payload)
			}
			continue
		}
		sum := sha256.Sum256(m.payload)
		size := len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if header(r, ingest.HeaderReason) != bridge.ReasonTooLarge || header(r, ingest.HeaderTruncated) != strconv.Itoa(len(m.payload)) ||
			header(r, ingest.HeaderValueSHA256) != hex.EncodeToString(sum[:]) || header(r, ingest.HeaderSourceTopic) != "ami.interval-reads" ||
			size > bridge.DefaultMaxRecordBytes || !bytes.HasPrefix(m.payload, r.Value) || len(r.Value) < 900_000 {
			t.Errorf("%s: dead letter of %d bytes with headers %v", m.topic, len(r.Value), r.Headers)
		}
		// An output record like the relay's: its schema's headers and the
		// CloudEvents attributes.
		if err := validator.Record(r); err != nil {
			t.Errorf("%s: dead letter does not validate: %v", m.topic, err)
		}
	}
	if n := counter(t, reg, "gridsettle_bridge_messages_total"); n != float64(len(msgs)) {
		t.Errorf("messages_total %v, want %d", n, len(msgs))
	}
	if n := counter(t, reg, "gridsettle_bridge_records_committed_total"); n != float64(len(msgs)) {
		t.Errorf("records_committed_total %v, want %d", n, len(msgs))
	}
	if n := counter(t, reg, "gridsettle_bridge_dead_letters_total"); n != 1 {
		t.Errorf("dead_letters_total %v, want 1", n)
	}
}

// counter sums every series of the metric name.
func counter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

var errCrash = errors.New("crash")

// TestAckAfterCommit: a bridge that stops after its commit, before its
// PUBACKs, gets the batch again from the broker (with the DUP flag) once it
// is back on its persistent session, so the records are in Kafka twice; one
// that stops before producing leaves nothing in Kafka and gets everything
// again, including what was published while it was down.
func TestAckAfterCommit(t *testing.T) {
	mq := mosquittotest.Start(t)
	brokers := kafkatest.New(t)
	var msgs []message
	for i := range 20 {
		msgs = append(msgs, message{topic: "gridsettle/reads/M1", payload: read("M1", i), key: "M1", kafka: "ami.interval-reads"})
	}
	crashAt := func(at bridge.Step) bridge.Option {
		return bridge.WithStepHook(func(_ context.Context, s bridge.Step) error {
			if s == at {
				return errCrash
			}
			return nil
		})
	}
	stop := run(t, newBridge(t, mq.URL, "bridge-acks", brokers, nil, crashAt(bridge.StepAfterCommit)))
	publish(t, mq.URL, msgs)
	committed := consume(t, brokers, 1)
	if err := stop(); !errors.Is(err, errCrash) {
		t.Fatalf("Run: %v, want the hook's error", err)
	}
	// Down: published now, delivered when the session is back.
	late := message{topic: "gridsettle/reads/M2", payload: read("M2", 1), key: "M2", kafka: "ami.interval-reads"}
	publish(t, mq.URL, []message{late})

	// The session's messages arrive at once: the first batch ends Run.
	if err := newBridge(t, mq.URL, "bridge-acks", brokers, nil, crashAt(bridge.StepBeforeProduce)).Run(t.Context()); !errors.Is(err, errCrash) {
		t.Fatalf("Run: %v, want the hook's error", err)
	}

	reg := prometheus.NewRegistry()
	stop = run(t, newBridge(t, mq.URL, "bridge-acks", brokers, reg))
	all := consume(t, brokers, len(msgs)+1+len(committed))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	count := map[string]int{}
	for _, r := range all {
		count[string(r.Value)]++
	}
	for _, m := range append(msgs, late) {
		if count[string(m.payload)] == 0 {
			t.Errorf("%s never reached Kafka", m.payload)
		}
	}
	for _, r := range committed {
		if count[string(r.Value)] != 2 {
			t.Errorf("%s committed before the crash: %d copies, want 2 (committed again on redelivery)", r.Value, count[string(r.Value)])
		}
	}
	if n := counter(t, reg, "gridsettle_bridge_redeliveries_total"); n < float64(len(committed)) {
		t.Errorf("redeliveries_total %v, want at least the %d unacknowledged", n, len(committed))
	}
	if strings.Contains(mq.Log(), "Outgoing messages are being dropped") {
		t.Errorf("the broker dropped messages:\n%s", mq.Log())
	}
}

// TestUnsubscribedTopic: a subscription an earlier configuration left in
// the persistent session still delivers; the bridge dead-letters what it
// no longer routes, with the reason, instead of dropping it.
func TestUnsubscribedTopic(t *testing.T) {
	mq := mosquittotest.Start(t)
	brokers := kafkatest.New(t)
	old, err := bridge.New(bridge.Config{Broker: mq.URL, ClientID: "bridge-refiltered", ReadsFilter: "old/reads/#",
		Kafka: kafka.Config{Brokers: brokers}, Topics: kafka.DefaultTopics()}, slogDiscard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t, old)(); err != nil {
		t.Fatal(err)
	}
	m := message{topic: "old/reads/M1", payload: read("M1", 1)}
	publish(t, mq.URL, []message{m})
	stop := run(t, newBridge(t, mq.URL, "bridge-refiltered", brokers, nil))
	recs := consume(t, brokers, 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if err := validator.Record(r); err != nil {
		t.Errorf("unsubscribed dead letter does not validate: %v", err)
	}
	if r.Topic != "gridsettle.dead-letter" || header(r, ingest.HeaderReason) != bridge.ReasonUnsubscribed ||
		string(r.Value) != string(m.payload) || header(r, bridge.HeaderMQTTTopic) != m.topic {
		t.Errorf("record on %s, reason %q, value %q", r.Topic, header(r, ingest.HeaderReason), r.Value)
	}
}

// TestTransactionRetried: a transaction whose commit fails is aborted and
// retried with the same messages, unacknowledged meanwhile; read_committed
// readers see each message once.
func TestTransactionRetried(t *testing.T) {
	mq := mosquittotest.Start(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(kafkatest.Partitions, kafka.DefaultTopics().All()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	var failed atomic.Int32
	cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !req.(*kmsg.EndTxnRequest).Commit || failed.Add(1) > 2 {
			return nil, nil, false
		}
		cluster.KeepControl()
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	})
	brokers := cluster.ListenAddrs()
	reg := prometheus.NewRegistry()
	stop := run(t, newBridge(t, mq.URL, "bridge-retry", brokers, reg))
	var msgs []message
	for i := range 24 { // distinct payloads: read repeats its hours after 24
		msgs = append(msgs, message{topic: "gridsettle/reads/M3", payload: read("M3", i)})
	}
	publish(t, mq.URL, msgs)
	recs := consume(t, brokers, len(msgs))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	for _, m := range msgs {
		if seen[string(m.payload)] != 1 {
			t.Errorf("%s: %d copies read_committed, want 1", m.payload, seen[string(m.payload)])
		}
	}
	if n := counter(t, reg, "gridsettle_bridge_transactions_total"); n < 3 || failed.Load() < 2 {
		t.Errorf("%v transactions, %d failed commits: the failures did not happen or were not retried", n, failed.Load())
	}
	if n := counter(t, reg, "gridsettle_bridge_redeliveries_total"); n != 0 {
		t.Errorf("%v redeliveries: a retried batch is not redelivered, it is held", n)
	}
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge/mosquittotest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// benchMessage is one MQTT publication of the bridge bench.
type benchMessage struct {
	meter   string
	payload []byte
}

// bridgeInput is n read records of four 15-minute values, of 1,000 meters
// in turn: the shape of a head-end's stream.
func bridgeInput(n int, seed int64) []benchMessage {
	rng := rand.New(rand.NewPCG(uint64(seed), 21))
	out := make([]benchMessage, n)
	start := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	for i := range out {
		m := fmt.Sprintf("MTR-%06d", 1+i%1000)
		t := start.Add(time.Duration(i/1000) * time.Hour).Format(time.RFC3339)
		out[i] = benchMessage{meter: m, payload: fmt.Appendf(nil,
			`{"meter_id":%q,"channel":"import","start":%q,"interval_seconds":900,"values":["0.%04d","0.%04d","0.%04d","0.%04d"],"quality":["A","A","A","A"],"version":1,"source":"bench-mqtt"}`,
			m, t, rng.IntN(10000), rng.IntN(10000), rng.IntN(10000), rng.IntN(10000))}
	}
	return out
}

// bridge measures messages/s through the MQTT bridge (broker → bridge →
// Kafka transaction → PUBACK) against two limits measured in the same run:
// a bare subscriber of the same broker (QoS 1, acknowledged on receipt, no
// Kafka) and a bare transactional producer of the same records in
// transactions of --batch-records (no MQTT). The same publisher feeds the
// bridge and the bare subscriber.
func (b *bench) bridge(ctx context.Context) error {
	n := b.opts.sizes.Messages
	broker := b.cfg.Bridge.Broker
	if broker == "" {
		mq, err := mosquittotest.Launch(b.tmp)
		if err != nil {
			return err
		}
		defer mq.Stop()
		broker = mq.URL
		fmt.Fprintf(b.out, "mqtt broker: Mosquitto started by the bench on %s (%v)\n", mq.Addr, mosquittotest.Config)
	} else {
		fmt.Fprintf(b.out, "mqtt broker: %s\n", broker)
	}
	msgs := bridgeInput(n, b.opts.seed)
	var rates, limits, bare, prod []float64
	for rep := range b.opts.repeat {
		b.log.Info("bridge: bare subscriber", "messages", n)
		sub, err := b.bareSubscriber(ctx, broker, msgs, rep)
		if err != nil {
			return err
		}
		b.log.Info("bridge: through the bridge", "messages", n)
		rate, err := b.throughBridge(ctx, broker, msgs, rep)
		if err != nil {
			return err
		}
		b.log.Info("bridge: bare transactional producer", "messages", n)
		p, err := b.bareTxnProducer(ctx, msgs, rep)
		if err != nil {
			return err
		}
		rates, bare, prod, limits = append(rates, rate), append(bare, sub), append(prod, p), append(limits, min(sub, p))
	}
	b.print(benchFigure{name: "MQTT bridge (exactly-once)", unit: "msgs/s", values: rates, limits: limits,
		limitWhat: fmt.Sprintf("lower of bare subscriber %s and bare transactional producer %s msgs/s", human(median(bare)), human(median(prod))),
		note:      fmt.Sprintf("%s messages, batches of %d", human(float64(n)), b.cfg.Bridge.BatchRecords)})
	b.print(benchFigure{name: "  limit: bare MQTT subscriber", unit: "msgs/s", values: bare,
		note: "QoS 1 on the same broker, acknowledged on receipt, same publisher"})
	b.print(benchFigure{name: "  limit: bare txn producer", unit: "msgs/s", values: prod,
		note: "the same records in transactions of --batch-records, no MQTT"})
	return nil
}

// publishAll publishes msgs under prefix with QoS 1 from one client,
// asynchronously, and waits for every PUBACK.
func publishAll(ctx context.Context, broker, clientID, prefix string, msgs []benchMessage) error {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID))
	if tok := c.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		return fmt.Errorf("connect publisher to %s: %v", broker, tok.Error())
	}
	defer c.Disconnect(250)
	toks := make([]mqtt.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = c.Publish(prefix+m.meter, 1, false, m.payload)
	}
	for i, tok := range toks {
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return nil
}

// bareSubscriber is the MQTT side's limit: messages/s from the first
// publication until a QoS 1 subscriber received them all.
func (b *bench) bareSubscriber(ctx context.Context, broker string, msgs []benchMessage, rep int) (float64, error) {
	prefix := fmt.Sprintf("bench/bare/%d/%d/", b.opts.seed, rep)
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(len(msgs))
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("bench-bare-%d-%d", b.opts.seed, rep)).
		SetCleanSession(true).SetOrderMatters(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		return 0, fmt.Errorf("connect bare subscriber: %v", tok.Error())
	}
	defer c.Disconnect(250)
	tok := c.Subscribe(prefix+"#", 1, func(mqtt.Client, mqtt.Message) {
		if got.Add(1) == n {
			close(done)
		}
	})
	if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		return 0, fmt.Errorf("subscribe bare subscriber: %v", tok.Error())
	}
	t0 := time.Now()
	if err := publishAll(ctx, broker, fmt.Sprintf("bench-pub-bare-%d-%d", b.opts.seed, rep), prefix, msgs); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("bare subscriber received %d of %d messages in 5m", got.Load(), n)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// throughBridge runs the bridge on its own filters and returns messages/s
// from the first publication until every record is committed in Kafka.
func (b *bench) throughBridge(ctx context.Context, broker string, msgs []benchMessage, rep int) (float64, error) {
	prefix := fmt.Sprintf("bench/bridge/%d/%d/", b.opts.seed, rep)
	cfg := b.cfg.Bridge
	cfg.Broker, cfg.ClientID = broker, fmt.Sprintf("bench-bridge-%d-%d-%d", b.opts.seed, rep, time.Now().UnixNano())
	cfg.ReadsFilter, cfg.PricesFilter = prefix+"#", fmt.Sprintf("bench/bridge-prices/%d/%d/#", b.opts.seed, rep)
	cfg.Kafka, cfg.Topics = b.kafkaConfig(), b.topics
	reg := prometheus.NewRegistry()
	br, err := bridge.New(cfg, b.quiet, reg)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- br.Run(rctx) }()
	defer func() { cancel(); <-runErr }()
	for deadline := time.Now().Add(time.Minute); br.Ready(ctx) != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bridge not ready within 1m: %w", br.Ready(ctx))
		}
	}
	t0 := time.Now()
	published := make(chan error, 1)
	go func() {
		published <- publishAll(ctx, broker, fmt.Sprintf("bench-pub-bridge-%d-%d", b.opts.seed, rep), prefix, msgs)
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for committed := 0.0; committed < float64(len(msgs)); committed = gatheredSum(reg, "gridsettle_bridge_records_committed_total") {
		select {
		case err := <-runErr:
			runErr <- err
			return 0, fmt.Errorf("bridge stopped: %w", err)
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bridge committed %.0f of %d messages in 5m", committed, len(msgs))
		}
	}
	elapsed := time.Since(t0)
	if err := <-published; err != nil {
		return 0, err
	}
	return float64(len(msgs)) / elapsed.Seconds(), nil
}

// bareTxnProducer is the Kafka side's limit: the same records produced in
// transactions of --batch-records by one transactional producer.
func (b *bench) bareTxnProducer(ctx context.Context, msgs []benchMessage, rep int) (float64, error) {
	cl, err := b.client(kgo.TransactionalID(fmt.Sprintf("bench-bare-bridge-%d-%d", b.opts.seed, rep)))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	// Partitioned as the reads topic the bridge writes.
	topic := "bench.bare.bridge"
	if err := kafka.EnsureTopics(ctx, cl, b.opts.partitions, topic); err != nil {
		return 0, err
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(m.meter), Value: m.payload}
	}
	batch := b.cfg.Bridge.BatchRecords
	t0 := time.Now()
	for i := 0; i < len(recs); i += batch {
		if err := cl.BeginTransaction(); err != nil {
			return 0, err
		}
		if err := cl.ProduceSync(ctx, recs[i:min(i+batch, len(recs))]...).FirstErr(); err != nil {
			return 0, fmt.Errorf("bare transactional producer: %w", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return 0, fmt.Errorf("bare transactional producer: %w", err)
		}
	}
	return float64(len(msgs)) / time.Since(t0).Seconds(), nil
}

// gatheredSum is the sum of every series of the counter name in reg.
func gatheredSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

package bridge

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	skafka "github.com/gridsettle/gridsettle/settlement/kafka"
)

// Record headers (edge.md) and the dead-letter headers the bridge writes
// (messages.md "Validation and quarantine").
const (
	HeaderMQTTTopic   = "gridsettle-mqtt-topic"
	HeaderMQTTClient  = "gridsettle-mqtt-client"
	HeaderReason      = "gridsettle-reason"
	HeaderSourceTopic = "gridsettle-source-topic"
	HeaderTruncated   = "gridsettle-truncated"
	HeaderValueSHA256 = "gridsettle-value-sha256"
	HeaderSchema      = "gridsettle-schema"
	HeaderID          = "gridsettle-id"
)

// Reasons of the dead letters the bridge writes itself; every other bad
// payload is forwarded and dead-lettered by ingest with its own reason.
const (
	// ReasonTooLarge: the payload with its key and headers exceeds the
	// record size limit, so Kafka would refuse it; its first bytes go to
	// the dead letter with its length and SHA-256.
	ReasonTooLarge = "payload_too_large"
	// ReasonUnsubscribed: the broker delivered a message on a topic that
	// matches neither filter (a subscription an earlier configuration left
	// in the persistent session).
	ReasonUnsubscribed = "mqtt_topic_not_subscribed"
)

// deadLetterSchema is the gridsettle-schema of dead letters (messages.md).
const deadLetterSchema = "gridsettle.dead-letter/v1"

// Defaults of edge.md and messages.md.
const (
	DefaultBatchRecords   = 1000
	DefaultBatchInterval  = 200 * time.Millisecond
	DefaultBatchIdle      = 5 * time.Millisecond
	DefaultMaxRecordBytes = 1_000_000
	DefaultReadsFilter    = "gridsettle/reads/#"
	DefaultPricesFilter   = "gridsettle/prices/#"
)

const (
	// recordReserve is kept from the record size limit for the record's
	// framing in its Kafka batch.
	recordReserve = 1024
	// maxBatchBytes bounds the payload bytes a batch holds in memory.
	maxBatchBytes = 64 << 20
	// transactionTimeout is how long the broker keeps a transaction of a
	// killed bridge open (holding back read_committed readers) before
	// aborting it; a restarted bridge aborts it at once.
	transactionTimeout = time.Minute
	// endTimeout bounds ending a transaction, which stopping must not cut
	// short: an interrupted EndTransaction leaves its outcome unknown.
	endTimeout = 30 * time.Second
	maxBackoff = 5 * time.Second
)

// Config is one bridge: where it subscribes and where it produces.
type Config struct {
	Broker       string // tcp://host:1883, ssl://…, ws://…
	ClientID     string // stable: the broker keeps the session for it; also names the Kafka transactional id
	Username     string
	Password     string
	TLSCAFile    string // PEM CAs of the broker's certificate (ssl://, wss://); empty: the system's
	ReadsFilter  string // MQTT topic filter of reads; empty: DefaultReadsFilter
	PricesFilter string // MQTT topic filter of prices; empty: DefaultPricesFilter

	Kafka  skafka.Config
	Topics skafka.Topics // Reads, Prices and DeadLetter are used

	BatchRecords   int           // 0: DefaultBatchRecords
	BatchInterval  time.Duration // 0: DefaultBatchInterval
	BatchIdle      time.Duration // 0: DefaultBatchIdle
	MaxRecordBytes int           // 0: DefaultMaxRecordBytes
}

func (c Config) withDefaults() Config {
	c.ReadsFilter = cmp.Or(c.ReadsFilter, DefaultReadsFilter)
	c.PricesFilter = cmp.Or(c.PricesFilter, DefaultPricesFilter)
	c.BatchRecords = cmp.Or(c.BatchRecords, DefaultBatchRecords)
	c.BatchInterval = cmp.Or(c.BatchInterval, DefaultBatchInterval)
	c.BatchIdle = cmp.Or(c.BatchIdle, DefaultBatchIdle)
	c.MaxRecordBytes = cmp.Or(c.MaxRecordBytes, DefaultMaxRecordBytes)
	return c
}

// TransactionalID is the Kafka transactional id of the bridge with MQTT
// client id clientID: stable, so that a restarted bridge fences its
// predecessor and aborts its open transaction.
func TransactionalID(clientID string) string { return "gridsettle-bridge-" + clientID }

// ParseBroker checks an MQTT broker URL as paho dials it and reports
// whether it uses TLS.
func ParseBroker(s string) (secure bool, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Port() == "" {
		return false, fmt.Errorf("%q is not a URL with host and port such as tcp://host:1883", s)
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "wss":
		return true, nil
	case "tcp", "mqtt", "ws":
		return false, nil
	}
	return false, fmt.Errorf("%q: scheme %q is not tcp, ssl, ws or wss", s, u.Scheme)
}

// Step is a point of a batch's life where a test may interrupt the bridge.
type Step string

const (
	// StepBeforeProduce: the transaction has begun, nothing is produced.
	StepBeforeProduce Step = "before-produce"
	// StepAfterCommit: the transaction committed, no PUBACK is sent.
	StepAfterCommit Step = "after-commit"
)

// Option configures a Bridge.
type Option func(*Bridge)

// WithStepHook calls hook at each Step; an error it returns ends Run with
// the batch unacknowledged.
func WithStepHook(hook func(context.Context, Step) error) Option {
	return func(b *Bridge) { b.hook = hook }
}

// Bridge moves MQTT messages into Kafka (package doc).
type Bridge struct {
	cfg   Config
	kopts []kgo.Opt
	tls   *tls.Config
	log   *slog.Logger
	m     *metrics
	hook  func(context.Context, Step) error
	in    chan Delivery
	stop  chan struct{} // closed when Run ends: handlers stop waiting (a Bridge runs once)
	mq    atomic.Pointer[mqttClient]
	// subscribed is set once the filters are subscribed on the current
	// connection.
	subscribed atomic.Bool
	// failing is the last transaction's error, nil after a commit.
	failing atomic.Pointer[error]
}

type mqttClient struct{ c mqtt.Client }

// New checks cfg and registers the bridge's metrics with reg; it connects
// only in Run.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	secure, err := ParseBroker(cfg.Broker)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("mqtt client id: required (the broker keeps the session for it)")
	}
	if cfg.TLSCAFile != "" && !secure {
		return nil, fmt.Errorf("mqtt tls ca: given, but broker %s does not use TLS (ssl:// or wss://)", cfg.Broker)
	}
	if cfg.BatchRecords < 1 || cfg.BatchInterval <= 0 || cfg.BatchIdle <= 0 {
		return nil, errors.New("batch limits: records, interval and idle must be positive")
	}
	if cfg.MaxRecordBytes < 2*recordReserve {
		return nil, fmt.Errorf("max record bytes: %d is less than %d", cfg.MaxRecordBytes, 2*recordReserve)
	}
	b := &Bridge{cfg: cfg, log: log.With("component", "bridge"), in: make(chan Delivery, cfg.BatchRecords),
		stop: make(chan struct{})}
	if secure {
		b.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSCAFile != "" {
			if b.tls.RootCAs, err = skafka.CertPool(cfg.TLSCAFile); err != nil {
				return nil, fmt.Errorf("mqtt tls ca: %w", err)
			}
		}
	}
	if b.kopts, err = cfg.Kafka.ClientOpts(); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(b)
	}
	if b.m, err = newMetrics(reg); err != nil {
		return nil, err
	}
	return b, nil
}

// Run bridges until ctx is cancelled: then it commits and acknowledges the
// batch it holds, disconnects and returns nil (ctx's error when it stops
// before connecting or while a transaction fails). It returns an error when
// the broker refuses the client, another bridge took its transactional id
// or a step hook failed; a transaction that fails otherwise is retried, with
// the same messages, until it commits. A Bridge runs once.
func (b *Bridge) Run(ctx context.Context) error {
	// Fencing at once aborts a killed predecessor's open transaction, which
	// otherwise holds back read_committed readers until it times out.
	cl, err := b.producer(ctx)
	if err != nil {
		b.setFailing(err)
		b.log.Warn("kafka producer not ready; the first batch retries", "err", err)
	}
	mc, err := b.connect(ctx)
	if err != nil {
		if cl != nil {
			cl.Close()
		}
		return err
	}
	b.mq.Store(&mqttClient{mc})
	defer func() {
		// Handlers stop waiting first; acknowledgements queued before
		// Disconnect are still sent.
		close(b.stop)
		mc.Disconnect(250)
		if cl != nil {
			cl.Close()
		}
	}()
	lim := Limits{Records: b.cfg.BatchRecords, Bytes: maxBatchBytes, Interval: b.cfg.BatchInterval, Idle: b.cfg.BatchIdle}
	for {
		batch, stopping := collect(ctx, b.in, lim)
		if len(batch) > 0 {
			// A batch gathered when stopping is committed all the same,
			// so a clean stop leaves nothing to redeliver.
			if cl, err = b.commit(context.WithoutCancel(ctx), ctx, cl, batch); err != nil {
				return err
			}
			if err := b.step(ctx, StepAfterCommit); err != nil {
				return err
			}
			for _, d := range batch {
				d.Ack()
			}
		}
		if stopping {
			b.log.Info("bridge stopped")
			return nil
		}
	}
}

// Ready reports whether the bridge is connected to its MQTT broker with its
// filters subscribed, and its last Kafka transaction committed.
func (b *Bridge) Ready(context.Context) error {
	mc := b.mq.Load()
	if mc == nil || !mc.c.IsConnectionOpen() || !b.subscribed.Load() {
		return fmt.Errorf("not connected and subscribed to mqtt broker %s", b.cfg.Broker)
	}
	if e := b.failing.Load(); e != nil {
		return fmt.Errorf("kafka transactions failing: %w", *e)
	}
	return nil
}

// producer is a new transactional client whose ProducerID has fenced every
// earlier bridge of the same id and aborted its open transaction.
func (b *Bridge) producer(ctx context.Context) (*kgo.Client, error) {
	id := TransactionalID(b.cfg.ClientID)
	cl, err := kgo.NewClient(append(slices.Clone(b.kopts),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(transactionTimeout),
		kgo.RecordDeliveryTimeout(transactionTimeout),
	)...)
	if err != nil {
		return nil, fmt.Errorf("new transactional client: %w", err)
	}
	// Bounded: commit calls this without cancellation.
	pctx, cancel := context.WithTimeout(ctx, endTimeout)
	defer cancel()
	if _, _, err := cl.ProducerID(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("init producer id of %s: %w", id, err)
	}
	return cl, nil
}

// connect starts the MQTT client: routes first, so the messages the broker
// kept for the session, which it sends right after CONNACK, find their
// handler; subscriptions on every (re)connection. The first connection is
// retried until ctx ends, each failure logged, except a refusal (bad
// credentials, client id rejected), which no retry cures; once connected,
// paho reconnects by itself.
func (b *Bridge) connect(ctx context.Context) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(b.cfg.Broker).SetClientID(b.cfg.ClientID).
		SetCleanSession(false).SetAutoAckDisabled(true).SetOrderMatters(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetUsername(b.cfg.Username).SetPassword(b.cfg.Password).
		SetDefaultPublishHandler(b.handler(unrouted))
	if b.tls != nil {
		o.SetTLSConfig(b.tls)
	}
	filters := map[string]byte{b.cfg.ReadsFilter: 1, b.cfg.PricesFilter: 1}
	o.SetOnConnectHandler(func(c mqtt.Client) {
		b.m.connected.Set(1)
		b.log.Info("mqtt connected", "broker", b.cfg.Broker, "client_id", b.cfg.ClientID)
		// Not waited for here: the handler runs on paho's connection path.
		go func() {
			t := c.SubscribeMultiple(filters, nil)
			t.Wait()
			if err := t.Error(); err != nil {
				b.log.Error("mqtt subscribe failed; it is tried again at the next connection", "filters", filters, "err", err)
				return
			}
			b.subscribed.Store(true)
			b.log.Info("mqtt subscribed", "reads", b.cfg.ReadsFilter, "prices", b.cfg.PricesFilter)
		}()
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		b.m.connected.Set(0)
		b.subscribed.Store(false)
		b.log.Warn("mqtt connection lost; reconnecting (unacknowledged messages are delivered again)", "err", err)
	})
	c := mqtt.NewClient(o)
	c.AddRoute(b.cfg.ReadsFilter, b.handler(Reads))
	c.AddRoute(b.cfg.PricesFilter, b.handler(Prices))
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, maxBackoff) {
		t := c.Connect()
		select {
		case <-t.Done():
		case <-ctx.Done():
			c.Disconnect(0)
			return nil, ctx.Err()
		}
		err := t.Error()
		if err == nil {
			return c, nil
		}
		if refused(err) {
			return nil, fmt.Errorf("mqtt broker %s refused client %s: %w", b.cfg.Broker, b.cfg.ClientID, err)
		}
		b.log.Warn("mqtt connect failed; retrying", "broker", b.cfg.Broker, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// refused reports a CONNACK refusal that retrying cannot cure.
func refused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) ||
		errors.Is(err, packets.ErrorRefusedIDRejected) || errors.Is(err, packets.ErrorRefusedBadProtocolVersion)
}

// unrouted is the kind of a message matching no filter.
const unrouted Kind = -1

func (b *Bridge) handler(k Kind) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		b.m.in.WithLabelValues(k.String()).Inc()
		if m.Duplicate() {
			b.m.redeliveries.WithLabelValues(k.String()).Inc()
		}
		select {
		case b.in <- Delivery{Kind: k, Topic: m.Topic(), Payload: m.Payload(), Ack: m.Ack}:
		case <-b.stop:
		}
	}
}

// commit produces batch in one transaction and commits it, retrying (with a
// new client after any failure; cl may be nil) until it commits, stop ends
// or the failure is fatal. It returns the client to go on with.
func (b *Bridge) commit(ctx, stop context.Context, cl *kgo.Client, batch []Delivery) (*kgo.Client, error) {
	tooLarge := make([]bool, len(batch))
	for attempt, backoff := 1, 100*time.Millisecond; ; attempt++ {
		var err error
		if cl == nil {
			cl, err = b.producer(ctx)
		}
		if err == nil {
			if err = b.transact(ctx, cl, batch, tooLarge); err == nil {
				b.setFailing(nil)
				return cl, nil
			}
		}
		b.setFailing(err)
		if fatal(err) {
			return cl, err
		}
		b.log.Warn("kafka transaction failed; retrying the batch", "attempt", attempt, "records", len(batch), "err", err)
		if cl != nil {
			cl.Close()
			cl = nil
		}
		select {
		case <-stop.Done():
			// Unacknowledged: the broker delivers the batch again.
			b.log.Warn("stopped with the batch unacknowledged", "records", len(batch), "err", err)
			return nil, stop.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// setFailing records err (nil: the last transaction committed) for Ready.
func (b *Bridge) setFailing(err error) {
	if err == nil {
		b.failing.Store(nil)
		return
	}
	b.failing.Store(&err)
}

// fatal errors end the bridge: another instance took its transactional id,
// or a step hook asked to stop.
func fatal(err error) bool {
	var hook hookError
	return errors.As(err, &hook) || errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

type hookError struct{ error }

func (e hookError) Unwrap() error { return e.error }

// transact is one attempt at batch's transaction. A record Kafka refuses as
// too large is marked in tooLarge, so the next attempt dead-letters it.
func (b *Bridge) transact(ctx context.Context, cl *kgo.Client, batch []Delivery, tooLarge []bool) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := b.step(ctx, StepBeforeProduce); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, transactionTimeout)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
	)
	recs := make([]*kgo.Record, len(batch))
	reasons := make([]string, len(batch))
	for i, d := range batch {
		recs[i], reasons[i] = b.record(d, tooLarge[i])
		cl.Produce(pctx, recs[i], func(_ *kgo.Record, err error) {
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
				tooLarge[i] = true
			}
			first = cmp.Or(first, err)
		})
	}
	ferr := cl.Flush(pctx)
	mu.Lock()
	perr := first
	mu.Unlock()
	if err := cmp.Or(perr, ferr); err != nil {
		return b.abort(ctx, cl, fmt.Errorf("produce %d records: %w", len(batch), err))
	}
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer ecancel()
	if err := cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return b.abort(ctx, cl, fmt.Errorf("commit: %w", err))
	}
	b.m.transactions.WithLabelValues("committed").Inc()
	for i, r := range recs {
		b.m.committed.WithLabelValues(r.Topic).Inc()
		if reasons[i] != "" {
			b.m.deadLetters.WithLabelValues(reasons[i]).Inc()
		}
	}
	return nil
}

// abort ends the failed transaction so read_committed readers are not held
// back until it times out, and returns cause.
func (b *Bridge) abort(ctx context.Context, cl *kgo.Client, cause error) error {
	b.m.transactions.WithLabelValues("aborted").Inc()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	err := cl.AbortBufferedRecords(actx)
	if err == nil {
		err = cl.EndTransaction(actx, kgo.TryAbort)
	}
	if err != nil {
		b.log.Warn("cannot abort the transaction; the next producer id aborts it", "err", err)
	}
	return cause
}

func (b *Bridge) step(ctx context.Context, s Step) error {
	if b.hook == nil {
		return nil
	}
	if err := b.hook(ctx, s); err != nil {
		return hookError{fmt.Errorf("step %s: %w", s, err)}
	}
	return nil
}

// record is the Kafka record of d: its payload unchanged on its kind's
// topic, keyed by Key; or its dead letter, with the reason, when it does not
// fit the record size limit (or Kafka refused it as too large) or matched
// no filter.
func (b *Bridge) record(d Delivery, tooLarge bool) (*kgo.Record, string) {
	topic := b.cfg.Topics.Reads
	if d.Kind == Prices {
		topic = b.cfg.Topics.Prices
	}
	limit := b.cfg.MaxRecordBytes - recordReserve
	// A payload that cannot fit is not parsed for its key: it may be as
	// large as the broker allows.
	key := []byte(cut(d.Topic, maxTopicBytes))
	if len(d.Payload) <= limit {
		key, _ = Key(d.Kind, d.Topic, d.Payload)
	}
	headers := []kgo.RecordHeader{
		{Key: HeaderMQTTTopic, Value: []byte(cut(d.Topic, maxTopicBytes))},
		{Key: HeaderMQTTClient, Value: []byte(b.cfg.ClientID)},
	}
	size := len(key) + len(d.Payload) + headersSize(headers)
	if d.Kind != unrouted && !tooLarge && size <= limit {
		return &kgo.Record{Topic: topic, Key: key, Value: d.Payload, Headers: headers}, ""
	}
	reason := ReasonTooLarge
	if d.Kind == unrouted {
		reason, topic = ReasonUnsubscribed, ""
	}
	sum := sha256.Sum256(d.Payload)
	sumHex := hex.EncodeToString(sum[:])
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: HeaderSchema, Value: []byte(deadLetterSchema)},
		kgo.RecordHeader{Key: HeaderID, Value: []byte("mqtt/" + sumHex)},
	)
	value := d.Payload
	if len(key)+len(value)+headersSize(headers) > limit || tooLarge {
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(value)))},
			kgo.RecordHeader{Key: HeaderValueSHA256, Value: []byte(sumHex)})
		room := limit - len(key) - headersSize(headers)
		if tooLarge {
			// Kafka's own limit is lower than ours: keep only a sample.
			room = min(room, recordReserve)
		}
		value = value[:max(0, min(len(value), room))]
	}
	return &kgo.Record{Topic: b.cfg.Topics.DeadLetter, Key: key, Value: value, Headers: headers}, reason
}

func headersSize(hs []kgo.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

package bridge

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	skafka "github.com/gridsettle/gridsettle/settlement/kafka"
)

// Record headers of meters/README.md "Edge ingest: the MQTT bridge". The dead
// letters the bridge writes itself carry ingest's dead-letter headers
// (settlement/ingest) and the relay's record headers (settlement/publish).
const (
	HeaderMQTTTopic  = "gridsettle-mqtt-topic"
	HeaderMQTTClient = "gridsettle-mqtt-client"
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

// Defaults of meters/README.md "Edge ingest: the MQTT bridge" and
// meters/README.md.
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
	// Environment names the deployment in the CloudEvents source of the
	// bridge's own dead letters (gridsettle/{Environment}, meters/README.md);
	// empty: "dev".
	Environment string

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

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgcluster"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// kafkaStartTimeout bounds the wait for Kafka (the embedded broker child
// or an external cluster) to answer at start-up.
const kafkaStartTimeout = 60 * time.Second

// stopTimeout bounds each step of shutting down what we started (the
// private cluster, the broker child).
const stopTimeout = 2 * time.Minute

// Platform is what components are built from: the validated Config and the
// connections the command opened for them. The command closes them after
// every component has stopped.
type Platform struct {
	Config  Config
	Log     *slog.Logger
	DB      *pgxpool.Pool        // migrated, shopspring decimals registered
	Kafka   *kgo.Client          // plain client for metadata and offsets; components that consume or produce make their own from Config.Kafka.ClientOpts()
	Topics  kafka.Topics         // the contract's topic names
	Outbox  *outbox.Writer       // partitions output records as the cluster's output topics are partitioned
	Metrics *prometheus.Registry // served at /metrics; collectors are named gridsettle_*
	HTTP    net.Listener         // bound to --http-addr; nil unless the api component runs
	Out     io.Writer            // where to print what the user must see (not logs), e.g. a generated token
	// shared are the parts several components use, built once (see
	// wire_services.go).
	shared func() (*services, error)
}

func (m *Main) runDev(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.AdminToken == "" && cfg.hasComponent("api") {
		cfg.AdminToken = newAdminToken()
		fmt.Fprintf(m.Stdout, "admin token (generated; set --admin-token to choose one): %s\n", cfg.AdminToken)
	}
	return m.runPlatform(ctx, cfg, log, true)
}

func (m *Main) runServe(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.DatabaseURL == "" {
		return errRequired("database-url")
	}
	if len(cfg.Kafka.Brokers) == 0 {
		return errRequired("kafka-brokers")
	}
	if err := checkServeAdminToken(cfg, log); err != nil {
		return err
	}
	return m.runPlatform(ctx, cfg, log, false)
}

func (m *Main) runMigrate(ctx context.Context, cfg Config, log *slog.Logger) error {
	_, closeDB, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	closeDB()
	log.Info("database schema is up to date")
	return nil
}

// runPlatform starts, in order, the broker child (when embedded), Postgres
// with migrations, the topics and the selected components, and tears them
// down in the reverse order: components, database, broker last. A shutdown
// asked for by cancelling ctx (SIGINT/SIGTERM) returns nil. drivers are
// built after the selected components and run after them (stopped first):
// demo's driver is one.
func (m *Main) runPlatform(ctx context.Context, cfg Config, log *slog.Logger, embedded bool,
	drivers ...func(*Platform) (Component, error)) (err error) {
	defer func() {
		if ctx.Err() != nil && err != nil {
			if !errors.Is(err, context.Canceled) {
				log.Warn("error while shutting down", "err", err)
			}
			err = nil
		}
		if err == nil {
			log.Info("gridsettle stopped")
		}
	}()
	specs := cfg.Components

	// Bind before starting anything, so a busy port fails in a second.
	var httpLn net.Listener
	if slices.Contains(specs, "api") {
		if httpLn, err = listen("http-addr", cfg.HTTPAddr); err != nil {
			return err
		}
		defer httpLn.Close()
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if embedded {
		child, err := m.startBrokerChild(cfg, log)
		if err != nil {
			return err
		}
		defer child.stop(log)
		go func() {
			<-child.exited
			cancel(fmt.Errorf("embedded broker exited unexpectedly (%v); see its log above", child.err))
		}()
	}

	kopts, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return err
	}
	kcl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	defer kcl.Close()
	if err := waitKafka(runCtx, kcl, cfg.Kafka.Brokers); err != nil {
		return err
	}
	topics := kafka.DefaultTopics()
	if err := kafka.EnsureTopics(runCtx, kcl, cfg.Partitions, topics.All()...); err != nil {
		return fmt.Errorf("kafka %v: %w", cfg.Kafka.Brokers, err)
	}
	ob, err := outboxWriter(runCtx, kcl, topics.Outputs())
	if err != nil {
		return err
	}

	db, closeDB, err := openDatabase(runCtx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDB()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := &Platform{Config: cfg, Log: log, DB: db, Kafka: kcl, Topics: topics, Outbox: ob, Metrics: reg, HTTP: httpLn, Out: m.Stdout}
	p.shared = sync.OnceValues(func() (*services, error) { return newServices(runCtx, p) })
	comps, err := buildComponents(p, specs)
	if err != nil {
		return err
	}
	for _, build := range drivers {
		c, err := build(p)
		if err != nil {
			return err
		}
		comps = append(comps, c)
	}
	log.Info("gridsettle ready", "http_addr", cfg.HTTPAddr, "kafka", cfg.Kafka.Brokers, "components", names(comps))
	err = runComponents(runCtx, log, reg, comps)
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// openDatabase connects to --database-url, or else starts the private
// cluster under <data-dir>/postgres, and applies the migrations. The
// returned func closes the pool and stops the private cluster.
func openDatabase(ctx context.Context, cfg Config, log *slog.Logger) (*pgxpool.Pool, func(), error) {
	url := cfg.DatabaseURL
	stop := func() {}
	if url == "" {
		cluster, err := pgcluster.Start(ctx, filepath.Join(cfg.DataDir, "postgres"), log)
		if err != nil {
			return nil, nil, err
		}
		url = cluster.URL()
		stop = func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			if err := cluster.Stop(sctx); err != nil {
				log.Error("stop private postgres", "err", err)
			}
		}
	}
	pool, err := migrations.Connect(ctx, url)
	if err != nil {
		stop()
		return nil, nil, err
	}
	// Not wrapped: ErrSchemaTooNew already says what to do, in one line.
	if err := migrations.Apply(ctx, pool, log); err != nil {
		pool.Close()
		stop()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); stop() }, nil
}

// ensureTopics creates the contract's topics that are missing on the
// cluster of kc.
func ensureTopics(ctx context.Context, kc kafka.Config, partitions int32) error {
	opts, err := kc.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	defer cl.Close()
	return kafka.EnsureTopics(ctx, cl, partitions, kafka.DefaultTopics().All()...)
}

// outboxWriter is the outbox writer for topics with their partition counts
// as the cluster has them now: the outbox must pick the partition a Kafka
// producer would.
func outboxWriter(ctx context.Context, cl *kgo.Client, topics []string) (*outbox.Writer, error) {
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("read partition counts of %v: %w", topics, err)
	}
	counts := make(map[string]int32, len(topics))
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return nil, fmt.Errorf("read partition count of topic %s: %v", t, d.Err)
		}
		counts[t] = int32(len(d.Partitions))
	}
	return outbox.NewWriter(counts), nil
}

// kafkaReady asks the cluster for its brokers: a metadata round trip.
func kafkaReady(ctx context.Context, cl *kgo.Client) error {
	_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	return err
}

// waitKafka polls the cluster until it answers, for at most
// kafkaStartTimeout; with dev, ctx is cancelled if the broker child exits
// first.
func waitKafka(ctx context.Context, cl *kgo.Client, brokers []string) error {
	ctx, cancel := context.WithTimeout(ctx, kafkaStartTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		err := kafkaReady(actx, cl)
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) {
				return cause
			}
			return fmt.Errorf("kafka at %s did not answer within %v: %w", strings.Join(brokers, ","), kafkaStartTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

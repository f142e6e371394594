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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/api"
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
	// Ready are readiness checks of the components built before the api,
	// which serves them at /readyz (the bridge's is one).
	Ready []api.Check
	HTTP  net.Listener // bound to --http-addr; nil unless the api component runs
	Out   io.Writer    // where to print what the user must see (not logs), e.g. a generated token
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

// runMigrate applies the migrations as the schema's owner (--database-url,
// or the private cluster's owner role) and grants --runtime-role what the
// components need; grants are recomputed every time, so running it after an
// upgrade covers the new tables.
func (m *Main) runMigrate(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.DatabaseURL == "" {
		runtimes := []string{privateRuntime}
		if cfg.RuntimeRole != "" {
			runtimes = append(runtimes, cfg.RuntimeRole)
		}
		_, stop, err := startPrivate(ctx, cfg, log, runtimes...)
		if err != nil {
			return err
		}
		stop()
		log.Info("database schema is up to date", "owner", privateOwner, "runtime_roles", runtimes)
		return nil
	}
	pool, err := migrations.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := migrations.Prepare(ctx, pool, log)
	if errors.Is(err, migrations.ErrPendingMigrations) {
		return fmt.Errorf("%w: give gridsettle migrate the --database-url of the schema's owner", err)
	} else if err != nil {
		return err
	}
	if cfg.RuntimeRole != "" {
		if !st.OwnsSchema {
			return fmt.Errorf("--runtime-role: role %s does not own the database schema, so it cannot grant: give the --database-url of the schema's owner", st.Role)
		}
		if err := migrations.GrantRuntime(ctx, pool, cfg.RuntimeRole); err != nil {
			return fmt.Errorf("--runtime-role: %w", err)
		}
		log.Info("runtime role granted: reads and writes, but only inserts into the journal and audit log", "role", cfg.RuntimeRole)
	}
	log.Info("database schema is up to date", "role", st.Role)
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

	if embedded && cfg.DatabaseURL != "" {
		log.Warn("least privilege is off: --database-url is used as given and no database roles are created (unless that URL names a runtime role granted by gridsettle migrate --runtime-role)")
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

// The roles dev and demo create in their private cluster: the owner applies
// the migrations, the components connect as the runtime role.
const (
	privateOwner   = "gridsettle_owner"
	privateRuntime = "gridsettle"
)

// openDatabase opens the components' pool. With --database-url it connects
// as given and applies pending migrations only when that role owns the
// schema; a runtime role facing pending migrations is an error naming
// gridsettle migrate. Without, it starts the private cluster under
// <data-dir>/postgres, migrates it as the owner role and connects as the
// runtime role. The returned func closes the pool and stops the private
// cluster.
func openDatabase(ctx context.Context, cfg Config, log *slog.Logger) (*pgxpool.Pool, func(), error) {
	url, stop := cfg.DatabaseURL, func() {}
	if url == "" {
		var err error
		if url, stop, err = startPrivate(ctx, cfg, log, privateRuntime); err != nil {
			return nil, nil, err
		}
	}
	pool, err := migrations.Connect(ctx, url)
	if err != nil {
		stop()
		return nil, nil, err
	}
	// Not wrapped: ErrSchemaTooNew already says what to do, in one line.
	st, err := migrations.Prepare(ctx, pool, log)
	if err != nil {
		pool.Close()
		stop()
		if errors.Is(err, migrations.ErrPendingMigrations) {
			return nil, nil, fmt.Errorf("%w: run `gridsettle migrate --database-url OWNER_URL --runtime-role %s` first", err, st.Role)
		}
		return nil, nil, err
	}
	if st.OwnsJournal {
		log.Warn("least privilege is off: this role owns the journal tables, so their append-only rule rests on triggers alone; "+
			"connect as a runtime role granted by `gridsettle migrate --runtime-role`", "role", st.Role)
	}
	// Migrations ran unbounded; the components' connections are not.
	cfgBounded := pool.Config() // a copy
	pool.Close()
	for k, v := range pipelineWaits {
		if _, set := cfgBounded.ConnConfig.RuntimeParams[k]; !set {
			cfgBounded.ConnConfig.RuntimeParams[k] = v
		}
	}
	if pool, err = pgxpool.NewWithConfig(ctx, cfgBounded); err != nil {
		stop()
		return nil, nil, fmt.Errorf("open the pipeline's database pool: %w", err)
	}
	return pool, func() { pool.Close(); stop() }, nil
}

// pipelineWaits bound every statement and lock wait of the components
// (ingest, publishing, runs, exports), unless the database URL sets them:
// no wait in the pipeline is without a deadline. They are generous: the
// longest legitimate statement is a run's on a 100,000-meter day
// (PERFORMANCE.md: the whole run took about 22 s before the read store, its
// longest statement about 13 s), the longest legitimate lock wait a run or
// an export waiting for another of the same operating day. Components that
// can give up sooner do so themselves (ingest: ingest.Config.LockTimeout per
// batch).
var pipelineWaits = map[string]string{
	"statement_timeout": "5min",
	"lock_timeout":      "2min",
}

// startPrivate starts the private cluster under <data-dir>/postgres, creates
// its owner and runtime roles when missing, applies the migrations as the
// owner and grants each of runtimes. It returns the URL of the runtime role
// and a func that stops the cluster.
func startPrivate(ctx context.Context, cfg Config, log *slog.Logger, runtimes ...string) (string, func(), error) {
	cluster, err := pgcluster.Start(ctx, filepath.Join(cfg.DataDir, "postgres"), log)
	if err != nil {
		return "", nil, err
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if err := cluster.Stop(sctx); err != nil {
			log.Error("stop private postgres", "err", err)
		}
	}
	if err := migratePrivate(ctx, cluster, log, runtimes); err != nil {
		stop()
		return "", nil, err
	}
	return cluster.URLAs(privateRuntime), stop, nil
}

func migratePrivate(ctx context.Context, cluster *pgcluster.Cluster, log *slog.Logger, runtimes []string) error {
	su, err := pgx.Connect(ctx, cluster.URL())
	if err != nil {
		return fmt.Errorf("connect to private postgres: %w", err)
	}
	defer su.Close(context.WithoutCancel(ctx))
	if err := migrations.CreateRoles(ctx, su, privateOwner, privateRuntime); err != nil {
		return fmt.Errorf("private postgres: %w", err)
	}
	owner, err := migrations.Connect(ctx, cluster.URLAs(privateOwner))
	if err != nil {
		return err
	}
	defer owner.Close()
	if err := migrations.Apply(ctx, owner, log); err != nil {
		return err
	}
	for _, r := range runtimes {
		if err := migrations.GrantRuntime(ctx, owner, r); err != nil {
			return fmt.Errorf("private postgres: %w", err)
		}
	}
	return nil
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

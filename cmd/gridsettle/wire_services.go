package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/reporting"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	alertspg "github.com/gridsettle/gridsettle/settlement/alerts/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// services are the parts several components share, built once per process:
// the Applier (its alert hook must be the same for the consumers and for
// quarantine replays served by the API), the Runs (started by the scheduler
// and the API) and the Exporter (woken by every completed run, whoever
// started it, and served by the API). Its worker runs in one component of
// the process (exportWorkerIn), apart from the runs: a run never waits for
// the export folder.
type services struct {
	alerts   *alertspg.Hook
	applier  *ingest.Applier
	runs     *settlementpg.Runs
	exporter *exportpg.Exporter
}

func newServices(ctx context.Context, p *Platform) (*services, error) {
	// One registry cache for the consumers, the replays and the alert hook.
	registry := registrystore.NewCache(0)
	hook, err := newAlertHook(p.Config.Market, p.Metrics, registry)
	if err != nil {
		return nil, err
	}
	// Generated on first start (reporting/README.md); instances sharing the
	// path agree on one key, since the file is published atomically.
	key, err := reporting.LoadOrCreateSigningKey(ctx, p.Config.SigningKey, p.Log)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	exporter, err := exportpg.NewExporter(p.DB, exportpg.Config{
		Root:     p.Config.ExportDir,
		RunTypes: p.Config.ExportRunTypes,
		Schedule: p.Config.ExportSchedule,
		Timeout:  p.Config.ExportTimeout,
		Export: reporting.Config{
			Generator: readBuild().generator(), Market: p.Config.Market, Codec: p.Config.ExportCompression, Key: key,
		},
	}, p.Metrics, p.Log)
	if err != nil {
		return nil, fmt.Errorf("exports: %w", err)
	}
	runs := settlementpg.NewRuns(p.DB, settlementpg.Config{
		Market:          p.Config.Market,
		ReadsTopic:      p.Topics.Reads,
		StatementsTopic: p.Topics.Statements,
		ChargesTopic:    p.Topics.AccountCharges,
		Outbox:          p.Outbox,
		Completed: func(_ context.Context, run settlementpg.Run) error {
			exporter.RunCompleted(run.RunID)
			return nil
		},
	}, p.Log)
	return &services{
		alerts: hook,
		applier: ingest.NewApplier(p.Config.Market, p.Topics, p.Outbox, hook).WithLimits(ingest.Limits{Bounds: p.Config.IngestBounds}).
			WithPartitions(readstore.NewPartitions(p.DB, partitionLockTimeout)).WithRegistryCache(registry),
		runs:     runs,
		exporter: exporter,
	}, nil
}

// partitionLockTimeout bounds how long creating a read_blocks partition
// waits for the table (readstore.Partitions): the batch that needed it
// fails as transient and is retried.
const partitionLockTimeout = 5 * time.Second

// newAlertHook is the customer-alert hook of the market. Ingest evaluates
// alerts with it, and every registry writer must give its SettingsChanged to
// the registry, which keeps the hook's aggregates whole when accounts gain
// or lose a threshold or budget. reg may be nil (no metrics); registry is
// the process's registry cache, nil where the hook serves no ingest (its
// own then).
func newAlertHook(market settlement.Market, reg prometheus.Registerer, registry *registrystore.Cache) (*alertspg.Hook, error) {
	hook, err := alertspg.New(alertspg.Config{Market: market, Topics: kafka.DefaultTopics(), Registry: registry}, reg)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return hook, nil
}

// newIngest is the ingest component: the exactly-once consumer group member.
func newIngest(p *Platform) (Component, error) {
	s, err := p.shared()
	if err != nil {
		return Component{}, err
	}
	// The consumer joins its group as soon as it exists, so it is made when
	// the component starts: a component failing its setup after this one
	// then leaves no client behind.
	return Component{Name: "ingest", Run: func(ctx context.Context) error {
		c, err := ingest.New(ingest.Config{Kafka: p.Config.Kafka, Topics: p.Topics}, p.DB, s.applier, p.Metrics, p.Log,
			ingestGroupOpts(p.Config.IngestSessionTimeout)...)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		return c.Run(ctx)
	}}, nil
}

// newPublish is the publish component: the outbox relay with Kafka
// transactions.
func newPublish(p *Platform) (Component, error) {
	r, err := publish.New(p.DB, p.Config.Kafka, publish.Config{Env: p.Config.Environment, Topics: p.Topics.Outputs(),
		LeaseTimeout: p.Config.PublishLeaseTimeout},
		p.Log, p.Metrics, publish.WithStepHook(failpointStep))
	if err != nil {
		return Component{}, fmt.Errorf("publish: %w", err)
	}
	return Component{Name: "publish", Run: r.Run}, nil
}

// exportWorkerIn is the component that runs the process's export worker:
// the first of those that complete runs (the scheduler, else the API, which
// the demo's driver runs beside), so that each process that completes runs
// exports them promptly, with one worker. "" when no component does.
func exportWorkerIn(cfg *Config) string {
	for _, c := range []string{"scheduler", "api"} {
		if cfg.hasComponent(c) {
			return c
		}
	}
	return ""
}

// withExportWorker runs component c of p and, when it is exportWorkerIn,
// the export worker beside it, until ctx ends.
func withExportWorker(p *Platform, s *services, c Component) Component {
	if exportWorkerIn(&p.Config) != c.Name {
		return c
	}
	run := c.Run
	c.Run = func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return run(ctx) })
		g.Go(func() error { return s.exporter.Run(ctx) })
		return g.Wait()
	}
	return c
}

// newScheduler is the scheduler component: due runs, and the export
// worker (exportWorkerIn).
func newScheduler(p *Platform) (Component, error) {
	s, err := p.shared()
	if err != nil {
		return Component{}, err
	}
	sched, err := settlementpg.NewScheduler(s.runs, settlementpg.SchedulerConfig{Schedule: p.Config.Schedule}, p.Metrics, p.Log)
	if err != nil {
		return Component{}, err
	}
	return withExportWorker(p, s, Component{Name: "scheduler", Run: sched.Run}), nil
}

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/api/console"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// minServeAdminToken is the shortest --admin-token serve accepts
// (api/README.md "Safe under abuse").
const minServeAdminToken = 32

// newAdminToken is a generated admin token: dev and demo print it; it is
// never stored, so it is valid for that process only.
func newAdminToken() string { return "gs_" + rand.Text() + rand.Text() }

// checkServeAdminToken refuses a short admin token in serve. serve never
// generates one: without --admin-token(-file) the API has no configured
// admin token, and admins use stored tokens (`gridsettle token create
// --role admin`), which are kept only as hashes.
func checkServeAdminToken(cfg Config, log *slog.Logger) error {
	switch {
	case cfg.AdminToken == "" && cfg.hasComponent("api"):
		log.Info("no --admin-token: the API accepts stored tokens only (gridsettle token create --role admin)")
	case cfg.AdminToken != "" && len(cfg.AdminToken) < minServeAdminToken:
		return fmt.Errorf("--admin-token (or --admin-token-file): must be at least %d characters in serve, not %d",
			minServeAdminToken, len(cfg.AdminToken))
	}
	return nil
}

// newAPI is the api component: the HTTP server with every area's routes on
// the listener bound at start-up. /readyz checks Postgres (always), Kafka and
// the readiness of the components built before it (Platform.Ready).
func newAPI(p *Platform) (Component, error) {
	cfg := api.Config{
		Addr:       p.Config.HTTPAddr,
		TLSCert:    p.Config.TLSCert,
		TLSKey:     p.Config.TLSKey,
		AdminToken: p.Config.AdminToken,
	}
	if err := cfg.Validate(); err != nil {
		return Component{}, err
	}
	s, err := p.shared()
	if err != nil {
		return Component{}, err
	}
	kafkaCheck := api.Check{Name: "kafka", Check: func(ctx context.Context) error { return kafkaReady(ctx, p.Kafka) }}
	return withExportWorker(p, s, Component{Name: "api", Run: func(ctx context.Context) error {
		pool, err := newAPIPool(ctx, p.DB, p.Config.APIStatementTimeout)
		if err != nil {
			return err
		}
		defer pool.Close()
		// Reads of runs and statements use the API's pool; nothing here
		// starts a run with it (see Starter).
		runs := settlementpg.NewRuns(pool, settlementpg.Config{Market: p.Config.Market}, p.Log)
		srv := api.New(cfg, p.Log, p.Metrics, pool, append([]api.Check{kafkaCheck}, p.Ready...),
			api.RegistryRoutes{Store: registrystore.NewRegistry(pool, s.alerts.SettingsChanged), Pool: pool},
			api.LedgerRoutes{Pool: pool},
			// Runs started by POST /api/v1/runs run on the pipeline's pool,
			// without the API's statement timeout: a run is settlement
			// work that may rightly take longer, and runs of one day queue
			// on the day's lock, so operators cannot take more than one
			// pipeline connection per operating day.
			api.RunRoutes{Runs: runs, Starter: s.runs},
			// The exporter is the pipeline's (every completed run wakes its
			// worker, and writing an export may rightly outlast the API's
			// statement timeout); its reads are a regulator's few calls.
			api.ExportRoutes{Exports: s.exporter},
			api.IntervalRoutes{Pool: pool},
			api.ExplainRoutes{Runs: runs},
			api.AlertRoutes{Pool: pool, Market: p.Config.Market},
			api.IngestRoutes{Pool: pool, Market: p.Config.Market, Topics: p.Topics, Applier: s.applier,
				Kafka: kadm.NewClient(p.Kafka), Runs: runs},
			api.SchemaRoutes{},
		)
		srv.Mount(console.Prefix, console.Handler())
		return srv.Serve(ctx, p.HTTP)
	}}), nil
}

// newAPIPool is the API's own pool on the pipeline's database, with the
// same connection settings (decimals, idle-in-transaction timeout) plus a
// statement timeout: API traffic then waits for its own connections and
// never holds one for long, so it cannot starve ingest, publishing or runs
// of theirs.
func newAPIPool(ctx context.Context, db *pgxpool.Pool, timeout time.Duration) (*pgxpool.Pool, error) {
	cfg := db.Config() // a copy
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the api's database pool: %w", err)
	}
	return pool, nil
}

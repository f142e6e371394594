package main

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/gridsettle/gridsettle/api"
	meterspg "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/twmb/franz-go/pkg/kadm"
)

// newAPI is the api component: the HTTP server with every area's routes on
// the listener bound at start-up. /readyz checks Postgres (always) and Kafka.
func newAPI(p *Platform) (Component, error) {
	cfg := api.Config{
		Addr:       p.Config.HTTPAddr,
		TLSCert:    p.Config.TLSCert,
		TLSKey:     p.Config.TLSKey,
		AdminToken: p.Config.AdminToken,
	}
	if cfg.AdminToken == "" {
		// Not stored: valid for this process only, like a --admin-token.
		cfg.AdminToken = "gs_" + rand.Text()
		fmt.Fprintf(p.Out, "admin token (generated; set --admin-token to choose one): %s\n", cfg.AdminToken)
	}
	if err := cfg.Validate(); err != nil {
		return Component{}, err
	}
	s, err := p.shared()
	if err != nil {
		return Component{}, err
	}
	kafkaCheck := api.Check{Name: "kafka", Check: func(ctx context.Context) error { return kafkaReady(ctx, p.Kafka) }}
	srv := api.New(cfg, p.Log, p.Metrics, p.DB, []api.Check{kafkaCheck},
		api.RegistryRoutes{Store: meterspg.NewRegistry(p.DB, s.alerts.SettingsChanged)},
		api.LedgerRoutes{Pool: p.DB},
		api.RunRoutes{Runs: s.runs},
		api.ExportRoutes{Exports: s.exporter},
		api.AlertRoutes{Pool: p.DB, Market: p.Config.Market},
		api.IngestRoutes{Pool: p.DB, Market: p.Config.Market, Topics: p.Topics, Applier: s.applier,
			Kafka: kadm.NewClient(p.Kafka), Runs: s.runs},
	)
	return Component{Name: "api", Run: func(ctx context.Context) error { return srv.Serve(ctx, p.HTTP) }}, nil
}

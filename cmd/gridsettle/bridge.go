package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

func newBridgeCmd(m *Main) *cobra.Command {
	c := &cobra.Command{
		Use:   "bridge",
		Short: "Bridge field protocols into the input topics (meters/README.md)",
	}
	c.AddCommand(m.command(&cobra.Command{
		Use:   "mqtt",
		Short: "Move MQTT messages (QoS 1, persistent session) into ami.interval-reads and market.prices with Kafka transactions, acknowledging after commit",
	}, groupLog|groupKafka|groupListen|groupMQTT, m.runBridge))
	return c
}

// runBridge runs the bridge alone against an external Kafka cluster, with
// its metrics, /healthz and /readyz on --http-addr.
func (m *Main) runBridge(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.Bridge.Broker == "" {
		return errRequired("mqtt-broker")
	}
	if len(cfg.Kafka.Brokers) == 0 {
		return errRequired("kafka-brokers")
	}
	ln, err := listen("http-addr", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := newBridge(cfg, kafka.DefaultTopics(), reg, log)
	if err != nil {
		return err
	}
	log.Info("bridge ready", "mqtt_broker", cfg.Bridge.Broker, "client_id", cfg.Bridge.ClientID,
		"kafka", cfg.Kafka.Brokers, "http_addr", ln.Addr().String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return b.Run(gctx) })
	g.Go(func() error { return serveOps(gctx, ln, reg, b.Ready) })
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Asked to stop (SIGINT, SIGTERM): what was unacknowledged is
		// delivered again to the next bridge.
		return nil
	}
	return err
}

// newBridge is the bridge of cfg producing to topics, its steps passing
// the bridge failpoints.
func newBridge(cfg Config, topics kafka.Topics, reg prometheus.Registerer, log *slog.Logger) (*bridge.Bridge, error) {
	bc := cfg.Bridge
	bc.Kafka, bc.Topics, bc.Environment = cfg.Kafka, topics, cfg.Environment
	b, err := bridge.New(bc, log, reg, bridge.WithStepHook(bridgeFailpoint))
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return b, nil
}

// bridgeFailpoints are the bridge's steps and the failpoints they pass.
var bridgeFailpoints = map[bridge.Step]string{
	bridge.StepBeforeProduce: failpoint.BridgeBeforeProduce,
	bridge.StepAfterCommit:   failpoint.BridgeAfterCommit,
}

func bridgeFailpoint(_ context.Context, s bridge.Step) error {
	failpoint.Hit(bridgeFailpoints[s])
	return nil
}

// newBridgeComponent is the bridge component of dev and serve; its metrics
// and readiness are served with the API's.
func newBridgeComponent(p *Platform) (Component, error) {
	b, err := newBridge(p.Config, p.Topics, p.Metrics, p.Log)
	if err != nil {
		return Component{}, err
	}
	p.Ready = append(p.Ready, api.Check{Name: "mqtt-bridge", Check: b.Ready})
	return Component{Name: "bridge", Run: b.Run}, nil
}

// serveOps serves /metrics, /healthz and /readyz (ready answering nil) on
// ln until ctx ends: the operational endpoints of a process without the
// API.
func serveOps(ctx context.Context, ln net.Listener, reg *prometheus.Registry, ready func(context.Context) error) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := ready(rctx); err != nil {
			writeHealth(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		writeHealth(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	return api.ServeUntil(ctx, srv, ln, 5*time.Second)
}

func writeHealth(w http.ResponseWriter, code int, body map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

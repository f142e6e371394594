package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Component is one long-running part of gridsettle (api/README.md
// "Components").
type Component struct {
	Name string
	// Run works until ctx is cancelled, then finishes or aborts what is in
	// flight and returns nil (or ctx's error). Returning before that is a
	// failure that shuts the whole process down.
	Run func(ctx context.Context) error
}

// componentBuilders holds, for each name of componentNames that exists in
// this build, how to make it from the platform. This is the one place where
// components are wired.
var componentBuilders = map[string]func(p *Platform) (Component, error){
	"ingest":    newIngest,
	"publish":   newPublish,
	"scheduler": newScheduler,
	"bridge":    newBridgeComponent,
	"api":       newAPI,
}

func buildComponents(p *Platform, names []string) ([]Component, error) {
	comps := make([]Component, 0, len(names))
	for _, name := range names {
		build, ok := componentBuilders[name]
		if !ok {
			return nil, fmt.Errorf("component %s has no builder", name)
		}
		c, err := build(p)
		if err != nil {
			return nil, fmt.Errorf("set up component %s: %w", name, err)
		}
		comps = append(comps, c)
	}
	return comps, nil
}

func names(comps []Component) []string {
	out := make([]string, len(comps))
	for i, c := range comps {
		out[i] = c.Name
	}
	return out
}

// runComponents runs comps until ctx is cancelled or one of them fails,
// then stops them one at a time in reverse order, each after the one that
// depends on it has returned. It returns the first failure.
func runComponents(ctx context.Context, log *slog.Logger, reg prometheus.Registerer, comps []Component) error {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gridsettle_component_up",
		Help: "1 while the component runs in this process, 0 after it stopped.",
	}, []string{"component"})
	if err := reg.Register(up); err != nil {
		return fmt.Errorf("register component metrics: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	cancels := make([]context.CancelFunc, len(comps))
	dones := make([]chan struct{}, len(comps))
	for i, c := range comps {
		// Not derived from ctx: each component is cancelled on its turn.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[i], dones[i] = cancel, make(chan struct{})
		up.WithLabelValues(c.Name).Set(1)
		log.Info("component started", "component", c.Name)
		g.Go(func() error {
			defer close(dones[i])
			defer up.WithLabelValues(c.Name).Set(0)
			err := c.Run(cctx)
			if cctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
				log.Info("component stopped", "component", c.Name)
				return nil
			}
			if err == nil {
				err = errors.New("returned before shutdown")
			}
			return fmt.Errorf("component %s: %w", c.Name, err)
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		for i := len(comps) - 1; i >= 0; i-- {
			cancels[i]()
			<-dones[i]
		}
		return nil
	})
	return g.Wait()
}

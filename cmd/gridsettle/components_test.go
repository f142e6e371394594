package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder builds components that wait for their context, or fail at once
// when failing is set, and records the order in which they stop.
type recorder struct {
	mu      sync.Mutex
	stopped []string
	started sync.WaitGroup
}

func (r *recorder) component(name string, fail error) Component {
	r.started.Add(1)
	return Component{Name: name, Run: func(ctx context.Context) error {
		r.started.Done()
		if fail == nil {
			<-ctx.Done()
		}
		r.mu.Lock()
		r.stopped = append(r.stopped, name)
		r.mu.Unlock()
		return fail
	}}
}

func TestComponentsStopInReverseOrder(t *testing.T) {
	var r recorder
	comps := []Component{r.component("ingest", nil), r.component("publish", nil), r.component("api", nil)}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- runComponents(ctx, discard, reg, comps) }()
	r.started.Wait()
	if n := upSeries(t, reg); n != 3 {
		t.Fatalf("gridsettle_component_up has %d series running, want 3", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown returned %v", err)
	}
	if n := upSeries(t, reg); n != 0 {
		t.Errorf("%d components still up after shutdown", n)
	}
	if want := []string{"api", "publish", "ingest"}; !slices.Equal(r.stopped, want) {
		t.Errorf("stopped %v, want %v", r.stopped, want)
	}
}

func TestComponentFailureStopsTheRest(t *testing.T) {
	var r recorder
	boom := errors.New("boom")
	comps := []Component{r.component("ingest", nil), r.component("publish", boom), r.component("api", nil)}
	err := runComponents(t.Context(), discard, prometheus.NewRegistry(), comps)
	if !errors.Is(err, boom) || err.Error() != "component publish: boom" {
		t.Fatalf("got %v, want the failing component's error", err)
	}
	if len(r.stopped) != 3 || r.stopped[0] != "publish" || !slices.Equal(r.stopped[1:], []string{"api", "ingest"}) {
		t.Errorf("stopped %v, want publish, then api, then ingest", r.stopped)
	}
}

func TestComponentReturningEarlyIsAFailure(t *testing.T) {
	comps := []Component{{Name: "scheduler", Run: func(context.Context) error { return nil }}}
	err := runComponents(t.Context(), discard, prometheus.NewRegistry(), comps)
	if err == nil || err.Error() != "component scheduler: returned before shutdown" {
		t.Fatalf("got %v", err)
	}
}

func TestEveryComponentHasABuilder(t *testing.T) {
	for _, name := range componentNames {
		if componentBuilders[name] == nil {
			t.Errorf("component %s has no builder", name)
		}
	}
	for name := range componentBuilders {
		if !slices.Contains(componentNames, name) {
			t.Errorf("builder %q is not a component of api/README.md", name)
		}
	}
}

// TestOneExportWorkerWhereRunsComplete: every process whose components
// complete runs (the scheduler; the API, beside which the demo's driver
// runs) has exactly one export worker.
func TestOneExportWorkerWhereRunsComplete(t *testing.T) {
	for components, want := range map[string]string{
		"ingest,publish,scheduler,api":    "scheduler",
		"api,scheduler":                   "scheduler",
		"api":                             "api",
		strings.Join(demoComponents, ","): "api",
		"ingest,publish":                  "",
	} {
		if got := exportWorkerIn(&Config{Components: strings.Split(components, ",")}); got != want {
			t.Errorf("--components %s: the export worker runs in %q, want %q", components, got, want)
		}
	}
}

// upSeries counts the components gridsettle_component_up reports running.
func upSeries(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != "gridsettle_component_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				n++
			}
		}
	}
	return n
}

func TestOutboxWriterUsesClusterPartitions(t *testing.T) {
	addrs := kafkatest.New(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics := kafka.DefaultTopics()
	w, err := outboxWriter(t.Context(), cl, topics.Outputs())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int32]bool{}
	for i := range 200 {
		p, err := w.Partition(topics.Statements, []byte(fmt.Sprint("participant-", i)))
		if err != nil {
			t.Fatal(err)
		}
		seen[p] = true
	}
	if len(seen) != kafkatest.Partitions {
		t.Errorf("keys spread over partitions %v, want all %d", seen, kafkatest.Partitions)
	}
	if _, err := outboxWriter(t.Context(), cl, []string{"no.such.topic"}); err == nil {
		t.Error("a missing topic must be an error")
	}
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// runSimulateCmd runs `gridsettle simulate ARGS...` in-process.
func runSimulateCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, newSimulateCmd, env, args...)
}

func TestSimulateCommand(t *testing.T) {
	addr := kafkatest.New(t)[0]
	dir := t.TempDir()
	out, err := runSimulateCmd(t, map[string]string{"GRIDSETTLE_SIMULATE_SEED": "9", "GRIDSETTLE_SIMULATE_DAYS": "1", "GRIDSETTLE_DAYS": "3"},
		"--meters", "12", "--kafka-brokers", addr, "--registry-out", filepath.Join(dir, "registry"),
		"--records-out", filepath.Join(dir, "records"), "--transaction-records", "100")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"simulated seed 9: 12 meters, 1 days from 2026-10-31", "produced", "conflicting_duplicate"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"registry/meters.csv", "registry/accounts.csv", "records/ami.interval-reads.txt", "records/market.prices.late.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}

	sc, err := simulate.Generate(simulate.Config{Seed: 9, Meters: 12, Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(sc.Records, sc.Late)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not an assertion
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("ami.interval-reads", "market.prices"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	n := 0
	for n < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", n, len(want))
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++; n++ })
	}
	for _, r := range want {
		if got[string(r.Value)] == 0 {
			t.Fatalf("record not produced: %s", r.Value)
		}
		got[string(r.Value)]--
	}
}

func TestSimulateCommandRejects(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--start-day", "31/10/2026"}, "--start-day"},
		{[]string{"--meters", "3"}, "meters"},
		{[]string{"--transaction-records", "0"}, "--transaction-records"},
		{[]string{"--settlement-interval", "600"}, "--settlement-interval"},
		{[]string{"--seed", "x"}, "seed"},
	} {
		_, err := runSimulateCmd(t, nil, append(c.args, "--produce=false")...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.args, err, c.want)
		}
	}
	if _, err := runSimulateCmd(t, map[string]string{"GRIDSETTLE_SIMULATE_DAYS": "many"}, "--produce=false"); err == nil ||
		!strings.Contains(err.Error(), "GRIDSETTLE_SIMULATE_DAYS") {
		t.Errorf("bad GRIDSETTLE_SIMULATE_DAYS: error %v", err)
	}
}

package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// A sub-benchmark alone runs at the issue's sizes, `all` at its smaller
// ones, and a size flag given overrides both.
func TestBenchSizes(t *testing.T) {
	m := &Main{LookupEnv: func(string) (string, bool) { return "", false }}
	for _, c := range []struct {
		which string
		args  []string
		want  benchSizes
	}{
		{"runs", nil, issueSizes},
		{"all", nil, allSizes},
		{"all", []string{"--meters", "123", "--reads", "32"}, func() benchSizes { s := allSizes; s.Meters, s.Reads = 123, 32; return s }()},
	} {
		cmd := newBenchCmd(m)
		if err := cmd.ParseFlags(c.args); err != nil {
			t.Fatal(err)
		}
		o, err := benchOptionsOf(cmd.Flags(), c.which)
		if err != nil || o.sizes != c.want || o.repeat != 1 {
			t.Errorf("%s %v: %+v, %v; want %+v", c.which, c.args, o.sizes, err, c.want)
		}
	}
	cmd := newBenchCmd(m)
	_ = cmd.ParseFlags([]string{"--reads", "3"})
	if _, err := benchOptionsOf(cmd.Flags(), "ingest"); err == nil {
		t.Error("--reads 3 (less than one record) accepted")
	}
}

func TestBenchFigureLine(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{{1234567.4, "1,234,567"}, {-1500, "-1,500"}, {12.345, "12.35"}, {100, "100"}} {
		if got := human(c.x); got != c.want {
			t.Errorf("human(%v) = %q, want %q", c.x, got, c.want)
		}
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	f := benchFigure{name: "x", unit: "s", values: []float64{10, 20, 30}, limits: []float64{5, 5, 5}, lowerIsBetter: true,
		limitWhat: "copy", target: "≤ 30 s", pass: atMost(30)}
	if !strings.HasPrefix(f.line(), "x ") {
		t.Fatalf("line %q", f.line())
	}
	for _, part := range []string{"ratio 0.25", "PASS", "[runs: 10.00, 20.00, 30.00]"} {
		if !strings.Contains(f.line(), part) {
			t.Errorf("line %q lacks %q", f.line(), part)
		}
	}
}

// bench bridge prints its figure beside both limits, measured in the same
// run against a Mosquitto of its own.
func TestBenchBridge(t *testing.T) {
	_, dbURL := pgtest.New(t)
	var out bytes.Buffer
	m := &Main{Args: []string{"bench", "bridge", "--messages", "300", "--batch-records", "50", "--database-url", dbURL},
		LookupEnv: func(string) (string, bool) { return "", false }, Stdout: &out, Stderr: io.Discard}
	if err := m.Run(t.Context()); err != nil {
		t.Fatalf("bench bridge: %v\n%s", err, out.String())
	}
	for _, want := range []string{"MQTT bridge (exactly-once)", "lower of bare subscriber", "limit: bare MQTT subscriber",
		"limit: bare txn producer", "300 messages, batches of 50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

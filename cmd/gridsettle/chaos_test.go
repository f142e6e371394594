//go:build linux

package main

import (
	"flag"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

var (
	chaosSeed = flag.Int64("chaos.seed", 1, "seed of the chaos suite's workload and faults")
	chaosDir  = flag.String("chaos.dir", "", "keep the chaos suite's scratch dir (broker data, logs) here instead of a temporary one")
)

// TestChaos is the short mode of the chaos suite (settlement/README.md
// "Exactly-once", "What proves it"): separate
// processes settle a small seeded stream while every kind of fault fires,
// then everything they stored and published must equal the oracle's.
// `gridsettle chaos --duration 30m` is the long mode.
func TestChaos(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, dbURL := pgtest.New(t)
	dir := *chaosDir
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := runChaos(t.Context(), chaosConfig{Binary: bin, DatabaseURL: dbURL, Dir: dir, Seed: *chaosSeed,
		Meters: 40, Days: 2, Out: testWriter{t}})
	t.Logf("chaos report (seed %d):\n%s", *chaosSeed, st.summary())
	if err != nil {
		t.Fatalf("%v\n(rerun with -chaos.dir DIR to keep the processes' logs)", err)
	}
}

// testWriter sends each line written to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

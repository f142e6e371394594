package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// TestDemo runs the README's first command as a user does, `demo --exit`,
// twice on one data dir: each run ends with `demo ok:`, exits 0 with its
// broker child stopped, and leaves exports that `export verify` accepts;
// the second run restates the day as versions 3 and 4.
func TestDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, dbURL := pgtest.New(t)
	dir := t.TempDir()
	verifyLine := regexp.MustCompile(`(?m)^  go run \./cmd/gridsettle export verify (\S+) --public-key (\S+)$`)
	explainDelta := regexp.MustCompile(`(?m)^Largest restatement, explained [^\n]*\nstatement +\S+/2026-11-01/\d+\n(?:[^\n]*\n){4}exact delta amount +(\S+)$`)
	explainTotal := regexp.MustCompile(`(?m)^TOTAL +(\d+) +\S+ +(\S+)$`)
	for round, versions := range []string{"initial v1, final v2", "initial v3, final v4"} {
		kafkaAddr := freeAddr(t)
		cmd := exec.CommandContext(t.Context(), bin, "demo", "--exit", "--data-dir", dir, "--database-url", dbURL,
			"--kafka-addr", kafkaAddr, "--http-addr", freeAddr(t), "--meters", "100")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		out := stdout.String()
		if err != nil {
			t.Fatalf("round %d: demo --exit: %v\nstdout:\n%s\nstderr:\n%s", round+1, err, out, stderr.String())
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "demo ok:") || !strings.Contains(last, versions) {
			t.Errorf("round %d: last line %q, want demo ok: … %s\n%s", round+1, last, versions, out)
		}
		for _, want := range []string{"Statements of 2026-11-01", "Customer alerts", "Quarantine:", "Bearer gs_", "/console/day/2026-11-01",
			"kcat -b " + kafkaAddr + " -C -t settlement.statements -X isolation.level=read_committed -e"} {
			if !strings.Contains(out, want) {
				t.Errorf("round %d: summary lacks %q:\n%s", round+1, want, out)
			}
		}
		if strings.Contains(stderr.String(), "panic") || strings.Contains(stderr.String(), "level=ERROR") {
			t.Errorf("round %d: errors logged:\n%s", round+1, stderr.String())
		}
		// The largest restatement's explanation adds up to its exact delta;
		// the first round restates the day with changes, the second with
		// none (the same input).
		if d, tot := explainDelta.FindStringSubmatch(out), explainTotal.FindStringSubmatch(out); d == nil || tot == nil {
			t.Errorf("round %d: no explanation of the largest restatement:\n%s", round+1, out)
		} else if tot[2] != d[1] || (round == 0) == (tot[1] == "0") {
			t.Errorf("round %d: explanation TOTAL %s over %s changes, exact delta %s:\n%s", round+1, tot[2], tot[1], d[1], out)
		}
		m := verifyLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("round %d: no export verify command in:\n%s", round+1, out)
		}
		if _, err := os.Stat(m[1]); err != nil {
			t.Fatalf("round %d: export dir: %v", round+1, err)
		}
		if vout, err := exec.CommandContext(t.Context(), bin, "export", "verify", m[1], "--public-key", m[2]).CombinedOutput(); err != nil {
			t.Errorf("round %d: export verify %s: %v\n%s", round+1, m[1], err, vout)
		} else if !strings.Contains(string(vout), "signed by the trusted key") {
			t.Errorf("round %d: export verify %s did not authenticate the signer:\n%s", round+1, m[1], vout)
		}
		// The broker child was stopped: its port is free again.
		ln, err := net.Listen("tcp", kafkaAddr)
		if err != nil {
			t.Fatalf("round %d: broker child still holds %s: %v", round+1, kafkaAddr, err)
		}
		ln.Close()
	}

	// A database of a newer gridsettle: one line that says what to do.
	pool, newerURL := pgtest.New(t)
	pgtest.MarkSchemaNewer(t, pool)
	cmd := exec.CommandContext(t.Context(), bin, "demo", "--exit", "--data-dir", t.TempDir(), "--database-url", newerURL,
		"--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("demo on a newer schema exited 0")
	}
	msg := strings.TrimSpace(stderr.String())
	if last := msg[strings.LastIndex(msg, "\n")+1:]; !strings.HasPrefix(last, "gridsettle: ") || !strings.Contains(last, "upgrade gridsettle") ||
		strings.Contains(msg, "goroutine ") {
		t.Errorf("newer schema: stderr\n%s", msg)
	}
}

// A busy port is one line naming the flag, before anything starts.
func TestDemoBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	err = run(t, "demo", "--exit", "--data-dir", t.TempDir(), "--http-addr", busy, "--kafka-addr", freeAddr(t))
	if want := "--http-addr: " + busy + " is already in use"; err == nil || !strings.HasPrefix(describe(err), want) {
		t.Errorf("got %v, want %q…", err, want)
	}
}

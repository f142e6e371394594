//go:build linux

package publish_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A relay that holds every lease and falls silent (SIGSTOP: its lease
// connection stays open, idle, and its kernel still acknowledges) loses its
// leases to a standby within the lease timeout: the standby takes every
// stream and drains the outbox. When the frozen relay continues, it gives up
// instead of publishing; each record is in the log exactly once throughout.
func TestFrozenHolderLosesLeases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config()
	cfg.LeaseTimeout = 2 * time.Second
	child := e.startChild(cfg.LeaseTimeout)
	eventually(t, "the child relay to take every lease", func() bool { return e.leasesHeld() == partitions })
	want := e.enqueue("before", 40, spread)
	e.waitDrained()

	b := e.start(cfg)
	// Frozen while it publishes, and rows keep coming after that.
	want = append(want, e.enqueue("during", 40, spread)...)
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	want = append(want, e.enqueue("frozen", 40, spread)...)
	// The standby tries every LeaseRetry; a new holder needs a ProducerID
	// (aborting the frozen one's open transaction) and a tail read.
	bound := cfg.LeaseTimeout + 10*time.Second
	for b.metric(t, "gridsettle_publish_leases_held") != partitions || e.pending() != 0 {
		if time.Since(frozen) > bound {
			t.Fatalf("%v after the holder froze: the standby holds %v of %v leases, %d rows pending (leases held in all: %v)",
				bound, b.metric(t, "gridsettle_publish_leases_held"), partitions, e.pending(), e.leasesHeld())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the standby took every lease and drained the outbox %v after the holder froze", time.Since(frozen).Round(time.Millisecond))
	checkExactlyOnce(t, e.readAll(), want)

	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	want = append(want, e.enqueue("after", 40, spread)...)
	e.waitDrained()
	eventually(t, "the continued relay to stand by", func() bool { return e.leasesHeld() == partitions })
	if got := b.metric(t, "gridsettle_publish_leases_held"); got != partitions {
		t.Errorf("the standby holds %v leases after the old holder continued, want %v", got, partitions)
	}
	// Waking up, the old holder neither publishes nor fences the new one.
	if got := b.metric(t, "gridsettle_publish_relay_restarts_total"); got != 0 {
		t.Errorf("the new holder's sessions failed %v times", got)
	}
	checkExactlyOnce(t, e.readAll(), want)
}

// startChild runs a relay in a child process of the test binary, logging to
// a file whose tail a failed test prints. The child dies with the test.
func (e *env) startChild(leaseTimeout time.Duration) *exec.Cmd {
	e.t.Helper()
	logPath := filepath.Join(e.t.TempDir(), "child-relay.log")
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDatabaseEnv+"="+e.dbURL,
		childBrokersEnv+"="+strings.Join(e.addrs, ","), childLeaseTimeoutEnv+"="+leaseTimeout.String())
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			e.t.Logf("child relay log:\n%s", b)
		}
	})
	return cmd
}

// leasesHeld counts the leases held by any relay on the test's database.
func (e *env) leasesHeld() float64 {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.t.Context(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return float64(n)
}

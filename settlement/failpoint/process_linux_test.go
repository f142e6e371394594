//go:build linux

package failpoint

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a process that arms a list and hits its
// points (TestHelperProcess).
const helperEnv = "FAILPOINT_TEST_HELPER"

// TestHelperProcess is not a test: run with helperEnv set, it arms the list
// and passes ingest-after-commit five times, printing each hit first.
func TestHelperProcess(t *testing.T) {
	list, ok := os.LookupEnv(helperEnv)
	if !ok {
		return
	}
	if err := Enable(list, slog.New(slog.NewTextHandler(os.Stdout, nil))); err != nil {
		fmt.Println("enable:", err)
		os.Exit(2)
	}
	for i := 1; i <= 5; i++ {
		fmt.Printf("hit %d\n", i)
		Hit(IngestAfterCommit)
		Hit(RunMid) // not armed: never fires
	}
	fmt.Println("survived")
	os.Exit(0)
}

func TestAFiringPointKillsItsProcess(t *testing.T) {
	tests := []struct {
		list     string
		lastHit  int
		killed   bool
		firedLog string
	}{
		{list: "ingest-after-commit@3", lastHit: 3, killed: true, firedLog: "hit=3 signal=SIGKILL"},
		{list: "ingest-after-commit", lastHit: 1, killed: true, firedLog: "hit=1 signal=SIGKILL"},
		{list: "seed=3,ingest-after-commit%1", lastHit: 1, killed: true, firedLog: "hit=1 signal=SIGKILL"},
		{list: "ingest-after-commit@9", lastHit: 5},
		{list: "", lastHit: 5},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), helperEnv+"="+tt.list)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var exit *exec.ExitError
			killed := errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
			if killed != tt.killed || (!tt.killed && err != nil) {
				t.Fatalf("helper ended with %v, killed=%v want %v; output:\n%s", err, killed, tt.killed, out.String())
			}
			if !strings.Contains(out.String(), fmt.Sprintf("hit %d\n", tt.lastHit)) ||
				strings.Contains(out.String(), fmt.Sprintf("hit %d\n", tt.lastHit+1)) {
				t.Errorf("helper's last hit is not %d; output:\n%s", tt.lastHit, out.String())
			}
			if tt.killed && !strings.Contains(out.String(), "msg=\"failpoint fired\" failpoint=ingest-after-commit "+tt.firedLog) {
				t.Errorf("no %q line before the kill; output:\n%s", tt.firedLog, out.String())
			}
			if !tt.killed && !strings.Contains(out.String(), "survived") {
				t.Errorf("helper did not finish; output:\n%s", out.String())
			}
		})
	}
}

func TestAStopPointFreezesItsProcessUntilContinued(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=ingest-after-commit@2:stop")
	// In a group of its own: when a process of an orphaned group exits,
	// the kernel continues the group's stopped members (SIGHUP, SIGCONT).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !stopped(t, cmd.Process.Pid) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("helper never stopped; output:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := out.String(); !strings.Contains(s, "hit 2\n") || strings.Contains(s, "hit 3\n") ||
		!strings.Contains(s, "hit=2 signal=SIGSTOP") {
		t.Errorf("helper stopped elsewhere than at hit 2; output:\n%s", s)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "survived") {
		t.Errorf("continued helper ended with %v; output:\n%s", err, out.String())
	}
}

// stopped reports whether process pid is stopped by a signal (state T in
// /proc/PID/stat).
func stopped(t *testing.T, pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The state follows the command name, which is in parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	return len(rest) > 1 && rest[1] == 'T'
}

// syncBuffer is a bytes.Buffer safe for the child's writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

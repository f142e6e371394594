//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// chaosLife is one run of one process of the chaos suite: a slot (the
// broker, a worker, the API) is started again and again, and each start is
// a life with its own log file and exit status.
type chaosLife struct {
	slot    string
	n       int    // 1 for the slot's first life
	armed   string // GRIDSETTLE_FAILPOINTS of this life, "" for none
	logPath string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	state   *os.ProcessState
	// killedByUs is set when the harness sent SIGKILL itself, so that a
	// failpoint death is told apart from the harness's.
	killedByUs bool
}

func (l *chaosLife) String() string {
	return fmt.Sprintf("%s#%d(pid %d)", l.slot, l.n, l.cmd.Process.Pid)
}

// startLife starts bin with args in a process group of its own (a stopped
// member of an orphaned group is continued by the kernel when another
// member exits) that dies with us (SIGKILL, or SIGTERM for the broker, which
// must never be killed hard). env is added to an environment without any
// GRIDSETTLE_ variable of ours.
func startLife(bin, dir, slot string, n int, env []string, deathSig syscall.Signal, args ...string) (*chaosLife, error) {
	l := &chaosLife{slot: slot, n: n, logPath: filepath.Join(dir, fmt.Sprintf("%s-%02d.log", slot, n)), done: make(chan struct{})}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, failpointsEnv+"="); ok {
			l.armed = v
		}
	}
	f, err := os.Create(l.logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", slot, err)
	}
	l.cmd = exec.Command(bin, args...)
	l.cmd.Stdout, l.cmd.Stderr = f, f
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GRIDSETTLE_") {
			l.cmd.Env = append(l.cmd.Env, e)
		}
	}
	l.cmd.Env = append(l.cmd.Env, env...)
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	if err := l.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", slot, err)
	}
	l.started = time.Now()
	go func() {
		_ = l.cmd.Wait()
		l.state = l.cmd.ProcessState
		f.Close()
		close(l.done)
	}()
	return l, nil
}

func (l *chaosLife) exited() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (not its group: a worker has no children).
func (l *chaosLife) signal(sig syscall.Signal) error {
	if l.exited() {
		return fmt.Errorf("signal %s: %s has exited", sig, l)
	}
	if sig == syscall.SIGKILL {
		l.killedByUs = true
	}
	return l.cmd.Process.Signal(sig)
}

// stopped reports whether the process is stopped by a signal (state T or t
// in /proc/PID/stat).
func (l *chaosLife) stopped() bool {
	if l.exited() {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(l.cmd.Process.Pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	return len(rest) > 1 && (rest[1] == 'T' || rest[1] == 't')
}

// wait waits for the process to exit, at most d.
func (l *chaosLife) wait(d time.Duration) error {
	select {
	case <-l.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s did not exit within %v", l, d)
	}
}

// signaled is the signal that ended the process, 0 if it exited.
func (l *chaosLife) signaled() syscall.Signal {
	if l.state == nil {
		return 0
	}
	ws, ok := l.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

func (l *chaosLife) log() string {
	b, err := os.ReadFile(l.logPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// firedFailpoint is the failpoint whose "failpoint fired" line the life
// logged, and the signal it sent itself ("" when none fired).
func (l *chaosLife) firedFailpoint() (name, signal string) {
	for line := range strings.SplitSeq(l.log(), "\n") {
		if !strings.Contains(line, `msg="failpoint fired"`) {
			continue
		}
		return logField(line, "failpoint"), logField(line, "signal")
	}
	return "", ""
}

// logField is the value of key=value in a slog text line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// waitLog waits until the life logs a line containing want, for at most d;
// it fails at once if the process exits first.
func (l *chaosLife) waitLog(want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if strings.Contains(l.log(), want) {
			return nil
		}
		if l.exited() {
			return fmt.Errorf("%s exited (%v) before logging %q; its log:\n%s", l, l.state, want, tail(l.log(), 30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %v; its log:\n%s", l, want, d, tail(l.log(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

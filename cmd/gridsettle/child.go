package main

import (
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// brokerChild is `gridsettle broker` running as a child process. It runs in
// its own process group, so a Ctrl-C aimed at the terminal's foreground group
// reaches only us, and we stop it last, with SIGTERM: a broker killed hard
// with a transaction open loses that transaction's abort marker (kfake
// defect, see settlement/README.md "Exactly-once").
type brokerChild struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // the process's exit status; read after exited is closed
}

func (m *Main) startBrokerChild(cfg Config, log *slog.Logger) (*brokerChild, error) {
	exe, err := m.executable()
	if err != nil {
		return nil, err
	}
	// The child would report a busy port too, but only in its own log.
	ln, err := listen("kafka-addr", cfg.KafkaAddr)
	if err != nil {
		return nil, err
	}
	ln.Close()
	// Not exec.CommandContext: the child must outlive ctx, until stop.
	cmd := exec.Command(exe, "broker",
		"--data-dir", cfg.DataDir,
		"--kafka-addr", cfg.KafkaAddr,
		"--partitions", strconv.Itoa(int(cfg.Partitions)),
		"--log-level", cfg.LogLevel.String(), "--log-format", cfg.LogFormat)
	cmd.Stdout, cmd.Stderr = m.Stderr, m.Stderr
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start broker child %s: %w", exe, err)
	}
	log.Info("broker child started", "pid", cmd.Process.Pid, "addr", cfg.KafkaAddr)
	b := &brokerChild{cmd: cmd, exited: make(chan struct{})}
	go func() {
		b.err = cmd.Wait()
		close(b.exited)
	}()
	return b, nil
}

// stop sends SIGTERM and waits for the broker to persist its state and
// exit; only a broker that ignores SIGTERM for stopTimeout is killed.
func (b *brokerChild) stop(log *slog.Logger) {
	select {
	case <-b.exited:
		return
	default:
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		log.Error("signal broker child", "err", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-b.exited:
		log.Info("broker child stopped", "status", exitStatus(b.err))
	case <-timer.C:
		log.Error("broker child ignored SIGTERM; killing it", "pid", b.cmd.Process.Pid, "after", stopTimeout)
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

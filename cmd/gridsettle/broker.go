package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// runBroker serves the Kafka protocol with kfake on --kafka-addr, persisted
// under <data-dir>/kafka, until ctx is cancelled; then it closes the cluster,
// which writes its state (and ends open transactions cleanly) before exit.
// kfake has no lock of its own on its directory, so one is taken here: two
// brokers on one log would corrupt it.
func (m *Main) runBroker(ctx context.Context, cfg Config, log *slog.Logger) error {
	dir := filepath.Join(cfg.DataDir, "kafka")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create broker dir: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()

	var listenErr error
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// kfake always asks for 127.0.0.1:<port>; the address is ours to choose.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := listen("kafka-addr", cfg.KafkaAddr)
			listenErr = err
			return ln, err
		}),
		kfake.DataDir(dir),
		// Topics exist before the first client can connect; on a restart the
		// persisted ones load instead and ensureTopics adds any missing.
		kfake.SeedTopics(cfg.Partitions, kafka.DefaultTopics().All()...),
		kfake.WithLogger(newKfakeLogger(ctx, log)),
	)
	if listenErr != nil {
		return listenErr
	}
	if err != nil {
		return fmt.Errorf("start embedded broker on %s: %w", dir, err)
	}
	defer func() {
		cluster.Close()
		log.Info("broker stopped", "data_dir", dir)
	}()

	if err := ensureTopics(ctx, cfg.Kafka, cfg.Partitions); err != nil {
		return err
	}
	log.Info("broker ready", "addr", cluster.ListenAddrs()[0], "data_dir", dir)
	<-ctx.Done()
	return nil
}

// lockDir takes an exclusive lock on dir for the life of the process (the
// kernel drops it if the process dies) and returns its release.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, "gridsettle-broker.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open broker lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--data-dir: another gridsettle broker is already using %s; stop it or choose another data dir", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// listen binds addr, turning a busy port into a one-line error that names
// the flag to change.
func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("--%s: %s is already in use; stop whatever listens there or choose another address", flag, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("--%s: listen on %s: %w", flag, addr, err)
	}
	return ln, nil
}

// kfakeLogger sends kfake's log to slog. kfake's info level is per-client
// chatter (group joins, failed requests), so it goes to debug.
type kfakeLogger struct {
	log   *slog.Logger
	debug bool // formatting is skipped unless debug is on
}

func newKfakeLogger(ctx context.Context, log *slog.Logger) kfakeLogger {
	return kfakeLogger{log: log.With("kfake", true), debug: log.Enabled(ctx, slog.LevelDebug)}
}

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		l.log.Warn(fmt.Sprintf(format, args...))
	default:
		if l.debug {
			l.log.Debug(fmt.Sprintf(format, args...))
		}
	}
}

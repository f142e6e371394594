package mosquittotest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config are the configuration lines meters/README.md "Edge ingest: the MQTT
// bridge" requires (listener and logging aside).
var Config = []string{
	"allow_anonymous true",
	"max_queued_messages 0",   // a persistent session keeps every QoS 1 message
	"max_inflight_messages 0", // at least --batch-records: 0 is no limit
	"persistence false",       // the broker itself is not restarted here
}

// Broker is a running Mosquitto.
type Broker struct {
	URL    string // tcp://127.0.0.1:PORT
	Addr   string // 127.0.0.1:PORT
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// Binary is the mosquitto executable: on PATH, else where Debian installs it.
func Binary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto not found on PATH or in /usr/sbin: install the Debian package mosquitto (apt-get install mosquitto)")
}

// Start starts Mosquitto with Config plus extra configuration lines, and
// stops it when t ends.
func Start(t testing.TB, extra ...string) *Broker {
	t.Helper()
	b, err := Launch(t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}

// Launch starts Mosquitto with its configuration and log in dir, and waits
// until it listens. Stop it.
func Launch(dir string, extra ...string) (*Broker, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := append(append([]string{"listener " + port + " 127.0.0.1"}, Config...),
		"log_dest stderr", "log_type error", "log_type warning")
	if u, err := user.Current(); err == nil {
		// Started as root, Mosquitto would become user mosquitto, who
		// cannot read the configuration's files in a private temp dir.
		conf = append(conf, "user "+u.Username)
	}
	conf = append(conf, extra...)
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	b := &Broker{URL: "tcp://" + addr, Addr: addr, log: filepath.Join(dir, "mosquitto.log"), exited: make(chan struct{})}
	logf, err := os.Create(b.log)
	if err != nil {
		return nil, err
	}
	b.cmd = exec.Command(bin, "-c", path)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	b.cmd.SysProcAttr = procAttr()
	if err := b.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = b.cmd.Wait(); logf.Close(); close(b.exited) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			return nil, fmt.Errorf("mosquitto exited at start: %s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("mosquitto does not listen on %s: %w\n%s", addr, err, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the broker and waits for it.
func (b *Broker) Stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

// Log is what the broker logged.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(b.log)
	return string(out)
}

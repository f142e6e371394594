// Package mosquittotest starts a real Mosquitto broker for a test, on a
// free loopback port, configured as edge.md requires for the bridge's
// guarantee: no queue limit and no in-flight limit per client, so a
// persistent session keeps every QoS 1 message. Tests never skip: without
// the mosquitto binary they fail, naming the package to install.
package mosquittotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Broker is a running Mosquitto.
type Broker struct {
	URL  string // tcp://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	log  string
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
	return "", fmt.Errorf("mosquitto not found on PATH or in /usr/sbin: install the Debian package mosquitto (apt-get install mosquitto)")
}

// Start starts Mosquitto with the bridge's configuration plus extra
// configuration lines, and stops it when t ends.
func Start(t testing.TB, extra ...string) *Broker {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mosquittotest: find a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := append([]string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		// edge.md: a persistent session keeps every QoS 1 message.
		"max_queued_messages 0",
		"max_inflight_messages 0",
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}, extra...)
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
	b := &Broker{URL: "tcp://" + addr, Addr: addr, log: filepath.Join(dir, "mosquitto.log")}
	logf, err := os.Create(b.log)
	if err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
	b.cmd = exec.Command(bin, "-c", path)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("mosquittotest: start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b
		}
		select {
		case <-exited:
			t.Fatalf("mosquittotest: mosquitto exited at start: %s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquittotest: mosquitto does not listen on %s: %v\n%s", addr, err, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what the broker logged.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(b.log)
	return string(out)
}

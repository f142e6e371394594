//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge/mosquittotest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	"github.com/gridsettle/gridsettle/settlement/postgres/pgcheck"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// TestBridgeKills (meters/README.md "Edge ingest: the MQTT bridge"): a
// generated day goes over a real Mosquitto through `gridsettle bridge mqtt`,
// which is killed before producing, after committing before its PUBACKs, and by
// the harness, and started again each time; then every read is settled once
// (the statements equal the oracle's over the day as published, once), every
// bad payload is in the dead letter, and the restarted bridges counted
// redeliveries.
func TestBridgeKills(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, dbURL := pgtest.New(t)
	mq := mosquittotest.Start(t)
	ctx := t.Context()
	c := newChaos(chaosConfig{Binary: bin, DatabaseURL: dbURL, Dir: t.TempDir(), Seed: *chaosSeed, Meters: 12, Days: 1, Workers: 1,
		Out: testWriter{t}})
	defer c.shutdown()
	if err := c.setup(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := bridgeMessages(c.sc.Records)
	bl := &bridgeLives{c: c, mq: mq.URL}
	defer bl.stop()

	// The first life makes the session: the broker keeps messages for
	// subscribed sessions only.
	if err := bl.start(failpoint.BridgeBeforeProduce + "@3"); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- publishPaced(ctx, mq.URL, msgs) }()
	for _, next := range []string{failpoint.BridgeAfterCommit + "@2", ""} {
		if err := bl.waitFailpoint(); err != nil {
			t.Fatal(err)
		}
		if err := bl.start(next); err != nil {
			t.Fatal(err)
		}
	}
	// The third death is ours, at whatever moment the life has reached
	// once it committed something.
	if !waitFor(ctx, chaosWait, func() bool { return bl.metric("gridsettle_bridge_records_committed_total") > 0 }) {
		t.Fatalf("%s committed nothing within %v:\n%s", bl.cur, chaosWait, tail(bl.cur.log(), 20))
	}
	bl.scrape()
	if err := bl.cur.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = bl.cur.wait(chaosWait)
	c.progress("killed %s", bl.cur)
	if err := bl.start(""); err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	c.progress("published %d messages over MQTT", len(msgs))
	if err := bl.waitForwarded(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	bl.scrape()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := bl.get(path); code != http.StatusOK {
			t.Errorf("%s of %s: %d", path, bl.cur, code)
		}
	}
	if err := bl.cur.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := bl.cur.wait(chaosWait); err != nil || !bl.cur.state.Success() {
		t.Fatalf("%s on SIGTERM: %v %v\n%s", bl.cur, err, bl.cur.state, tail(bl.cur.log(), 20))
	}

	if err := c.waitIngested(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.runDays(ctx, settlement.RunType("final"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.quiesce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.stopWorkers(); err != nil {
		t.Fatal(err)
	}
	var p problems
	if err := c.compare(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if err := bl.checkOnce(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if err := bl.checkDeadLetters(ctx, &p, msgs); err != nil {
		t.Fatal(err)
	}
	bl.checkFaults(&p)
	t.Logf("bridge: %d messages, %d lives, %v redeliveries counted; checked %+v", len(msgs), len(bl.lives), bl.redeliveries, c.st.Checked)
	if err := p.err(); err != nil {
		t.Fatalf("%v\n(rerun with -chaos.dir DIR to keep the processes' logs)", err)
	}
}

// bridgeMessages are the scenario's records on MQTT topics by kind and key,
// and hostile payloads: invalid UTF-8, NUL, not JSON, and one over the
// Kafka record limit.
func bridgeMessages(recs []simulate.Record) []bridgeMessage {
	out := make([]bridgeMessage, 0, len(recs)+4)
	for _, r := range recs {
		kind := "reads"
		if r.Topic == kafka.DefaultTopics().Prices {
			kind = "prices"
		}
		leaf := "unkeyed"
		if meters.ValidIdentifier(string(r.Key)) {
			leaf = string(r.Key)
		}
		out = append(out, bridgeMessage{topic: "gridsettle/" + kind + "/" + leaf, payload: r.Value, bad: r.Reason != ""})
	}
	huge := bytes.Repeat([]byte(`{"meter_id":"MTR-000001"} `), 50_000)
	for _, p := range [][]byte{[]byte("{\"meter_id\":\"MTR-000001\xff\"}"), []byte("{\"meter_id\":\"MTR-000001\"}\x00"), []byte("not json"), huge} {
		out = append(out, bridgeMessage{topic: "gridsettle/reads/hostile", payload: p, bad: true})
	}
	return out
}

// bridgeLives are the lives of the bridge process.
type bridgeLives struct {
	c     *chaos
	mq    string
	lives []*chaosLife
	cur   *chaosLife
	addr  string // the current life's --http-addr
	// redeliveries counted by the lives scraped before they ended.
	redeliveries float64
}

func (bl *bridgeLives) start(armed string) error {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	var env []string
	if armed != "" {
		env = append(env, failpointsEnv+"="+armed)
	}
	l, err := startLife(bl.c.cfg.Binary, bl.c.logDir, "bridge", len(bl.lives)+1, env, syscall.SIGKILL,
		"bridge", "mqtt", "--mqtt-broker", bl.mq, "--mqtt-client-id", "chaos-bridge", "--kafka-brokers", bl.c.kafkaAddr,
		"--http-addr", addr, "--batch-records", "20")
	if err != nil {
		return err
	}
	bl.lives, bl.cur, bl.addr = append(bl.lives, l), l, addr
	if err := l.waitLog(`msg="mqtt subscribed"`, chaosWait); err != nil && armed == "" {
		return err
	}
	bl.c.progress("started %s armed with %q", l, armed)
	return nil
}

// waitFailpoint waits for the current life to kill itself at its failpoint.
func (bl *bridgeLives) waitFailpoint() error {
	l := bl.cur
	if err := l.wait(chaosWait); err != nil {
		return err
	}
	if name, _ := l.firedFailpoint(); name == "" || l.signaled() != syscall.SIGKILL {
		return fmt.Errorf("%s ended with %v without firing %s:\n%s", l, l.state, l.armed, tail(l.log(), 20))
	}
	bl.c.progress("%s died at %s", l, l.armed)
	return nil
}

// metric is the sum of the current life's series of name, 0 if it cannot
// be read.
func (bl *bridgeLives) metric(name string) float64 {
	resp, err := http.Get("http://" + bl.addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return sum
}

// get is the status code of path on the current life's --http-addr.
func (bl *bridgeLives) get(path string) int {
	resp, err := http.Get("http://" + bl.addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scrape adds the current life's redeliveries to the count.
func (bl *bridgeLives) scrape() {
	bl.redeliveries += bl.metric("gridsettle_bridge_redeliveries_total")
}

// waitForwarded waits until every message is in Kafka: forwarded to an
// input topic or, too large, dead-lettered by the bridge.
func (bl *bridgeLives) waitForwarded(ctx context.Context, msgs []bridgeMessage) error {
	topics := kafka.DefaultTopics()
	missing := 0
	ok := waitFor(ctx, chaosWait, func() bool {
		recs, err := readTopics(ctx, bl.c.kcfg, true, topics.Reads, topics.Prices, topics.DeadLetter)
		if err != nil {
			return false
		}
		has := payloadsIn(recs)
		missing = 0
		for _, m := range msgs {
			if !has(m.payload) {
				missing++
			}
		}
		return missing == 0
	})
	if !ok {
		return fmt.Errorf("%d of %d messages not in Kafka within %v; bridge log:\n%s", missing, len(msgs), chaosWait, tail(bl.cur.log(), 20))
	}
	bl.c.progress("every message is in Kafka")
	return nil
}

// payloadsIn reports whether recs hold a payload: whole, or cut by the
// bridge with its SHA-256 in a header.
func payloadsIn(recs []*kgo.Record) func([]byte) bool {
	have := map[string]bool{}
	for _, r := range recs {
		have[string(r.Value)] = true
		if sum := header(r, ingest.HeaderValueSHA256); sum != "" {
			have["sha256:"+sum] = true
		}
	}
	return func(payload []byte) bool {
		sum := sha256.Sum256(payload)
		return have[string(payload)] || have["sha256:"+hex.EncodeToString(sum[:])]
	}
}

// checkOnce: the stored statement lines equal the oracle's over the day as
// it was published, each record once, whatever copies the bridge's deaths
// put in the input topics.
func (bl *bridgeLives) checkOnce(ctx context.Context, p *problems) error {
	c := bl.c
	var once []oracle.Input
	for _, r := range simulate.Assign(c.sc.Records, chaosPartitions) {
		once = append(once, oracle.Input{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
	}
	o, err := c.oracle()
	if err != nil {
		return err
	}
	want := map[string]oracle.Line{}
	for _, day := range c.days() {
		sts, err := o.Runs(once, day, []oracle.Run{{Type: "final"}})
		if err != nil {
			return err
		}
		for _, l := range sts[0].Lines {
			want[l.StatementID] = l
		}
	}
	got, err := pgcheck.StatementLines(ctx, c.pool)
	if err != nil {
		return err
	}
	if len(want) == 0 {
		p.add("vacuous", "the oracle settled no statement line")
	}
	compareRows(p, "settled once", want, got)
	return nil
}

// checkDeadLetters: every bad payload is in the dead letter at least once,
// whole or, too large, cut with its SHA-256.
func (bl *bridgeLives) checkDeadLetters(ctx context.Context, p *problems, msgs []bridgeMessage) error {
	dead, err := readTopics(ctx, bl.c.kcfg, true, kafka.DefaultTopics().DeadLetter)
	if err != nil {
		return err
	}
	has := payloadsIn(dead)
	bad := 0
	for _, m := range msgs {
		if !m.bad {
			continue
		}
		bad++
		if !has(m.payload) {
			p.add("dead letters", "%s: %.60q not in the dead letter", m.topic, m.payload)
		}
	}
	if bad < 4 {
		p.add("vacuous", "only %d bad payloads", bad)
	}
	return nil
}

// checkFaults: both failpoints killed a life, the harness killed one, and
// redeliveries were counted.
func (bl *bridgeLives) checkFaults(p *problems) {
	fired := map[string]bool{}
	for _, l := range bl.lives {
		if name, _ := l.firedFailpoint(); name != "" {
			fired[name] = true
		}
	}
	for _, name := range []string{failpoint.BridgeBeforeProduce, failpoint.BridgeAfterCommit} {
		if !fired[name] {
			p.add("faults", "failpoint %s never fired", name)
		}
	}
	if len(bl.lives) < 4 {
		p.add("faults", "%d bridge lives, want 4", len(bl.lives))
	}
	if bl.redeliveries == 0 {
		p.add("faults", "no redelivery counted after a death after commit")
	}
}

func (bl *bridgeLives) stop() {
	for _, l := range bl.lives {
		if !l.exited() {
			_ = l.signal(syscall.SIGKILL)
			_ = l.wait(chaosWait)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge/mosquittotest"
)

// bridgeMessage is one MQTT publication of the test.
type bridgeMessage struct {
	topic   string
	payload []byte
	bad     bool // must reach the dead letter
}

// publishPaced publishes msgs with QoS 1 in small bursts, so that the
// bridge's lives come and go while the day streams in.
func publishPaced(ctx context.Context, url string, msgs []bridgeMessage) error {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("bridge-test-publisher"))
	if tok := c.Connect(); !tok.WaitTimeout(startTimeout) || tok.Error() != nil {
		return fmt.Errorf("connect publisher: %v", tok.Error())
	}
	defer c.Disconnect(250)
	for i, m := range msgs {
		if tok := c.Publish(m.topic, 1, false, m.payload); !tok.WaitTimeout(startTimeout) || tok.Error() != nil {
			return fmt.Errorf("publish %d to %s: %v", i, m.topic, tok.Error())
		}
		if i%10 == 9 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// testDevBridge is the session of settlement/ingest/bridge/README.md: dev with the
// bridge component, a one-meter registry, a read published over MQTT that the
// API then answers.
func testDevBridge(t *testing.T, bin string) {
	_, dbURL := pgtest.New(t)
	mq := mosquittotest.Start(t)
	httpAddr := freeAddr(t)
	d := start(t, bin, "dev", "--data-dir", t.TempDir(), "--database-url", dbURL, "--kafka-addr", freeAddr(t),
		"--http-addr", httpAddr, "--admin-token", devAdminToken, "--components", "ingest,publish,api,bridge", "--mqtt-broker", mq.URL)
	defer d.terminate(t)
	base := "http://" + httpAddr
	// /readyz includes the bridge: connected and subscribed.
	waitHTTP(t, base+"/readyz", d.done, d.out)
	for _, r := range []struct{ path, csv string }{
		{"participants", "participant_id,name\nRETAILER-A,Retailer A\n"},
		{"settlement-points", "settlement_point,name,kind\nHB_NORTH,North hub,hub\n"},
		{"accounts", "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\nACC-1,Household 1,,,false\n"},
		{"meters", "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			"MTR-000123,ACC-1,RETAILER-A,HB_NORTH,1.0,2026-01-01T00:00:00Z,\n"},
	} {
		call(t, http.MethodPost, base+"/api/v1/"+r.path, "text/csv", r.csv, http.StatusOK)
	}
	if err := publishPaced(t.Context(), mq.URL, []bridgeMessage{{topic: "gridsettle/reads/MTR-000123",
		payload: []byte(`{"meter_id":"MTR-000123","channel":"import","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["0.4215","0.3980","0.4102"],"quality":["A","A","E"],"version":1,"source":"field-gateway-7"}`)}}); err != nil {
		t.Fatal(err)
	}
	reads := base + "/api/v1/meters/MTR-000123/reads?from=2026-11-01T05:00:00Z&to=2026-11-01T06:00:00Z"
	body := call(t, http.MethodGet, reads, "", "", http.StatusOK)
	for deadline := time.Now().Add(startTimeout); strings.Count(body, `"meter_id":"MTR-000123"`) != 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the read published over MQTT is not served: %s\n%s", body, d.out)
		}
		time.Sleep(50 * time.Millisecond)
		body = call(t, http.MethodGet, reads, "", "", http.StatusOK)
	}
	if !strings.Contains(body, `"value":"0.410200","quality":"E"`) {
		t.Errorf("reads: %s", body)
	}
	if m := get(t, base+"/metrics"); !strings.Contains(m, `gridsettle_bridge_records_committed_total{topic="ami.interval-reads"} 1`) {
		t.Errorf("/metrics lacks the bridge's committed record")
	}
}

// bridge mqtt names what it cannot run without, before connecting.
func TestBridgeCommandRequires(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge", "mqtt", "--kafka-brokers", "127.0.0.1:1"}, "--mqtt-broker (or GRIDSETTLE_MQTT_BROKER) is required"},
		{[]string{"bridge", "mqtt", "--mqtt-broker", "tcp://127.0.0.1:1"}, "--kafka-brokers (or GRIDSETTLE_KAFKA_BROKERS) is required"},
		{[]string{"bridge", "mqtt", "--mqtt-broker", "tcp://127.0.0.1:1", "--kafka-brokers", "127.0.0.1:1", "--batch-records", "0"},
			`--batch-records: "0" is not a whole number from 1 to 100000`},
	} {
		m := &Main{Args: c.args, LookupEnv: func(string) (string, bool) { return "", false }, Stdout: io.Discard, Stderr: io.Discard}
		if err := m.Run(t.Context()); err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

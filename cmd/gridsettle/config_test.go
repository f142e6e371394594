package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
)

// parse runs loadConfig over args and env as the given command would.
func parse(t *testing.T, groups flagGroup, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	bindFlags(fs, groups)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return loadConfig(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

const devGroups = platformGroups | groupEmbedded

func TestConfigDefaults(t *testing.T) {
	c, err := parse(t, devGroups, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./gridsettle-data" || c.HTTPAddr != "127.0.0.1:8080" || c.KafkaAddr != "127.0.0.1:9092" {
		t.Errorf("addresses: %+v", c)
	}
	if got := c.Kafka.Brokers; len(got) != 1 || got[0] != "127.0.0.1:9092" {
		t.Errorf("dev reaches Kafka at %v, want the embedded broker", got)
	}
	if c.Partitions != 8 {
		t.Errorf("partitions %d", c.Partitions)
	}
	if c.ExportDir != filepath.Join("gridsettle-data", "exports") ||
		c.SigningKey != filepath.Join("gridsettle-data", "keys", "export-signing.pem") {
		t.Errorf("export paths %q %q", c.ExportDir, c.SigningKey)
	}
	if c.ExportTimeout != 10*time.Minute {
		t.Errorf("export timeout %s", c.ExportTimeout)
	}
	m := c.Market
	if m.Location.String() != "America/Chicago" || m.Currency != "USD" || m.IntervalSeconds != 900 ||
		!m.PriceSpikeThreshold.Equal(decimal.NewFromInt(1000)) {
		t.Errorf("market %+v", m)
	}
	if !slices.Equal(c.Schedule, settlement.DefaultSchedule()) {
		t.Errorf("run lags %v, want %v", c.Schedule, settlement.DefaultSchedule())
	}
	if e := m.Estimation; e.Off || e.MaxLinearGap() != time.Hour {
		t.Errorf("estimation %+v, want standard up to PT1H", e)
	}
	if strings.Join(c.Components, ",") != "ingest,publish,scheduler,api" {
		t.Errorf("components %v", c.Components)
	}
}

func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{
		"GRIDSETTLE_SETTLEMENT_INTERVAL":   "300",
		"GRIDSETTLE_MARKET_TIMEZONE":       "Australia/Brisbane",
		"GRIDSETTLE_PRICE_SPIKE_THRESHOLD": "250.5",
		"GRIDSETTLE_COMPONENTS":            "api,ingest",
	}
	c, err := parse(t, devGroups, env, "--settlement-interval", "3600")
	if err != nil {
		t.Fatal(err)
	}
	if c.Market.IntervalSeconds != 3600 {
		t.Errorf("flag must beat env: interval %d", c.Market.IntervalSeconds)
	}
	if c.Market.Location.String() != "Australia/Brisbane" {
		t.Errorf("env must beat default: zone %v", c.Market.Location)
	}
	if !c.Market.PriceSpikeThreshold.Equal(decimal.RequireFromString("250.5")) {
		t.Errorf("threshold %v", c.Market.PriceSpikeThreshold)
	}
	if strings.Join(c.Components, ",") != "ingest,api" {
		t.Errorf("components must be in start order: %v", c.Components)
	}

	c, err = parse(t, platformGroups|groupKafka, map[string]string{"GRIDSETTLE_KAFKA_TLS": "true", "GRIDSETTLE_KAFKA_BROKERS": "a:9092, b:9093"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Kafka.TLS || strings.Join(c.Kafka.Brokers, ",") != "a:9092,b:9093" {
		t.Errorf("kafka %+v", c.Kafka)
	}
	c, err = parse(t, platformGroups|groupKafka, map[string]string{"GRIDSETTLE_KAFKA_TLS": "true"}, "--kafka-tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.TLS {
		t.Error("--kafka-tls=false must beat GRIDSETTLE_KAFKA_TLS=true")
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		groups flagGroup
		env    map[string]string
		args   []string
		want   string // the whole message, or its start when it ends with "…"
	}{
		{devGroups, nil, []string{"--settlement-interval", "600"},
			"--settlement-interval: 600 is not one of 300, 900, 1800, 3600"},
		{devGroups, map[string]string{"GRIDSETTLE_SETTLEMENT_INTERVAL": "600"}, nil,
			"--settlement-interval (from GRIDSETTLE_SETTLEMENT_INTERVAL): 600 is not one of 300, 900, 1800, 3600"},
		{devGroups, nil, []string{"--partitions", "0"}, `--partitions: "0" is not a whole number from 1 to 10000`},
		{devGroups, nil, []string{"--kafka-addr", "0.0.0.0:9092"}, "--kafka-addr: 0.0.0.0:9092 is not a loopback address…"},
		{devGroups, nil, []string{"--kafka-addr", "kafka.example.com:9092"}, "--kafka-addr: kafka.example.com:9092 is not a loopback address…"},
		{devGroups, nil, []string{"--kafka-addr", "127.0.0.1:0"}, `--kafka-addr: "127.0.0.1:0" needs a port…`},
		{devGroups, nil, []string{"--http-addr", "8080"}, `--http-addr: "8080" is not host:port`},
		{devGroups, nil, []string{"--market-timezone", "Mars/Olympus"}, `--market-timezone: "Mars/Olympus" is not an IANA time zone…`},
		{devGroups, nil, []string{"--market-currency", "usd"}, `--market-currency: "usd" is not an ISO 4217 code…`},
		{devGroups, nil, []string{"--price-spike-threshold", "1e3"}, `--price-spike-threshold: "1e3" is not a plain decimal…`},
		{devGroups, nil, []string{"--price-spike-threshold", "999.1234567"}, `--price-spike-threshold: 999.1234567 has more than 6 decimal places`},
		{devGroups, nil, []string{"--run-lags", "initial=5"}, `--run-lags: run lag for initial: lag "5" is not an ISO 8601 duration…`},
		{devGroups, nil, []string{"--run-lags", "resettlement=P1D"}, `--run-lags: run lag "resettlement=P1D": "resettlement" is not a scheduled run type…`},
		{devGroups, nil, []string{"--run-lags", "final=P1D,final=P2D"}, "--run-lags: run lag for final given twice"},
		{devGroups, nil, []string{"--estimation", "off"}, `--estimation: "off" is not standard or none`},
		{devGroups, map[string]string{"GRIDSETTLE_ESTIMATION": "Standard"}, nil,
			`--estimation (from GRIDSETTLE_ESTIMATION): "Standard" is not standard or none`},
		{devGroups, nil, []string{"--estimation-max-linear", "1h"}, `--estimation-max-linear: "1h" is not an ISO 8601 duration from PT1S to P7D…`},
		{devGroups, nil, []string{"--estimation-max-linear", "PT0S"}, `--estimation-max-linear: "PT0S" is not an ISO 8601 duration…`},
		{devGroups, nil, []string{"--estimation-max-linear", "P8D"}, `--estimation-max-linear: "P8D" is not an ISO 8601 duration…`},
		{devGroups, nil, []string{"--estimation-max-linear", "P1M"}, `--estimation-max-linear: "P1M" is not an ISO 8601 duration…`},
		{devGroups, nil, []string{"--components", "ingest,billing"}, `--components: "billing" is not one of ingest, publish, scheduler, bridge, api`},
		{devGroups, nil, []string{"--components", ","}, "--components: name at least one…"},
		{devGroups, nil, []string{"--export-schedule", "CRON_TZ=America/Chicago"},
			`--export-schedule: "CRON_TZ=America/Chicago": CRON_TZ=America/Chicago names a time zone but no schedule…`},
		{devGroups, nil, []string{"--export-schedule", "CRON_TZ= 0 6 * * *"},
			`--export-schedule: "CRON_TZ= 0 6 * * *": CRON_TZ=: name an IANA time zone…`},
		{devGroups, nil, []string{"--export-schedule", "TZ=Mars/Olympus 0 6 * * *"},
			`--export-schedule: "TZ=Mars/Olympus 0 6 * * *": TZ=Mars/Olympus: "Mars/Olympus" is not an IANA time zone…`},
		{devGroups, nil, []string{"--export-schedule", "every day"}, `--export-schedule: "every day": not a cron expression…`},
		{devGroups, nil, []string{"--export-schedule", "0 0 30 2 *"}, `--export-schedule: "0 0 30 2 *": never fires…`},
		{devGroups, map[string]string{"GRIDSETTLE_EXPORT_SCHEDULE": "CRON_TZ=Asia/Tokyo 0 0 31 4 *"}, nil,
			`--export-schedule (from GRIDSETTLE_EXPORT_SCHEDULE): "CRON_TZ=Asia/Tokyo 0 0 31 4 *": never fires…`},
		{devGroups, nil, []string{"--log-level", "loud"}, `--log-level: "loud" is not debug, info, warn or error`},
		{devGroups, nil, []string{"--tls-key", "config_test.go"}, "--tls-cert and --tls-key: give both or neither"},
		{devGroups, nil, []string{"--tls-cert", "/nonexistent/cert.pem"}, "--tls-cert: cannot read /nonexistent/cert.pem…"},
		{devGroups, nil, []string{"--database-url", "postgres://x:y@h:notaport/db"}, "--database-url: not a PostgreSQL connection URL or DSN"},
		{platformGroups | groupKafka, nil, []string{"--kafka-brokers", "a:1", "--kafka-sasl-mechanism", "GSSAPI"},
			`--kafka-sasl-mechanism: "GSSAPI" is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{platformGroups | groupKafka, map[string]string{"GRIDSETTLE_KAFKA_BROKERS": "nohostport"}, nil,
			`--kafka-brokers (from GRIDSETTLE_KAFKA_BROKERS): "nohostport" is not host:port`},
		{platformGroups | groupKafka, map[string]string{"GRIDSETTLE_KAFKA_TLS": "maybe"}, nil,
			`--kafka-tls (from GRIDSETTLE_KAFKA_TLS): "maybe": …`},
		{devGroups, nil, []string{"--api-statement-timeout", "500ms"}, `--api-statement-timeout: "500ms" is not a duration of at least 1s (e.g. 30s, 2m)`},
		{devGroups, map[string]string{"GRIDSETTLE_API_STATEMENT_TIMEOUT": "soon"}, nil,
			`--api-statement-timeout (from GRIDSETTLE_API_STATEMENT_TIMEOUT): "soon" is not a duration…`},
		{devGroups, nil, []string{"--admin-token", strings.Repeat("a", 40), "--admin-token-file", "config_test.go"},
			"--admin-token-file: give --admin-token or --admin-token-file, not both"},
		{devGroups, nil, []string{"--admin-token-file", "/nonexistent/token"}, "--admin-token-file: read the admin token: …"},
		{devGroups, nil, []string{"--ingest-max-future", "P1Y"}, `--ingest-max-future: "P1Y" is not an ISO 8601 duration from PT1S to P366D (e.g. PT15M, P7D)`},
		{devGroups, nil, []string{"--ingest-max-future", "PT0S"}, `--ingest-max-future: "PT0S" is not an ISO 8601 duration…`},
		{devGroups, map[string]string{"GRIDSETTLE_INGEST_MAX_FUTURE_PRICES": "P9999D"}, nil,
			`--ingest-max-future-prices (from GRIDSETTLE_INGEST_MAX_FUTURE_PRICES): "P9999D" is not an ISO 8601 duration…`},
		{devGroups, nil, []string{"--ingest-max-future-prices", "7 days\x00"}, `--ingest-max-future-prices: "7 days\x00" is not an ISO 8601 duration…`},
		{devGroups, nil, []string{"--publish-lease-timeout", "500ms"}, `--publish-lease-timeout: "500ms" is not a duration from 1s to 5m`},
		{devGroups, nil, []string{"--export-timeout", "0s"}, `--export-timeout: "0s" is not a duration from 10s to 24h`},
		{devGroups, nil, []string{"--export-timeout", "9999h"}, `--export-timeout: "9999h" is not a duration from 10s to 24h`},
		{devGroups, map[string]string{"GRIDSETTLE_EXPORT_TIMEOUT": "10m\x00"}, nil,
			`--export-timeout (from GRIDSETTLE_EXPORT_TIMEOUT): "10m\x00" is not a duration from 10s to 24h`},
		{devGroups, nil, []string{"--components", "ingest,bridge"}, "--components bridge: needs --mqtt-broker"},
		{devGroups, nil, []string{"--mqtt-broker", "localhost:1883"}, `--mqtt-broker: "localhost:1883" is not a URL with host and port…`},
		{devGroups, nil, []string{"--mqtt-broker", "http://h:1883"}, `--mqtt-broker: "http://h:1883": scheme "http" is not tcp, ssl, ws or wss`},
		{devGroups, nil, []string{"--mqtt-broker", "tcp://h"}, `--mqtt-broker: "tcp://h" is not a URL with host and port…`},
		{devGroups, nil, []string{"--mqtt-broker", "tcp://h:1883", "--mqtt-tls-ca", "config_test.go"},
			"--mqtt-tls-ca: given without a TLS --mqtt-broker (ssl:// or wss://)"},
		{devGroups, nil, []string{"--mqtt-client-id", "bridge one"}, `--mqtt-client-id: "bridge one" is not 1-64 characters…`},
		{devGroups, nil, []string{"--mqtt-client-id", strings.Repeat("b", 65)}, `--mqtt-client-id: "bbb…`},
		{devGroups, nil, []string{"--mqtt-username", "u\x00"}, "--mqtt-username: not UTF-8 of at most 65535 bytes without NUL"},
		{devGroups, nil, []string{"--mqtt-password", "\xff"}, "--mqtt-password: not UTF-8 of at most 65535 bytes without NUL"},
		{devGroups, nil, []string{"--mqtt-password", "secret"}, "--mqtt-password: given without --mqtt-username"},
		{devGroups, nil, []string{"--mqtt-reads-topic", "a/#/b"}, `--mqtt-reads-topic: "a/#/b": '#' only as the whole last level`},
		{devGroups, map[string]string{"GRIDSETTLE_MQTT_PRICES_TOPIC": ""}, nil, "--mqtt-prices-topic (from GRIDSETTLE_MQTT_PRICES_TOPIC): 0 bytes…"},
		{devGroups, nil, []string{"--batch-records", "0"}, `--batch-records: "0" is not a whole number from 1 to 100000`},
		{devGroups, nil, []string{"--batch-records", "9999999999999999999"}, `--batch-records: "9999999999999999999" is not a whole number…`},
		{devGroups, nil, []string{"--batch-interval", "2h"}, `--batch-interval: "2h" is not a duration from 1ms to 1m`},
		{devGroups, nil, []string{"--batch-idle", "0s"}, `--batch-idle: "0s" is not a duration from 1ms to 1m`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parse(t, tt.groups, tt.env, tt.args...)
			if err == nil {
				t.Fatalf("accepted; want %q", tt.want)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("got %q\nwant %q…", err, prefix)
				}
			} else if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestConfigEstimation(t *testing.T) {
	c, err := parse(t, devGroups, map[string]string{"GRIDSETTLE_ESTIMATION": "none", "GRIDSETTLE_ESTIMATION_MAX_LINEAR": "PT2H"})
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Market.Estimation; !e.Off || e.MaxLinearGap() != 2*time.Hour {
		t.Errorf("from the environment: %+v", e)
	}
	c, err = parse(t, devGroups, map[string]string{"GRIDSETTLE_ESTIMATION": "none"},
		"--estimation", "standard", "--estimation-max-linear", "PT30M")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Market.Estimation; e.Off || e.MaxLinearGap() != 30*time.Minute {
		t.Errorf("flags must beat the environment: %+v", e)
	}
	c, err = parse(t, devGroups, nil, "--estimation-max-linear", "P7D")
	if err != nil || c.Market.Estimation.MaxLinearGap() != settlement.MaxLinearLimit {
		t.Errorf("P7D: %v %+v", err, c.Market.Estimation)
	}
}

func TestRunLagsSubset(t *testing.T) {
	c, err := parse(t, devGroups, map[string]string{"GRIDSETTLE_RUN_LAGS": "initial=P1D"}, "--run-lags", "true-up=P90D, initial=PT36H")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := settlement.ParseSchedule("true-up=P90D,initial=PT36H")
	if !slices.Equal(c.Schedule, want) {
		t.Errorf("run lags %v, want %v", c.Schedule, want)
	}
}

func TestEnvNames(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range flagDefs {
		e := envName(d.name)
		if seen[e] {
			t.Errorf("two flags read %s", e)
		}
		seen[e] = true
	}
	if got := envName("price-spike-threshold"); got != "GRIDSETTLE_PRICE_SPIKE_THRESHOLD" {
		t.Errorf("envName: %s", got)
	}
}

// The market the config builds must give the contract's DST day.
func TestConfigMarketDST(t *testing.T) {
	c, err := parse(t, devGroups, nil)
	if err != nil {
		t.Fatal(err)
	}
	day := c.Market.DayOf(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	if n := len(c.Market.Intervals(day)); n != 100 {
		t.Errorf("2026-11-01 in America/Chicago has %d intervals, want 100", n)
	}
}

// The configuration table of this package's README.md lists exactly the
// flags there are, each with its variable, its default and the commands that
// have it.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for line := range strings.SplitSeq(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, "|")
		name := strings.Trim(strings.TrimSpace(cells[1]), "`-")
		rows[name] = cells
	}
	commands := commandsByFlag(t)
	for _, d := range flagDefs {
		cells, ok := rows[d.name]
		if !ok {
			t.Errorf("README: no row for --%s", d.name)
			continue
		}
		delete(rows, d.name)
		if env := strings.TrimSpace(cells[2]); env != "`"+envName(d.name)+"`" {
			t.Errorf("README: --%s reads %s, want %s", d.name, env, envName(d.name))
		}
		if def := strings.TrimSpace(cells[3]); d.def != "" && def != "`"+d.def+"`" {
			t.Errorf("README: --%s defaults to %s, want `%s`", d.name, def, d.def)
		}
		var documented []string
		for c := range strings.SplitSeq(cells[4], ",") {
			documented = append(documented, strings.TrimSuffix(strings.TrimSpace(c), " (required)"))
		}
		slices.Sort(documented)
		if got := strings.Join(documented, ", "); got != commands[d.name] {
			t.Errorf("README: --%s is for %s; the commands that have it are %s", d.name, got, commands[d.name])
		}
	}
	for name := range rows {
		t.Errorf("README documents --%s, which no command has", name)
	}
}

// commandsByFlag maps each flag to the sorted top-level commands that have
// it ("all" when every one does).
func commandsByFlag(t *testing.T) map[string]string {
	t.Helper()
	root := (&Main{}).root()
	sets := map[string]map[string]bool{}
	var walk func(c *cobra.Command, top string)
	walk = func(c *cobra.Command, top string) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sets[f.Name] == nil {
				sets[f.Name] = map[string]bool{}
			}
			sets[f.Name][top] = true
		})
		for _, sub := range c.Commands() {
			walk(sub, top)
		}
	}
	var tops []string
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "version" {
			continue // no flags
		}
		tops = append(tops, c.Name())
		walk(c, c.Name())
	}
	out := map[string]string{}
	for name, set := range sets {
		if len(set) == len(tops) {
			out[name] = "all"
			continue
		}
		out[name] = strings.Join(slices.Sorted(maps.Keys(set)), ", ")
	}
	return out
}

func TestConfigAPIStatementTimeoutAndTokenFile(t *testing.T) {
	c, err := parse(t, devGroups, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIStatementTimeout != 30*time.Second || c.AdminToken != "" {
		t.Errorf("defaults: statement timeout %v, admin token %q", c.APIStatementTimeout, c.AdminToken)
	}
	c, err = parse(t, devGroups, map[string]string{"GRIDSETTLE_API_STATEMENT_TIMEOUT": "2m"})
	if err != nil || c.APIStatementTimeout != 2*time.Minute {
		t.Errorf("from env: %v %v", c.APIStatementTimeout, err)
	}
	file := filepath.Join(t.TempDir(), "token")
	secret := strings.Repeat("s3cr3t-", 6)
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = parse(t, devGroups, nil, "--admin-token-file", file)
	if err != nil || c.AdminToken != secret {
		t.Errorf("admin token from file: %q %v", c.AdminToken, err)
	}
}

// serve takes an admin token of at least 32 characters, or none; it never
// makes one up.
func TestServeAdminTokenRule(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	serve := func(token string) Config {
		return Config{AdminToken: token, Components: []string{"api"}}
	}
	err := checkServeAdminToken(serve(strings.Repeat("x", 31)), log)
	if err == nil || !strings.Contains(err.Error(), "--admin-token") || !strings.Contains(err.Error(), "32") {
		t.Errorf("31 characters: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), strings.Repeat("x", 31)) {
		t.Errorf("the error shows the secret: %v", err)
	}
	if err := checkServeAdminToken(serve(strings.Repeat("x", 32)), log); err != nil {
		t.Errorf("32 characters: %v", err)
	}
	if err := checkServeAdminToken(serve(""), log); err != nil || !strings.Contains(logs.String(), "stored tokens only") {
		t.Errorf("no token: %v; log %s", err, logs.String())
	}
	if got := newAdminToken(); len(got) < minServeAdminToken {
		t.Errorf("generated admin token %q is shorter than serve accepts", got)
	}
}

// A schedule naming its zone is accepted (it used to panic at start).
func TestExportScheduleWithZone(t *testing.T) {
	for _, v := range []string{"CRON_TZ=America/Chicago 0 6 * * *", "TZ=UTC @hourly", "@every 1h", "0 6 * * *", "0 6 29 2 *"} {
		c, err := parse(t, devGroups, nil, "--export-schedule", v)
		if err != nil || c.ExportSchedule != v {
			t.Errorf("%q: %v, schedule %q", v, err, c.ExportSchedule)
		}
	}
}

// The bridge's flags reach its config, with the defaults of meters/README.md
// "Edge ingest: the MQTT bridge".
func TestConfigBridge(t *testing.T) {
	c, err := parse(t, devGroups, map[string]string{"GRIDSETTLE_MQTT_PASSWORD": "pw"}, "--components", "ingest,bridge",
		"--mqtt-broker", "ssl://mqtt.example:8883", "--mqtt-tls-ca", "config_test.go", "--mqtt-username", "u")
	if err != nil {
		t.Fatal(err)
	}
	want := bridge.Config{Broker: "ssl://mqtt.example:8883", ClientID: "gridsettle-bridge", Username: "u", Password: "pw",
		TLSCAFile: "config_test.go", ReadsFilter: "gridsettle/reads/#", PricesFilter: "gridsettle/prices/#",
		BatchRecords: 1000, BatchInterval: 200 * time.Millisecond, BatchIdle: 5 * time.Millisecond}
	if !reflect.DeepEqual(c.Bridge, want) || !slices.Equal(c.Components, []string{"ingest", "bridge"}) {
		t.Errorf("bridge config %+v, components %v", c.Bridge, c.Components)
	}
}

// Every flag names the variable it reads in its help: shared flags
// GRIDSETTLE_<NAME>, a command's own flags GRIDSETTLE_<COMMAND>_<NAME>, so
// that a generic name (GRIDSETTLE_VERSION) changes no command's own flag.
func TestFlagHelpNamesItsVariable(t *testing.T) {
	n := 0
	visitFlags(func(c *cobra.Command, f *pflag.Flag, shared bool) {
		want := localEnvName(c, f.Name)
		if shared {
			want = envName(f.Name)
		} else {
			n++
		}
		if !strings.Contains(f.Usage, "env "+want+")") {
			t.Errorf("%s --%s: help %q does not name %s", c.CommandPath(), f.Name, f.Usage, want)
		}
	})
	if n < 20 {
		t.Errorf("only %d command-local flags seen", n)
	}
	imp := &cobra.Command{Use: "import"}
	nem := &cobra.Command{Use: "nem12 FILE..."}
	(&cobra.Command{Use: "gridsettle"}).AddCommand(imp)
	imp.AddCommand(nem)
	if got := localEnvName(nem, "version"); got != "GRIDSETTLE_IMPORT_VERSION" {
		t.Errorf("import nem12 --version reads %s", got)
	}
}

func TestLogFormat(t *testing.T) {
	c, err := parse(t, devGroups, nil)
	if err != nil || c.LogFormat != "text" {
		t.Fatalf("default: %q %v", c.LogFormat, err)
	}
	if _, err := parse(t, devGroups, map[string]string{"GRIDSETTLE_LOG_FORMAT": "xml"}); err == nil ||
		err.Error() != `--log-format (from GRIDSETTLE_LOG_FORMAT): "xml" is not json or text` {
		t.Errorf("bad format: %v", err)
	}
	var buf bytes.Buffer
	c.LogFormat = "json"
	newLogger(&buf, c).Info("hello", "n", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "hello" || rec["level"] != "INFO" {
		t.Errorf("json log line %q: %v", buf.String(), err)
	}
	// serve defaults to JSON; the environment and the command line still win.
	serve := func(env map[string]string, args ...string) string {
		t.Helper()
		m := &Main{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		c, _, err := m.root().Find([]string{"serve"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(c.Flags(), m.LookupEnv)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.LogFormat
	}
	if got := serve(nil); got != "json" {
		t.Errorf("serve logs %s by default", got)
	}
	if got := serve(map[string]string{"GRIDSETTLE_LOG_FORMAT": "text"}); got != "text" {
		t.Errorf("serve with GRIDSETTLE_LOG_FORMAT=text logs %s", got)
	}
	if got := serve(map[string]string{"GRIDSETTLE_LOG_FORMAT": "json"}, "--log-format", "text"); got != "text" {
		t.Errorf("serve --log-format text logs %s", got)
	}
}

// The table of commands' own flags in this package's README.md lists exactly
// the flags each top-level command has of its own.
func TestREADMELocalFlagTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{}
	flag := regexp.MustCompile("`--([a-z-]+)`")
	for line := range strings.SplitSeq(string(readme), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || !strings.Contains(cells[3], "`GRIDSETTLE_") || !strings.Contains(cells[3], "_<NAME>`") {
			continue
		}
		cmd := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if want := "`" + envName(cmd) + "_<NAME>`"; strings.TrimSpace(cells[3]) != want {
			t.Errorf("README: %s's flags read %s, want %s", cmd, strings.TrimSpace(cells[3]), want)
		}
		for _, m := range flag.FindAllStringSubmatch(cells[2], -1) {
			documented[cmd] = append(documented[cmd], m[1])
		}
		slices.Sort(documented[cmd])
	}
	actual := map[string][]string{}
	visitFlags(func(c *cobra.Command, f *pflag.Flag, shared bool) {
		top := strings.Fields(c.CommandPath())[1]
		if !shared && !slices.Contains(actual[top], f.Name) {
			actual[top] = append(actual[top], f.Name)
			slices.Sort(actual[top])
		}
	})
	for cmd := range maps.Keys(actual) {
		if !slices.Equal(actual[cmd], documented[cmd]) {
			t.Errorf("README: %s's own flags are %v, the code's %v", cmd, documented[cmd], actual[cmd])
		}
	}
	for cmd := range maps.Keys(documented) {
		if actual[cmd] == nil {
			t.Errorf("README: %s has no flags of its own", cmd)
		}
	}
}

// visitFlags calls fn with every visible flag of every visible command, and
// whether it is a shared flag (of flagDefs) or the command's own.
func visitFlags(fn func(c *cobra.Command, f *pflag.Flag, shared bool)) {
	usage := map[string]string{}
	for _, d := range flagDefs {
		usage[d.name] = d.usage
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Hidden {
				return
			}
			u, ok := usage[f.Name]
			fn(c, f, ok && strings.HasPrefix(f.Usage, u)) // bench has a --partitions of its own
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk((&Main{LookupEnv: os.LookupEnv}).root())
}

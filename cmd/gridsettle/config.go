package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// Config is every setting of every command, parsed from flags and
// GRIDSETTLE_* environment variables and validated before anything connects.
// Each command binds only the flag groups it uses; fields of other groups keep
// their zero value.
type Config struct {
	LogLevel  slog.Level
	LogFormat string // "json" or "text"

	DataDir     string // layout: kafka/, postgres/, exports/, keys/
	DatabaseURL string // empty: the private cluster under DataDir/postgres
	RuntimeRole string // migrate: the role granted what the components need (least privilege)

	KafkaAddr  string       // the embedded broker's loopback listen address (broker, dev)
	Kafka      kafka.Config // how components reach Kafka: --kafka-addr for dev, --kafka-brokers etc. for serve
	Partitions int32        // partitions of each topic created when missing

	HTTPAddr   string
	AdminToken string // --admin-token or the content of --admin-token-file; empty: dev and demo generate one, serve has none
	TLSCert    string // both or neither
	TLSKey     string
	// APIStatementTimeout bounds every statement of the API's own pool.
	APIStatementTimeout time.Duration

	ExportDir         string // default DataDir/exports
	SigningKey        string // default DataDir/keys/export-signing.pem
	ExportRunTypes    []settlement.RunType
	ExportSchedule    string // cron in the market's zone unless it names CRON_TZ; empty: export each run as it completes
	ExportCompression parquet.Codec
	// ExportTimeout bounds each export attempt: a folder that does not
	// answer within it is given up on, counted and tried again later.
	ExportTimeout time.Duration

	Market   settlement.Market
	Schedule settlement.Schedule // --run-lags: when scheduled runs fall due
	// IngestBounds are --ingest-max-future and --ingest-max-future-prices
	// (start_out_of_range); Now is left nil: the wall clock.
	IngestBounds meters.Bounds

	Components  []string // in start order; a subset of componentNames
	Environment string   // names this deployment in Kafka transactional ids
	// IngestSessionTimeout is how long the ingest group waits for a silent
	// member before giving its partitions to the others.
	IngestSessionTimeout time.Duration
	// PublishLeaseTimeout is how long a silent (dead or frozen) relay keeps
	// its output streams' leases.
	PublishLeaseTimeout time.Duration

	// Bridge is the MQTT bridge's broker, session and batch limits
	// (meters/README.md "Edge ingest: the MQTT bridge"); its Kafka and Topics
	// are the command's.
	Bridge bridge.Config
}

// componentNames are the components of api/README.md in start order; shutdown
// runs in reverse, so the API stops taking requests before anything behind it,
// and the bridge stops taking field input before ingest stops.
var componentNames = []string{"ingest", "publish", "scheduler", "bridge", "api"}

// defaultComponents run unless --components says otherwise: the bridge
// needs an MQTT broker, so it runs only when named.
var defaultComponents = []string{"ingest", "publish", "scheduler", "api"}

// flagGroup selects the flags a command binds.
type flagGroup uint

const (
	groupLog        flagGroup = 1 << iota // --log-level, --log-format
	groupDataDir                          // --data-dir
	groupDatabase                         // --database-url
	groupRoles                            // --runtime-role (migrate)
	groupEmbedded                         // --kafka-addr
	groupKafka                            // --kafka-brokers and Kafka security
	groupTopics                           // --partitions
	groupHTTP                             // --admin-token, API TLS, API statement timeout
	groupListen                           // --http-addr
	groupExports                          // --export-dir and what is exported when
	groupSigning                          // --signing-key
	groupMarket                           // the market: time zone, currency, interval, spike threshold
	groupSettlement                       // run lags
	groupIngest                           // ingest bounds: --ingest-max-future, --ingest-max-future-prices
	groupComponents                       // --components
	groupMQTT                             // the MQTT bridge: broker, session, topics, batch limits
	groupEstimation                       // how runs estimate missing reads
)

// flagDef is one flag: its name is also its environment variable
// (GRIDSETTLE_ + upper case, '-' → '_'), and set parses a value into c,
// returning an error that does not repeat the flag name.
type flagDef struct {
	name   string
	def    string
	isBool bool
	group  flagGroup
	usage  string
	set    func(c *Config, v string) error
}

var flagDefs = []flagDef{
	{name: "log-level", def: "info", group: groupLog,
		usage: "log `level`: debug, info, warn or error",
		set: func(c *Config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("%q is not debug, info, warn or error", v)
			}
			return nil
		}},
	{name: "log-format", def: "text", group: groupLog,
		usage: "log `format`: json (one object a line, for log collectors; serve's default) or text",
		set: func(c *Config, v string) error {
			if v != "json" && v != "text" {
				return fmt.Errorf("%q is not json or text", v)
			}
			c.LogFormat = v
			return nil
		}},
	{name: "data-dir", def: "./gridsettle-data", group: groupDataDir,
		usage: "`dir` holding kafka/ (embedded broker), postgres/ (private cluster), exports/ and keys/",
		set: func(c *Config, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			c.DataDir = v
			return nil
		}},
	{name: "database-url", group: groupDatabase,
		usage: "PostgreSQL `url` (default: a private cluster under <data-dir>/postgres, started with the machine's initdb/pg_ctl)",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, err := pgx.ParseConfig(v); err != nil {
					return errors.New("not a PostgreSQL connection URL or DSN")
				}
			}
			c.DatabaseURL = v
			return nil
		}},
	{name: "runtime-role", group: groupRoles,
		usage: "existing PostgreSQL `role` the components connect as: granted reads and writes but only inserts into the journal and audit log (default: no grants)",
		set: func(c *Config, v string) error {
			if v != "" && !rolePattern.MatchString(v) {
				return fmt.Errorf("%q is not a role name of 1-63 characters of a-z A-Z 0-9 _ -", v)
			}
			c.RuntimeRole = v
			return nil
		}},
	{name: "kafka-addr", def: "127.0.0.1:9092", group: groupEmbedded,
		usage: "loopback `host:port` the embedded Kafka broker listens on",
		set: func(c *Config, v string) error {
			if err := checkLoopback(v); err != nil {
				return err
			}
			c.KafkaAddr = v
			return nil
		}},
	{name: "kafka-brokers", group: groupKafka,
		usage: "comma-separated `host:port` list of the Kafka cluster's bootstrap brokers",
		set: func(c *Config, v string) error {
			c.Kafka.Brokers = nil
			for b := range strings.SplitSeq(v, ",") {
				if b = strings.TrimSpace(b); b == "" {
					continue
				}
				if _, _, err := net.SplitHostPort(b); err != nil {
					return fmt.Errorf("%q is not host:port", b)
				}
				c.Kafka.Brokers = append(c.Kafka.Brokers, b)
			}
			return nil
		}},
	{name: "kafka-sasl-mechanism", group: groupKafka,
		usage: "SASL `mechanism`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL)",
		set:   func(c *Config, v string) error { c.Kafka.SASLMechanism = v; return nil }},
	{name: "kafka-sasl-user", group: groupKafka,
		usage: "SASL `user`",
		set:   func(c *Config, v string) error { c.Kafka.SASLUser = v; return nil }},
	{name: "kafka-sasl-password", group: groupKafka,
		usage: "SASL `password`",
		set:   func(c *Config, v string) error { c.Kafka.SASLPassword = v; return nil }},
	{name: "kafka-tls", def: "false", isBool: true, group: groupKafka,
		usage: "connect to Kafka with TLS",
		set: func(c *Config, v string) (err error) {
			c.Kafka.TLS, err = strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			return nil
		}},
	{name: "kafka-tls-ca", group: groupKafka,
		usage: "PEM `file` of the CAs that sign the brokers' certificates (default: the system's)",
		set:   func(c *Config, v string) error { c.Kafka.TLSCAFile = v; return checkReadable(v) }},
	{name: "partitions", def: "8", group: groupTopics,
		usage: "`number` of partitions of each topic created when missing",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 || n > 10000 {
				return fmt.Errorf("%q is not a whole number from 1 to 10000", v)
			}
			c.Partitions = int32(n)
			return nil
		}},
	{name: "http-addr", def: "127.0.0.1:8080", group: groupListen,
		usage: "`host:port` the HTTP API listens on (bridge mqtt: its /metrics, /healthz and /readyz)",
		set: func(c *Config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q is not host:port", v)
			}
			c.HTTPAddr = v
			return nil
		}},
	{name: "admin-token", group: groupHTTP,
		usage: "`token` with the admin role, at least 32 characters in serve (default: dev and demo generate and print one; serve has none, use stored tokens from `gridsettle token create`)",
		set:   func(c *Config, v string) error { c.AdminToken = v; return nil }},
	{name: "admin-token-file", group: groupHTTP,
		usage: "`file` holding the admin token, instead of --admin-token (a trailing newline is ignored)",
		set: func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			if c.AdminToken != "" {
				return errors.New("give --admin-token or --admin-token-file, not both")
			}
			b, err := os.ReadFile(v)
			if err != nil {
				return fmt.Errorf("read the admin token: %w", err)
			}
			c.AdminToken = strings.TrimRight(string(b), "\r\n")
			if c.AdminToken == "" {
				return fmt.Errorf("%s is empty", v)
			}
			return nil
		}},
	{name: "api-statement-timeout", def: "30s", group: groupHTTP,
		usage: "longest a `duration` any database statement of an API request may run (the API has its own connection pool)",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return fmt.Errorf("%q is not a duration of at least 1s (e.g. 30s, 2m)", v)
			}
			c.APIStatementTimeout = d
			return nil
		}},
	{name: "tls-cert", group: groupHTTP,
		usage: "PEM certificate `file` for the API (with --tls-key; default: plain HTTP)",
		set:   func(c *Config, v string) error { c.TLSCert = v; return checkReadable(v) }},
	{name: "tls-key", group: groupHTTP,
		usage: "PEM private key `file` for the API (with --tls-cert)",
		set:   func(c *Config, v string) error { c.TLSKey = v; return checkReadable(v) }},
	{name: "export-dir", group: groupExports,
		usage: "`dir` for regulatory exports, shared by every instance (default <data-dir>/exports)",
		set:   func(c *Config, v string) error { c.ExportDir = v; return nil }},
	{name: "signing-key", group: groupSigning,
		usage: "ed25519 PEM `file` that signs export manifests, shared by every instance (default <data-dir>/keys/export-signing.pem)",
		set:   func(c *Config, v string) error { c.SigningKey = v; return nil }},
	{name: "export-run-types", def: "initial,final,true-up,resettlement", group: groupExports,
		usage: "comma-separated run `types` exported automatically when they complete (empty: none)",
		set: func(c *Config, v string) error {
			c.ExportRunTypes = []settlement.RunType{}
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t == "" {
					continue
				}
				rt, err := settlement.ParseRunType(t)
				if err != nil {
					return err
				}
				c.ExportRunTypes = append(c.ExportRunTypes, rt)
			}
			return nil
		}},
	{name: "export-schedule", group: groupExports,
		usage: "cron `expression` (5 fields or @hourly, @every 1h…) that batches exports, in the market time zone unless it starts with CRON_TZ=ZONE (default: each run's export is written as it completes)",
		set: func(c *Config, v string) error {
			// The syntax, and that it fires at all: neither depends on the
			// zone it fires in (a cron field names wall-clock times, which
			// every zone has), so UTC stands in for the market's zone,
			// which may not be parsed yet; the exporter checks again in it.
			if _, err := exportpg.ParseSchedule(v, time.UTC); v != "" && err != nil {
				return fmt.Errorf("%q: %w", v, err)
			}
			c.ExportSchedule = v
			return nil
		}},
	{name: "export-compression", def: "zstd", group: groupExports,
		usage: "Parquet `codec` of exports: zstd or snappy",
		set: func(c *Config, v string) (err error) {
			c.ExportCompression, err = parquet.ParseCodec(v)
			return err
		}},
	{name: "export-timeout", def: "10m", group: groupExports,
		usage: "longest `duration` an export attempt may take (10s to 24h); a slower or hung --export-dir is given up on, counted and tried again later",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 10*time.Second || d > 24*time.Hour {
				return fmt.Errorf("%q is not a duration from 10s to 24h", v)
			}
			c.ExportTimeout = d
			return nil
		}},
	{name: "market-timezone", def: "America/Chicago", group: groupMarket,
		usage: "IANA time `zone` of the market's operating days",
		set: func(c *Config, v string) error {
			loc, err := time.LoadLocation(v)
			if err != nil || v == "" || v == "Local" {
				return fmt.Errorf("%q is not an IANA time zone such as America/Chicago", v)
			}
			c.Market.Location = loc
			return nil
		}},
	{name: "market-currency", def: "USD", group: groupMarket,
		usage: "ISO 4217 `code` of the market's currency",
		set: func(c *Config, v string) error {
			if !currencyPattern.MatchString(v) {
				return fmt.Errorf("%q is not an ISO 4217 code such as USD", v)
			}
			c.Market.Currency = v
			return nil
		}},
	{name: "settlement-interval", def: "900", group: groupMarket,
		usage: "settlement interval length in `seconds`: 300, 900, 1800 or 3600",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || !slices.Contains([]int{300, 900, 1800, 3600}, n) {
				return fmt.Errorf("%s is not one of 300, 900, 1800, 3600", v)
			}
			c.Market.IntervalSeconds = n
			return nil
		}},
	{name: "price-spike-threshold", def: "1000", group: groupMarket,
		usage: "RT price per MWh (a `decimal`) at or above which price_spike alerts fire",
		set: func(c *Config, v string) error {
			d, err := meters.ParseDecimal(v, meters.MaxDecimals)
			switch {
			case errors.Is(err, meters.ErrTooManyDecimals):
				return fmt.Errorf("%s has more than %d decimal places", v, meters.MaxDecimals)
			case err != nil:
				return fmt.Errorf("%q is not a plain decimal such as 1000 or 999.5", v)
			}
			c.Market.PriceSpikeThreshold = d
			return nil
		}},
	{name: "ingest-max-future", def: "PT15M", group: groupIngest,
		usage: "ISO 8601 `duration` past now by which a read's last interval must have ended (start_out_of_range)",
		set: func(c *Config, v string) (err error) {
			c.IngestBounds.MaxFuture, err = parseBound(v)
			return err
		}},
	{name: "ingest-max-future-prices", def: "P7D", group: groupIngest,
		usage: "ISO 8601 `duration` past now before which a price must start (start_out_of_range)",
		set: func(c *Config, v string) (err error) {
			c.IngestBounds.MaxFuturePrices, err = parseBound(v)
			return err
		}},
	{name: "run-lags", def: "initial=P5D,final=P55D,true-up=P180D", group: groupSettlement,
		usage: "when scheduled runs fall due after the operating day ends: `type=duration,...` (ISO 8601, e.g. P5D); a type left out is never scheduled",
		set: func(c *Config, v string) (err error) {
			c.Schedule, err = settlement.ParseSchedule(v)
			return err
		}},
	{name: "estimation", def: "standard", group: groupEstimation,
		usage: "how runs estimate missing reads: `mode` standard (LIN, like day, zero) or none (missing intervals contribute nothing)",
		set: func(c *Config, v string) error {
			switch v {
			case "standard", "none":
				c.Market.Estimation.Off = v == "none"
				return nil
			}
			return fmt.Errorf("%q is not standard or none", v)
		}},
	{name: "estimation-max-linear", def: "PT1H", group: groupEstimation,
		usage: "longest gap (an ISO 8601 `duration`, PT1S to P7D) runs estimate by linear interpolation",
		set: func(c *Config, v string) error {
			d, err := parseBound(v)
			if err != nil || d > settlement.MaxLinearLimit {
				return fmt.Errorf("%q is not an ISO 8601 duration from PT1S to P7D (e.g. PT1H, PT30M)", v)
			}
			c.Market.Estimation.MaxLinear = d
			return nil
		}},
	{name: "environment", def: "dev", group: groupComponents | groupMQTT,
		usage: "`name` of this deployment, part of every Kafka transactional id (instances of one deployment share it; two deployments on one cluster must not) and of the CloudEvents source gridsettle/{name}",
		set: func(c *Config, v string) error {
			if !meters.ValidIdentifier(v) {
				return fmt.Errorf("%q is not 1-64 characters of A-Z a-z 0-9 . _ : -", v)
			}
			c.Environment = v
			return nil
		}},
	{name: "ingest-session-timeout", def: "45s", group: groupComponents,
		usage: "`duration` after which the ingest group gives a silent (dead or frozen) instance's partitions to the others: 6s to 5m",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 6*time.Second || d > 5*time.Minute {
				return fmt.Errorf("%q is not a duration from 6s to 5m", v)
			}
			c.IngestSessionTimeout = d
			return nil
		}},
	{name: "publish-lease-timeout", def: "5s", group: groupComponents,
		usage: "`duration` after which a silent (dead or frozen) relay instance loses its output streams' leases to the others: 1s to 5m",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 5*time.Minute {
				return fmt.Errorf("%q is not a duration from 1s to 5m", v)
			}
			c.PublishLeaseTimeout = d
			return nil
		}},
	{name: "components", def: strings.Join(defaultComponents, ","), group: groupComponents,
		usage: "comma-separated `list` of components to run: ingest, publish, scheduler, bridge (needs --mqtt-broker), api",
		set: func(c *Config, v string) (err error) {
			c.Components, err = parseComponents(v)
			return err
		}},
	{name: "mqtt-broker", group: groupMQTT,
		usage: "MQTT broker `url` the bridge subscribes to: tcp://host:1883, ssl://host:8883, ws://host/mqtt or wss://…",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, err := bridge.ParseBroker(v); err != nil {
					return err
				}
			}
			c.Bridge.Broker = v
			return nil
		}},
	{name: "mqtt-client-id", def: "gridsettle-bridge", group: groupMQTT,
		usage: "stable MQTT client `id` of the bridge: the broker keeps its persistent session, and it names the Kafka transactional id (one per bridge instance)",
		set: func(c *Config, v string) error {
			if !meters.ValidIdentifier(v) {
				return fmt.Errorf("%q is not 1-64 characters of A-Z a-z 0-9 . _ : -", v)
			}
			c.Bridge.ClientID = v
			return nil
		}},
	{name: "mqtt-username", group: groupMQTT,
		usage: "MQTT `user` name (default: none)",
		set:   func(c *Config, v string) error { c.Bridge.Username = v; return checkCredential(v) }},
	{name: "mqtt-password", group: groupMQTT,
		usage: "MQTT `password` (with --mqtt-username)",
		set:   func(c *Config, v string) error { c.Bridge.Password = v; return checkCredential(v) }},
	{name: "mqtt-tls-ca", group: groupMQTT,
		usage: "PEM `file` of the CAs that sign the MQTT broker's certificate, for ssl:// and wss:// (default: the system's)",
		set:   func(c *Config, v string) error { c.Bridge.TLSCAFile = v; return checkReadable(v) }},
	{name: "mqtt-reads-topic", def: bridge.DefaultReadsFilter, group: groupMQTT,
		usage: "MQTT topic `filter` of interval-read records (to ami.interval-reads)",
		set:   func(c *Config, v string) error { c.Bridge.ReadsFilter = v; return bridge.ValidFilter(v) }},
	{name: "mqtt-prices-topic", def: bridge.DefaultPricesFilter, group: groupMQTT,
		usage: "MQTT topic `filter` of price records (to market.prices)",
		set:   func(c *Config, v string) error { c.Bridge.PricesFilter = v; return bridge.ValidFilter(v) }},
	{name: "batch-records", def: strconv.Itoa(bridge.DefaultBatchRecords), group: groupMQTT,
		usage: "most MQTT messages in one Kafka transaction of the bridge (`number` from 1 to 100000; the broker's in-flight limit must be at least this)",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100_000 {
				return fmt.Errorf("%q is not a whole number from 1 to 100000", v)
			}
			c.Bridge.BatchRecords = n
			return nil
		}},
	{name: "batch-interval", def: bridge.DefaultBatchInterval.String(), group: groupMQTT,
		usage: "longest `duration` a bridge batch stays open after its first message: 1ms to 1m",
		set: func(c *Config, v string) (err error) {
			c.Bridge.BatchInterval, err = parseBatchDuration(v)
			return err
		}},
	{name: "batch-idle", def: bridge.DefaultBatchIdle.String(), group: groupMQTT,
		usage: "a bridge batch closes when no message arrived for this `duration`: 1ms to 1m",
		set: func(c *Config, v string) (err error) {
			c.Bridge.BatchIdle, err = parseBatchDuration(v)
			return err
		}},
}

var (
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	rolePattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)
)

// checkCredential refuses what no MQTT CONNECT can carry.
func checkCredential(v string) error {
	if len(v) > 65535 || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return errors.New("not UTF-8 of at most 65535 bytes without NUL")
	}
	return nil
}

func parseBatchDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Millisecond || d > time.Minute {
		return 0, fmt.Errorf("%q is not a duration from 1ms to 1m", v)
	}
	return d, nil
}

// parseBound parses an ingest bound: a positive ISO 8601 duration of at
// most a year.
func parseBound(v string) (time.Duration, error) {
	l, err := settlement.ParseLag(v)
	// Years and months have no fixed length; a bound must.
	d := time.Duration(l.Days)*24*time.Hour + l.Clock
	if err != nil || l.Years != 0 || l.Months != 0 || d <= 0 || d > 366*24*time.Hour {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration from PT1S to P366D (e.g. PT15M, P7D)", v)
	}
	return d, nil
}

// envName is the environment variable that also sets flag.
func envName(flag string) string {
	return "GRIDSETTLE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindFlags adds the flags of groups to fs.
func bindFlags(fs *pflag.FlagSet, groups flagGroup) {
	for _, d := range flagDefs {
		if d.group&groups == 0 {
			continue
		}
		usage := fmt.Sprintf("%s (env %s)", d.usage, envName(d.name))
		if d.isBool {
			fs.Bool(d.name, d.def == "true", usage)
		} else {
			fs.String(d.name, d.def, usage)
		}
	}
}

// flagError names the flag, and the environment variable when the value
// came from there, so the user knows which setting to fix.
func flagError(name, env string, err error) error {
	if env != "" {
		return fmt.Errorf("--%s (from %s): %w", name, env, err)
	}
	return fmt.Errorf("--%s: %w", name, err)
}

// loadConfig builds the Config of the flags bound in fs: a flag given on the
// command line wins over its environment variable, which wins over the
// default. lookupEnv is os.LookupEnv in production.
func loadConfig(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (Config, error) {
	var c Config
	var groups flagGroup
	for _, d := range flagDefs {
		f := fs.Lookup(d.name)
		if f == nil {
			continue
		}
		groups |= d.group
		var fromEnv string
		if !f.Changed {
			if v, ok := lookupEnv(envName(d.name)); ok {
				if err := fs.Set(d.name, v); err != nil {
					return Config{}, flagError(d.name, envName(d.name), fmt.Errorf("%q: %w", v, err))
				}
				fromEnv = envName(d.name)
			}
		}
		if err := d.set(&c, f.Value.String()); err != nil {
			return Config{}, flagError(d.name, fromEnv, err)
		}
	}
	if err := c.check(groups); err != nil {
		return Config{}, err
	}
	return c, nil
}

// check validates what single flags cannot, and fills defaults that
// depend on other flags.
func (c *Config) check(groups flagGroup) error {
	if groups&groupEmbedded != 0 {
		c.Kafka = kafka.Config{Brokers: []string{c.KafkaAddr}}
	}
	if groups&groupKafka != 0 && len(c.Kafka.Brokers) > 0 {
		if err := c.Kafka.Validate(); err != nil {
			return err
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key: give both or neither")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("--tls-cert and --tls-key: %w", err)
		}
	}
	if groups&groupMQTT != 0 {
		if err := c.checkBridge(groups); err != nil {
			return err
		}
	}
	if groups&groupExports != 0 && c.ExportDir == "" {
		c.ExportDir = filepath.Join(c.DataDir, "exports")
	}
	if groups&groupSigning != 0 {
		if c.SigningKey == "" {
			c.SigningKey = filepath.Join(c.DataDir, "keys", "export-signing.pem")
		}
	}
	return nil
}

// checkBridge: the bridge component needs a broker, and a CA file needs
// a TLS broker.
func (c *Config) checkBridge(groups flagGroup) error {
	if groups&groupComponents != 0 && c.hasComponent("bridge") && c.Bridge.Broker == "" {
		return errors.New("--components bridge: needs --mqtt-broker")
	}
	if secure, _ := bridge.ParseBroker(c.Bridge.Broker); c.Bridge.TLSCAFile != "" && !secure {
		return errors.New("--mqtt-tls-ca: given without a TLS --mqtt-broker (ssl:// or wss://)")
	}
	if c.Bridge.Password != "" && c.Bridge.Username == "" {
		return errors.New("--mqtt-password: given without --mqtt-username")
	}
	return nil
}

// errRequired is the error for a setting a command cannot do without.
func errRequired(flag string) error {
	return fmt.Errorf("--%s (or %s) is required", flag, envName(flag))
}

// hasComponent reports whether name is among the components to run.
func (c *Config) hasComponent(name string) bool { return slices.Contains(c.Components, name) }

func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q needs a port from 1 to 65535 (clients and the child broker must know it)", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address: the embedded broker has no authentication, so it listens only on 127.0.0.1, ::1 or localhost", addr)
	}
	return nil
}

func checkReadable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
}

func parseComponents(v string) ([]string, error) {
	seen := map[string]bool{}
	for name := range strings.SplitSeq(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(componentNames, name) {
			return nil, fmt.Errorf("%q is not one of %s", name, strings.Join(componentNames, ", "))
		}
		seen[name] = true
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("name at least one of %s", strings.Join(componentNames, ", "))
	}
	var out []string
	for _, n := range componentNames {
		if seen[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// applyEnv sets each of names, flags of cmd's own, that the command line did
// not give from its command-local variable (localEnvName): a generic name
// such as GRIDSETTLE_VERSION must not change `import --version` behind the
// user's back.
func applyEnv(cmd *cobra.Command, lookupEnv func(string) (string, bool), names ...string) error {
	fs := cmd.Flags()
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil || f.Changed {
			continue
		}
		env := localEnvName(cmd, name)
		if v, ok := lookupEnv(env); ok {
			if err := fs.Set(name, v); err != nil {
				return flagError(name, env, fmt.Errorf("%q: %w", v, err))
			}
		}
	}
	return nil
}

// localEnvName is the variable of a command-local flag (api/README.md): the
// top-level command's name and the flag's, GRIDSETTLE_IMPORT_VERSION for
// `gridsettle import nem12 --version`. Shared flags read envName.
func localEnvName(cmd *cobra.Command, flag string) string {
	for cmd.HasParent() && cmd.Parent().HasParent() {
		cmd = cmd.Parent()
	}
	return envName(cmd.Name() + "-" + flag)
}

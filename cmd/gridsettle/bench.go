package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgcluster"
	"github.com/gridsettle/gridsettle/migrations/pgserver"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// benchFlags are the flags of `gridsettle bench` besides the log, database
// and market groups; each also reads GRIDSETTLE_BENCH_<NAME>. A flag left at its
// default takes the size of the sub-benchmark that runs: the issue's size
// for a single one, a few minutes' worth on 2 cores for `all`.
var benchFlags = []string{"reads", "meters", "participants", "points", "records", "api-duration", "api-clients",
	"repeat", "seed", "partitions", "cpuprofile", "keep", "ingest-without-alerts", "publish-batch", "messages"}

// benchSizes are the input sizes of one invocation.
type benchSizes struct {
	Reads        int           // ingest: reads produced for each record shape (16 and 96 reads per record)
	Meters       int           // runs: meters (= accounts) with a day of reads
	Participants int           // runs: participants ...
	Points       int           // ... × settlement points = statement lines
	Records      int           // publish: outbox records
	APIDuration  time.Duration // api: how long the clients hammer each route
	APIClients   int
	Messages     int // bridge: MQTT messages through the bridge and each limit
}

// issueSizes are the sizes the issue's targets are stated at.
var issueSizes = benchSizes{Reads: 2_000_000, Meters: 100_000, Participants: 40, Points: 50, Records: 200_000,
	APIDuration: 10 * time.Second, APIClients: 50, Messages: 100_000}

// allSizes fit `bench all` in a few minutes on 2 cores.
var allSizes = benchSizes{Reads: 500_000, Meters: 10_000, Participants: 40, Points: 50, Records: 50_000,
	APIDuration: 5 * time.Second, APIClients: 50, Messages: 100_000}

// benchNames are the sub-benchmarks in the order `all` runs them: export
// and api use the run that runs completed.
var benchNames = []string{"ingest", "publish", "runs", "export", "api"}

// benchAlone are the sub-benchmarks `all` leaves out: bridge needs an MQTT
// broker (Mosquitto).
var benchAlone = []string{"bridge"}

func newBenchCmd(m *Main) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench <ingest|runs|publish|export|api|all|bridge>",
		Short: "Measure the performance figures against their limits, measured in the same run",
		Long: "bench generates a seeded, realistic input for each sub-benchmark, runs gridsettle's real code\n" +
			"path against an in-process kfake broker and a real PostgreSQL (a scratch database on\n" +
			"--database-url, dropped afterwards, or a private cluster under a temporary directory), and\n" +
			"prints one line per figure: the figure, the limit measured in the same run that it is\n" +
			"compared with, their ratio, and the issue's target with PASS or MISS.\n" +
			"Alone, a sub-benchmark runs at the issue's size; `all` runs each at a size that fits a few\n" +
			"minutes on 2 cores. Size flags override both. `bridge` (not part of `all`) runs against\n" +
			"--mqtt-broker, or a Mosquitto it starts when that is not given.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: append(append(slices.Clone(benchNames), benchAlone...), "all"),
	}
	fs := c.Flags()
	bindFlags(fs, groupLog|groupDatabase|groupMarket|groupSettlement|groupIngest|groupMQTT|groupEstimation)
	_ = fs.MarkHidden("run-lags")
	fs.Int("reads", issueSizes.Reads, "ingest: `number` of reads produced and ingested for each record shape, 16 and 96 reads per record; the targets are stated over 10000000 (env GRIDSETTLE_BENCH_READS)")
	fs.Int("meters", issueSizes.Meters, "runs/export/api: `number` of meters (one account each) with a day of reads (env GRIDSETTLE_BENCH_METERS)")
	fs.Int("participants", issueSizes.Participants, "runs/export/api: `number` of participants (env GRIDSETTLE_BENCH_PARTICIPANTS)")
	fs.Int("points", issueSizes.Points, "runs/export/api: `number` of settlement points; participants × points statement lines (env GRIDSETTLE_BENCH_POINTS)")
	fs.Int("records", issueSizes.Records, "publish: `number` of outbox records relayed (env GRIDSETTLE_BENCH_RECORDS)")
	fs.Duration("api-duration", issueSizes.APIDuration, "api: how long the clients load each route (env GRIDSETTLE_BENCH_API_DURATION)")
	fs.Int("api-clients", issueSizes.APIClients, "api: concurrent `clients` on loopback (env GRIDSETTLE_BENCH_API_CLIENTS)")
	fs.Int("repeat", 1, "measure each figure this many `times` and report the median (env GRIDSETTLE_BENCH_REPEAT)")
	fs.Int64("seed", 1, "`seed` of the generated inputs (env GRIDSETTLE_BENCH_SEED)")
	fs.Int32("partitions", 8, "`number` of partitions of each topic (env GRIDSETTLE_BENCH_PARTITIONS)")
	fs.String("cpuprofile", "", "write a CPU profile of the bench process to `file` (env GRIDSETTLE_BENCH_CPUPROFILE)")
	fs.Bool("ingest-without-alerts", false, "diagnostic: ingest without the customer-alerts hook, to show its cost (env GRIDSETTLE_BENCH_INGEST_WITHOUT_ALERTS)")
	fs.Int("publish-batch", 0, "publish: records per Kafka transaction of the relay (default: the relay's own default) (env GRIDSETTLE_BENCH_PUBLISH_BATCH)")
	fs.Int("messages", issueSizes.Messages, "bridge: `number` of MQTT messages through the bridge and through each limit (env GRIDSETTLE_BENCH_MESSAGES)")
	fs.Bool("keep", false, "keep the scratch database (and private cluster) for inspection (env GRIDSETTLE_BENCH_KEEP)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := applyEnv(cmd, m.LookupEnv, benchFlags...); err != nil {
			return err
		}
		cfg, err := loadConfig(fs, m.LookupEnv)
		if err != nil {
			return err
		}
		which := args[0]
		if which != "all" && !slices.Contains(benchNames, which) && !slices.Contains(benchAlone, which) {
			return fmt.Errorf("bench %q: want one of %s, %s or all", which, strings.Join(benchNames, ", "), strings.Join(benchAlone, ", "))
		}
		opts, err := benchOptionsOf(fs, which)
		if err != nil {
			return err
		}
		log := newLogger(m.Stderr, cfg)
		return m.runBench(cmd.Context(), cfg, opts, which, log)
	}
	c.AddCommand(newBenchWorkerCmd(m))
	return c
}

// benchOptions are the parsed bench flags.
type benchOptions struct {
	sizes      benchSizes
	repeat     int
	seed       int64
	partitions int32
	cpuprofile string
	keep       bool
	noAlerts   bool
	pubBatch   int
}

func benchOptionsOf(fs *pflag.FlagSet, which string) (benchOptions, error) {
	o := benchOptions{sizes: issueSizes}
	if which == "all" {
		o.sizes = allSizes
	}
	setInt := func(name string, dst *int, lo int) error {
		if !fs.Changed(name) {
			return nil
		}
		v, _ := fs.GetInt(name)
		if v < lo {
			return fmt.Errorf("--%s: %d is below %d", name, v, lo)
		}
		*dst = v
		return nil
	}
	for _, f := range []struct {
		name string
		dst  *int
		lo   int
	}{
		{"reads", &o.sizes.Reads, 16}, {"meters", &o.sizes.Meters, 1}, {"participants", &o.sizes.Participants, 1},
		{"points", &o.sizes.Points, 1}, {"records", &o.sizes.Records, 1}, {"api-clients", &o.sizes.APIClients, 1},
		{"messages", &o.sizes.Messages, 1},
	} {
		if err := setInt(f.name, f.dst, f.lo); err != nil {
			return o, err
		}
	}
	if fs.Changed("api-duration") {
		o.sizes.APIDuration, _ = fs.GetDuration("api-duration")
	}
	o.repeat, _ = fs.GetInt("repeat")
	o.seed, _ = fs.GetInt64("seed")
	o.partitions, _ = fs.GetInt32("partitions")
	o.cpuprofile, _ = fs.GetString("cpuprofile")
	o.keep, _ = fs.GetBool("keep")
	o.noAlerts, _ = fs.GetBool("ingest-without-alerts")
	o.pubBatch, _ = fs.GetInt("publish-batch")
	switch {
	case o.repeat < 1:
		return o, fmt.Errorf("--repeat: %d is below 1", o.repeat)
	case o.partitions < 1:
		return o, fmt.Errorf("--partitions: %d is below 1", o.partitions)
	case o.sizes.APIDuration <= 0:
		return o, errors.New("--api-duration: must be positive")
	}
	return o, nil
}

// bench is one invocation: the scratch database, the in-process broker,
// and the figures printed so far.
type bench struct {
	m         *Main
	cfg       Config
	opts      benchOptions
	log       *slog.Logger // the bench's own progress
	quiet     *slog.Logger // handed to gridsettle's components: warnings only
	out       io.Writer
	serverURL string // the PostgreSQL server the scratch databases are made on
	dbURL     string // the current scratch database
	pool      *pgxpool.Pool
	brokers   []string
	topics    kafka.Topics
	tmp       string // scratch files (signing key, exports)
	day       *benchDay
}

func (m *Main) runBench(ctx context.Context, cfg Config, opts benchOptions, which string, log *slog.Logger) (err error) {
	b := &bench{m: m, cfg: cfg, opts: opts, log: log, out: m.Stdout, topics: kafka.DefaultTopics(),
		quiet: slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if b.tmp, err = os.MkdirTemp("", "gridsettle-bench-"); err != nil {
		return fmt.Errorf("bench scratch dir: %w", err)
	}
	// The private cluster runs as user postgres when we are root: it must
	// be able to enter the scratch dir.
	if err := os.Chmod(b.tmp, 0o755); err != nil {
		return fmt.Errorf("bench scratch dir: %w", err)
	}
	defer func() {
		if !opts.keep {
			os.RemoveAll(b.tmp)
		}
	}()
	if opts.cpuprofile != "" {
		stop, err := startCPUProfile(opts.cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	stopServer, err := b.startServer(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if !opts.keep {
			stopServer()
		}
	}()
	closeBroker, err := b.startBroker()
	if err != nil {
		return err
	}
	defer closeBroker()
	names := benchNames
	if which != "all" {
		names = []string{which}
	}
	// Each group of sub-benchmarks has a scratch database of its own:
	// export and api use the run that runs settled.
	group := map[string]string{"ingest": "ingest", "publish": "publish", "runs": "day", "export": "day", "api": "day", "bridge": "bridge"}
	closeDB, current := func() {}, ""
	defer func() { closeDB() }()
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if group[name] != current {
			closeDB()
			b.day = nil
			if closeDB, err = b.openDB(ctx); err != nil {
				closeDB = func() {}
				return err
			}
			current = group[name]
		}
		if i == 0 {
			b.header(ctx)
		}
		var run func(context.Context) error
		switch name {
		case "ingest":
			run = b.ingest
		case "publish":
			run = b.publish
		case "runs":
			run = b.runs
		case "export":
			run = b.export
		case "api":
			run = b.api
		case "bridge":
			run = b.bridge
		}
		if err := run(ctx); err != nil {
			return fmt.Errorf("bench %s: %w", name, err)
		}
	}
	return nil
}

// startServer resolves the PostgreSQL server: --database-url's, or a
// private cluster started for this run (default settings, as dev runs it).
func (b *bench) startServer(ctx context.Context) (func(), error) {
	b.serverURL = b.cfg.DatabaseURL
	if b.serverURL != "" {
		return func() {}, nil
	}
	dir := filepath.Join(b.tmp, "postgres")
	b.log.Info("starting a private PostgreSQL cluster", "dir", dir)
	cluster, err := pgcluster.Start(ctx, dir, b.quiet)
	if err != nil {
		return nil, err
	}
	b.serverURL = cluster.URL()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if err := cluster.Stop(sctx); err != nil {
			b.log.Error("stop private postgres", "err", err)
		}
	}, nil
}

// openDB creates a migrated scratch database on the server and makes it
// b.pool; the returned func drops it (unless --keep).
func (b *bench) openDB(ctx context.Context) (func(), error) {
	base := b.serverURL
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "gridsettle_bench_" + hex.EncodeToString(suffix[:])
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactURL(base), err)
	}
	if err := pgserver.CreateDatabase(ctx, admin, name); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("create scratch database: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if !b.opts.keep {
			if err := pgserver.DropDatabase(dctx, admin, name); err != nil {
				b.log.Error("drop scratch database", "db", name, "err", err)
			}
		} else {
			b.log.Info("scratch database kept", "db", name)
		}
		admin.Close(dctx)
	}
	u, err := databaseURL(base, name)
	if err != nil {
		drop()
		return nil, err
	}
	b.dbURL = u
	if b.pool, err = migrations.Connect(ctx, u); err != nil {
		drop()
		return nil, err
	}
	if err := migrations.Apply(ctx, b.pool, b.quiet); err != nil {
		b.pool.Close()
		drop()
		return nil, err
	}
	return func() { b.pool.Close(); drop() }, nil
}

// databaseURL is base with its database replaced by name (URL or DSN form).
func databaseURL(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("database url: %w", err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return base + " dbname=" + name, nil
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}

// startBroker starts kfake in this process with the contract's topics.
func (b *bench) startBroker() (func(), error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(b.opts.partitions, b.topics.All()...))
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	b.brokers = c.ListenAddrs()
	return c.Close, nil
}

func (b *bench) kafkaConfig() kafka.Config { return kafka.Config{Brokers: b.brokers} }

func (b *bench) client(opts ...kgo.Opt) (*kgo.Client, error) {
	kopts, err := b.kafkaConfig().ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(kopts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// header says where the figures come from: machine, load, database, broker.
func (b *bench) header(ctx context.Context) {
	settings, _ := pgserver.ReadSettings(ctx, b.pool)
	pgVersion, fsync, syncCommit := settings.Version, settings.Fsync, settings.SynchronousCommit
	where := "private cluster under a temporary directory"
	if b.cfg.DatabaseURL != "" {
		where = "scratch database on " + redactURL(b.cfg.DatabaseURL)
	}
	fmt.Fprintf(b.out, "gridsettle bench · %s · %d CPUs · %s · load average %s\n", runtime.Version(), runtime.NumCPU(),
		time.Now().UTC().Format(time.RFC3339), loadAverage())
	fmt.Fprintf(b.out, "postgres %s (%s; fsync=%s, synchronous_commit=%s) · broker: kfake in-process (the bench's own process, %d partitions per topic)\n",
		pgVersion, where, fsync, syncCommit, b.opts.partitions)
	fmt.Fprintf(b.out, "each figure: median of %d measurement(s); ratio = figure / limit (for latencies, limit / figure)\n", b.opts.repeat)
}

// loadAverage is /proc/loadavg's first three fields, or "n/a".
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// registry returns a metrics registry for one component under test.
func benchRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

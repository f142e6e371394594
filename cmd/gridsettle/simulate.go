package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// simulateFlags are the flags of `gridsettle simulate` besides the
// platform's log, Kafka, topic and market groups; each also reads
// GRIDSETTLE_SIMULATE_<NAME>.
var simulateFlags = []string{"meters", "days", "seed", "start-day", "registry-out", "records-out",
	"produce", "late", "transaction-records", "transactional-id"}

// newSimulateCmd is `gridsettle simulate` (api/README.md): a deterministic,
// seeded workload produced to the input topics with Kafka transactions, and
// optionally the registry CSVs and the records as kcat input files.
func newSimulateCmd(m *Main) *cobra.Command {
	c := &cobra.Command{
		Use:   "simulate",
		Short: "Produce a synthetic but realistic stream of reads and prices to the input topics (deterministic for a seed)",
		Long: "simulate generates a registry and a multi-day stream of interval reads and market prices\n" +
			"(DST, 5/15/30/60-minute reads, prosumers, resends, corrections, late data, price spikes,\n" +
			"negative and missing prices, and bad records of every quarantine reason), the same bytes for\n" +
			"the same seed, and produces it with a transactional producer. Load the registry first\n" +
			"(--registry-out, then `gridsettle registry import` or the API), or the reads are quarantined\n" +
			"as unknown_meter.",
		Args: cobra.NoArgs,
	}
	fs := c.Flags()
	bindFlags(fs, groupLog|groupKafka|groupTopics|groupMarket|groupSettlement)
	_ = fs.MarkHidden("run-lags") // in the market group, meaningless here
	brokers := fs.Lookup("kafka-brokers")
	brokers.DefValue = defaultImportBroker
	_ = brokers.Value.Set(defaultImportBroker) // a default, not a change: the environment still wins
	fs.Int("meters", 200, fmt.Sprintf("`number` of meters, at least %d (env GRIDSETTLE_SIMULATE_METERS)", simulate.MinMeters))
	fs.Int("days", 2, "`number` of operating days (env GRIDSETTLE_SIMULATE_DAYS)")
	fs.Int64("seed", 1, "`seed`: the same seed gives the same bytes (env GRIDSETTLE_SIMULATE_SEED)")
	fs.String("start-day", simulate.DefaultStartDay.String(), "first operating `day`, YYYY-MM-DD; the default is the day before the 2026 fall-back (env GRIDSETTLE_SIMULATE_START_DAY)")
	fs.String("registry-out", "", "write the registry CSV files into `dir` (env GRIDSETTLE_SIMULATE_REGISTRY_OUT)")
	fs.String("records-out", "", "write the records into `dir` as kcat input, key TAB value per line (env GRIDSETTLE_SIMULATE_RECORDS_OUT)")
	fs.Bool("produce", true, "produce the records to Kafka (env GRIDSETTLE_SIMULATE_PRODUCE)")
	fs.Bool("late", true, "also produce the late part (restatements and late reads) after the stream (env GRIDSETTLE_SIMULATE_LATE)")
	fs.Int("transaction-records", 1000, "`number` of records per Kafka transaction (env GRIDSETTLE_SIMULATE_TRANSACTION_RECORDS)")
	fs.String("transactional-id", "gridsettle-simulate", "Kafka transactional `id` of the producer (env GRIDSETTLE_SIMULATE_TRANSACTIONAL_ID)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyEnv(cmd, m.LookupEnv, simulateFlags...); err != nil {
			return err
		}
		cfg, err := loadConfig(fs, m.LookupEnv)
		if err != nil {
			return err
		}
		sc, opts, err := simulateConfig(fs, cfg)
		if err != nil {
			return err
		}
		log := newLogger(m.Stderr, cfg)
		return runSimulate(cmd.Context(), m.Stdout, fs, cfg.Kafka, sc, opts, log)
	}
	return c
}

// simulateConfig is the generator's and the producer's configuration from
// the command line, validated before anything connects.
func simulateConfig(fs *pflag.FlagSet, cfg Config) (simulate.Config, simulate.ProduceOptions, error) {
	meters, _ := fs.GetInt("meters")
	days, _ := fs.GetInt("days")
	seed, _ := fs.GetInt64("seed")
	start, _ := fs.GetString("start-day")
	perTxn, _ := fs.GetInt("transaction-records")
	txnID, _ := fs.GetString("transactional-id")
	day, err := settlement.ParseDay(start)
	if err != nil {
		return simulate.Config{}, simulate.ProduceOptions{}, flagError("start-day", "", err)
	}
	if perTxn < 1 {
		return simulate.Config{}, simulate.ProduceOptions{}, flagError("transaction-records", "", fmt.Errorf("%d is below 1", perTxn))
	}
	if txnID == "" {
		return simulate.Config{}, simulate.ProduceOptions{}, flagError("transactional-id", "", fmt.Errorf("must not be empty"))
	}
	sc := simulate.Config{Seed: seed, Meters: meters, Days: days, StartDay: day, Market: cfg.Market, Topics: kafka.DefaultTopics()}
	if err := sc.Validate(); err != nil {
		return simulate.Config{}, simulate.ProduceOptions{}, err
	}
	return sc, simulate.ProduceOptions{TransactionalID: txnID, TransactionRecords: perTxn, Partitions: cfg.Partitions}, nil
}

func runSimulate(ctx context.Context, out io.Writer, fs *pflag.FlagSet, kc kafka.Config,
	cfg simulate.Config, opts simulate.ProduceOptions, log *slog.Logger) error {
	began := time.Now()
	sc, err := simulate.Generate(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "simulated seed %d: %d meters, %d days from %s (%s, %d-second settlement intervals) in %s\n",
		cfg.Seed, cfg.Meters, cfg.Days, cfg.StartDay, cfg.Market.Location, cfg.Market.IntervalSeconds,
		time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(out, "  registry: %d participants, %d settlement points, %d accounts, %d meter assignments\n",
		len(sc.Participants), len(sc.SettlementPoints), len(sc.Accounts), len(sc.Assignments))
	printStream(out, sc)
	if dir, _ := fs.GetString("registry-out"); dir != "" {
		if err := simulate.WriteRegistry(dir, sc); err != nil {
			return err
		}
		fmt.Fprintf(out, "  registry CSV files written to %s\n", dir)
	}
	if dir, _ := fs.GetString("records-out"); dir != "" {
		if err := simulate.WriteRecords(dir, "", sc.Records); err != nil {
			return err
		}
		if err := simulate.WriteRecords(dir, ".late", sc.Late); err != nil {
			return err
		}
		fmt.Fprintf(out, "  records written to %s (kcat -P -t TOPIC -K $'\\t' -l FILE)\n", dir)
	}
	if produce, _ := fs.GetBool("produce"); !produce {
		return nil
	}
	records := sc.Records
	if late, _ := fs.GetBool("late"); late {
		records = slices.Concat(sc.Records, sc.Late)
	}
	produced, err := simulate.Produce(ctx, kc, records, opts, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  produced %d records to %v in transactions of up to %d records (transactional id %s)\n",
		len(produced), kc.Brokers, opts.TransactionRecords, opts.TransactionalID)
	return nil
}

func printStream(out io.Writer, sc *simulate.Scenario) {
	perTopic := map[string]int{}
	bad := map[string]int{}
	for _, r := range sc.Records {
		perTopic[r.Topic]++
		if r.Reason != "" {
			bad[r.Reason]++
		}
	}
	fmt.Fprintf(out, "  stream: %d records", len(sc.Records))
	for _, t := range slices.Sorted(maps.Keys(perTopic)) {
		fmt.Fprintf(out, ", %d to %s", perTopic[t], t)
	}
	fmt.Fprintf(out, "; late part: %d records\n", len(sc.Late))
	var reasons []string
	for _, r := range slices.Sorted(maps.Keys(bad)) {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, bad[r]))
	}
	fmt.Fprintf(out, "  records built to be quarantined: %s\n", strings.Join(reasons, ", "))
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

const (
	readsPerRecord = 16
	// recordsPerTxn is how many records the bench's head-end commits per
	// Kafka transaction.
	recordsPerTxn = 1000
	// benchSource is the head-end named in every generated block.
	benchSource = "headend-bench-1"
)

// ingestRecord is one generated reads record, kept compact so that a
// 10-million-read input fits easily: the bare COPY rewrites the same rows.
type ingestRecord struct {
	meter     int32 // 1-based: MTR-0000001
	export    bool
	start     int64 // unix seconds
	milli     [readsPerRecord]int32
	estimated uint16 // bit i: read i has quality E (else A)
	partition int32
	offset    int64
}

func meterID(i int32) string { return fmt.Sprintf("MTR-%07d", i) }

func (r *ingestRecord) channel() string {
	if r.export {
		return "export"
	}
	return "import"
}

// value is the record's JSON, as a head-end writes it: values as strings
// with three decimals, quality only when a read is not actual.
func (r *ingestRecord) value() []byte {
	b := make([]byte, 0, 360)
	b = append(b, `{"meter_id":"`...)
	b = append(b, meterID(r.meter)...)
	b = append(b, `","channel":"`...)
	b = append(b, r.channel()...)
	b = append(b, `","start":"`...)
	b = time.Unix(r.start, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","interval_seconds":900,"values":[`...)
	for i, m := range r.milli {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, decimal.New(int64(m), -3).StringFixed(3)...)
		b = append(b, '"')
	}
	b = append(b, ']')
	if r.estimated != 0 {
		b = append(b, `,"quality":[`...)
		for i := range readsPerRecord {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, r.quality(i)...)
		}
		b = append(b, ']')
	}
	b = append(b, `,"source":"`+benchSource+`"}`...)
	return b
}

func (r *ingestRecord) quality(i int) string {
	if r.estimated&(1<<i) != 0 {
		return `"E"`
	}
	return `"A"`
}

// ingestInput generates n reads as a utility's head-ends send them: every
// meter's import channel in blocks of 16 quarter hours, one in ten meters
// (prosumers) also exporting, 2% of the blocks with estimated reads. It
// returns the records and the number of meters.
func ingestInput(n int, seed int64) ([]ingestRecord, int32) {
	records := (n + readsPerRecord - 1) / readsPerRecord
	// About a day (6 blocks) per meter: the shape of a catch-up after an
	// outage. The meter count grows with n, not the days, so whatever n the
	// input ends by 2026-10-06T09:00Z (7 blocks at most), in the past: no
	// read is start_out_of_range.
	meters := int32(max(100, records*10/66))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x1ee7))
	day0 := time.Date(2026, 10, 5, 5, 0, 0, 0, time.UTC).Unix()
	out := make([]ingestRecord, 0, records)
	for blk := int64(0); len(out) < records; blk++ {
		for m := int32(1); m <= meters && len(out) < records; m++ {
			for _, export := range []bool{false, true} {
				if export && m%10 != 3 || len(out) == records {
					continue
				}
				r := ingestRecord{meter: m, export: export, start: day0 + blk*readsPerRecord*900}
				for i := range r.milli {
					if export {
						r.milli[i] = int32(rng.IntN(900))
					} else {
						r.milli[i] = int32(50 + rng.IntN(2400))
					}
				}
				if rng.IntN(50) == 0 {
					r.estimated = uint16(rng.Uint32())
				}
				out = append(out, r)
			}
		}
	}
	return out, meters
}

// seedRegistry registers meters 1..meters, one account each, spread over
// participants × points, with a few loss factors. As in the simulator's
// registry, 35% of the accounts have a daily threshold (60 kWh: about half
// of the generated meters' days reach it), 25% a monthly budget and 25%
// price alerts, so ingest keeps and evaluates their alert aggregates.
func (b *bench) seedRegistry(ctx context.Context, meters, participants, points int) error {
	return b.execEach(ctx, []any{participants, points, meters},
		`INSERT INTO participants SELECT 'RETAILER-' || lpad(i::text, 3, '0'), 'Retailer ' || i FROM generate_series(1, $1::int) i
		 WHERE $2::int > 0 AND $3::int > 0`,
		`INSERT INTO settlement_points SELECT 'SP-' || lpad(i::text, 3, '0'), 'Point ' || i, (ARRAY['hub', 'zone', 'node'])[1 + i % 3]
		 FROM generate_series(1, $2::int) i WHERE $1::int > 0 AND $3::int > 0`,
		`INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget, price_alerts)
		 SELECT 'ACC-' || lpad(i::text, 7, '0'), 'Account ' || i,
		        CASE WHEN i % 20 < 7 THEN 60 END, CASE WHEN i % 4 = 1 THEN 250.00 END, i % 4 = 2
		 FROM generate_series(1, $3::int) i
		 WHERE $1::int > 0 AND $2::int > 0`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 SELECT 'MTR-' || lpad(i::text, 7, '0'), 'ACC-' || lpad(i::text, 7, '0'),
		        'RETAILER-' || lpad((1 + (i - 1) % $1::int)::text, 3, '0'),
		        'SP-' || lpad((1 + ((i - 1) / $1::int) % $2::int)::text, 3, '0'),
		        (ARRAY[1.0000, 1.0125, 1.0250, 0.9875, 1.031])[1 + i % 5], '2020-01-01T00:00:00Z'
		 FROM generate_series(1, $3::int) i`,
		`ANALYZE participants, settlement_points, accounts, meter_assignments`)
}

// execEach runs statements one by one, each with the args it uses (all
// args must appear in every statement that takes any).
func (b *bench) execEach(ctx context.Context, args []any, stmts ...string) error {
	for _, s := range stmts {
		var a []any
		if strings.Contains(s, "$1") {
			a = args
		}
		if _, err := b.pool.Exec(ctx, s, a...); err != nil {
			return fmt.Errorf("seed: %s: %w", strings.Fields(s)[0]+" "+strings.Fields(s)[2], err)
		}
	}
	return nil
}

// ingestTables are what ingesting writes; a repetition starts them empty.
var ingestTables = []string{"reads", "channel_lengths", "positions", "quarantine", "ingest_offsets", "outbox", "outbox_streams",
	"alerts", "alert_daily_usage", "alert_energy", "alert_meters", "alert_watermarks"}

func (b *bench) ingest(ctx context.Context) error {
	n := b.opts.sizes.Reads
	b.log.Info("ingest: generating input", "reads", n)
	recs, meters := ingestInput(n, b.opts.seed)
	n = len(recs) * readsPerRecord
	if err := b.seedRegistry(ctx, int(meters), 5, 5); err != nil {
		return err
	}
	b.log.Info("ingest: producing", "records", len(recs), "meters", meters)
	wantMilli, err := b.produceReads(ctx, recs)
	if err != nil {
		return err
	}
	ends, err := b.endOffsets(ctx, b.topics.Reads)
	if err != nil {
		return err
	}
	var totalOffsets int64
	for _, o := range ends {
		totalOffsets += o
	}

	var rates, consumerLimits, copyLimits, rss []float64
	for rep := range b.opts.repeat {
		if rep > 0 {
			if _, err := b.pool.Exec(ctx, "TRUNCATE "+strings.Join(ingestTables, ", ")); err != nil {
				return fmt.Errorf("reset ingest tables: %w", err)
			}
		}
		b.log.Info("ingest: bare read_committed consumer")
		consumed, err := b.bareConsume(ctx, len(recs))
		if err != nil {
			return err
		}
		consumerLimits = append(consumerLimits, float64(n)/consumed.Seconds())

		b.log.Info("ingest: gridsettle ingest in a sub-process")
		rate, peak, err := b.ingestWorker(ctx, n, totalOffsets)
		if err != nil {
			return err
		}
		rates, rss = append(rates, rate), append(rss, float64(peak)/(1<<20))
		if err := b.checkReads(ctx, n, wantMilli); err != nil {
			return err
		}

		b.log.Info("ingest: bare COPY of the same rows")
		copied, err := b.bareCopyReads(ctx, recs)
		if err != nil {
			return err
		}
		copyLimits = append(copyLimits, float64(n)/copied.Seconds())
	}
	limits := make([]float64, len(rates))
	what := make([]string, len(rates))
	for i := range rates {
		limits[i] = min(consumerLimits[i], copyLimits[i])
		what[i] = "COPY"
		if consumerLimits[i] < copyLimits[i] {
			what[i] = "consumer"
		}
	}
	name := "ingest, exactly-once (sustained)"
	if b.opts.noAlerts {
		name = "ingest WITHOUT alerts (diagnostic)"
	}
	b.print(benchFigure{name: name, unit: "reads/s", values: rates, limits: limits,
		limitWhat: fmt.Sprintf("lower of bare consumer %s and bare COPY %s reads/s", human(median(consumerLimits)), human(median(copyLimits))),
		target:    "≥ 200,000 reads/s over ≥ 2M reads", pass: atLeast(200_000),
		note: sizeNote(n, 2_000_000, "reads")})
	b.print(benchFigure{name: "ingest, peak RSS of the consumer", unit: "MiB", values: rss,
		target: "< 512 MiB at 10M reads", pass: func(v, _ float64) bool { return v < 512 },
		note: cmpJoin(sizeNote(n, 10_000_000, "reads"), "VmHWM of the ingest sub-process")})
	return nil
}

func cmpJoin(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// produceReads produces recs with a transactional producer, as the
// importers and the simulator do, and records where each landed. It
// returns the sum of all values in thousandths of a kWh.
func (b *bench) produceReads(ctx context.Context, recs []ingestRecord) (int64, error) {
	cl, err := b.client(kgo.TransactionalID("bench-headend"), kgo.DefaultProduceTopic(b.topics.Reads),
		kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var sum int64
	for i := 0; i < len(recs); i += recordsPerTxn {
		part := recs[i:min(i+recordsPerTxn, len(recs))]
		if err := cl.BeginTransaction(); err != nil {
			return 0, fmt.Errorf("begin transaction: %w", err)
		}
		krs := make([]*kgo.Record, len(part))
		for j := range part {
			krs[j] = &kgo.Record{Key: []byte(meterID(part[j].meter)), Value: part[j].value()}
			for _, m := range part[j].milli {
				sum += int64(m)
			}
		}
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			return 0, fmt.Errorf("produce reads: %w", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return 0, fmt.Errorf("commit reads: %w", err)
		}
		for j, kr := range krs {
			part[j].partition, part[j].offset = kr.Partition, kr.Offset
		}
	}
	return sum, nil
}

// endOffsets are the high watermarks of topic's partitions.
func (b *bench) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	cl, err := b.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// bareConsume is the consumer limit: a plain read_committed franz-go
// consumer reading the whole reads topic, doing nothing with the records.
func (b *bench) bareConsume(ctx context.Context, records int) (time.Duration, error) {
	start := time.Now()
	cl, err := b.client(kgo.ConsumeTopics(b.topics.Reads), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := 0
	for got < records {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return 0, fmt.Errorf("bare consumer: %w", errs[0].Err)
		}
		got += fs.NumRecords()
	}
	return time.Since(start), nil
}

// ingestWorker runs `gridsettle bench ingest-worker` (the ingest component
// as dev wires it, alone in its process) until the stored offsets reach
// the end of every partition. It returns the sustained rate, from the
// first committed batch (after start-up and the group join) to lag 0, and
// the worker's peak RSS.
func (b *bench) ingestWorker(ctx context.Context, reads int, totalOffsets int64) (float64, int64, error) {
	exe, err := b.m.executable()
	if err != nil {
		return 0, 0, err
	}
	args := []string{"bench", "ingest-worker", "--database-url", b.dbURL, "--kafka-brokers", strings.Join(b.brokers, ","),
		"--market-timezone", b.cfg.Market.Location.String(), "--market-currency", b.cfg.Market.Currency,
		"--settlement-interval", strconv.Itoa(b.cfg.Market.IntervalSeconds),
		"--price-spike-threshold", b.cfg.Market.PriceSpikeThreshold.String(), "--log-level", "warn"}
	if b.opts.cpuprofile != "" {
		args = append(args, "--cpuprofile", b.opts.cpuprofile+".ingest", "--memprofile", b.opts.cpuprofile+".ingest.heap")
	}
	if b.opts.noAlerts {
		args = append(args, "--alerts=false")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start ingest worker: %w", err)
	}
	var (
		peak    int64 = -1
		outDone       = make(chan struct{})
	)
	go func() {
		defer close(outDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "vmhwm_bytes "); ok {
				peak, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}()
	// The child's exit status, once: wait can be called any number of times.
	childExited := make(chan struct{})
	var exitErr error
	go func() { <-outDone; exitErr = cmd.Wait(); close(childExited) }()
	wait := func() error { <-childExited; return exitErr }
	defer func() {
		select {
		case <-childExited:
		default:
			_ = cmd.Process.Kill()
			_ = wait()
		}
	}()

	var (
		tFirst, tEnd time.Time
		offFirst     int64
		lastProgress = time.Now()
		last         int64
	)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for tEnd.IsZero() {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-tick.C:
		case <-childExited:
			return 0, 0, fmt.Errorf("ingest worker exited before lag 0: %v", wait())
		}
		var done int64
		if err := b.pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets WHERE topic = $1`,
			b.topics.Reads).Scan(&done); err != nil {
			return 0, 0, fmt.Errorf("poll stored offsets: %w", err)
		}
		now := time.Now()
		if done > 0 && tFirst.IsZero() {
			tFirst, offFirst = now, done
		}
		if done != last {
			last, lastProgress = done, now
		}
		if done >= totalOffsets {
			tEnd = now
		}
		if now.Sub(lastProgress) > 3*time.Minute {
			return 0, 0, fmt.Errorf("ingest made no progress for 3 minutes at offset sum %d of %d", done, totalOffsets)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, 0, fmt.Errorf("stop ingest worker: %w", err)
	}
	if err := wait(); err != nil {
		return 0, 0, fmt.Errorf("ingest worker: %w", err)
	}
	if peak < 0 {
		return 0, 0, errors.New("ingest worker did not report its peak RSS")
	}
	// Offsets include one transaction marker per transaction and
	// partition; reads are spread over offsets evenly enough.
	remaining := float64(reads) * float64(totalOffsets-offFirst) / float64(totalOffsets)
	secs := tEnd.Sub(tFirst).Seconds()
	if secs <= 0 {
		return 0, 0, errors.New("ingest finished within one poll: the input is too small to measure")
	}
	return remaining / secs, peak, nil
}

// checkReads is the exactly-once check: every read stored once, the exact
// sum of values equal to what was produced.
func (b *bench) checkReads(ctx context.Context, reads int, milli int64) error {
	var n int64
	var sum decimal.Decimal
	if err := b.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(value), 0) FROM reads`).Scan(&n, &sum); err != nil {
		return fmt.Errorf("check stored reads: %w", err)
	}
	var quarantined int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&quarantined); err != nil {
		return fmt.Errorf("check quarantine: %w", err)
	}
	if want := decimal.New(milli, -3); n != int64(reads) || !sum.Equal(want) || quarantined != 0 {
		return fmt.Errorf("exactly-once check failed: %d reads stored (want %d), Σ value %s (want %s), %d quarantined",
			n, reads, sum, want, quarantined)
	}
	fmt.Fprintf(b.out, "ingest check: %s reads stored once each, Σ value %s kWh as produced, none quarantined\n",
		human(float64(n)), sum.StringFixed(3))
	return nil
}

// bareCopyReads is the COPY limit: the rows ingest persists, COPYed into a
// table like reads (same columns, keys and index).
func (b *bench) bareCopyReads(ctx context.Context, recs []ingestRecord) (time.Duration, error) {
	if _, err := b.pool.Exec(ctx, `DROP TABLE IF EXISTS bench_reads_copy; CREATE TABLE bench_reads_copy (LIKE reads INCLUDING ALL)`); err != nil {
		return 0, fmt.Errorf("create copy table: %w", err)
	}
	defer b.pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_reads_copy`) //nolint:errcheck // scratch
	topic := b.topics.Reads
	i, j := 0, -1
	row := make([]any, 11)
	start := time.Now()
	_, err := b.pool.CopyFrom(ctx, pgx.Identifier{"bench_reads_copy"}, readColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if j++; j == readsPerRecord {
			i, j = i+1, 0
		}
		if i == len(recs) {
			return nil, nil
		}
		r := &recs[i]
		q := "A"
		if r.estimated&(1<<j) != 0 {
			q = "E"
		}
		row[0], row[1], row[2], row[3] = meterID(r.meter), r.channel(), time.Unix(r.start+int64(j)*900, 0).UTC(), int32(900)
		row[4], row[5], row[6], row[7] = decimal.New(int64(r.milli[j]), -3), q, int64(1), benchSource
		row[8], row[9], row[10] = topic, r.partition, r.offset
		return row, nil
	}))
	if err != nil {
		return 0, fmt.Errorf("bare COPY of reads: %w", err)
	}
	return time.Since(start), nil
}

var readColumns = []string{"meter_id", "channel", "interval_start", "interval_seconds", "value", "quality", "version",
	"source", "topic", "partition", "offset"}

// newBenchWorkerCmd is the hidden `gridsettle bench ingest-worker`: the
// ingest component as dev wires it, alone in a process, so that its peak
// RSS is its own (the broker stays in the bench process). It prints
// "vmhwm_bytes N" when stopped by SIGTERM.
func newBenchWorkerCmd(m *Main) *cobra.Command {
	c := &cobra.Command{Use: "ingest-worker", Hidden: true, Args: cobra.NoArgs}
	fs := c.Flags()
	bindFlags(fs, groupLog|groupDatabase|groupKafka|groupMarket|groupSettlement|groupIngest)
	fs.String("cpuprofile", "", "write a CPU profile to `file`")
	fs.String("memprofile", "", "write a heap profile to `file` at each new peak of the live heap")
	fs.Bool("alerts", true, "run the customer-alerts hook inside every ingest transaction, as dev does")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(fs, m.LookupEnv)
		if err != nil {
			return err
		}
		log := newLogger(m.Stderr, cfg)
		if p, _ := fs.GetString("cpuprofile"); p != "" {
			stop, err := startCPUProfile(p)
			if err != nil {
				return err
			}
			defer stop()
		}
		if p, _ := fs.GetString("memprofile"); p != "" {
			go writeHeapPeaks(cmd.Context(), p)
		}
		alerts, _ := fs.GetBool("alerts")
		if err := runIngestWorker(cmd.Context(), cfg, alerts, log); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "vmhwm_bytes %d\n", peakRSS())
		return nil
	}
	return c
}

func runIngestWorker(ctx context.Context, cfg Config, alerts bool, log *slog.Logger) error {
	tmp, err := os.MkdirTemp("", "gridsettle-bench-worker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg.SigningKey = filepath.Join(tmp, "keys", "export-signing.pem")
	cfg.ExportDir = filepath.Join(tmp, "exports")
	cfg.Environment = "bench"
	cfg.ExportCompression = parquet.ZSTD // the flag's default; the worker exports nothing
	db, err := migrations.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	kopts, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return err
	}
	kcl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	defer kcl.Close()
	topics := kafka.DefaultTopics()
	ob, err := outboxWriter(ctx, kcl, topics.Outputs())
	if err != nil {
		return err
	}
	p := &Platform{Config: cfg, Log: log, DB: db, Kafka: kcl, Topics: topics, Outbox: ob, Metrics: benchRegistry(),
		Out: io.Discard}
	p.shared = sync.OnceValues(func() (*services, error) { return newServices(ctx, p) })
	if !alerts {
		// A diagnostic: what the customer-alerts hook costs.
		p.shared = func() (*services, error) {
			return &services{applier: ingest.NewApplier(cfg.Market, topics, ob)}, nil
		}
	}
	c, err := newIngest(p)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// writeHeapPeaks writes a heap profile to path whenever the live heap
// passes its previous peak by 10%, at most once a second: where the memory
// of the worst moment goes.
func writeHeapPeaks(ctx context.Context, path string) {
	var peak uint64
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		metrics.Read(sample)
		if live := sample[0].Value.Uint64(); live > peak+peak/10 {
			peak = live
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
}

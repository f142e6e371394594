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

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgserver"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

const (
	// recordsPerTxn is how many records the bench's head-end commits per
	// Kafka transaction.
	recordsPerTxn = 1000
	// benchSource is the head-end named in every generated block.
	benchSource = "headend-bench-1"
	// benchInterval is the interval of every generated read, seconds.
	benchInterval = 900
)

// The read store's targets (migrations/00800_read_blocks.sql): ingest within
// minRatioToBare of the bare pipeline measured in the same run and above
// each shape's rate, sustained over sustainedReads; at most maxBytesPerRead
// on disk per stored read version; the ingest process under maxRSSMiB.
const (
	minRatioToBare  = 0.6
	sustainedReads  = 10_000_000
	maxBytesPerRead = 32
	maxRSSMiB       = 512
)

// readsShape is one shape of input the bench ingests, with its target.
type readsShape struct {
	perRecord int
	name      string  // in the figures' names
	minRate   float64 // reads/s
}

// readsShapes are records of 16 quarter hours, as head-ends push every 4
// hours, and of 96: a local day per record, as NEM12 files and Green Button
// deliver. A local day of a market west or east of UTC crosses a UTC
// midnight, so ingest stores each such record as two blocks
// (readstore.SplitDays): the shape as it arrives, not the kindest one.
var readsShapes = []readsShape{
	{perRecord: 16, name: "16 reads/record", minRate: 500_000},
	{perRecord: 96, name: "96 reads/record, a day", minRate: 1_000_000},
}

// ingestRecord is one generated reads record; the generator reuses it.
type ingestRecord struct {
	meter     int32 // 1-based: MTR-0000001
	export    bool
	start     int64   // unix seconds
	milli     []int32 // thousandths of a kWh
	estimated uint64  // bit i%64: read i has quality E (else A)
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
	b := make([]byte, 0, 160+10*len(r.milli))
	b = append(b, `{"meter_id":"`...)
	b = append(b, meterID(r.meter)...)
	b = append(b, `","channel":"`...)
	b = append(b, r.channel()...)
	b = append(b, `","start":"`...)
	b = time.Unix(r.start, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","interval_seconds":`+strconv.Itoa(benchInterval)+`,"values":[`...)
	for i, m := range r.milli {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(m/1000), 10)
		b = append(b, '.', byte('0'+m/100%10), byte('0'+m/10%10), byte('0'+m%10), '"')
	}
	b = append(b, ']')
	if r.estimated != 0 {
		b = append(b, `,"quality":[`...)
		for i := range r.milli {
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
	if r.estimated&(1<<(i%64)) != 0 {
		return `"E"`
	}
	return `"A"`
}

// readsInput is a seeded input of reads as a utility's head-ends send them:
// every meter's import channel, one in ten meters (prosumers) also
// exporting, 2% of the records with estimated reads. Records are generated
// as they are produced, never all held: at 10 M reads the broker holds them
// already.
type readsInput struct {
	perRecord int
	records   int
	meters    int32
	day0      int64 // unix seconds: the start of every meter's first record
	seed      int64
}

// benchMeters is the number of meters for n reads: about a day of reads per
// channel (6 records of 16, or 1 of 96), the shape of a catch-up after an
// outage. The meter count grows with n, not the days, so that whatever n
// the input ends by a record into 2026-10-06 (local), in the past: no read
// is start_out_of_range. Both shapes share the meters, and so the registry.
func benchMeters(n int) int32 { return int32(max(100, (n+15)/16*10/66)) }

// newReadsInput is at least n reads in records of perRecord, every meter's
// first one starting at local midnight of 2026-10-05 in loc, the market's
// time zone. A meter's records follow each other without gap or overlap,
// so with 96 reads of 15 minutes each record is one local day: 2026-10-05
// and -06 have no daylight-saving change in America/Chicago (the default);
// in a zone where they had one, a record would be the 24 hours from local
// midnight rather than the local day.
func newReadsInput(n, perRecord int, meters int32, loc *time.Location, seed int64) readsInput {
	return readsInput{perRecord: perRecord, records: (n + perRecord - 1) / perRecord, meters: meters,
		day0: time.Date(2026, 10, 5, 0, 0, 0, 0, loc).Unix(), seed: seed}
}

func (in readsInput) reads() int { return in.records * in.perRecord }

// each calls fn with every record in production order; r is reused.
func (in readsInput) each(fn func(r *ingestRecord) error) error {
	rng := rand.New(rand.NewPCG(uint64(in.seed), 0x1ee7+uint64(in.perRecord)))
	r := ingestRecord{milli: make([]int32, in.perRecord)}
	step := int64(in.perRecord) * benchInterval
	done := 0
	for blk := int64(0); done < in.records; blk++ {
		for m := int32(1); m <= in.meters && done < in.records; m++ {
			for _, export := range []bool{false, true} {
				if export && m%10 != 3 || done == in.records {
					continue
				}
				r.meter, r.export, r.start, r.estimated = m, export, in.day0+blk*step, 0
				for i := range r.milli {
					if export {
						r.milli[i] = int32(rng.IntN(900))
					} else {
						r.milli[i] = int32(50 + rng.IntN(2400))
					}
				}
				if rng.IntN(50) == 0 {
					r.estimated = rng.Uint64()
				}
				if err := fn(&r); err != nil {
					return err
				}
				done++
			}
		}
	}
	return nil
}

// ingestTables are what ingesting writes; each ingest run starts them
// empty. Those the schema no longer has (the old reads table, once the
// conversion migration drops it) are left out.
var ingestTables = []string{"read_blocks", "reads", "channel_lengths", "position_days", "quarantine", "ingest_offsets", "outbox",
	"outbox_streams", "alerts", "alert_daily_usage", "alert_energy_blocks", "alert_month_books", "alert_meters", "alert_watermarks"}

func (b *bench) resetIngestTables(ctx context.Context) error {
	if err := pgserver.TruncateExisting(ctx, b.pool, ingestTables); err != nil {
		return fmt.Errorf("reset ingest tables: %w", err)
	}
	b.checkpoint(ctx)
	return nil
}

// checkpoint flushes the dirty buffers of what ran before, so that neither
// ingest nor the bare COPY pays for writing out the other's pages. It needs
// a superuser or pg_checkpoint; without one the figures are noisier, not
// wrong.
func (b *bench) checkpoint(ctx context.Context) {
	if err := pgserver.Checkpoint(ctx, b.pool); err != nil {
		b.log.Warn("bench: CHECKPOINT refused, measuring without", "err", err)
	}
}

// shapeRun is one measurement of one shape.
type shapeRun struct {
	rate          float64 // ingest, reads/s
	rssMiB        float64
	bytesPerRead  float64
	bare          float64 // bare pipeline, reads/s
	consume, copy float64 // its stages, reads/s each, run concurrently
}

func (b *bench) ingest(ctx context.Context) error {
	n := b.opts.sizes.Reads
	meters := benchMeters(n)
	if err := registrystore.SeedBenchRegistry(ctx, b.pool, int(meters), 5, 5); err != nil {
		return err
	}
	for si, shape := range readsShapes {
		in := newReadsInput(n, shape.perRecord, meters, b.cfg.Market.Location, b.opts.seed)
		if si > 0 {
			// The worker reads the whole reads topic: it must hold this
			// shape's records only.
			if err := b.recreateTopic(ctx, b.topics.Reads); err != nil {
				return err
			}
		}
		b.log.Info("ingest: producing", "shape", shape.name, "records", in.records, "reads", in.reads(), "meters", meters)
		wantMilli, err := b.produceReads(ctx, in)
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
		var runs []shapeRun
		for range b.opts.repeat {
			r, err := b.ingestOnce(ctx, in, totalOffsets, wantMilli)
			if err != nil {
				return fmt.Errorf("%s: %w", shape.name, err)
			}
			runs = append(runs, r)
		}
		b.printShape(shape, in, runs)
	}
	return nil
}

// ingestOnce ingests the reads topic from empty tables, checks that every
// read is stored once, measures the store's size, then the bare pipeline.
func (b *bench) ingestOnce(ctx context.Context, in readsInput, totalOffsets, wantMilli int64) (shapeRun, error) {
	var r shapeRun
	if err := b.resetIngestTables(ctx); err != nil {
		return r, err
	}
	b.log.Info("ingest: gridsettle ingest in a sub-process")
	rate, peak, err := b.ingestWorker(ctx, in.reads(), totalOffsets)
	if err != nil {
		return r, err
	}
	r.rate, r.rssMiB = rate, float64(peak)/(1<<20)
	if err := b.checkReads(ctx, in.reads(), wantMilli); err != nil {
		return r, err
	}
	b.log.Info("ingest: VACUUM (ANALYZE) read_blocks and its size")
	if err := readstore.VacuumBlocks(ctx, b.pool); err != nil {
		return r, err
	}
	versions, bytes, err := readstore.Stats(ctx, b.pool)
	if err != nil {
		return r, err
	}
	r.bytesPerRead = float64(bytes) / float64(versions)
	fmt.Fprintf(b.out, "ingest store: %s read versions in %s bytes over every read_blocks partition (heap, TOAST, maps, indexes)\n",
		human(float64(versions)), human(float64(bytes)))

	b.log.Info("ingest: bare pipeline (consume ‖ COPY of the same rows)")
	consume, copied, wall, err := b.barePipeline(ctx, in.records)
	if err != nil {
		return r, err
	}
	reads := float64(in.reads())
	r.bare, r.consume, r.copy = reads/wall.Seconds(), reads/consume.Seconds(), reads/copied.Seconds()
	return r, nil
}

func (b *bench) printShape(shape readsShape, in readsInput, runs []shapeRun) {
	col := func(f func(r shapeRun) float64) []float64 {
		out := make([]float64, len(runs))
		for i, r := range runs {
			out[i] = f(r)
		}
		return out
	}
	reads := in.reads()
	name := "ingest, " + shape.name
	if b.opts.noAlerts {
		name = "ingest WITHOUT alerts, " + shape.name
	}
	note := sizeNote(reads, sustainedReads, "reads")
	if b.opts.noAlerts {
		note = cmpJoin("diagnostic: no customer-alerts hook", note)
	}
	b.print(benchFigure{name: name, unit: "reads/s", values: col(func(r shapeRun) float64 { return r.rate }),
		limits: col(func(r shapeRun) float64 { return r.bare }),
		limitWhat: fmt.Sprintf("bare pipeline: read_committed consume ‖ binary COPY of the same rows, concurrently; its stages: consume %s, COPY %s reads/s",
			human(median(col(func(r shapeRun) float64 { return r.consume }))), human(median(col(func(r shapeRun) float64 { return r.copy })))),
		target: fmt.Sprintf("≥ %.1f × bare and ≥ %s reads/s sustained over %s reads", minRatioToBare, human(shape.minRate), human(sustainedReads)),
		pass:   func(v, ratio float64) bool { return v >= shape.minRate && ratio >= minRatioToBare },
		note:   note})
	b.print(benchFigure{name: "bytes/read version, " + strconv.Itoa(shape.perRecord) + "/record", unit: "B",
		values: col(func(r shapeRun) float64 { return r.bytesPerRead }),
		target: fmt.Sprintf("≤ %d B", maxBytesPerRead), pass: atMost(maxBytesPerRead),
		note: "Σ pg_total_relation_size over pg_partition_tree('read_blocks') after VACUUM (ANALYZE) / read versions stored"})
	b.print(benchFigure{name: "ingest peak RSS, " + strconv.Itoa(shape.perRecord) + "/record", unit: "MiB",
		values: col(func(r shapeRun) float64 { return r.rssMiB }),
		target: fmt.Sprintf("< %d MiB at %s reads", maxRSSMiB, human(sustainedReads)), pass: func(v, _ float64) bool { return v < maxRSSMiB },
		note: cmpJoin(sizeNote(reads, sustainedReads, "reads"),
			"VmHWM of the ingest sub-process: the kernel's peak resident set of the whole process (Go heap, stacks, runtime, binary), not the Go heap alone")})
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

// recreateTopic deletes topic and creates it again, empty, with the bench's
// partitions.
func (b *bench) recreateTopic(ctx context.Context, topic string) error {
	cl, err := b.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	// Deletion completes asynchronously on a real broker; kfake is done
	// at once, but retrying keeps this correct on both.
	for attempt := 0; ; attempt++ {
		resp, err := adm.CreateTopic(ctx, b.opts.partitions, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil {
			return nil
		}
		if attempt == 50 {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// produceReads produces in with a transactional producer, as the importers
// and the simulator do. It returns the sum of all values in thousandths of
// a kWh.
func (b *bench) produceReads(ctx context.Context, in readsInput) (int64, error) {
	cl, err := b.client(kgo.TransactionalID("bench-headend"), kgo.DefaultProduceTopic(b.topics.Reads),
		kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var sum int64
	krs := make([]*kgo.Record, 0, recordsPerTxn)
	flush := func() error {
		if len(krs) == 0 {
			return nil
		}
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			return fmt.Errorf("produce reads: %w", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("commit reads: %w", err)
		}
		krs = krs[:0]
		return nil
	}
	err = in.each(func(r *ingestRecord) error {
		krs = append(krs, &kgo.Record{Key: []byte(meterID(r.meter)), Value: r.value()})
		for _, m := range r.milli {
			sum += int64(m)
		}
		if len(krs) == recordsPerTxn {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return sum, err
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
		done, err := readstore.SumNextOffsets(ctx, b.pool, b.topics.Reads)
		if err != nil {
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

// checkReads is the exactly-once check: every read stored once (as many
// current reads and stored versions as produced: the input never repeats
// a read), the exact sum of current values equal to what was produced.
func (b *bench) checkReads(ctx context.Context, reads int, milli int64) error {
	n, sumMicro, err := readstore.CurrentTotals(ctx, b.pool)
	if err != nil {
		return fmt.Errorf("check stored reads: %w", err)
	}
	versions, _, err := readstore.Stats(ctx, b.pool)
	if err != nil {
		return fmt.Errorf("check stored reads: %w", err)
	}
	quarantined, err := readstore.CountQuarantined(ctx, b.pool)
	if err != nil {
		return fmt.Errorf("check quarantine: %w", err)
	}
	if n != int64(reads) || versions != int64(reads) || sumMicro != milli*1000 || quarantined != 0 {
		return fmt.Errorf("exactly-once check failed: %d current reads and %d versions stored (want %d each), Σ value %s (want %s), %d quarantined",
			n, versions, reads, decimal.New(sumMicro, -6), decimal.New(milli, -3), quarantined)
	}
	fmt.Fprintf(b.out, "ingest check: %s reads stored once each, Σ value %s kWh as produced, none quarantined\n",
		human(float64(n)), decimal.New(sumMicro, -6).StringFixed(3))
	return nil
}

// barePipeline is the limit ingest is compared with, measured on what
// ingest just did: a plain read_committed franz-go consumer reading the
// whole reads topic (records counted, not decoded) and a binary COPY of the
// very rows ingest persisted into the same read_blocks, emptied, with its
// index and partitions. The two run concurrently, and the pipeline takes
// as long as its slower stage: ingest overlaps the same two stages
// (franz-go fetches in the background while a batch is written), and on a
// small machine they compete for the same cores, as ingest's do. Run one
// after the other, their times would add up to a limit no pipeline has,
// and flatter the ratio. It returns each stage's time and the pipeline's.
func (b *bench) barePipeline(ctx context.Context, records int) (consume, copied, wall time.Duration, err error) {
	f, err := os.CreateTemp(b.tmp, "read_blocks-*.pgcopy")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bare COPY scratch file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bare COPY: %w", err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	w := bufio.NewWriterSize(f, 1<<20)
	dumped, err := readstore.DumpBlocks(ctx, pg, w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bare COPY: %w", err)
	}
	if err := readstore.EmptyBlocks(ctx, pg); err != nil {
		return 0, 0, 0, fmt.Errorf("bare COPY: %w", err)
	}
	b.checkpoint(ctx)

	var (
		wg                 sync.WaitGroup
		consumeErr, cpyErr error
		loaded             int64
	)
	start := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		consume, consumeErr = b.bareConsume(ctx, records)
	}()
	go func() {
		defer wg.Done()
		t0 := time.Now()
		n, err := readstore.LoadBlocks(ctx, pg, bufio.NewReaderSize(f, 1<<20))
		copied, cpyErr, loaded = time.Since(t0), err, n
	}()
	wg.Wait()
	wall = time.Since(start)
	if err := errors.Join(consumeErr, cpyErr); err != nil {
		return 0, 0, 0, fmt.Errorf("bare pipeline: %w", err)
	}
	if loaded != dumped {
		return 0, 0, 0, fmt.Errorf("bare COPY loaded %d rows of the %d ingest stored", loaded, dumped)
	}
	return consume, copied, wall, nil
}

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

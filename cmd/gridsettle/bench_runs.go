package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// benchDay is one operating day of reads and prices for a registry of
// meters, settled by the runs bench and then exported and served.
type benchDay struct {
	day          settlement.Day
	meters       int
	lines        int // participants × points
	runs         *settlementpg.Runs
	run          *settlementpg.Run // the latest completed run
	readsInDay   int64
	blocks       int64 // read_blocks rows holding them
	switchedMtrs int
}

// benchOperatingDay has 96 settlement intervals in America/Chicago (no DST
// change).
var benchOperatingDay = settlement.Day{Year: 2026, Month: time.October, Day: 20}

// dayFixture seeds (once) the registry, a day of current reads and RT
// prices: 85% of meters read every 15 minutes, 10% hourly (split over
// settlement intervals), 5% every 5 minutes; one in ten also exports; 1%
// switch retailer at noon; about 1% of reads estimated and 0.4%
// substituted; about 1% of the (point, interval) prices missing
// (unpriced), 2% negative. Reads are stored as ingest stores them: a
// read_blocks row per record of 16 reads and UTC day.
func (b *bench) dayFixture(ctx context.Context) (*benchDay, error) {
	if b.day != nil {
		return b.day, nil
	}
	s := b.opts.sizes
	d := &benchDay{day: benchOperatingDay, meters: s.Meters, lines: s.Participants * s.Points}
	m := b.cfg.Market
	start, end := m.Bounds(d.day)
	b.log.Info("runs: seeding a day of reads", "meters", s.Meters, "participants", s.Participants, "points", s.Points)
	t0 := time.Now()
	if err := registrystore.SeedBenchRegistry(ctx, b.pool, s.Meters, s.Participants, s.Points); err != nil {
		return nil, err
	}
	noon := time.Date(d.day.Year, d.day.Month, d.day.Day, 12, 0, 0, 0, m.Location).UTC()
	switched, err := registrystore.SwitchBenchRetailers(ctx, b.pool, noon, s.Participants)
	if err != nil {
		return nil, err
	}
	d.switchedMtrs = int(switched)
	if d.readsInDay, d.blocks, _, err = b.seedDayReads(ctx, start, end, s.Meters, false); err != nil {
		return nil, err
	}
	if err := b.seedDayPrices(ctx, start, end); err != nil {
		return nil, err
	}
	b.log.Info("runs: seeded", "reads", d.readsInDay, "read_blocks", d.blocks, "switched_meters", d.switchedMtrs, "took", time.Since(t0).Round(time.Millisecond))

	kcl, err := b.client()
	if err != nil {
		return nil, err
	}
	defer kcl.Close()
	ob, err := outboxWriter(ctx, kcl, b.topics.Outputs())
	if err != nil {
		return nil, err
	}
	// As wire_services.go builds them, without the Completed hook: the run
	// figure is the run's, the export has its own.
	d.runs = settlementpg.NewRuns(b.pool, settlementpg.Config{
		Market:          m,
		ReadsTopic:      b.topics.Reads,
		StatementsTopic: b.topics.Statements,
		ChargesTopic:    b.topics.AccountCharges,
		Outbox:          ob,
	}, b.log)
	b.day = d
	return d, nil
}

// seedDayPrices seeds the RT prices of [start, end) at every point: about
// 1% of the (point, interval) prices missing (unpriced), 2% negative.
func (b *bench) seedDayPrices(ctx context.Context, start, end time.Time) error {
	m, s := b.cfg.Market, b.opts.sizes
	return readstore.SeedBenchPrices(ctx, b.pool, start, end, m.IntervalSeconds, m.Currency, s.Points, b.opts.seed)
}

// runTypes are the run types of successive repetitions, as a day's runs
// follow one another.
var runTypes = []settlement.RunType{settlement.Initial, settlement.Final, settlement.TrueUp, settlement.Resettlement}

// settleDay runs one settlement of the fixture's day and checks what it
// wrote. The run's own clock is its figure.
func (b *bench) settleDay(ctx context.Context, d *benchDay, t settlement.RunType) (time.Duration, error) {
	t0 := time.Now()
	run, err := d.runs.Start(ctx, d.day, t)
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if run.Status != settlementpg.Completed {
		return 0, fmt.Errorf("run %s %s: %s", run.RunID, run.Status, run.Error)
	}
	out, err := settlementpg.CountRunOutputs(ctx, b.pool, run.RunID)
	if err != nil {
		return 0, fmt.Errorf("check run %s: %w", run.RunID, err)
	}
	lines, charges, outboxRows, intervals := out.Lines, out.Charges, out.Outbox, out.Intervals
	wantCharges := int64(d.meters + d.switchedMtrs)
	if lines != int64(d.lines) || charges != wantCharges {
		return 0, fmt.Errorf("run %s wrote %d lines and %d charges, want %d and %d", run.RunID, lines, charges, d.lines, wantCharges)
	}
	fmt.Fprintf(b.out, "runs check: %s %s — %s statement lines, %s account charges, %s run intervals, %s outbox rows, in %s\n",
		run.RunID, run.Status, human(float64(lines)), human(float64(charges)), human(float64(intervals)), human(float64(outboxRows)),
		took.Round(time.Millisecond))
	d.run = &run
	return took, nil
}

func (b *bench) runs(ctx context.Context) error {
	d, err := b.dayFixture(ctx)
	if err != nil {
		return err
	}
	if err := b.runsDay(ctx, d); err != nil {
		return err
	}
	return b.runsWithGaps(ctx, d)
}

// timeRuns runs d's day once per repetition, calling check after each
// run, and times each run and the COPY of the blocks it streams.
func (b *bench) timeRuns(ctx context.Context, d *benchDay, check func() error) (took, limit []float64, err error) {
	from, to := b.streamedBlocks(d.day)
	for rep := range b.opts.repeat {
		t, err := b.settleDay(ctx, d, runTypes[min(rep, len(runTypes)-1)])
		if err != nil {
			return nil, nil, err
		}
		if err := check(); err != nil {
			return nil, nil, err
		}
		l, err := b.copyOut(ctx, func(pg *pgconn.PgConn) error { return readstore.CopyBlocksOut(ctx, pg, io.Discard, from, to) })
		if err != nil {
			return nil, nil, err
		}
		took, limit = append(took, t.Seconds()), append(limit, l.Seconds())
	}
	return took, limit, nil
}

// runsDay times the runs of the fixture's day, every read present.
func (b *bench) runsDay(ctx context.Context, d *benchDay) error {
	took, limit, err := b.timeRuns(ctx, d, func() error { return nil })
	if err != nil {
		return err
	}
	b.print(benchFigure{name: "run of one operating day", unit: "s", values: took, limits: limit, lowerIsBetter: true,
		limitWhat: fmt.Sprintf("COPY of the day's %s reads (%s read blocks) out of Postgres", human(float64(d.readsInDay)),
			human(float64(d.blocks))),
		target: "≤ 10 s at 100,000 meters", pass: atMost(10),
		note: cmpJoin(sizeNote(d.meters, 100_000, "meters"), "incl. account charges, ledger and outbox rows")})
	return b.explainLargest(ctx, d, took)
}

// explainLargest times the explanation of the day's line with the most
// reads against the run before (against nothing after a single run, every
// read then being a change): explain rebuilds both runs' inputs of the line
// (settlement/postgres/explain.go), and is compared with the time the run
// took to settle the whole day.
func (b *bench) explainLargest(ctx context.Context, d *benchDay, runTook []float64) error {
	lines, err := d.runs.Statements(ctx, settlementpg.StatementQuery{Day: &d.day, Version: d.run.Version, Limit: 1000})
	if err != nil {
		return err
	}
	largest := slices.MaxFunc(lines, func(a, b settlement.StatementLine) int {
		return cmp.Or(cmp.Compare(a.Reads.Actual+a.Reads.Estimated+a.Reads.Substituted,
			b.Reads.Actual+b.Reads.Estimated+b.Reads.Substituted), cmp.Compare(b.StatementID, a.StatementID))
	})
	var took []float64
	var changes int
	for range b.opts.repeat {
		t0 := time.Now()
		x, err := d.runs.Explain(ctx, largest.StatementID, nil)
		if err != nil {
			return err
		}
		took, changes = append(took, time.Since(t0).Seconds()), len(x.Changes)
	}
	b.print(benchFigure{name: "explain of the largest line", unit: "s", values: took, limits: runTook, lowerIsBetter: true,
		limitWhat: "the run that settled the whole day",
		note: fmt.Sprintf("%s: %s reads, %d changes against the version before", largest.StatementID,
			human(float64(largest.Reads.Actual+largest.Reads.Estimated+largest.Reads.Substituted)), changes)})
	return nil
}

// benchGapDay is a week after benchOperatingDay, in the same UTC offset:
// the like days one week back of its missing reads are the fixture's day.
var benchGapDay = settlement.Day{Year: 2026, Month: time.October, Day: 27}

// runsWithGaps times the runs of a day with about 2% of its reads missing
// in gaps of every kind (benchGap), the fixture's day being their like day.
func (b *bench) runsWithGaps(ctx context.Context, d *benchDay) error {
	start, end := b.cfg.Market.Bounds(benchGapDay)
	t0 := time.Now()
	reads, blocks, missing, err := b.seedDayReads(ctx, start, end, d.meters, true)
	if err != nil {
		return err
	}
	if err := b.seedDayPrices(ctx, start, end); err != nil {
		return err
	}
	b.log.Info("runs: seeded a day with gaps", "reads", reads, "missing", missing, "read_blocks", blocks,
		"took", time.Since(t0).Round(time.Millisecond))
	// The switched meters' first assignments ended the week before: one
	// charge a meter, and the lines of the assignments still in force.
	lines, err := registrystore.CountOpenPairs(ctx, b.pool, start)
	if err != nil {
		return fmt.Errorf("count the lines of %s: %w", benchGapDay, err)
	}
	g := &benchDay{day: benchGapDay, meters: d.meters, lines: lines, runs: d.runs}
	var byMethod string
	took, limit, err := b.timeRuns(ctx, g, func() error {
		lin, ldy, zer, err := settlementpg.CountEstimateMethods(ctx, b.pool, g.run.RunID)
		if err != nil {
			return err
		}
		want := missing // one per missing read
		if b.cfg.Market.Estimation.Off {
			want = 0
		}
		if lin+ldy+zer != want {
			return fmt.Errorf("run %s made %d estimates, want %d", g.run.RunID, lin+ldy+zer, want)
		}
		byMethod = fmt.Sprintf("estimates LIN %s, LDY %s, ZER %s", human(float64(lin)), human(float64(ldy)), human(float64(zer)))
		if b.cfg.Market.Estimation.Off {
			byMethod = "no estimates (--estimation none)"
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.print(benchFigure{name: "run of a day with missing reads", unit: "s", values: took, limits: limit, lowerIsBetter: true,
		limitWhat: fmt.Sprintf("COPY of the day's %s reads (%s read blocks) out of Postgres", human(float64(reads)),
			human(float64(blocks))),
		target: "≤ 12 s at 100,000 meters", pass: atMost(12),
		note: cmpJoin(sizeNote(d.meters, 100_000, "meters"),
			fmt.Sprintf("%.1f%% of reads missing", 100*float64(missing)/float64(reads+missing)), byMethod)})
	return nil
}

// streamedBlocks is the window of block starts a run of day streams
// (settlement/postgres/energy.go, the run's window): those starting from
// the UTC day of an hour before the day to its end, and with estimation
// --estimation-max-linear and an hour more on both sides.
func (b *bench) streamedBlocks(day settlement.Day) (from, to time.Time) {
	start, end := b.cfg.Market.Bounds(day)
	from = start.Add(-time.Hour)
	if e := b.cfg.Market.Estimation; !e.Off {
		from, end = from.Add(-e.MaxLinearGap()-time.Hour), end.Add(e.MaxLinearGap()+time.Hour)
	}
	return from.Truncate(24 * time.Hour), end
}

// copyOut times copyTo, a COPY ... TO STDOUT on a connection of its own
// whose rows it discards: the plain read-out limit.
func (b *bench) copyOut(ctx context.Context, copyTo func(*pgconn.PgConn) error) (time.Duration, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	t0 := time.Now()
	if err := copyTo(conn.Conn().PgConn()); err != nil {
		return 0, fmt.Errorf("COPY out: %w", err)
	}
	return time.Since(t0), nil
}

// completedRun is the fixture's latest completed run, settling the day
// first (untimed) when the runs bench did not run.
func (b *bench) completedRun(ctx context.Context) (*benchDay, error) {
	d, err := b.dayFixture(ctx)
	if err != nil {
		return nil, err
	}
	if d.run == nil {
		if _, err := b.settleDay(ctx, d, settlement.Initial); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// benchRecordReads is the number of reads of a seeded input record, as
// meters send them (bench ingest's records, PERFORMANCE.md).
const benchRecordReads = 16

// seedDayReads appends the day's reads for meters MTR-0000001… to
// read_blocks as ingest would store them: one record of up to 16 reads per
// meter channel, cut at UTC days, version 1, appended in the order the
// records end (as they arrive through the day, all meters interleaved, and
// not meter by meter, which would favour the run's scan in meter order).
// With gaps, one meter in ten more also exports (a channel with no
// history), and each channel may miss a run of reads (benchGap). It
// returns the reads and blocks written and the reads left missing.
func (b *bench) seedDayReads(ctx context.Context, start, end time.Time, meterCount int, gaps bool) (reads, blocks, missing int64, err error) {
	if err := readstore.EnsurePartitions(ctx, b.pool, []int64{start.Unix(), end.Unix()}); err != nil {
		return 0, 0, 0, err
	}
	seed := uint64(b.opts.seed)
	span := end.Unix() - start.Unix()
	type arrival struct {
		end   int64 // of the record: when it is sent
		block readstore.StoredBlock
	}
	var all []arrival
	for i := 1; i <= meterCount; i++ {
		length := int64(900)
		switch {
		case i%20 == 0:
			length = 300
		case i%10 == 5:
			length = 3600
		}
		n := span / length
		channels := []meters.Channel{meters.Import}
		if i%10 == 3 || gaps && i%10 == 4 {
			channels = append(channels, meters.Export)
		}
		id := fmt.Sprintf("MTR-%07d", i)
		for _, ch := range channels {
			exp := uint64(0)
			if ch == meters.Export {
				exp = 1
			}
			var holeFrom, holeTo int64
			if gaps {
				holeFrom, holeTo = benchGap(uint64(i)*2+exp, n, length, seed)
				missing += holeTo - holeFrom
			}
			for r := int64(0); r < n; r += benchRecordReads {
				k := min(n-r, benchRecordReads)
				if r >= holeFrom && r+k <= holeTo {
					continue // the whole record is missing
				}
				vals, q := make([]int64, k), make([]byte, k)
				estimated := false
				for j := range k {
					h := benchHash(uint64(i)*100_000+uint64(r+j)*2+exp, seed)
					base := int64(h % 900)
					if ch == meters.Import {
						base = 50 + int64(h%2400)
					}
					vals[j] = base * length / 900 * 1000
					q[j] = 'A'
					switch {
					case h%97 == 0:
						q[j], estimated = 'E', true
					case h%251 == 1:
						q[j], estimated = 'S', true
					}
					if r+j >= holeFrom && r+j < holeTo {
						vals[j] = readstore.NoRead
					}
				}
				blk := readstore.StoredBlock{MeterID: id, Channel: ch, Start: start.Unix() + r*length,
					IntervalSeconds: length, Version: 1, Values: vals, Source: "headend-bench-1",
					Origin: readstore.Origin{Topic: "ami.interval-reads", Partition: int32(i % 8), Offset: int64(i)*1000 + r}}
				if estimated {
					blk.Quality = string(q)
				}
				for _, part := range readstore.SplitDays(blk) {
					all = append(all, arrival{blk.Start + k*length, part})
				}
				reads += k - max(0, min(r+k, holeTo)-max(r, holeFrom))
			}
		}
	}
	slices.SortStableFunc(all, func(x, y arrival) int { return cmp.Compare(x.end, y.end) })
	batch := make([]readstore.StoredBlock, 0, 50_000)
	for k, a := range all {
		batch = append(batch, a.block)
		if len(batch) == cap(batch) || k == len(all)-1 {
			if err := readstore.AppendBlocks(ctx, b.pool, batch); err != nil {
				return 0, 0, 0, fmt.Errorf("seed reads: %w", err)
			}
			blocks += int64(len(batch))
			batch = batch[:0]
		}
	}
	return reads, blocks, missing, nil
}

// benchGap is the run of missing reads [from, to) of a channel of n reads
// of length seconds (key names the meter channel): in four channels of ten
// one, of every kind estimation knows: in three, up to an hour (LIN); in
// one, three hours (LDY where the channel has a like day, else ZER). Gaps
// stay inside the day so that both neighbours of the short ones are read.
// About 2% of the reads go missing.
func benchGap(key uint64, n, length int64, seed uint64) (from, to int64) {
	h := benchHash(key^0x5bd1e995_00000000, seed)
	var k int64
	switch h % 10 {
	case 0:
		k = 3 * 3600 / length
	case 1, 2, 3:
		k = 1 + int64(h/10%uint64(3600/length))
	default:
		return 0, 0
	}
	from = 1 + int64(h/1000%uint64(n-k-1))
	return from, from + k
}

// benchHash is a seeded 64-bit mix (splitmix64's finalizer) of x: the
// fixture's deterministic pseudo-random figures.
func benchHash(x, seed uint64) uint64 {
	z := x + seed*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

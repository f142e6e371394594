package migrations_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// The last migration with the old reads table (migrations/00100_ingest.sql)
// and without read_blocks, and the one that adds read_blocks.
const (
	oldSchemaVersion  = 702
	readBlocksVersion = 800
)

// oldRead is one row of the old reads table.
type oldRead struct {
	meterID string
	channel meters.Channel
	start   time.Time
	seconds int
	value   string // kWh, as the old table held it
	quality meters.Quality
	version int64
	source  string
	origin  readstore.Origin
}

type readKey struct {
	meterID string
	channel meters.Channel
	start   int64
}

func (r oldRead) key() readKey { return readKey{r.meterID, r.channel, r.start.Unix()} }

// oldTable is the old reads table being filled: one row per (meter,
// channel, start), a later record's read replacing an earlier one's as
// the old ingest did when the version was higher.
type oldTable struct {
	rows   map[readKey]oldRead
	values []string
	n      int
}

// values cycles through: the contract's extremes and trailing zeros beyond
// the sixth decimal place (6 places by value).
var fixtureValues = []string{"0.4215", "12", "0.000001", "1000000", "0", "3.5000000000", "999.999999", "0.25"}

// record adds the n reads of one input record from start on, every seconds,
// with qualities cycling through quality.
func (o *oldTable) record(meterID string, channel meters.Channel, seconds int, start time.Time, n int, version int64,
	source string, origin readstore.Origin, quality string) {
	for i := range n {
		r := oldRead{
			meterID: meterID, channel: channel, start: start.Add(time.Duration(i*seconds) * time.Second), seconds: seconds,
			value: fixtureValues[o.n%len(fixtureValues)], quality: meters.Quality(quality[i%len(quality)]),
			version: version, source: source, origin: origin,
		}
		o.n++
		o.rows[r.key()] = r
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// oldFixture is the old table of the conversion tests and the number of
// blocks gaps and islands makes of it, scenario by scenario.
func oldFixture() (map[readKey]oldRead, int) {
	o := &oldTable{rows: map[readKey]oldRead{}}
	const topic = "ami.interval-reads"
	at := func(partition int32, offset int64) readstore.Origin {
		return readstore.Origin{Topic: topic, Partition: partition, Offset: offset}
	}
	blocks := 0
	// A UTC day of 15-minute reads from one record: one block, all actual.
	o.record("M-1", meters.Import, 900, utc("2026-03-10T00:00:00Z"), 96, 1, "", at(0, 10), "A")
	blocks++
	// A version-3 record corrected an hour in the middle of a version-1
	// record's six: the first record's reads before and after are separate
	// blocks, the correction one.
	o.record("M-1", meters.Import, 900, utc("2026-03-11T00:00:00Z"), 24, 1, "head-end", at(0, 11), "AAE")
	o.record("M-1", meters.Import, 900, utc("2026-03-11T01:00:00Z"), 4, 3, "estimator", at(0, 12), "E")
	blocks += 3
	// Every other read replaced: reads of two records alternate, so each is a
	// block of its own.
	o.record("M-1", meters.Export, 900, utc("2026-03-11T00:00:00Z"), 8, 1, "", at(1, 13), "A")
	for i := 1; i < 8; i += 2 {
		o.record("M-1", meters.Export, 900, utc("2026-03-11T00:00:00Z").Add(time.Duration(i)*15*time.Minute), 1, 3, "", at(1, 14), "S")
	}
	blocks += 8
	// 5-minute reads across midnight and a month's end, mixed qualities:
	// cut at the UTC day, one block each side.
	o.record("M-2", meters.Export, 300, utc("2026-03-31T22:00:00Z"), 48, 1, "", at(1, 20), "AESA")
	blocks += 2
	// Hourly reads over 30 hours from 20:00: 4, 24 and 2 a day.
	o.record("M-2", meters.Import, 3600, utc("2026-05-01T20:00:00Z"), 30, 3, "", at(2, 21), "A")
	blocks += 3
	// One record with a gap in its reads: two blocks.
	o.record("M-3", meters.Import, 900, utc("2026-03-12T00:00:00Z"), 4, 1, "", at(0, 30), "A")
	o.record("M-3", meters.Import, 900, utc("2026-03-12T02:00:00Z"), 3, 1, "", at(0, 30), "A")
	blocks += 2
	// A full day of 5-minute reads (288, the most a block holds) and the next
	// day's first.
	o.record("M-3", meters.Export, 300, utc("2026-03-13T00:00:00Z"), 289, 1, "", at(2, 31), "A")
	blocks += 2
	// 1-minute reads, which no accepted record has but the old table does not
	// forbid: a block holds at most 288.
	o.record("M-3", meters.Import, 60, utc("2026-03-14T00:00:00Z"), 300, 1, "", at(2, 32), "A")
	blocks += 2
	// Long ago: its month's partition is not one 00800 created.
	o.record("M-4", meters.Import, 900, utc("2025-11-15T10:00:00Z"), 10, 1, "", readstore.Origin{Topic: "ami.interval-reads.replay", Partition: 3, Offset: 5}, "E")
	blocks++
	// Two records of one version, the second continuing the first: their
	// lineage differs, so two blocks.
	o.record("M-4", meters.Export, 900, utc("2026-03-10T00:00:00Z"), 4, 1, "", at(0, 40), "A")
	o.record("M-4", meters.Export, 900, utc("2026-03-10T01:00:00Z"), 4, 1, "", at(0, 41), "A")
	blocks += 2
	return o.rows, blocks
}

// gooseAt drives the embedded migrations on pool step by step.
func gooseAt(t *testing.T, pool *pgxpool.Pool) *goose.Provider {
	t.Helper()
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// insertOld writes rows with the old table's columns, in a shuffled order
// so that nothing depends on the order rows lie on disk.
func insertOld(ctx context.Context, t *testing.T, pool *pgxpool.Pool, rows map[readKey]oldRead) {
	t.Helper()
	all := sortedOld(rows)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var (
		meterIDs, channels, values, qualities, sources, topics []string
		starts                                                 []time.Time
		seconds, partitions                                    []int32
		versions, offsets                                      []int64
	)
	for _, r := range all {
		meterIDs, channels, starts = append(meterIDs, r.meterID), append(channels, string(r.channel)), append(starts, r.start)
		seconds, values, qualities = append(seconds, int32(r.seconds)), append(values, r.value), append(qualities, string(r.quality))
		versions, sources, topics = append(versions, r.version), append(sources, r.source), append(topics, r.origin.Topic)
		partitions, offsets = append(partitions, r.origin.Partition), append(offsets, r.origin.Offset)
	}
	_, err := pool.Exec(ctx, `INSERT INTO reads (meter_id, channel, interval_start, interval_seconds, value, quality, version, source, topic, partition, "offset")
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[]::numeric[], $6::text[], $7::bigint[],
		                     $8::text[], $9::text[], $10::int[], $11::bigint[])`,
		meterIDs, channels, starts, seconds, values, qualities, versions, sources, topics, partitions, offsets)
	if err != nil {
		t.Fatalf("fill the old reads table: %v", err)
	}
}

func sortedOld(rows map[readKey]oldRead) []oldRead {
	all := make([]oldRead, 0, len(rows))
	for _, r := range rows {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b oldRead) int {
		return strings.Compare(fmt.Sprint(a.meterID, a.channel, a.start.Unix()), fmt.Sprint(b.meterID, b.channel, b.start.Unix()))
	})
	return all
}

func micro(t *testing.T, r oldRead) int64 {
	t.Helper()
	d := decimal.RequireFromString(r.value).Shift(6)
	if !d.IsInteger() {
		t.Fatalf("fixture value %s has more than 6 decimal places", r.value)
	}
	return d.IntPart()
}

// checkConverted reads every block back with the read store's code and
// holds it to the old rows: each old read stored once, as the current read
// of its interval, with its value, quality, version, source, lineage and
// interval length; nothing else stored; wantBlocks blocks, each the
// conversion made maximal (preStored were in read_blocks before it).
func checkConverted(ctx context.Context, t *testing.T, pool *pgxpool.Pool, old map[readKey]oldRead, wantBlocks int,
	preStored ...readstore.StoredBlock) {
	t.Helper()
	var all []readstore.StoredBlock
	seen := map[readKey]bool{}
	w := readstore.BlockWindow{From: utc("2000-01-01T00:00:00Z"), To: utc("2100-01-01T00:00:00Z")}
	err := readstore.StreamChannels(ctx, pool, w, func(blocks []readstore.StoredBlock) error {
		all = append(all, blocks...)
		if n := len(readstore.Versions(blocks)); n != countChannel(old, blocks[0].MeterID, blocks[0].Channel) {
			t.Errorf("%s %s: %d stored read versions, want one per old read (%d)", blocks[0].MeterID, blocks[0].Channel,
				n, countChannel(old, blocks[0].MeterID, blocks[0].Channel))
		}
		readstore.Current(blocks, func(b *readstore.StoredBlock, i int) {
			k := readKey{b.MeterID, b.Channel, b.StartAt(i)}
			seen[k] = true
			want, ok := old[k]
			if !ok {
				t.Errorf("%s %s at %s: stored, but the old table had no such read", k.meterID, k.channel, time.Unix(k.start, 0).UTC())
				return
			}
			got := fmt.Sprint(b.Values[i], b.QualityAt(i), b.Version, b.Source, b.Origin, b.IntervalSeconds)
			exp := fmt.Sprint(micro(t, want), want.quality, want.version, want.source, want.origin, want.seconds)
			if got != exp {
				t.Errorf("%s %s at %s (old value %s): stored micro-kWh, quality, version, source, lineage, length = %s, want %s",
					k.meterID, k.channel, time.Unix(k.start, 0).UTC(), want.value, got, exp)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sortedOld(old) {
		if !seen[r.key()] {
			t.Errorf("old read %s %s at %s (value %s) is not stored", r.meterID, r.channel, r.start, r.value)
		}
	}
	if len(all) != wantBlocks {
		t.Errorf("%d blocks, want %d", len(all), wantBlocks)
	}
	checkIslands(t, all, preStored)
}

func countChannel(old map[readKey]oldRead, meterID string, channel meters.Channel) int {
	n := 0
	for k := range old {
		if k.meterID == meterID && k.channel == channel {
			n++
		}
	}
	return n
}

// checkIslands holds each block to the rules of blocks: within a UTC day,
// an empty quality exactly when all actual, and maximal: no block the
// conversion made ends where another of the same record starts on the same
// day.
func checkIslands(t *testing.T, blocks, preStored []readstore.StoredBlock) {
	t.Helper()
	type recordDay struct {
		meterID      string
		channel      meters.Channel
		seconds      int64
		version      int64
		source       string
		origin       readstore.Origin
		day, startAt int64
	}
	starts := map[recordDay]bool{}
	day := func(s int64) int64 { return s - s%86400 }
	converted := slices.DeleteFunc(slices.Clone(blocks), func(b readstore.StoredBlock) bool {
		return slices.ContainsFunc(preStored, func(p readstore.StoredBlock) bool {
			return p.MeterID == b.MeterID && p.Channel == b.Channel && p.Start == b.Start && p.Version == b.Version
		})
	})
	if len(converted) != len(blocks)-len(preStored) {
		t.Errorf("%d blocks stored before the conversion, %d of them found", len(preStored), len(blocks)-len(converted))
	}
	for _, b := range blocks {
		last := b.StartAt(len(b.Values) - 1)
		if day(b.Start) != day(last) {
			t.Errorf("%s %s block from %s crosses a UTC day", b.MeterID, b.Channel, time.Unix(b.Start, 0).UTC())
		}
		if b.Quality != "" && strings.Trim(b.Quality, "A") == "" {
			t.Errorf("%s %s block from %s: quality %q, want '' when every read is actual", b.MeterID, b.Channel, time.Unix(b.Start, 0).UTC(), b.Quality)
		}
	}
	for _, b := range converted {
		starts[recordDay{b.MeterID, b.Channel, b.IntervalSeconds, b.Version, b.Source, b.Origin, day(b.Start), b.Start}] = true
	}
	for _, b := range converted {
		next := b.StartAt(len(b.Values))
		if len(b.Values) < 288 && starts[recordDay{b.MeterID, b.Channel, b.IntervalSeconds, b.Version, b.Source, b.Origin, day(b.Start), next}] {
			t.Errorf("%s %s: the block from %s and the next one of the same record on the same day should be one",
				b.MeterID, b.Channel, time.Unix(b.Start, 0).UTC())
		}
	}
}

// oldRows reads the old table back.
func oldRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool) map[readKey]oldRead {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT meter_id, channel, interval_start, interval_seconds, value::text, quality, version, source, topic, partition, "offset" FROM reads`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[readKey]oldRead{}
	var r oldRead
	_, err = pgx.ForEachRow(rows, []any{&r.meterID, &r.channel, &r.start, &r.seconds, &r.value, &r.quality, &r.version, &r.source,
		&r.origin.Topic, &r.origin.Partition, &r.origin.Offset}, func() error {
		out[r.key()] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tableExists(ctx context.Context, t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// The conversion stores every old read exactly, as the blocks gaps and
// islands make; its Down gives the old table back, and redoing it stores
// nothing twice.
func TestReadsConvertToBlocks(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, oldSchemaVersion); err != nil {
		t.Fatal(err)
	}
	old, wantBlocks := oldFixture()
	insertOld(ctx, t, pool, old)

	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	if tableExists(ctx, t, pool, "reads") {
		t.Error("reads still exists after the conversion")
	}
	checkConverted(ctx, t, pool, old, wantBlocks)

	// Down: the old table again, with the same reads.
	if _, err := p.DownTo(ctx, readBlocksVersion); err != nil {
		t.Fatal(err)
	}
	back := oldRows(ctx, t, pool)
	for k, want := range old {
		got, ok := back[k]
		if !ok {
			t.Errorf("after Down: %s %s at %s missing from reads", k.meterID, k.channel, want.start)
			continue
		}
		if !decimal.RequireFromString(got.value).Equal(decimal.RequireFromString(want.value)) ||
			fmt.Sprint(got.seconds, got.quality, got.version, got.source, got.origin) != fmt.Sprint(want.seconds, want.quality, want.version, want.source, want.origin) {
			t.Errorf("after Down: %s %s at %s is %+v, want %+v", k.meterID, k.channel, want.start, got, want)
		}
	}
	if len(back) != len(old) {
		t.Errorf("after Down: %d reads, want %d", len(back), len(old))
	}

	// Up again over the blocks the first conversion left.
	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	checkConverted(ctx, t, pool, old, wantBlocks)
}

// A value that is not a whole number of micro-kWh cannot be stored exactly:
// the conversion fails, naming it, and converts nothing rather than round.
func TestReadsConversionRefusesMoreThanSixDecimals(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, oldSchemaVersion); err != nil {
		t.Fatal(err)
	}
	old, _ := oldFixture()
	bad := oldRead{meterID: "M-9", channel: meters.Import, start: utc("2026-03-10T00:15:00Z"), seconds: 900,
		value: "0.4215001", quality: meters.Actual, version: 1, origin: readstore.Origin{Topic: "ami.interval-reads", Offset: 99}}
	old[bad.key()] = bad
	insertOld(ctx, t, pool, old)

	err := migrations.Apply(ctx, pool, quiet)
	if err == nil {
		t.Fatal("the conversion accepted a value with 7 decimal places")
	}
	for _, want := range []string{"cannot convert reads to read_blocks", "more than 6 decimal places", "M-9", "0.4215001"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != readBlocksVersion {
		t.Errorf("schema version %d after the failed conversion, want %d", v, readBlocksVersion)
	}
	if n := len(oldRows(ctx, t, pool)); n != len(old) {
		t.Errorf("reads holds %d rows after the failed conversion, want all %d", n, len(old))
	}
	var blocks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM read_blocks`).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	if blocks != 0 {
		t.Errorf("%d blocks stored by the failed conversion", blocks)
	}
}

// Reads ingest already stored in read_blocks at the same version (after
// 00800, before the conversion) are not stored twice; the old reads around
// them still become blocks.
func TestReadsConversionSkipsStoredVersions(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, readBlocksVersion); err != nil {
		t.Fatal(err)
	}
	old, wantBlocks := oldFixture()
	insertOld(ctx, t, pool, old)

	// Reads 10 to 19 of the day-long record of M-1 import, as ingest would
	// have stored them again.
	first := old[readKey{"M-1", meters.Import, utc("2026-03-10T00:00:00Z").Unix()}]
	stored := readstore.StoredBlock{MeterID: first.meterID, Channel: first.channel, IntervalSeconds: int64(first.seconds),
		Start: first.start.Unix() + 10*900, Version: first.version, Source: first.source, Origin: first.origin}
	for i := range 10 {
		r := old[readKey{"M-1", meters.Import, stored.StartAt(i)}]
		if r.origin != first.origin {
			t.Fatalf("fixture: read %d of M-1 import is not the day-long record's", 10+i)
		}
		stored.Values = append(stored.Values, micro(t, r))
	}
	if err := readstore.EnsurePartitions(ctx, pool, []int64{stored.Start}); err != nil {
		t.Fatal(err)
	}
	// Straight into read_blocks, as ingest's COPY wrote it then:
	// readstore.AppendBlocks now also keeps channel_lengths.last_end, which
	// this schema predates (migrations/00806_channel_last_end.sql).
	if _, err := pool.Exec(ctx, `
		INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, quality, source,
			topic, partition, "offset")
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		stored.MeterID, string(stored.Channel), time.Unix(stored.Start, 0), stored.IntervalSeconds, stored.Version,
		stored.Values, stored.Quality, stored.Source, stored.Origin.Topic, stored.Origin.Partition, stored.Origin.Offset); err != nil {
		t.Fatal(err)
	}

	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	// The stored block, and the record's reads before and after it: one
	// block more each side instead of the record's one.
	checkConverted(ctx, t, pool, old, wantBlocks+2, stored)
}

package readstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// storeBlocks loads blocks straight into read_blocks, creating their months'
// partitions (March and April 2026 are outside those the migration makes).
func storeBlocks(t *testing.T, pool *pgxpool.Pool, blocks ...StoredBlock) {
	t.Helper()
	var starts []int64
	for _, b := range blocks {
		starts = append(starts, b.Start)
	}
	if err := EnsurePartitions(t.Context(), pool, starts); err != nil {
		t.Fatal(err)
	}
	if err := AppendBlocks(t.Context(), pool, blocks); err != nil {
		t.Fatal(err)
	}
}

// correctedReads stores M1's history: import v1 (offset 10) over 05:00-05:30,
// v2 (offset 11) over the same intervals correcting 05:00 and 05:30 (its
// 05:15 equal to v1's, so not stored), then a stale resend of v1 (offset
// 12) that only adds 05:45; an export read (13) at 05:00; a read on another
// day and month (14); and another meter's read, never listed.
func correctedReads(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	org := func(off int64) Origin { return Origin{Topic: readsTopic, Partition: 3, Offset: off} }
	storeBlocks(t, pool,
		StoredBlock{MeterID: "M1", Channel: meters.Import, Start: unix("2026-03-01T05:00:00Z"), IntervalSeconds: 900, Version: 1,
			Values: []int64{1_000_000, 2_000_000, 3_000_000}, Quality: "AEA", Source: "he", Origin: org(10)},
		StoredBlock{MeterID: "M1", Channel: meters.Import, Start: unix("2026-03-01T05:00:00Z"), IntervalSeconds: 900, Version: 2,
			Values: []int64{1_500_000, NoRead, 3_250_000}, Origin: org(11)},
		StoredBlock{MeterID: "M1", Channel: meters.Import, Start: unix("2026-03-01T05:00:00Z"), IntervalSeconds: 900, Version: 1,
			Values: []int64{NoRead, NoRead, NoRead, 4_000_000}, Quality: "AAAE", Source: "he", Origin: org(12)},
		StoredBlock{MeterID: "M1", Channel: meters.Export, Start: unix("2026-03-01T05:00:00Z"), IntervalSeconds: 900, Version: 1,
			Values: []int64{500_000}, Origin: org(13)},
		StoredBlock{MeterID: "M1", Channel: meters.Import, Start: unix("2026-04-02T00:00:00Z"), IntervalSeconds: 900, Version: 1,
			Values: []int64{7_000_000}, Origin: org(14)},
		StoredBlock{MeterID: "M2", Channel: meters.Import, Start: unix("2026-03-01T05:00:00Z"), IntervalSeconds: 900, Version: 1,
			Values: []int64{9_000_000}, Origin: org(15)},
	)
}

func fmtOrigin(o *Origin) string {
	if o == nil {
		return "null"
	}
	return fmt.Sprintf("%s/%d@%d", o.Topic, o.Partition, o.Offset)
}

func fmtRead(r meters.Read, o Origin) string {
	return fmt.Sprintf("%s %s %s v%d %s %q @%d", r.Start.Format("01-02T15:04"), r.Channel, r.Value.StringFixed(6), r.Version, r.Quality, r.Source, o.Offset)
}

func listCurrent(t *testing.T, pool *pgxpool.Pool, f ReadFilter, limit int) []string {
	t.Helper()
	rs, err := CurrentReads(t.Context(), pool, f, limit)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, r := range rs {
		if r.MeterID != f.MeterID {
			t.Errorf("read of %s listed for %s", r.MeterID, f.MeterID)
		}
		out = append(out, fmtRead(r.Read, r.Origin))
	}
	return out
}

func listVersions(t *testing.T, pool *pgxpool.Pool, f ReadFilter, limit int) []string {
	t.Helper()
	vs, err := ReadVersions(t.Context(), pool, f, limit)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, v := range vs {
		if v.MeterID != f.MeterID {
			t.Errorf("read of %s listed for %s", v.MeterID, f.MeterID)
		}
		out = append(out, fmtRead(v.Read, v.Origin)+" by "+fmtOrigin(v.SupersededBy))
	}
	return out
}

// TestReadVersions: a correction (v2) supersedes v1 read by read, a stale
// resend of v1 adds only what had no read; the current listing shows the
// winners, the listing of every version shows each stored read once with
// the record that replaced it, both in (start, channel[, version]) order.
func TestReadVersions(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	correctedReads(t, pool)
	const by11 = " by ami.interval-reads/3@11"

	current := []string{
		`03-01T05:00 export 0.500000 v1 A "" @13`,
		`03-01T05:00 import 1.500000 v2 A "" @11`,
		`03-01T05:15 import 2.000000 v1 E "he" @10`,
		`03-01T05:30 import 3.250000 v2 A "" @11`,
		`03-01T05:45 import 4.000000 v1 E "he" @12`,
		`04-02T00:00 import 7.000000 v1 A "" @14`,
	}
	equal(t, "current", listCurrent(t, pool, ReadFilter{MeterID: "M1"}, 100), current)
	all := []string{
		`03-01T05:00 export 0.500000 v1 A "" @13 by null`,
		`03-01T05:00 import 1.000000 v1 A "he" @10` + by11,
		`03-01T05:00 import 1.500000 v2 A "" @11 by null`,
		`03-01T05:15 import 2.000000 v1 E "he" @10 by null`,
		`03-01T05:30 import 3.000000 v1 A "he" @10` + by11,
		`03-01T05:30 import 3.250000 v2 A "" @11 by null`,
		`03-01T05:45 import 4.000000 v1 E "he" @12 by null`,
		`04-02T00:00 import 7.000000 v1 A "" @14 by null`,
	}
	equal(t, "versions", listVersions(t, pool, ReadFilter{MeterID: "M1"}, 100), all)

	// Filters: a channel, a window starting mid-block, the limit.
	equal(t, "current export", listCurrent(t, pool, ReadFilter{MeterID: "M1", Channel: meters.Export}, 100), current[:1])
	window := ReadFilter{MeterID: "M1", From: time.Date(2026, 3, 1, 5, 15, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 5, 45, 0, 0, time.UTC)}
	equal(t, "current 05:15-05:45", listCurrent(t, pool, window, 100), current[2:4])
	equal(t, "versions 05:15-05:45", listVersions(t, pool, window, 100), all[3:6])
	equal(t, "current, limit 3", listCurrent(t, pool, ReadFilter{MeterID: "M1"}, 3), current[:3])
	equal(t, "versions, limit 0", listVersions(t, pool, ReadFilter{MeterID: "M1"}, 0), []string{})
	equal(t, "no reads", listVersions(t, pool, ReadFilter{MeterID: "M3"}, 10), []string{})
	from := ReadFilter{MeterID: "M1", From: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	equal(t, "current from a later day", listCurrent(t, pool, from, 10), current[5:])

	// Pages of every size chain to the whole listing through their last key.
	for limit := 1; limit <= 4; limit++ {
		var got []string
		f := ReadFilter{MeterID: "M1"}
		for range 20 {
			page, err := CurrentReads(t.Context(), pool, f, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				got = append(got, fmtRead(r.Read, r.Origin))
			}
			if len(page) < limit {
				break
			}
			last := page[len(page)-1]
			f.After = &ReadKey{Start: last.Start, Channel: last.Channel}
		}
		equal(t, fmt.Sprintf("current in pages of %d", limit), got, current)

		got = nil
		f = ReadFilter{MeterID: "M1"}
		for range 20 {
			page, err := ReadVersions(t.Context(), pool, f, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page {
				got = append(got, fmtRead(v.Read, v.Origin)+" by "+fmtOrigin(v.SupersededBy))
			}
			if len(page) < limit {
				break
			}
			last := page[len(page)-1]
			f.After = &ReadKey{Start: last.Start, Channel: last.Channel, Version: last.Version}
		}
		equal(t, fmt.Sprintf("versions in pages of %d", limit), got, all)
	}
}

func fmtPrice(p StoredPrice) string {
	return fmt.Sprintf("%s %s %s %s v%d %s @%d by %s", p.Market, p.SettlementPoint, p.Start.Format("15:04"),
		p.Price.Price.StringFixed(6), p.Version, p.Currency, p.Origin.Offset, fmtOrigin(p.SupersededBy))
}

// TestPriceVersions: corrections v1 → v2 → v3 of a price in three batches,
// then a stale resend of v1; and v1 → v2 of another price within one batch.
// The store keeps every version, each superseded by the record that replaced
// it; the current listing is unchanged by them.
func TestPriceVersions(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	b := &batch{pool: pool}
	b.prices(t, price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 900, 1, "10", "USD"))   // @0
	b.prices(t, price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 900, 2, "11", "USD"))   // @1
	b.prices(t, price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 900, 3, "12.5", "USD"), // @2
		price("RT", "HB_NORTH", "2026-11-01T05:15:00Z", 900, 1, "20", "USD")) // @3
	if out := b.prices(t, price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 900, 1, "10", "USD")); out.Stale != 1 { // @4
		t.Errorf("stale resend: %+v", out)
	}
	b.prices(t, price("DA", "HB_NORTH", "2026-11-01T05:00:00Z", 3600, 1, "30", "USD"), // @5
		price("DA", "HB_NORTH", "2026-11-01T05:00:00Z", 3600, 2, "31", "USD"), // @6
		price("RT", "HB_SOUTH", "2026-11-01T05:00:00Z", 900, 1, "40", "USD"))  // @7

	list := func(f PriceFilter, limit int) []string {
		t.Helper()
		ps, err := CurrentPrices(t.Context(), pool, f, limit)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, p := range ps {
			out = append(out, fmtPrice(p))
		}
		return out
	}
	all := []string{
		"DA HB_NORTH 05:00 30.000000 v1 USD @5 by market.prices/0@6",
		"DA HB_NORTH 05:00 31.000000 v2 USD @6 by null",
		"RT HB_NORTH 05:00 10.000000 v1 USD @0 by market.prices/0@1",
		"RT HB_NORTH 05:00 11.000000 v2 USD @1 by market.prices/0@2",
		"RT HB_NORTH 05:00 12.500000 v3 USD @2 by null",
		"RT HB_NORTH 05:15 20.000000 v1 USD @3 by null",
		"RT HB_SOUTH 05:00 40.000000 v1 USD @7 by null",
	}
	equal(t, "every version", list(PriceFilter{AllVersions: true}, 0), all)
	equal(t, "current", list(PriceFilter{}, 0), []string{all[1], all[4], all[5], all[6]})
	equal(t, "every RT HB_NORTH version from 05:00 to 05:15",
		list(PriceFilter{AllVersions: true, Market: meters.RealTime, SettlementPoint: "HB_NORTH",
			From: time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 5, 15, 0, 0, time.UTC)}, 0), all[2:5])
	equal(t, "every version, limit 3", list(PriceFilter{AllVersions: true}, 3), all[:3])

	for limit := 1; limit <= 3; limit++ {
		var got []string
		f := PriceFilter{AllVersions: true}
		for range 20 {
			page, err := CurrentPrices(t.Context(), pool, f, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			last := page[len(page)-1]
			f.After = &PriceKey{Market: last.Market, SettlementPoint: last.SettlementPoint, Start: last.Start, Version: last.Version}
			for _, p := range page {
				got = append(got, fmtPrice(p))
			}
		}
		equal(t, fmt.Sprintf("every version in pages of %d", limit), got, all)
	}
}

package readstore

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

func unix(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

// Blocks written by AppendBlocks's own binary COPY come back from
// StreamChannels as they were: NULL elements, qualities, multi-byte sources,
// several months, grouped by channel in (meter, channel, start) order.
func TestBlocksRoundTrip(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	in := []StoredBlock{
		{MeterID: "M2", Channel: meters.Import, Start: unix("2026-10-31T23:00:00Z"), IntervalSeconds: 900, Version: 1,
			Values: []int64{1, NoRead, 1_000_000_000_000, 0}, Quality: "AAES", Source: "tête-de-réseau ✓",
			Origin: Origin{Topic: "ami.interval-reads", Partition: 3, Offset: 1 << 40}},
		{MeterID: "M1", Channel: meters.Export, Start: unix("2019-02-01T00:00:00Z"), IntervalSeconds: 3600, Version: 7,
			Values: []int64{412000}, Origin: Origin{Topic: "t", Partition: 0, Offset: 0}},
		{MeterID: "M1", Channel: meters.Import, Start: unix("2026-11-01T00:00:00Z"), IntervalSeconds: 300, Version: 2,
			Values: []int64{5, 6}, Origin: Origin{Topic: "t", Partition: 1, Offset: 9}},
	}
	if err := EnsurePartitions(ctx, pool, []int64{in[0].Start, in[1].Start, in[2].Start}); err != nil {
		t.Fatal(err)
	}
	if err := AppendBlocks(ctx, pool, in); err != nil {
		t.Fatal(err)
	}
	var got [][]StoredBlock
	err := StreamChannels(ctx, pool, BlockWindow{From: time.Unix(unix("2019-01-01T00:00:00Z"), 0), To: time.Unix(unix("2027-01-01T00:00:00Z"), 0)},
		func(bs []StoredBlock) error {
			got = append(got, append([]StoredBlock(nil), bs...))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]StoredBlock{{in[1]}, {in[2]}, {in[0]}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("streamed\n%+v\nwant\n%+v", got, want)
	}
}

// The current read of a start is the stored read of the highest version;
// Versions lists every stored read, each superseded by the next version.
func TestCurrentAndVersions(t *testing.T) {
	o := func(off int64) Origin { return Origin{Topic: "t", Offset: off} }
	start := unix("2026-11-01T05:00:00Z")
	blocks := []StoredBlock{
		{MeterID: "M", Channel: meters.Import, Start: start, IntervalSeconds: 900, Version: 1, Values: []int64{10, 11, 12}, Origin: o(1)},
		{MeterID: "M", Channel: meters.Import, Start: start + 900, IntervalSeconds: 900, Version: 3, Values: []int64{31}, Quality: "E", Origin: o(3)},
		{MeterID: "M", Channel: meters.Import, Start: start, IntervalSeconds: 900, Version: 2, Values: []int64{NoRead, 21, 22}, Origin: o(2)},
	}
	var cur []string
	Current(blocks, func(b *StoredBlock, i int) {
		cur = append(cur, fmt.Sprintf("%d:%d@v%d%s", (b.StartAt(i)-start)/900, b.Values[i], b.Version, b.QualityAt(i)))
	})
	if want := []string{"0:10@v1A", "1:31@v3E", "2:22@v2A"}; !reflect.DeepEqual(cur, want) {
		t.Errorf("current %v, want %v", cur, want)
	}
	var vs []string
	for _, v := range Versions(blocks) {
		s := fmt.Sprintf("%d:v%d", (v.Start.Unix()-start)/900, v.Version)
		if v.SupersededBy != nil {
			s += fmt.Sprintf(">@%d", v.SupersededBy.Offset)
		}
		vs = append(vs, s)
	}
	if want := []string{"0:v1", "1:v1>@2", "1:v2>@3", "1:v3", "2:v1>@2", "2:v2"}; !reflect.DeepEqual(vs, want) {
		t.Errorf("versions %v, want %v", vs, want)
	}
}

// SplitDays cuts at UTC midnight only, keeping qualities aligned.
func TestSplitDays(t *testing.T) {
	b := StoredBlock{Start: unix("2026-11-01T23:00:00Z"), IntervalSeconds: 1800, Values: []int64{1, 2, 3, 4, 5}, Quality: "AEASA"}
	parts := SplitDays(b)
	if len(parts) != 2 || parts[0].Start != b.Start || !reflect.DeepEqual(parts[0].Values, []int64{1, 2}) || parts[0].Quality != "AE" ||
		parts[1].Start != unix("2026-11-02T00:00:00Z") || !reflect.DeepEqual(parts[1].Values, []int64{3, 4, 5}) || parts[1].Quality != "ASA" {
		t.Fatalf("split %+v", parts)
	}
	long := StoredBlock{Start: unix("2026-11-01T00:00:00Z"), IntervalSeconds: 3600, Values: make([]int64, 24*3+5)}
	if parts := SplitDays(long); len(parts) != 4 || len(parts[3].Values) != 5 || parts[3].Start != unix("2026-11-04T00:00:00Z") {
		t.Fatalf("split of a long record: %d parts", len(parts))
	}
}

// Batches that need the same new month at once all find it created when
// Ensure returns: none may take another's creation in flight for done.
func TestPartitionsEnsureWaitsForTheMonth(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	p := NewPartitions(pool, 5*time.Second)
	start := unix("2019-03-04T00:00:00Z")
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			if err := p.Ensure(ctx, []int64{start}); err != nil {
				errs <- err
				return
			}
			errs <- AppendBlocks(ctx, pool, []StoredBlock{{MeterID: fmt.Sprintf("M%d", i), Channel: meters.Import, Start: start,
				IntervalSeconds: 900, Version: 1, Values: []int64{1}, Origin: Origin{Topic: "t", Offset: int64(i)}}})
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM read_blocks_2019m03`).Scan(&n); err != nil || n != 8 {
		t.Fatalf("%d blocks in March 2019 (%v), want 8", n, err)
	}
	var next bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('read_blocks_2019m04') IS NOT NULL`).Scan(&next); err != nil || !next {
		t.Fatalf("the month after was not created ahead (%v)", err)
	}
}

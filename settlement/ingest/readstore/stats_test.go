package readstore

import (
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// Stats counts stored read versions (superseded ones included, NoRead
// elements not) and the bytes of every partition, not of the empty parent;
// CurrentTotals counts and sums only the current reads.
func TestStats(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx := t.Context()

	versions, bytes, err := Stats(ctx, pool)
	if err != nil || versions != 0 {
		t.Fatalf("empty store: %d versions, %v", versions, err)
	}
	emptyBytes := bytes

	oct := time.Date(2026, 10, 5, 5, 0, 0, 0, time.UTC).Unix()
	mar := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC).Unix()
	o := Origin{Topic: readsTopic}
	blocks := []StoredBlock{
		// version 1 of four reads, then version 2 of the middle two: one
		// unchanged (NoRead) and one changed
		{MeterID: "M1", Channel: meters.Import, Start: oct, IntervalSeconds: 900, Version: 1, Values: []int64{1_000_000, 2_000_000, 3_000_000, 4_000_000}, Origin: o},
		{MeterID: "M1", Channel: meters.Import, Start: oct + 900, IntervalSeconds: 900, Version: 2, Values: []int64{NoRead, 2_500_000}, Origin: o},
		// another month, so another partition
		{MeterID: "M2", Channel: meters.Export, Start: mar, IntervalSeconds: 900, Version: 1, Values: []int64{7, NoRead, 11}, Quality: "EAE", Origin: o},
	}
	if err := EnsurePartitions(ctx, pool, []int64{oct, mar}); err != nil {
		t.Fatal(err)
	}
	if err := AppendBlocks(ctx, pool, blocks); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) read_blocks`); err != nil {
		t.Fatal(err)
	}

	versions, bytes, err = Stats(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if versions != 4+1+2 {
		t.Errorf("versions %d, want 7", versions)
	}
	// The same sum found another way: the partitions as pg_inherits lists them.
	var want, parent, oneFilled int64
	if err := pool.QueryRow(ctx, `SELECT
			(SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits WHERE inhparent = 'read_blocks'::regclass),
			pg_total_relation_size('read_blocks'),
			pg_total_relation_size(read_blocks_partition('2025-03-02T00:00:00Z'))`).Scan(&want, &parent, &oneFilled); err != nil {
		t.Fatal(err)
	}
	if bytes != want || bytes <= parent || bytes <= emptyBytes || oneFilled <= 0 || bytes < emptyBytes+oneFilled {
		t.Errorf("bytes %d: want Σ over partitions %d (parent alone %d, empty store %d, one filled partition %d)",
			bytes, want, parent, emptyBytes, oneFilled)
	}

	reads, sum, err := CurrentTotals(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if wantSum := int64(1_000_000 + 2_000_000 + 2_500_000 + 4_000_000 + 7 + 11); reads != 6 || sum != wantSum {
		t.Errorf("current: %d reads, Σ %d µkWh; want 6, %d", reads, sum, wantSum)
	}
}

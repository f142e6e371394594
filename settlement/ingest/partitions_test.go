package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// Batches of more partitions than the pool has connections, all needing
// months nobody created yet, catch up: a consumer creates a batch's months
// before it takes a connection for the batch, so no batch waits for a month
// while holding a connection its creator needs (the demo hung on this).
func TestNewMonthsOnASmallPool(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	url := e.pool.Config().ConnString()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	small, err := migrations.Connect(t.Context(), url+sep+"pool_max_conns=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(small.Close)
	e.pool = small
	var recs = make([]string, 0, 8)
	for p := range int32(4) {
		// April to July 2026: none of them is created by the migrations.
		at := time.Date(2026, time.Month(4+p), 10, 5, 0, 0, 0, time.UTC).Format(time.RFC3339)
		recs = append(recs, read("M1", "import", at, 900, 1, "1", "2"), read("M2", "export", at, 900, 1, "3"))
	}
	for i, r := range recs {
		e.produce(false, rec(R, int32(i%4), "k", r))
	}
	e.startApplier(Config{}, NewApplier(e.market, topics, e.writer).WithPartitions(readstore.NewPartitions(small, 5*time.Second)))
	e.caughtUpWithin(30 * time.Second)
	if n := e.count(`SELECT count(*) FROM current_reads`); n != 12 {
		t.Fatalf("%d reads stored, want 12", n)
	}
}

package ingest

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// A partition that comes in two polls of one round is applied as one run of
// records, in offset order, with the latest watermarks: two goroutines
// applying one partition's records would apply them out of order.
func TestByPartitionJoinsPolls(t *testing.T) {
	t.Parallel()
	recs := func(p int32, offsets ...int64) []*kgo.Record {
		var out []*kgo.Record
		for _, o := range offsets {
			out = append(out, &kgo.Record{Topic: "r", Partition: p, Offset: o})
		}
		return out
	}
	fetch := func(parts ...kgo.FetchPartition) kgo.Fetch {
		return kgo.Fetch{Topics: []kgo.FetchTopic{{Topic: "r", Partitions: parts}}}
	}
	fs := kgo.Fetches{
		fetch(kgo.FetchPartition{Partition: 0, HighWatermark: 10, LastStableOffset: 10, Records: recs(0, 3, 4)},
			kgo.FetchPartition{Partition: 1, HighWatermark: 5, LastStableOffset: 5, Records: recs(1, 0)}),
		fetch(kgo.FetchPartition{Partition: 2}, // nothing to apply
			kgo.FetchPartition{Partition: 0, HighWatermark: 12, LastStableOffset: 11, Records: recs(0, 5, 6)}),
	}
	got := byPartition(fs)
	if len(got) != 2 {
		t.Fatalf("got %d partitions, want 2 (0 and 1; 2 has no records)", len(got))
	}
	p0 := got[0]
	var offsets []int64
	for _, r := range p0.Records {
		offsets = append(offsets, r.Offset)
	}
	if p0.Partition != 0 || !slices.Equal(offsets, []int64{3, 4, 5, 6}) || p0.HighWatermark != 12 || p0.LastStableOffset != 11 {
		t.Fatalf("partition 0: offsets %v, watermarks %d/%d; want [3 4 5 6], 12/11", offsets, p0.HighWatermark, p0.LastStableOffset)
	}
	if got[1].Partition != 1 || len(got[1].Records) != 1 {
		t.Fatalf("partition 1: %+v", got[1])
	}
}

// A round takes what the client has fetched already, beyond one poll's
// records, up to roundRecords polls' worth: a producer's batch of
// thousands of records of one partition must not leave a round with one
// partition to apply.
func TestRoundTakesWhatIsBuffered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, rec(topics.Reads, int32(i%2), "m", "{}"))
	}
	e.produce(false, recs...)
	cfg := Config{MaxBatchRecords: 2, Concurrency: 1, Kafka: kafka.Config{Brokers: e.addrs}, Topics: topics}
	c, err := New(cfg, e.pool, NewApplier(e.market, topics, e.writer), prometheus.NewRegistry(), slog.New(slog.DiscardHandler),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.cl.Close()
	want := roundRecords * cfg.MaxBatchRecords * cfg.Concurrency
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	most := 0
	for ctx.Err() == nil {
		n, _ := roundSize(c.poll(ctx))
		c.cl.AllowRebalance()
		if n > want {
			t.Fatalf("a round took %d records, want at most %d", n, want)
		}
		if most = max(most, n); most == want {
			return
		}
	}
	t.Fatalf("no round took more than %d records, want %d (one poll is %d)", most, want, cfg.MaxBatchRecords*cfg.Concurrency)
}

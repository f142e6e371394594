package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkIngest measures exactly-once ingest throughput: blocks of 16
// 15-minute reads per record, produced transactionally to kfake over the
// four reads partitions, consumed into Postgres with every current read
// persisted. Each iteration's records are produced while fetching is paused;
// it reports reads/s from resuming to lag 0 (group join excluded). Run with:
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//	  go test ./settlement/ingest -run '^$' -bench Ingest -benchtime 1x
func BenchmarkIngest(b *testing.B) {
	const (
		meters       = 1250
		blocksPerRun = 10 // per meter and iteration: 1250 × 10 × 16 = 200,000 reads
		perBlock     = 16
	)
	e := newEnv(b)
	e.exec(fmt.Sprintf(`
		INSERT INTO participants VALUES ('RETAILER-A', 'A');
		INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub');
		INSERT INTO accounts (account_id, name) SELECT 'ACC-' || i, 'a' FROM generate_series(1, %d) i;
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		SELECT 'M' || i, 'ACC-' || i, 'RETAILER-A', 'HB_NORTH', 1.0125, '2020-01-01T00:00:00Z' FROM generate_series(1, %d) i`, meters, meters))
	values := make([]string, perBlock)
	for i := range values {
		values[i] = fmt.Sprintf(`"0.%06d"`, 100000+i*7919)
	}
	vals := strings.Join(values, ",")
	c := e.start(Config{})
	var reads, seconds float64
	// The blocks run forward, iteration after iteration, and end at a fixed
	// past instant whatever b.N: dated forward from a fixed day, a long run
	// would reach the future, and its reads, start_out_of_range, would
	// measure the quarantine instead.
	end := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	start := end.Add(-time.Duration(b.N*blocksPerRun*perBlock) * 15 * time.Minute)
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		var recs []*kgo.Record
		for blk := range blocksPerRun {
			at := start.Add(time.Duration((iter*blocksPerRun+blk)*perBlock) * 15 * time.Minute).Format(time.RFC3339)
			for m := 1; m <= meters; m++ {
				recs = append(recs, rec(R, int32(m%4), fmt.Sprintf("M%d", m), fmt.Sprintf(
					`{"meter_id":"M%d","channel":"import","start":%q,"interval_seconds":900,"values":[%s],"source":"bench"}`, m, at, vals)))
			}
		}
		// Produce the whole iteration first, then time its consumption.
		c.c.cl.PauseFetchTopics(R)
		for i := 0; i < len(recs); i += 2500 {
			e.produce(false, recs[i:min(i+2500, len(recs))]...)
		}
		n0 := c.records(R)
		b.StartTimer()
		t0 := time.Now()
		c.c.cl.ResumeFetchTopics(R)
		e.caughtUp()
		seconds += time.Since(t0).Seconds()
		b.StopTimer()
		reads += float64((c.records(R) - n0) * perBlock)
	}
	c.stop()
	if got := e.count(`SELECT count(*) FROM current_reads`); got != b.N*meters*blocksPerRun*perBlock {
		b.Fatalf("%d reads stored, want %d", got, b.N*meters*blocksPerRun*perBlock)
	}
	b.ReportMetric(reads/seconds, "reads/s")
}

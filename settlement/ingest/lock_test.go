package ingest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// holdOffsetRow locks the stored offset row of R/partition in a transaction
// of another session, as a frozen or slow owner would, until the returned
// function is called (also at cleanup).
func (e *env) holdOffsetRow(partition int32) (release func()) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.pool.Exec(ctx, `INSERT INTO ingest_offsets (topic, partition) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		R, partition); err != nil {
		e.t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		e.t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM ingest_offsets WHERE topic = $1 AND partition = $2 FOR UPDATE`, R, partition); err != nil {
		e.t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		}
	}
	e.t.Cleanup(release)
	return release
}

// While another session holds the stored offset row of partition 0 locked,
// its batches time out on the lock (55P03), count as failures, are retried
// with the partition's fetching paused, and quarantine nothing; partition 1
// meanwhile commits each of its records within a bound far below the time
// the lock is held. Once the lock is released, partition 0 catches up, each
// record applied once.
func TestBatchBehindALockTimesOutAndRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	c := e.start(Config{LockTimeout: 200 * time.Millisecond, MaxRetryBackoff: 500 * time.Millisecond})
	e.caughtUp()
	const hold = 6 * time.Second
	release := e.holdOffsetRow(0)
	locked := time.Now()
	at := func(i int) string {
		return time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC).Add(time.Duration(i) * 15 * time.Minute).Format(time.RFC3339)
	}
	e.produce(false, rec(R, 0, "M1", read("M1", "import", at(0), 900, 1, "1")),
		rec(R, 0, "M1", read("M1", "import", at(1), 900, 1, "1")))

	// Partition 1 gets a record every half second while partition 0 is
	// locked; each must commit within the bound.
	const bound = 2 * time.Second
	var worst time.Duration
	paused := false
	sample := func() {
		paused = paused || slices.Contains(c.c.cl.PauseFetchPartitions(nil)[R], 0)
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; time.Since(locked) < hold; i++ {
		sent := time.Now()
		e.produce(false, rec(R, 1, "M1", read("M1", "export", at(i), 900, 1, "1")))
		for e.count(`SELECT count(*) FROM current_reads WHERE channel = 'export'`) != i+1 {
			if time.Since(sent) > bound {
				t.Fatalf("partition 1's record %d not committed within %s while partition 0 is locked", i, bound)
			}
			sample()
		}
		worst = max(worst, time.Since(sent))
		for next := time.Now().Add(500 * time.Millisecond); time.Now().Before(next); {
			sample()
		}
	}
	t.Logf("partition 1's worst commit latency while partition 0 was locked for %s: %s", hold, worst)
	if n := e.count(`SELECT count(*) FROM current_reads WHERE channel = 'import'`); n != 0 {
		t.Fatalf("%d reads of the locked partition applied", n)
	}
	if f := counterValue(c.c.m.failures.WithLabelValues(R, "0")); f < 2 {
		t.Errorf("%v failures of the locked partition, want its batches timing out and retried", f)
	}
	if !paused {
		t.Error("the locked partition's fetching was never paused while it backed off")
	}
	if logs := c.logs.String(); !strings.Contains(logs, "55P03") {
		t.Errorf("no lock timeout logged:\n%s", logs)
	}

	release()
	e.caughtUpWithin(catchUpBound)
	if n := e.count(`SELECT count(*) FROM current_reads WHERE channel = 'import'`); n != 2 {
		t.Errorf("%d reads of partition 0 after the release, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM quarantine`); n != 0 {
		t.Errorf("%d records quarantined for a lock", n)
	}
	if slices.Contains(c.c.cl.PauseFetchPartitions(nil)[R], 0) {
		t.Error("partition 0 still paused after catching up")
	}
}

// Batches are capped in reads as well as in records: with MaxBatchReads 10,
// records of 4 reads go two to a transaction, and a record of 12 reads
// alone. Each transaction's reads are told apart by the xmin of their rows.
func TestBatchesAreCappedInReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.start(Config{MaxBatchReads: 10})
	var recs []*kgo.Record
	start := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	for i := range 5 {
		recs = append(recs, rec(R, 0, "M1", read("M1", "import", start.Add(time.Duration(i)*time.Hour).Format(time.RFC3339), 900, 1,
			"1", "2", "3", "4")))
	}
	twelve := strings.Split(strings.Repeat("1,", 12), ",")[:12]
	recs = append(recs, rec(R, 0, "M1", read("M1", "import", start.Add(5*time.Hour).Format(time.RFC3339), 900, 1, twelve...)))
	e.produce(false, recs...)
	e.caughtUp()
	rows, err := e.pool.Query(t.Context(), `
		SELECT sum((SELECT count(v) FROM unnest(values_micro) v))::int FROM read_blocks GROUP BY xmin::text ORDER BY min(start)`)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	total, over := 0, 0
	for _, n := range sizes {
		total += n
		if n > 10 {
			over++
		}
	}
	if total != 32 || over != 1 || sizes[len(sizes)-1] != 12 || len(sizes) < 4 {
		t.Errorf("reads per transaction %v, want at most 10 but the 12 of the last record alone, 32 in all", sizes)
	}
}

package readstore

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// Two writers correcting the same read of an existing channel take turns on
// the channel's row: the second waits for the first to commit, then reads
// its block, so its correction replaces the first's (positions move by
// v3 − v2, not v3 − v1) and all three versions are kept.
func TestWritersOfAChannelTakeTurns(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	ctx := t.Context()
	first := &batch{pool: pool, offset: 0}
	first.reads(t, read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1"))
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	rec := read("M2", "import", "2026-11-01T05:00:00Z", 900, 2, "2")
	block, _ := meters.DecodeReadBlock([]byte(rec))
	if _, err := ApplyReads(ctx, tx, ReadOptions{SettlementSeconds: 900},
		[]ReadRecord{{Source: Source{Origin: Origin{Topic: readsTopic, Offset: 1}}, Block: block}}); err != nil {
		t.Fatal(err)
	}
	out := secondWriterAfter(t, pool, tx, read("M2", "import", "2026-11-01T05:00:00Z", 900, 3, "5"))
	if len(out.Changes) != 1 || out.Changes[0].Previous() == nil || out.Changes[0].Previous().Version != 2 {
		t.Fatalf("second writer replaced %+v, want version 2", out.Changes)
	}
	assertPositions(t, pool, map[string]string{"RETAILER-A/HB_SOUTH/05:00": "0.005156"})
	var versions []int64
	rows, err := pool.Query(ctx, `SELECT version FROM read_versions WHERE meter_id = 'M2' ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	equal(t, "versions kept", versions, []int64{1, 2, 3})
}

// waitForLockWaiter returns once a session of the test's database waits on
// a lock, failing the test after 30 s.
// secondWriterAfter applies rec as a second writer (offset 2) while tx
// holds the lock of rec's channel, commits tx once the second writer waits
// on it, and returns what the second writer applied: it must wait, then
// apply, within 30 s of the commit.
func secondWriterAfter(t *testing.T, pool *pgxpool.Pool, tx pgx.Tx, rec string) ReadsOutcome {
	t.Helper()
	ctx := t.Context()
	second := &batch{pool: pool, offset: 2}
	done := make(chan ReadsOutcome, 1)
	failed := make(chan error, 1)
	go func() {
		out, err := second.tryReads(ctx, rec)
		if err != nil {
			failed <- err
			return
		}
		done <- out
	}()
	waitForLockWaiter(t, pool)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		t.Fatalf("second writer: %v, want it to wait and apply", err)
	case out := <-done:
		return out
	case <-time.After(30 * time.Second):
		t.Fatal("second writer still waiting 30 s after the first committed")
	}
	return ReadsOutcome{}
}

func waitForLockWaiter(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(t.Context(), `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waited on a lock within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// batchTx is one ingest transaction driven by hand: records applied with
// the real readstore functions, then the hook, left open.
type batchTx struct {
	tx   pgx.Tx
	msgs []outbox.Message
	err  error
}

func begin(t *testing.T, pool *pgxpool.Pool) *batchTx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return &batchTx{tx: tx}
}

// reads applies one reads record on partition p and runs the hook.
func (b *batchTx) reads(ctx context.Context, d *db, p int32, offset int64, value string) {
	var dec meters.Decoder
	blk, rej := dec.ReadBlock([]byte(value))
	if rej != nil {
		b.err = rej
		return
	}
	origin := readstore.Origin{Topic: topics.Reads, Partition: p, Offset: offset}
	out, err := readstore.ApplyReads(ctx, b.tx, readstore.ReadOptions{SettlementSeconds: 900, Slot: p},
		[]readstore.ReadRecord{{Source: readstore.Source{Origin: origin, Value: []byte(value)}, Block: blk}})
	if err != nil {
		b.err = err
		return
	}
	b.msgs, b.err = d.hook.AfterApply(ctx, b.tx, ingest.Applied{Topic: topics.Reads, Partition: p, Watermark: blk.End(),
		Reads: out.Changes, Ends: []ingest.RecordEnd{{Offset: offset, End: blk.End()}}})
}

// price applies one prices record on partition p and runs the hook.
func (b *batchTx) price(ctx context.Context, d *db, p int32, offset int64, value string) {
	var dec meters.Decoder
	pr, rej := dec.Price([]byte(value), "USD")
	if rej != nil {
		b.err = rej
		return
	}
	origin := readstore.Origin{Topic: topics.Prices, Partition: p, Offset: offset}
	out, err := readstore.ApplyPrices(ctx, b.tx, "USD",
		[]readstore.PriceRecord{{Source: readstore.Source{Origin: origin, Value: []byte(value)}, Price: pr}})
	if err != nil {
		b.err = err
		return
	}
	b.msgs, b.err = d.hook.AfterApply(ctx, b.tx, ingest.Applied{Topic: topics.Prices, Partition: p, Prices: out.Changes})
}

func (b *batchTx) fired(t *testing.T) []string {
	t.Helper()
	if b.err != nil {
		t.Fatal(b.err)
	}
	var out []string
	for _, m := range b.msgs {
		out = append(out, m.ID)
	}
	return out
}

// race runs second while first is open, and commits first once second
// waits for a lock (or has finished without waiting: then it saw nothing of
// first, which is what the test catches). It returns what second fired.
func race(t *testing.T, d *db, first *batchTx, second func(context.Context, *batchTx)) []string {
	t.Helper()
	if ids := first.fired(t); len(ids) != 0 {
		t.Fatalf("first transaction fired %v on its own", ids)
	}
	b := begin(t, d.pool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		second(t.Context(), b)
	}()
	deadline := time.Now().Add(30 * time.Second)
wait:
	for {
		select {
		case <-done:
			break wait
		default:
		}
		var waiting int
		if err := d.pool.QueryRow(t.Context(), `
			SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
		).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second transaction neither waited nor finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-done
	ids := b.fired(t)
	if err := b.tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ids
}

const raceRegistry = baseRegistry + `
	INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget) VALUES
		('ACC-X', 'two meters, two partitions', 1, NULL), ('ACC-Y', 'budget', NULL, 0.01);
	INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
		('X1', 'ACC-X', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
		('X2', 'ACC-X', 'RET-A', 'HB_SOUTH', 1, '2026-01-01T00:00:00Z'),
		('Y1', 'ACC-Y', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
		('Y2', 'ACC-Y', 'RET-A', 'HB_SOUTH', 1, '2026-01-01T00:00:00Z')`

// TestConcurrentTransactionsSeeEachOther: two transactions that together
// bring a figure to its limit, each below it alone, fire in the one that
// commits second, whichever kind they are.
func TestConcurrentTransactionsSeeEachOther(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(raceRegistry)
	const at = "2026-11-10T06:15:00Z"

	// Meters of one account on two partitions: 0.6 + 0.6 kWh ≥ 1.
	first := begin(t, d.pool)
	first.reads(t.Context(), d, 0, 0, `{"meter_id":"X1","start":"`+at+`","interval_seconds":900,"values":["0.6"]}`)
	got := race(t, d, first, func(ctx context.Context, b *batchTx) {
		b.reads(ctx, d, 1, 0, `{"meter_id":"X2","start":"`+at+`","interval_seconds":900,"values":["0.6"]}`)
	})
	equal(t, "two partitions", got, []string{"daily_usage/ACC-X/2026-11-10"})

	// A price, then a read it prices: 1 kWh × 20 = 0.02 ≥ 0.01.
	first = begin(t, d.pool)
	first.price(t.Context(), d, 0, 0, `{"market":"RT","settlement_point":"HB_NORTH","start":"`+at+`","interval_seconds":900,"price":"20"}`)
	got = race(t, d, first, func(ctx context.Context, b *batchTx) {
		b.reads(ctx, d, 2, 0, `{"meter_id":"Y1","start":"`+at+`","interval_seconds":900,"values":["1"]}`)
	})
	equal(t, "read after price", got, []string{"monthly_budget/ACC-Y/2026-11"})

	// A read, then the price of its interval (another month, so that the
	// alert above does not stand in the way).
	const dec = "2026-12-01T06:15:00Z" // in the past: a read ends before now + PT15M
	first = begin(t, d.pool)
	first.reads(t.Context(), d, 3, 0, `{"meter_id":"Y2","start":"`+dec+`","interval_seconds":900,"values":["1"]}`)
	got = race(t, d, first, func(ctx context.Context, b *batchTx) {
		b.price(ctx, d, 1, 0, `{"market":"RT","settlement_point":"HB_SOUTH","start":"`+dec+`","interval_seconds":900,"price":"20"}`)
	})
	equal(t, "price after read", got, []string{"monthly_budget/ACC-Y/2026-12"})
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: fired %v, want %v", what, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: fired %v, want %v", what, got, want)
			return
		}
	}
}

package outbox_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Concurrent writers to the same streams get gapless sequences, and a rolled
// back transaction leaves no hole.
func TestSequencesAreGaplessUnderConcurrency(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	w := outbox.NewWriter(map[string]int32{"out": 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				var msgs []outbox.Message
				for k := range 5 {
					key := fmt.Sprintf("k%d", (g+i+k)%7)
					msgs = append(msgs, outbox.Message{Topic: "out", Key: []byte(key), Value: []byte("v"),
						ID: fmt.Sprintf("%d/%d/%d", g, i, k), Schema: "test/v1"})
				}
				if err := w.Enqueue(ctx, tx, msgs...); err != nil {
					t.Error(err)
					tx.Rollback(ctx)
					return
				}
				if i%5 == 0 {
					tx.Rollback(ctx)
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rows, err := pool.Query(ctx, `SELECT partition, count(*), min(seq), max(seq) FROM outbox GROUP BY partition`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var p int32
		var n, lo, hi int64
		if err := rows.Scan(&p, &n, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		if lo != 1 || hi != n {
			t.Errorf("partition %d: %d rows with seq %d..%d, want 1..%d", p, n, lo, hi, n)
		}
		total += int(n)
	}
	if want := 8 * 16 * 5; total != want {
		t.Errorf("outbox holds %d rows, want %d", total, want)
	}
}

// The partition of a key is the one Kafka's default partitioner picks, and is
// stable.
func TestPartitionIsStable(t *testing.T) {
	w := outbox.NewWriter(map[string]int32{"out": 8})
	a, err := w.Partition("out", []byte("RETAILER-A"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := w.Partition("out", []byte("RETAILER-A"))
	if a != b || a < 0 || a >= 8 {
		t.Fatalf("partition %d then %d", a, b)
	}
	if _, err := w.Partition("unknown", nil); err == nil {
		t.Fatal("unknown topic accepted")
	}
}

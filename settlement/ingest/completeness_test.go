package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// counts are the stored completeness counts by "topic/partition", each
// checked for records = applied + Σ quarantined.
func (e *env) counts() map[string]readstore.StoredCounts {
	e.t.Helper()
	cs, err := readstore.ReadCounts(e.t.Context(), e.pool)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]readstore.StoredCounts{}
	for _, c := range cs {
		var q int64
		for _, n := range c.Quarantined {
			q += n
		}
		if c.Records != c.Applied+q {
			e.t.Errorf("%s/%d: %d records, %d applied, %v quarantined", c.Topic, c.Partition, c.Records, c.Applied, c.Quarantined)
		}
		out[fmt.Sprintf("%s/%d", c.Topic, c.Partition)] = c
	}
	return out
}

func (e *env) assertCounts(key string, want readstore.Counts) {
	e.t.Helper()
	got := e.counts()[key].Counts
	if got.Records != want.Records || got.Applied != want.Applied || !maps.Equal(got.Quarantined, want.Quarantined) ||
		got.ReadsApplied != want.ReadsApplied || got.ReadsStale != want.ReadsStale || got.ReadsDuplicate != want.ReadsDuplicate {
		e.t.Errorf("counts of %s:\n got  %+v\n want %+v", key, got, want)
	}
}

// Ingest counts every data record of a committed transaction once, even
// when its batch failed and was applied again in parts, and a replay moves
// the records it applies from quarantined to applied on their own
// partition.
func TestCompletenessCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	const at = "2026-11-01T05:00:00Z"
	e.produce(false,
		rec(R, 0, "M1", read("M1", "import", at, 900, 1, "1", "2")),
		rec(R, 0, "M1", read("M1", "import", at, 900, 1, "1", "2")), // duplicates
		rec(R, 0, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 2, "3")),
		rec(R, 0, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "9")), // stale
		rec(R, 0, "M9", read("M9", "import", at, 900, 1, "1", "2", "3")),
		rec(R, 0, "M1", `{"meter_id":`),
		rec(R, 1, "M2", read("M2", "export", at, 900, 1, "0.5")),
		rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", at, 300, 1, "10", "USD")),
		rec(P, 0, "HB_WEST", price("RT", "HB_WEST", at, 300, 1, "40", "USD")),
	)
	e.produce(true, rec(R, 0, "M1", read("M1", "import", at, 900, 9, "100"))) // aborted: not a record of the log
	hook := &failOnce{topic: R}
	c := e.start(Config{}, hook)
	e.caughtUp()
	c.stop()
	if !hook.failed {
		t.Fatal("the hook failed no batch")
	}

	reads0 := readstore.Counts{Records: 6, Applied: 4,
		Quarantined:  map[meters.Reason]int64{meters.UnknownMeter: 1, meters.MalformedJSON: 1},
		ReadsApplied: 3, ReadsStale: 1, ReadsDuplicate: 2}
	e.assertCounts(R+"/0", reads0)
	e.assertCounts(R+"/1", readstore.Counts{Records: 1, Applied: 1, ReadsApplied: 1})
	e.assertCounts(R+"/2", readstore.Counts{})
	prices0 := readstore.Counts{Records: 2, Applied: 1, Quarantined: map[meters.Reason]int64{meters.UnknownSettlementPoint: 1}}
	e.assertCounts(P+"/0", prices0)

	// M9 and HB_WEST are registered; their records apply on replay.
	e.exec(`
		INSERT INTO settlement_points VALUES ('HB_WEST', 'West', 'hub');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M9', 'ACC-1', 'RETAILER-A', 'HB_WEST', 1, '2026-01-01T00:00:00Z')`)
	a := NewApplier(e.market, topics, e.writer)
	for _, reason := range []meters.Reason{meters.UnknownMeter, meters.UnknownSettlementPoint} {
		if r, err := a.Replay(t.Context(), e.pool, reason); err != nil || r.Replayed != 1 {
			t.Fatalf("replay %s: %+v %v", reason, r, err)
		}
	}
	reads0.Applied, reads0.ReadsApplied = 5, 6
	delete(reads0.Quarantined, meters.UnknownMeter)
	e.assertCounts(R+"/0", reads0)
	e.assertCounts(P+"/0", readstore.Counts{Records: 2, Applied: 2})
	// A replay that finds nothing changes nothing.
	if _, err := a.Replay(t.Context(), e.pool, meters.UnknownMeter); err != nil {
		t.Fatal(err)
	}
	e.assertCounts(R+"/0", reads0)
}

// failOnce fails the first batch of partition 0 of topic, which the
// consumer then applies again in parts.
type failOnce struct {
	topic  string
	mu     sync.Mutex
	failed bool
}

func (h *failOnce) AfterApply(_ context.Context, _ pgx.Tx, a Applied) ([]outbox.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a.Topic != h.topic || a.Partition != 0 || h.failed {
		return nil, nil
	}
	h.failed = true
	return nil, errors.New("injected hook failure")
}

// A record set aside by the offset alone, its quarantine row refused, is
// still counted: it was consumed and not applied.
func TestCountsOfRecordsSetAside(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.exec(`
		CREATE FUNCTION refuse_m2() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'M2 refused'; END $$;
		CREATE TRIGGER refuse_m2 BEFORE INSERT ON read_blocks FOR EACH ROW
			WHEN (NEW.meter_id = 'M2') EXECUTE FUNCTION refuse_m2();
		CREATE TRIGGER refuse_quarantine BEFORE INSERT ON quarantine FOR EACH ROW
			WHEN (NEW."offset" = 2) EXECUTE FUNCTION refuse_m2()`)
	e.produce(false,
		rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 1, "M2", read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 1, "M2", read("M2", "import", "2026-11-01T05:15:00Z", 900, 1, "1")),
		rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "1")),
	)
	c := e.start(Config{})
	e.caughtUp()
	c.stop()
	e.assertCounts(R+"/1", readstore.Counts{Records: 4, Applied: 2, Quarantined: map[meters.Reason]int64{meters.Unprocessable: 2},
		ReadsApplied: 2})
	if qs := e.quarantine(R, 1); len(qs) != 1 || qs[0].offset != 1 {
		t.Errorf("quarantine %+v, want offset 1 only", qs)
	}
}

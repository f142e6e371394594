package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/alerts"
)

// workloadRegistry and workload are a stream that fires every alert type,
// with crossings that the very next record undoes (so evaluating per batch
// instead of per record would miss them). Phases are applied one after
// another; within a phase the accounts of one partition are independent of
// the other partitions, so the expected alerts do not depend on how
// partitions interleave.
const workloadRegistry = baseRegistry + `
	INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget, price_alerts) VALUES
		('ACC-D', 'daily', 1, NULL, false), ('ACC-S', 'silent', NULL, NULL, false),
		('ACC-B', 'budget', NULL, 0.05, false), ('ACC-P', 'prices', NULL, NULL, true);
	INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
		('D1', 'ACC-D', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
		('S1', 'ACC-S', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
		('B1', 'ACC-B', 'RET-A', 'HB_WEST', 1, '2026-01-01T00:00:00Z'),
		('P1', 'ACC-P', 'RET-A', 'HB_WEST', 1, '2026-01-01T00:00:00Z')`

func workload() [][]*kgo.Record {
	reads := []*kgo.Record{
		readRec(0, "D1", "import", "2026-11-10T06:00:00Z", 900, 1, "0.5"),
		readRec(0, "S1", "import", "2026-11-10T06:00:00Z", 900, 1, "1"),
		readRec(0, "D1", "import", "2026-11-10T06:15:00Z", 900, 1, "0.6"), // 1.1: fires
		readRec(0, "D1", "import", "2026-11-10T06:15:00Z", 900, 2, "0.1"), // 0.6 at once
		readRec(1, "B1", "import", "2026-11-10T06:00:00Z", 900, 1, "10"),  // 0.01 MWh, unpriced
		readRec(1, "P1", "import", "2026-11-10T06:00:00Z", 900, 1, "1"),
	}
	for h := 7; h < 14; h++ { // D1 moves partition 0's watermark to 14:00: S1 is silent from 06:15
		start := time.Date(2026, 11, 10, h, 0, 0, 0, time.UTC).Format(time.RFC3339)
		reads = append(reads, readRec(0, "D1", "import", start, 900, 1, "0", "0", "0", "0E"))
	}
	prices := []*kgo.Record{
		priceRec(2, "HB_WEST", "2026-11-10T06:00:00Z", 300, 1, "3000"),
		priceRec(2, "HB_WEST", "2026-11-10T06:05:00Z", 300, 1, "3000"),
		priceRec(2, "HB_WEST", "2026-11-10T06:10:00Z", 300, 1, "3000"),  // 3000: a spike; cost 30 ≥ 0.05
		priceRec(2, "HB_WEST", "2026-11-10T06:10:00Z", 300, 2, "-9000"), // -1000 at once: negative; cost -10
	}
	corrections := []*kgo.Record{
		readRec(0, "D1", "import", "2026-11-10T06:15:00Z", 900, 3, "0.9"), // 1.4: fired already
		priceRec(2, "HB_WEST", "2026-11-10T06:10:00Z", 300, 3, "3000"),    // 3000 again: fired already
	}
	return [][]*kgo.Record{reads, prices, corrections}
}

var workloadAlerts = []string{
	"daily_usage/ACC-D/2026-11-10",
	"missing_data/S1/2026-11-10T06:15:00Z",
	"monthly_budget/ACC-B/2026-11",
	"price_spike/ACC-P/2026-11-10",
	"negative_price/ACC-P/2026-11-10",
}

// TestBatchBoundariesDoNotMatter consumes the same input in batches of 1,
// 2 and up to 4096 records into three databases: the same alerts fire,
// with the same figures, including those a later record of the same batch
// undoes, and missing_data.
func TestBatchBoundariesDoNotMatter(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	sizes := []int{1, 2, 4096}
	dbs := make([]*db, len(sizes))
	for i, n := range sizes {
		dbs[i] = c.newDB(workloadRegistry)
		c.consume(dbs[i], fmt.Sprintf("batch-%d", n), n)
	}
	for _, phase := range workload() {
		c.produce(phase...)
		for _, d := range dbs {
			c.caughtUp(d)
		}
	}
	first := dbs[0].published()
	equalIDs(t, first, workloadAlerts...)
	if a := first["daily_usage/ACC-D/2026-11-10"]; a.Observed != "1.100000" || !a.EventTime.Equal(utc("2026-11-10T06:30:00Z")) {
		t.Errorf("daily crossing undone by the next record: %+v", a)
	}
	if a := first["monthly_budget/ACC-B/2026-11"]; a.Observed != "30.00" {
		t.Errorf("budget crossing undone by the next record: %+v", a)
	}
	if a := first["missing_data/S1/2026-11-10T06:15:00Z"]; !a.EventTime.Equal(utc("2026-11-10T13:00:00Z")) || a.Observed != "6.75" {
		t.Errorf("missing data: %+v", a)
	}
	for i, d := range dbs[1:] {
		got := d.published()
		for id, a := range first {
			if !sameAlert(got[id], a) {
				t.Errorf("batches of %d: %+v\nbatches of %d: %+v", sizes[0], a, sizes[i+1], got[id])
			}
		}
		if len(got) != len(first) {
			t.Errorf("batches of %d: %d alerts, batches of %d: %d", sizes[0], len(first), sizes[i+1], len(got))
		}
	}
}

// TestReplayFiresNothingNew re-consumes the whole input from offset 0, on a
// database that keeps its alerts but lost everything else derived from the
// input: every identity fires again and none is stored or published again.
func TestReplayFiresNothingNew(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(workloadRegistry)
	first := c.consume(d, "first", 4096)
	for _, phase := range workload() {
		c.produce(phase...)
		c.caughtUp(d)
	}
	first.stop()
	before := d.published()
	equalIDs(t, before, workloadAlerts...)
	var stamp time.Time
	if err := d.pool.QueryRow(t.Context(), `SELECT max(created_at) FROM alerts`).Scan(&stamp); err != nil {
		t.Fatal(err)
	}

	d.exec(`TRUNCATE read_blocks, prices, price_versions, channel_lengths, price_lengths, position_days, quarantine, ingest_offsets,
		alert_daily_usage, alert_energy_blocks, alert_month_books, alert_meters, alert_watermarks, outbox, outbox_streams`)
	c.consume(d, "second", 3)
	c.caughtUp(d)
	if q := d.count(`SELECT count(*) FROM quarantine`); q != 0 {
		t.Fatalf("the replay set %d records aside: it must apply the input as the first pass did", q)
	}
	var n int
	if err := d.pool.QueryRow(t.Context(), `SELECT count(*) FROM outbox WHERE topic = $1`, topics.Alerts).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("replay published %d alerts", n)
	}
	after := d.alerts()
	equalIDs(t, after, workloadAlerts...)
	for id, a := range before {
		if !sameAlert(after[id], a) {
			t.Errorf("stored alert changed: %+v → %+v", a, after[id])
		}
	}
	var again time.Time
	if err := d.pool.QueryRow(t.Context(), `SELECT max(created_at) FROM alerts`).Scan(&again); err != nil {
		t.Fatal(err)
	}
	if !again.Equal(stamp) {
		t.Errorf("alerts rewritten: created_at %s → %s", stamp, again)
	}
	// The derived aggregates are rebuilt: the day's figure is back.
	var kwh string
	if err := d.pool.QueryRow(t.Context(), `SELECT sum(import_kwh)::text FROM alert_daily_usage WHERE account_id = 'ACC-D'`).Scan(&kwh); err != nil {
		t.Fatal(err)
	}
	if kwh != "1.4" {
		t.Errorf("rebuilt ACC-D usage %s kWh, want 1.4", kwh)
	}
}

// TestQuarantineReplayFires: reads of an unknown meter fire nothing until
// the registry is fixed and the quarantine replayed; the replay fires the
// alert once, and replaying again fires nothing.
func TestQuarantineReplayFires(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `INSERT INTO accounts (account_id, name, daily_kwh_threshold) VALUES ('ACC-Q', 'q', 2)`)
	c.produce(
		readRec(1, "MQ", "import", "2026-11-10T06:00:00Z", 900, 1, "1.5"),
		readRec(1, "MQ", "import", "2026-11-10T06:15:00Z", 900, 1, "1S"),
	)
	c.consume(d, "g", 4096)
	c.caughtUp(d)
	if got := d.published(); len(got) != 0 {
		t.Fatalf("alerts before the registry fix: %v", got)
	}
	d.exec(`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('MQ', 'ACC-Q', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	for range 2 {
		if _, err := d.applier.Replay(t.Context(), d.pool, meters.UnknownMeter); err != nil {
			t.Fatal(err)
		}
	}
	got := d.published()
	equalIDs(t, got, "daily_usage/ACC-Q/2026-11-10")
	if a := got["daily_usage/ACC-Q/2026-11-10"]; a.Observed != "2.500000" || a.DataQuality != alerts.QualityEstimated {
		t.Errorf("replayed: %+v", a)
	}
	var slot int
	if err := d.pool.QueryRow(t.Context(), `SELECT slot FROM alert_daily_usage WHERE account_id = 'ACC-Q'`).Scan(&slot); err != nil {
		t.Fatal(err)
	}
	if slot != -1 {
		t.Errorf("replayed usage in slot %d, want -1", slot)
	}
}

package postgres_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
)

// TestMissingDataFloorAndUncovered, in batches of one record: the
// partition's silence floor follows its meters' last ends, so batches whose
// window stays before it read no meter (missing.go loadMissing); a meter
// silent with no assignment covering the watermark is kept uncovered and
// read by every batch, and fires once an assignment added later covers the
// watermark.
func TestMissingDataFloorAndUncovered(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-2', 'two'), ('ACC-3', 'three'), ('ACC-4', 'four');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to) VALUES
			('M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('M2', 'ACC-2', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('M3', 'ACC-3', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', '2026-11-10T09:00:00Z')`)
	hourly := func(meter string, h int) *kgo.Record {
		return readRec(2, meter, "import", time.Date(2026, 11, 10, h, 0, 0, 0, time.UTC).Format(time.RFC3339), 900, 1, "1", "1", "1", "1")
	}
	recs := []*kgo.Record{hourly("M3", 6)}
	for h := 6; h < 14; h++ { // M2 stops at 09:00, M1 takes the watermark to 14:00
		recs = append(recs, hourly("M1", h))
		if h < 9 {
			recs = append(recs, hourly("M2", h))
		}
	}
	c.produce(recs...)
	c.consume(d, "g", 1)
	c.caughtUp(d)
	equalIDs(t, d.published()) // M2 is silent for 5 hours
	state := func() (floor time.Time, uncovered bool) {
		t.Helper()
		if err := d.pool.QueryRow(t.Context(), `
			SELECT w.silence_floor, m.uncovered FROM alert_watermarks w, alert_meters m
			WHERE w.partition = 2 AND m.meter_id = 'M3'`).Scan(&floor, &uncovered); err != nil {
			t.Fatal(err)
		}
		return floor.UTC(), uncovered
	}
	// M3's assignment ended before the watermark: silent, uncovered; the
	// floor is M2's last end.
	if floor, uncovered := state(); !floor.Equal(utc("2026-11-10T09:00:00Z")) || !uncovered {
		t.Errorf("floor %s, M3 uncovered %v; want 09:00, true", floor, uncovered)
	}

	d.exec(`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M3', 'ACC-4', 'RET-A', 'HB_NORTH', 1, '2026-11-10T15:00:00Z')`)
	c.produce(hourly("M1", 14))
	c.caughtUp(d)
	got := d.published()
	equalIDs(t, got, "missing_data/M2/2026-11-10T09:00:00Z", "missing_data/M3/2026-11-10T07:00:00Z")
	if a := got["missing_data/M2/2026-11-10T09:00:00Z"]; a.Observed != "6.00" || !a.EventTime.Equal(utc("2026-11-10T15:00:00Z")) {
		t.Errorf("M2: %+v", a)
	}
	if a := got["missing_data/M3/2026-11-10T07:00:00Z"]; a.AccountID != "ACC-4" || !a.EventTime.Equal(utc("2026-11-10T15:00:00Z")) {
		t.Errorf("M3: %+v", a)
	}
	// The batch looked for silent meters (its window reached 09:00): the
	// floor is M1's last end as that look-up read it.
	if floor, uncovered := state(); !floor.Equal(utc("2026-11-10T14:00:00Z")) || uncovered {
		t.Errorf("floor %s, M3 uncovered %v; want 14:00, false", floor, uncovered)
	}
}

// A meter a quarantine replay writes, with a last end before its
// partition's silence floor, fires missing_data at the partition's next
// record that finds it silent, as if its reads had never been set aside:
// the replay does not keep the floor, so the meter must not wait for the
// window to pass it.
func TestReplayedMeterBelowTheFloorFires(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-R', 'replayed');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	hourly := func(meter string, h int) *kgo.Record {
		return readRec(1, meter, "import", time.Date(2026, 11, 10, h, 0, 0, 0, time.UTC).Format(time.RFC3339), 900, 1, "1", "1", "1", "1")
	}
	// MR is not registered yet: its record (06:00-07:00) is quarantined.
	recs := []*kgo.Record{hourly("MR", 6)}
	for h := 6; h < 13; h++ {
		recs = append(recs, hourly("M1", h))
	}
	c.produce(recs...)
	c.consume(d, "g", 1)
	c.caughtUp(d)
	equalIDs(t, d.published())
	var floor time.Time
	if err := d.pool.QueryRow(t.Context(), `SELECT silence_floor FROM alert_watermarks WHERE partition = 1`).Scan(&floor); err != nil {
		t.Fatal(err)
	}
	if !floor.After(utc("2026-11-10T07:00:00Z")) {
		t.Fatalf("floor %s: the test needs it after MR's last end, 07:00", floor.UTC())
	}
	d.exec(`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('MR', 'ACC-R', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	if _, err := d.applier.Replay(t.Context(), d.pool, meters.UnknownMeter); err != nil {
		t.Fatal(err)
	}
	equalIDs(t, d.published()) // a replay evaluates nothing
	c.produce(hourly("M1", 13))
	c.caughtUp(d)
	got := d.published()
	equalIDs(t, got, "missing_data/MR/2026-11-10T07:00:00Z")
	if a := got["missing_data/MR/2026-11-10T07:00:00Z"]; !a.EventTime.Equal(utc("2026-11-10T14:00:00Z")) || a.Observed != "7.00" {
		t.Errorf("MR: event time %s, observed %s; want 14:00, 7.00", a.EventTime, a.Observed)
	}
}

package oracle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAlertIdentities(t *testing.T) {
	f := newFixture(t, 900, []string{
		"ACC-U,Usage,1,,false", "ACC-H,High,5,,false",
		"ACC-P,Prices,,,true", "ACC-Q,Quiet,,,false", "ACC-W,Gone,,,true",
		"ACC-B,Budget,,0.01,false", "ACC-C,Corrected,,0.5,false", "ACC-D,Data,,,false",
	}, []string{
		"U1,ACC-U,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"U2,ACC-U,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"U3,ACC-H,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"P1,ACC-P,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"Q1,ACC-Q,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"W1,ACC-W,RETAILER-A,HB_NORTH,1.000000," + always + ",2026-10-31T05:00:00Z",
		"B1,ACC-B,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"C1,ACC-C,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"D1,ACC-D,RETAILER-A,LZ_WEST,1.000000," + always + ",",
		"D2,ACC-D,RETAILER-A,LZ_WEST,1.000000," + always + ",",
		"D3,ACC-D,RETAILER-A,LZ_WEST,1.000000," + always + ",2026-10-31T12:00:00Z",
		"D4,ACC-D,RETAILER-A,LZ_WEST,1.000000," + always + ",",
		"D5,ACC-D,RETAILER-A,LZ_WEST,1.000000," + always + ",",
	})
	block := func(meter, start string, values ...string) string {
		v := `"` + values[0] + `"`
		for _, x := range values[1:] {
			v += `,"` + x + `"`
		}
		return `{"meter_id":"` + meter + `","start":"` + start + `","interval_seconds":900,"values":[` + v + `]}`
	}
	// Usage: 0.6 + 0.6 kWh on two partitions reach ACC-U's 1 kWh.
	f.add(readsTopic, 0, block("U1", "2026-10-31T15:00:00Z", "0.6"))
	f.add(readsTopic, 1, block("U2", "2026-10-31T15:00:00Z", "0.6"))
	f.add(readsTopic, 1, block("U3", "2026-10-31T15:00:00Z", "0.6"))
	f.add(readsTopic, 0, block("B1", "2026-10-31T16:00:00Z", "1"))
	f.add(readsTopic, 3, block("C1", "2026-11-01T15:00:00Z", "1"))
	// Prices: exactly the threshold, below zero, and a spike corrected away.
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 900, "1000", "-0.01", "", "", "40")
	f.prices("HB_NORTH", "2026-11-01T15:00:00Z", 900, "1500")
	f.add(pricesTopic, 0, `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T15:00:00Z","interval_seconds":900,"price":"50","version":2}`)
	// Missing data on partition 2: the watermark reaches 16:15.
	f.add(readsTopic, 2, block("D1", "2026-10-31T10:00:00Z", "1"))
	f.add(readsTopic, 2, block("D3", "2026-10-31T09:00:00Z", "1"))
	f.add(readsTopic, 2, block("D4", "2026-10-31T09:00:00Z", "1"))
	f.add(readsTopic, 2, block("D2", "2026-10-31T16:00:00Z", "1"))
	f.add(readsTopic, 2, block("D4", "2026-10-31T09:15:00Z", repeat("1", 24)...))
	f.add(readsTopic, 2, block("D5", "2026-10-31T22:00:00Z", "1"))  // applied: moves the watermark to 22:15
	f.add(readsTopic, 2, block("ZZ", "2026-11-01T05:00:00Z", "1"))  // unknown meter: does not
	f.add(readsTopic, 2, block("D2", "2026-11-01T06:00:00Z", "-1")) // out of range: does not

	got := f.ingest().Alerts
	want := map[string]bool{
		"daily_usage/ACC-U/2026-10-31":         true,
		"price_spike/ACC-P/2026-10-31":         true,
		"negative_price/ACC-P/2026-10-31":      true,
		"price_spike/ACC-P/2026-11-01":         false,
		"monthly_budget/ACC-B/2026-10":         true,
		"monthly_budget/ACC-C/2026-11":         false,
		"missing_data/D1/2026-10-31T10:15:00Z": true,
		"missing_data/D4/2026-10-31T09:15:00Z": false,
		"missing_data/D2/2026-10-31T16:15:00Z": true, // 22:15 − 16:15
		"missing_data/D4/2026-10-31T15:15:00Z": true, // 22:15 − 15:15
	}
	for id, must := range want {
		a, ok := got[id]
		if !ok {
			t.Errorf("%s missing", id)
			continue
		}
		eq(t, id+" must", a.Must, must)
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected alert %s", id)
		}
	}
	eq(t, "type", got["missing_data/D1/2026-10-31T10:15:00Z"].Type, "missing_data")
	eq(t, "meter", got["missing_data/D1/2026-10-31T10:15:00Z"].MeterID, "D1")
	eq(t, "account", got["monthly_budget/ACC-B/2026-10"].AccountID, "ACC-B")
}

// TestOnlyAppliedRecordsMoveTheWatermark: later-dated records that are
// quarantined, for whatever reason, leave event time where the applied
// records put it (meters/README.md "Nothing a producer sends can stop ingest"),
// so they cannot make other meters look silent; the next applied record
// still does.
func TestOnlyAppliedRecordsMoveTheWatermark(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-A,A,,,false"}, []string{
		"A1,ACC-A,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"A2,ACC-A,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"A3,ACC-A,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"A4,ACC-A,RETAILER-A,HB_NORTH,1.000000,2026-10-01T05:00:00Z,2026-11-01T06:00:00Z",
	})
	read := func(meter, start string, length int, values ...string) string {
		return fmt.Sprintf(`{"meter_id":%q,"start":%q,"interval_seconds":%d,"values":["%s"]}`,
			meter, start, length, strings.Join(values, `","`))
	}
	f.add(readsTopic, 0, read("A1", "2026-11-01T00:00:00Z", 900, "1"))
	f.add(readsTopic, 0, read("A2", "2026-11-01T00:00:00Z", 900, "1"))
	quarantined := map[Position]string{
		// Ends exactly at now + PT15M: in range, but no meter ZZ.
		f.add(readsTopic, 0, read("ZZ", fixtureNow.Format(time.RFC3339), 900, "1")): UnknownMeter,
		// A4's assignment ends at 06:00; its second read starts there.
		f.add(readsTopic, 0, read("A4", "2026-11-01T05:45:00Z", 900, "1", "1")): UnknownMeter,
		f.add(readsTopic, 0, read("A2", "2026-11-20T00:00:00Z", 300, "1")):      IntervalLengthMismatch,
		// Its first read conflicts with A1's; the rest would reach the next day.
		f.add(readsTopic, 0, read("A1", "2026-11-01T00:00:00Z", 900, append([]string{"2"}, repeat("1", 95)...)...)): ConflictingDuplicate,
		f.add(readsTopic, 0, read("A1", "2027-01-01T00:00:00Z", 900, "1")):                                          StartOutOfRange,
	}
	s := f.ingest()
	for pos, reason := range quarantined {
		eq(t, fmt.Sprintf("reason at %d", pos.Offset), s.Quarantine[pos].Reason, reason)
	}
	for id := range s.Alerts {
		t.Errorf("alert %s from a quarantined record's event time", id)
	}

	// An applied read of A3 at 06:00 moves event time to 06:15: A1 and A2
	// have been silent for 6 hours since 00:15.
	f.add(readsTopic, 0, read("A3", "2026-11-01T06:00:00Z", 900, "1"))
	got := f.ingest().Alerts
	want := []string{"missing_data/A1/2026-11-01T00:15:00Z", "missing_data/A2/2026-11-01T00:15:00Z"}
	eq(t, "alerts after an applied record", slices.Sorted(maps.Keys(got)), want)
	for _, id := range want {
		eq(t, id+" must", got[id].Must, true)
	}
}

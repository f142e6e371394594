package oracle

import (
	"maps"
	"slices"
	"testing"
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
	f.add(readsTopic, 2, block("ZZ", "2026-10-31T22:00:00Z", "1"))  // unknown meter: moves the watermark
	f.add(readsTopic, 2, block("D2", "2026-10-31T23:00:00Z", "-1")) // out of range: does not

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

//go:build linux

package main

import "testing"

func TestCompareEstimateMap(t *testing.T) {
	k := estimateKey{"MTR-000006", "export", 1_793_548_800}
	row := estimateRow{IntervalSeconds: 300, ValueKWh: "0.137500", Method: "LIN", AccountID: "ACC-000006",
		ParticipantID: "VPP-SUNRISE", SettlementPoint: "HB_NORTH", LossFactor: "1.031200"}
	other := row
	other.Method = "LDY"
	for _, c := range []struct {
		name      string
		want, got map[estimateKey]estimateRow
		problems  int
	}{
		{"equal", map[estimateKey]estimateRow{k: row}, map[estimateKey]estimateRow{k: row}, 0},
		{"different", map[estimateKey]estimateRow{k: row}, map[estimateKey]estimateRow{k: other}, 1},
		{"not stored", map[estimateKey]estimateRow{k: row}, nil, 1},
		{"not in the oracle", nil, map[estimateKey]estimateRow{k: row}, 1},
		{"none", nil, nil, 0},
	} {
		var p problems
		compareEstimateMap(&p, "run-1", c.want, c.got)
		if p.counts["estimates"] != c.problems {
			t.Errorf("%s: problems %v, want %d", c.name, p.byKind, c.problems)
		}
	}
}

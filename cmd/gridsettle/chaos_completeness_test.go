//go:build linux

package main

import (
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/settlement/oracle"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// The completeness check finds a partition miscounted, a lineage partition
// left out, and reads counts that differ from the oracle's.
func TestCompareCompleteness(t *testing.T) {
	const reads, prices = "ami.interval-reads", "market.prices"
	log := []oracle.Input{{Topic: reads, Partition: 0, Offset: 0}, {Topic: reads, Partition: 0, Offset: 2},
		{Topic: reads, Partition: 0, Offset: 3}, {Topic: prices, Partition: 0, Offset: 0}}
	state := &oracle.State{Quarantine: map[oracle.Position]oracle.Quarantined{
		{Topic: reads, Partition: 0, Offset: 2}: {Reason: "unknown_meter"}}}
	counts := oracle.Counts{ReadsApplied: 30, ReadsStale: 1}
	n := func(v int64) *int64 { return &v }
	run := func(records int64, quarantined map[string]int64, readsApplied int64) runRow {
		return runRow{id: "run-1", status: settlementpg.Completed,
			lineage: settlementpg.Lineage{Inputs: []settlementpg.LineageInput{{Topic: reads, Partition: 0, OffsetThrough: 2},
				{Topic: prices, Partition: 0, OffsetThrough: 0}}},
			completeness: &settlementpg.Completeness{Inputs: []settlementpg.CompletenessInput{
				{Topic: reads, Partition: 0, OffsetThrough: 2, Records: records, Applied: 1, Quarantined: quarantined,
					ReadsApplied: n(readsApplied), ReadsStale: n(1), ReadsDuplicate: n(0)},
				{Topic: reads, Partition: 1, OffsetThrough: -1, Quarantined: map[string]int64{},
					ReadsApplied: n(0), ReadsStale: n(0), ReadsDuplicate: n(0)},
				{Topic: prices, Partition: 0, OffsetThrough: 0, Records: 1, Applied: 1, Quarantined: map[string]int64{}},
			}}}
	}
	check := func(r runRow) string {
		var p problems
		c := &chaos{}
		snap := completenessSnapshot(&p, r)
		c.compareCompleteness(&p, r, recount(log, snap, state), counts)
		if c.st.Checked.CompletenessInputs != len(r.completeness.Inputs) {
			t.Errorf("compared %d inputs, want %d", c.st.Checked.CompletenessInputs, len(r.completeness.Inputs))
		}
		if err := p.err(); err != nil {
			return err.Error()
		}
		return ""
	}
	if got := check(run(2, map[string]int64{"unknown_meter": 1}, 30)); got != "" {
		t.Errorf("a right count: %s", got)
	}
	for _, c := range []struct {
		r    runRow
		want string
	}{
		{run(3, map[string]int64{"unknown_meter": 2}, 30), "3 records, the log holds 2"},
		{run(2, map[string]int64{"malformed_json": 1}, 30), "quarantined map[malformed_json:1]"},
		{run(2, map[string]int64{"unknown_meter": 1}, 29), "reads applied 29"},
		{run(2, map[string]int64{}, 30), "2 records, 1 applied + 0 quarantined"},
	} {
		if got := check(c.r); !strings.Contains(got, c.want) {
			t.Errorf("want a problem %q, got %q", c.want, got)
		}
	}
	r := run(2, map[string]int64{"unknown_meter": 1}, 30)
	r.completeness.Inputs = r.completeness.Inputs[:2]
	if got := check(r); !strings.Contains(got, "market.prices/0 of its lineage is not listed") {
		t.Errorf("a lineage partition left out: %q", got)
	}
}

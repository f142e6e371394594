package reporting_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
	"github.com/gridsettle/gridsettle/settlement"
)

func ptr(n int64) *int64 { return &n }

// counted is the run of d with its input records counted (settlement/README.md
// "Completeness: every input record accounted for"): runOf's partitions and
// market.prices/1, from which the snapshot read nothing, so that the lineage
// does not list it; listed out of order, as a run might store them.
func counted(d reportingtest.Day) reporting.Run {
	run := runOf(d)
	run.Completeness = &reporting.Completeness{Inputs: []settlement.CompletenessInput{
		{Topic: "market.prices", Partition: 1, OffsetThrough: -1},
		{Topic: "market.prices", Partition: 0, OffsetThrough: 4411, Records: 4400, Applied: 4399,
			Quarantined: map[string]int64{"unknown_settlement_point": 1}},
		{Topic: "ami.interval-reads", Partition: 1, OffsetThrough: 98, Records: 90, Applied: 90, Quarantined: map[string]int64{},
			ReadsApplied: ptr(1400), ReadsStale: ptr(0), ReadsDuplicate: ptr(2)},
		{Topic: "ami.interval-reads", Partition: 0, OffsetThrough: 123456, Records: 120000, Applied: 119990,
			Quarantined:  map[string]int64{"unknown_meter": 6, "malformed_json": 4},
			ReadsApplied: ptr(1910000), ReadsStale: ptr(120), ReadsDuplicate: ptr(3400)},
	}}
	return run
}

// TestCompleteness: a v2 export of a counted run carries the run's counts
// as completeness, the sibling after lineage, in the shape of
// settlement/README.md "Explaining every figure": inputs by topic then
// partition, quarantined reasons sorted, reads_* only on the reads topic's
// partitions, an empty partition with zeros. It verifies, and regenerates byte
// for byte from the run's counts. A run made before counting has no
// completeness, and verifies too.
func TestCompleteness(t *testing.T) {
	d := estimated()
	cfg := configOf(d)
	dir, w := publishRun(t, d, counted(d), cfg)
	root := filepath.Dir(filepath.Dir(dir))
	b, err := os.ReadFile(filepath.Join(dir, reporting.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Completeness struct {
			Inputs []map[string]any `json:"inputs"`
		} `json:"completeness"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, in := range raw.Completeness.Inputs {
		order = append(order, fmt.Sprintf("%v/%v", in["topic"], in["partition"]))
		_, reads := in["reads_applied"]
		_, stale := in["reads_stale"]
		_, dup := in["reads_duplicate"]
		if want := in["topic"] == "ami.interval-reads"; reads != want || stale != want || dup != want {
			t.Errorf("input %v: reads_* keys present %t %t %t, want %t", in, reads, stale, dup, want)
		}
	}
	if got := strings.Join(order, " "); got != "ami.interval-reads/0 ami.interval-reads/1 market.prices/0 market.prices/1" {
		t.Errorf("completeness inputs in order %s", got)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"quarantined":{"malformed_json":4,"unknown_meter":6},"reads_applied":1910000,"reads_stale":120,"reads_duplicate":3400}`,
		`{"topic":"market.prices","partition":1,"offset_through":-1,"records":0,"applied":0,"quarantined":{}}]}`,
	} {
		if !strings.Contains(compact.String(), want) {
			t.Errorf("manifest without %s:\n%s", want, b)
		}
	}
	if l, c, p := bytes.Index(b, []byte(`"lineage"`)), bytes.Index(b, []byte(`"completeness"`)), bytes.Index(b, []byte(`"previous_manifest_sha256"`)); !(l < c && c < p) {
		t.Errorf("completeness is not between lineage and previous_manifest_sha256:\n%s", b)
	}
	if w.Manifest.Completeness == nil || len(w.Manifest.Completeness.Inputs) != 4 {
		t.Fatalf("written manifest: %+v", w.Manifest.Completeness)
	}

	r, err := reporting.Verify(t.Context(), dir, cfg.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if report := strings.Join(r.Checks, "\n"); !strings.Contains(report, "completeness: every record of the 4 input partitions") {
		t.Errorf("report:\n%s", report)
	}
	// Regenerating after changing nothing gives the same bytes; the counts
	// are the run's, so a run whose counts were different (or missing)
	// gives another manifest.
	if differs, err := reporting.Regenerate(t.Context(), root, counted(d), &previous, source{d}, cfg); err != nil || differs != "" {
		t.Fatalf("regeneration differs in %q (%v)", differs, err)
	}
	other := counted(d)
	other.Completeness.Inputs[3].Applied, other.Completeness.Inputs[3].Quarantined["unknown_meter"] = 119991, 5
	if differs, err := reporting.Regenerate(t.Context(), root, other, &previous, source{d}, cfg); err != nil || differs != reporting.ManifestFile {
		t.Fatalf("regeneration with other counts differs in %q (%v)", differs, err)
	}

	// A run made before counting: no completeness field at all.
	dir, w = publish(t, d)
	if b, _ := os.ReadFile(filepath.Join(dir, reporting.ManifestFile)); bytes.Contains(b, []byte("completeness")) || w.Manifest.Completeness != nil {
		t.Fatalf("manifest of an uncounted run mentions completeness:\n%s", b)
	}
	r, err = reporting.Verify(t.Context(), dir, cfg.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if report := strings.Join(r.Checks, "\n"); !strings.Contains(report, "completeness: none (the run was made before") {
		t.Errorf("report:\n%s", report)
	}
}

// TestCompletenessRefused: Build refuses a run whose counts do not account
// for its lineage, before writing anything.
func TestCompletenessRefused(t *testing.T) {
	d := estimated()
	for _, tc := range []struct {
		name, want string
		damage     func(*reporting.Run)
	}{
		{"offset", "counts input ami.interval-reads/1 through offset 97, lineage.inputs says 98",
			func(r *reporting.Run) { r.Completeness.Inputs[2].OffsetThrough = 97 }},
		{"partition not counted", "lineage input market.prices/0 has no completeness counts",
			func(r *reporting.Run) { r.Completeness.Inputs = r.Completeness.Inputs[2:] }},
		{"records", "records 4401 ≠ applied 4399 + Σ quarantined 1",
			func(r *reporting.Run) { r.Completeness.Inputs[1].Records = 4401 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := counted(d)
			tc.damage(&run)
			root := t.TempDir()
			_, err := reporting.Publish(t.Context(), root, run, nil, source{d}, configOf(d))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(filepath.Join(root, "2026-11-01")); len(entries) != 0 {
				t.Fatalf("left behind: %v", entries)
			}
		})
	}
}

// TestCompletenessVerify: a manifest whose completeness breaks the
// invariant fails verification naming it, even signed by the genuine key
// (a signature says who wrote the manifest, not that its counts add up);
// and a v1 manifest never carries completeness.
func TestCompletenessVerify(t *testing.T) {
	d := estimated()
	cfg := configOf(d)
	genuine, _ := publishRun(t, d, counted(d), cfg)
	// The manifest's inputs are sorted: 0 and 1 are ami.interval-reads/0
	// and /1, 2 and 3 market.prices/0 and /1; the lineage's are the first
	// three of these.
	for _, tc := range []struct {
		name, want string
		change     func(*reporting.Completeness, *reporting.Lineage)
	}{
		{"records", "completeness of input ami.interval-reads/0: records 120001 ≠ applied 119990 + Σ quarantined 10",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[0].Records++ }},
		{"applied", "completeness of input ami.interval-reads/1: records 90 ≠ applied 89 + Σ quarantined 0",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[1].Applied-- }},
		{"offset_through of completeness", "completeness counts input ami.interval-reads/1 through offset 97, lineage.inputs says 98",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[1].OffsetThrough = 97 }},
		{"offset_through of lineage", "completeness counts input market.prices/0 through offset 4411, lineage.inputs says 4412",
			func(_ *reporting.Completeness, l *reporting.Lineage) { l.Inputs[2].OffsetThrough = 4412 }},
		{"partition not counted", "lineage input market.prices/0 has no completeness counts",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs = slices.Delete(c.Inputs, 2, 3) }},
		{"partition not in lineage", "completeness counts input market.prices/1 through offset 0, but lineage.inputs does not list it",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[3].OffsetThrough = 0 }},
		{"empty partition in lineage", "completeness counts input market.prices/1 through offset -1, lineage.inputs says 7",
			func(_ *reporting.Completeness, l *reporting.Lineage) {
				l.Inputs = append(l.Inputs, reporting.Input{Topic: "market.prices", Partition: 1, OffsetThrough: 7})
			}},
		{"order", "completeness input ami.interval-reads/0 follows ami.interval-reads/1",
			func(c *reporting.Completeness, _ *reporting.Lineage) {
				c.Inputs[0], c.Inputs[1] = c.Inputs[1], c.Inputs[0]
			}},
		{"twice", "completeness input ami.interval-reads/0 follows ami.interval-reads/0",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[1] = c.Inputs[0] }},
		{"negative quarantined", `quarantined "unknown_meter" is -6, a count is never negative`,
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[0].Quarantined["unknown_meter"] = -6 }},
		{"negative reads", "reads_stale is -1, a count is never negative",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[1].ReadsStale = ptr(-1) }},
		{"reads partly", "reads_applied, reads_stale and reads_duplicate come all three or not at all",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[0].ReadsDuplicate = nil }},
		{"quarantined null", "quarantined is null",
			func(c *reporting.Completeness, _ *reporting.Lineage) { c.Inputs[2].Quarantined = nil }},
		{"overflow", "applied + Σ quarantined overflows",
			func(c *reporting.Completeness, _ *reporting.Lineage) {
				// 119990 + 2 × MaxInt64 + 12 wraps round to 120000.
				c.Inputs[0].Quarantined = map[string]int64{"malformed_json": math.MaxInt64, "unknown_meter": math.MaxInt64, "x": 12}
			}},
		{"more records than offsets", "records 100 through offset_through 98: more records than offsets",
			func(c *reporting.Completeness, _ *reporting.Lineage) {
				c.Inputs[1].Records, c.Inputs[1].Applied = 100, 100
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, genuine)
			resign(t, dir, cfg.Key, func(m *reporting.Manifest) { tc.change(m.Completeness, &m.Lineage) })
			_, err := reporting.Verify(t.Context(), dir, cfg.PublicKey())
			var disc *reporting.Discrepancy
			if !errors.As(err, &disc) || disc.File != reporting.ManifestFile || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a discrepancy in manifest.json containing %q", err, tc.want)
			}
		})
	}

	// The command fails and says why.
	dir := copyDir(t, genuine)
	resign(t, dir, cfg.Key, func(m *reporting.Manifest) { m.Completeness.Inputs[2].Applied = 4400 })
	var out bytes.Buffer
	err := reporting.VerifyCommand(t.Context(), &out, dir, "")
	if err == nil || !strings.Contains(out.String(), "FAIL") || !strings.Contains(out.String(), "records 4400 ≠ applied 4400 + Σ quarantined 1") {
		t.Fatalf("export verify: %v\n%s", err, out.String())
	}

	// A v1 manifest has no completeness.
	v1Dir, _ := publishRun(t, reportingtest.FallBackDay(), counted(d), v1(d))
	resign(t, v1Dir, cfg.Key, func(m *reporting.Manifest) { m.Completeness = counted(d).Completeness })
	if _, err := reporting.Verify(t.Context(), v1Dir, cfg.PublicKey()); err == nil ||
		!strings.Contains(err.Error(), "a gridsettle-export/v1 manifest has no completeness") {
		t.Fatalf("v1 manifest with completeness: %v", err)
	}
}

// FuzzCompletenessCheck: Check accepts a partition's counts exactly when
// they are non-negative, records = applied + Σ quarantined and records ≤
// offset_through + 1, computed here without overflow (big.Int).
func FuzzCompletenessCheck(f *testing.F) {
	f.Add(int64(123456), int64(120000), int64(119990), int64(6), int64(4))
	f.Add(int64(-1), int64(0), int64(0), int64(0), int64(0))
	f.Add(int64(98), int64(100), int64(100), int64(0), int64(0))
	f.Add(int64(200000), int64(120000), int64(119990), int64(math.MaxInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, offset, records, applied, q1, q2 int64) {
		c := &reporting.Completeness{Inputs: []settlement.CompletenessInput{{Topic: "t", OffsetThrough: offset,
			Records: records, Applied: applied, Quarantined: map[string]int64{"a": q1, "b": q2}}}}
		err := c.Check([]reporting.Input{{Topic: "t", OffsetThrough: offset}})
		sum := new(big.Int).Add(big.NewInt(applied), big.NewInt(q1))
		sum.Add(sum, big.NewInt(q2))
		offsets := new(big.Int).Add(big.NewInt(offset), big.NewInt(1))
		want := records >= 0 && applied >= 0 && q1 >= 0 && q2 >= 0 &&
			sum.Cmp(big.NewInt(records)) == 0 && big.NewInt(records).Cmp(offsets) <= 0
		if (err == nil) != want {
			t.Fatalf("offset_through %d, records %d, applied %d, quarantined %d and %d: Check says %v", offset, records, applied, q1, q2, err)
		}
	})
}

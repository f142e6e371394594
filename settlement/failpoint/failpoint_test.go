package failpoint

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		list  string
		specs []Spec
		seed  uint64
		err   string
	}{
		{list: "", seed: 1},
		{list: " , ", seed: 1},
		{list: "run-mid", specs: []Spec{{Name: RunMid}}, seed: 1},
		{list: "ingest-after-commit@3, publish-after-flush%0.25,seed=42", seed: 42, specs: []Spec{
			{Name: IngestAfterCommit, Nth: 3}, {Name: PublishAfterFlush, PPM: 250_000}}},
		{list: "ingest-after-outbox@2:stop,publish-after-commit%1:stop", seed: 1, specs: []Spec{
			{Name: IngestAfterOutbox, Nth: 2, Action: Stop}, {Name: PublishAfterCommit, PPM: 1_000_000, Action: Stop}}},
		{list: "publish-before-produce%0.000001", seed: 1, specs: []Spec{{Name: PublishBeforeProduce, PPM: 1}}},
		// At most 6 decimal places by value: trailing zeros do not count.
		{list: "run-mid%0.25000000", seed: 1, specs: []Spec{{Name: RunMid, PPM: 250_000}}},
		{list: "run-mid%1e-1", err: "probability"},
		{list: "ingest-before-comit", err: "unknown failpoint"},
		{list: "run-mid@0", err: "hit number"},
		{list: "run-mid@x", err: "hit number"},
		{list: "run-mid%0", err: "probability"},
		{list: "run-mid%1.5", err: "probability"},
		{list: "run-mid%0.0000001", err: "probability"},
		{list: "run-mid%-0.5", err: "probability"},
		{list: "run-mid:pause", err: "unknown failpoint"},
		{list: "run-mid,run-mid@2", err: "armed twice"},
		{list: "seed=-1", err: "seed"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			specs, seed, err := Parse(tt.list)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse(%q) error %v, want one containing %q", tt.list, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(specs, tt.specs) || seed != tt.seed {
				t.Errorf("Parse(%q) = %+v seed %d, want %+v seed %d", tt.list, specs, seed, tt.specs, tt.seed)
			}
		})
	}
}

func fires(p *point, hits int) []int64 {
	var out []int64
	for range hits {
		if n, ok := p.next(); ok {
			out = append(out, n)
		}
	}
	return out
}

func TestWhenAPointFires(t *testing.T) {
	if got := fires(newPoint(Spec{Name: RunMid}, 1), 5); !reflect.DeepEqual(got, []int64{1}) {
		t.Errorf("plain point fired at hits %v, want [1]", got)
	}
	if got := fires(newPoint(Spec{Name: RunMid, Nth: 4}, 1), 9); !reflect.DeepEqual(got, []int64{4}) {
		t.Errorf("@4 fired at hits %v, want [4]", got)
	}
	if got := fires(newPoint(Spec{Name: RunMid, PPM: maxPPM}, 1), 3); !reflect.DeepEqual(got, []int64{1, 2, 3}) {
		t.Errorf("%%1 fired at hits %v, want every hit", got)
	}
	half := Spec{Name: RunMid, PPM: maxPPM / 2}
	a, b := fires(newPoint(half, 7), 200), fires(newPoint(half, 7), 200)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("one seed gave two sequences: %v and %v", a, b)
	}
	if len(a) == 0 || len(a) == 200 {
		t.Errorf("%%0.5 fired at %d of 200 hits", len(a))
	}
	if c := fires(newPoint(half, 8), 200); reflect.DeepEqual(a, c) {
		t.Error("seeds 7 and 8 gave the same sequence")
	}
	other := Spec{Name: IngestAfterCommit, PPM: maxPPM / 2}
	if c := fires(newPoint(other, 7), 200); reflect.DeepEqual(a, c) {
		t.Error("two points of one seed draw the same sequence")
	}
}

func TestUnarmedHitCostsNothing(t *testing.T) {
	Disable()
	if n := testing.AllocsPerRun(100, func() { Hit(IngestAfterCommit) }); n != 0 {
		t.Errorf("unarmed Hit allocates %v times", n)
	}
	if err := Enable("", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if armed.Load() {
		t.Error("an empty list armed the points")
	}
}

func TestEnableRefusesABadList(t *testing.T) {
	if err := Enable("ingest-after-comit", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a misspelt failpoint was accepted")
	}
	if armed.Load() {
		t.Error("a refused list armed the points")
	}
}

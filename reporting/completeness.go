package reporting

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/gridsettle/gridsettle/settlement"
)

// Completeness accounts for every input record up to the lineage's offsets
// (settlement/README.md "Completeness: every input record accounted for"): per
// input partition, the counts ingest kept, as they stood in the run's snapshot,
// in settlement's shape (settlement/completeness.go). It comes from the run
// (runs.completeness), never from the input topics now, so a later replay
// does not change what an export regenerates to.
type Completeness settlement.Completeness

// compareInputs is the order of a manifest's input partitions, in lineage
// and completeness alike: by topic (bytewise), then partition.
func compareInputs(topicA string, partitionA int32, topicB string, partitionB int32) int {
	return cmp.Or(strings.Compare(topicA, topicB), cmp.Compare(partitionA, partitionB))
}

func inputName(topic string, partition int32) string { return fmt.Sprintf("%s/%d", topic, partition) }

// canonical is c as a manifest carries it: inputs in partition order, and
// an object (possibly empty) for every partition's quarantined counts. It
// copies what it changes.
func (c *Completeness) canonical() *Completeness {
	out := &Completeness{Inputs: slices.Clone(c.Inputs)}
	if out.Inputs == nil {
		out.Inputs = []settlement.CompletenessInput{}
	}
	for i := range out.Inputs {
		out.Inputs[i].Quarantined = maps.Clone(out.Inputs[i].Quarantined)
		if out.Inputs[i].Quarantined == nil {
			out.Inputs[i].Quarantined = map[string]int64{}
		}
	}
	slices.SortFunc(out.Inputs, func(a, b settlement.CompletenessInput) int {
		return compareInputs(a.Topic, a.Partition, b.Topic, b.Partition)
	})
	return out
}

// Check is the completeness invariant of a manifest: the inputs are listed
// once each, in partition order; every lineage partition is among them with
// the lineage's offset_through, and any other has offset_through -1 (the
// lineage lists only partitions the snapshot read something of, while
// completeness lists every input partition); and in each every count is at
// least zero, records = applied + Σ quarantined, records are at most
// offset_through + 1 (one per offset at most), and reads_applied,
// reads_stale and reads_duplicate come all three or not at all. Which topic
// carries reads counts is the run's business (the reads topic is
// configurable), not checked here.
func (c *Completeness) Check(lineage []Input) error {
	offsets := make(map[string]int64, len(lineage))
	for _, in := range lineage {
		offsets[inputName(in.Topic, in.Partition)] = in.OffsetThrough
	}
	counted := make(map[string]bool, len(c.Inputs))
	for i, in := range c.Inputs {
		name := inputName(in.Topic, in.Partition)
		if i > 0 {
			if prev := c.Inputs[i-1]; compareInputs(prev.Topic, prev.Partition, in.Topic, in.Partition) >= 0 {
				return fmt.Errorf("completeness input %s follows %s: inputs are listed once each, by topic then partition",
					name, inputName(prev.Topic, prev.Partition))
			}
		}
		offset, ok := offsets[name]
		if !ok && in.OffsetThrough != -1 {
			return fmt.Errorf("completeness counts input %s through offset %d, but lineage.inputs does not list it "+
				"(a partition the lineage leaves out was read through -1: nothing)", name, in.OffsetThrough)
		}
		if ok && in.OffsetThrough != offset {
			return fmt.Errorf("completeness counts input %s through offset %d, lineage.inputs says %d", name, in.OffsetThrough, offset)
		}
		if err := checkInput(in); err != nil {
			return fmt.Errorf("completeness of input %s: %w", name, err)
		}
		counted[name] = true
	}
	for _, in := range lineage {
		if name := inputName(in.Topic, in.Partition); !counted[name] {
			return fmt.Errorf("lineage input %s has no completeness counts: every input partition must be accounted for", name)
		}
	}
	return nil
}

// checkInput is the invariant of one partition's counts.
func checkInput(in settlement.CompletenessInput) error {
	type count struct {
		name string
		n    int64
	}
	counts := []count{{"records", in.Records}, {"applied", in.Applied}}
	for _, reason := range slices.Sorted(maps.Keys(in.Quarantined)) {
		counts = append(counts, count{fmt.Sprintf("quarantined %q", reason), in.Quarantined[reason]})
	}
	reads := 0
	for _, r := range []struct {
		name string
		n    *int64
	}{{"reads_applied", in.ReadsApplied}, {"reads_stale", in.ReadsStale}, {"reads_duplicate", in.ReadsDuplicate}} {
		if r.n != nil {
			reads++
			counts = append(counts, count{r.name, *r.n})
		}
	}
	for _, c := range counts {
		if c.n < 0 {
			return fmt.Errorf("%s is %d, a count is never negative", c.name, c.n)
		}
	}
	if in.Quarantined == nil {
		return errors.New("quarantined is null, want an object of counts by reason")
	}
	if reads != 0 && reads != 3 {
		return errors.New("reads_applied, reads_stale and reads_duplicate come all three or not at all")
	}
	// Every count is non-negative: summing with an overflow check keeps a
	// forged count from wrapping round to the records.
	sum := in.Applied
	for _, n := range in.Quarantined {
		if n > math.MaxInt64-sum {
			return fmt.Errorf("applied + Σ quarantined overflows, records is %d", in.Records)
		}
		sum += n
	}
	if sum != in.Records {
		return fmt.Errorf("records %d ≠ applied %d + Σ quarantined %d", in.Records, in.Applied, sum-in.Applied)
	}
	// A record takes an offset of its own, so offsets 0 … offset_through hold
	// at most offset_through + 1 of them (none when it is -1).
	if in.Records-1 > in.OffsetThrough {
		return fmt.Errorf("records %d through offset_through %d: more records than offsets", in.Records, in.OffsetThrough)
	}
	return nil
}

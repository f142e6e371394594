//go:build linux

package main

import (
	"fmt"
	"maps"

	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// checkCompleteness: every completed run's completeness (settlement/README.md
// "Completeness: every input record accounted for") lists every partition of
// its lineage at the lineage's offset, and equals a recount of the input log
// read read_committed: per partition, the records through offset_through, and
// the oracle's quarantine of them by reason; the reads counts, summed over the
// reads partitions, are the oracle's over the run's snapshot. The suite makes
// no replays, so the oracle's quarantine is the one each snapshot saw.
func (c *chaos) checkCompleteness(p *problems, o *oracle.Oracle, log []oracle.Input, runs []runRow) error {
	states := map[string]*oracle.State{} // by snapshot, which several runs may share
	for _, r := range runs {
		if r.status != settlementpg.Completed {
			continue
		}
		if r.completeness == nil {
			p.add("completeness", "%s: none stored", r.id)
			continue
		}
		snap := completenessSnapshot(p, r)
		key := fmt.Sprint(snap) // fmt prints maps sorted
		s, ok := states[key]
		if !ok {
			var err error
			if s, err = o.Ingest(log, snap); err != nil {
				return err
			}
			states[key] = s
		}
		c.compareCompleteness(p, r, recount(log, snap, s), s.Counts)
	}
	return nil
}

// completenessSnapshot is the snapshot r's completeness says it included,
// after checking it lists every partition of r's lineage at the same offset
// and no other partition with anything consumed.
func completenessSnapshot(p *problems, r runRow) oracle.Snapshot {
	lineage := map[oracle.TopicPartition]int64{}
	for _, in := range r.lineage.Inputs {
		lineage[oracle.TopicPartition{Topic: in.Topic, Partition: in.Partition}] = in.OffsetThrough
	}
	snap := oracle.Snapshot{}
	for _, in := range r.completeness.Inputs {
		tp := oracle.TopicPartition{Topic: in.Topic, Partition: in.Partition}
		through, ok := lineage[tp]
		if !ok {
			through = -1
		}
		if in.OffsetThrough != through {
			p.add("completeness", "%s: %s/%d through offset %d, its lineage %d", r.id, tp.Topic, tp.Partition, in.OffsetThrough, through)
		}
		delete(lineage, tp)
		snap[tp] = in.OffsetThrough + 1
	}
	for tp := range lineage {
		p.add("completeness", "%s: %s/%d of its lineage is not listed", r.id, tp.Topic, tp.Partition)
	}
	return snap
}

// partitionCount is what a recount finds in one input partition.
type partitionCount struct {
	records     int64
	quarantined map[string]int64
}

// recount counts the committed data records of log below snap per
// partition, and s's quarantine of them by reason.
func recount(log []oracle.Input, snap oracle.Snapshot, s *oracle.State) map[oracle.TopicPartition]*partitionCount {
	out := map[oracle.TopicPartition]*partitionCount{}
	for tp := range snap {
		out[tp] = &partitionCount{quarantined: map[string]int64{}}
	}
	for _, in := range log {
		tp := oracle.TopicPartition{Topic: in.Topic, Partition: in.Partition}
		if next, ok := snap[tp]; !ok || in.Offset >= next {
			continue
		}
		out[tp].records++
	}
	for pos, q := range s.Quarantine {
		out[oracle.TopicPartition{Topic: pos.Topic, Partition: pos.Partition}].quarantined[q.Reason]++
	}
	return out
}

// compareCompleteness adds to p every difference between r's stored counts
// and the recount want, whose reads counts are oracle's.
func (c *chaos) compareCompleteness(p *problems, r runRow, want map[oracle.TopicPartition]*partitionCount, counts oracle.Counts) {
	readsTopic := kafka.DefaultTopics().Reads
	var reads oracle.Counts
	for _, in := range r.completeness.Inputs {
		tp := oracle.TopicPartition{Topic: in.Topic, Partition: in.Partition}
		w := want[tp]
		var q int64
		for _, n := range in.Quarantined {
			q += n
		}
		switch {
		case in.Records != in.Applied+q:
			p.add("completeness", "%s: %s/%d: %d records, %d applied + %d quarantined", r.id, tp.Topic, tp.Partition, in.Records, in.Applied, q)
		case in.Records != w.records:
			p.add("completeness", "%s: %s/%d: %d records, the log holds %d through offset %d", r.id, tp.Topic, tp.Partition,
				in.Records, w.records, in.OffsetThrough)
		case !maps.Equal(in.Quarantined, w.quarantined):
			p.add("completeness", "%s: %s/%d: quarantined %v, oracle %v", r.id, tp.Topic, tp.Partition, in.Quarantined, w.quarantined)
		case (in.Topic == readsTopic) != (in.ReadsApplied != nil && in.ReadsStale != nil && in.ReadsDuplicate != nil):
			p.add("completeness", "%s: %s/%d: reads counts %v %v %v", r.id, tp.Topic, tp.Partition, in.ReadsApplied, in.ReadsStale, in.ReadsDuplicate)
		}
		if in.ReadsApplied != nil && in.ReadsStale != nil && in.ReadsDuplicate != nil {
			reads.ReadsApplied += int(*in.ReadsApplied)
			reads.ReadsStale += int(*in.ReadsStale)
			reads.ReadsDuplicate += int(*in.ReadsDuplicate)
		}
		c.st.Checked.CompletenessInputs++
	}
	if reads.ReadsApplied != counts.ReadsApplied || reads.ReadsStale != counts.ReadsStale || reads.ReadsDuplicate != counts.ReadsDuplicate {
		p.add("completeness", "%s: reads applied %d, stale %d, duplicate %d; oracle %d, %d, %d", r.id, reads.ReadsApplied,
			reads.ReadsStale, reads.ReadsDuplicate, counts.ReadsApplied, counts.ReadsStale, counts.ReadsDuplicate)
	}
}

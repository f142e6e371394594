package ingest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// PartitionStatus is the ingest state of one input partition (api/README.md
// "GET /api/v1/status").
type PartitionStatus struct {
	Topic      string     `json:"topic"`
	Partition  int32      `json:"partition"`
	NextOffset int64      `json:"next_offset"` // stored consumer position (moves past transaction markers)
	EndOffset  int64      `json:"end_offset"`  // last stable offset now
	Lag        int64      `json:"lag"`         // end_offset − next_offset
	Watermark  *time.Time `json:"watermark"`   // latest interval end seen; null before any
	// Refused is set while ingest refuses the partition's log, which ended
	// below next_offset (doc.go "A reset input log"); null otherwise.
	Refused *LogRefusal `json:"refused"`
}

// LogRefusal is why a partition consumes nothing: its log ended at LogEnd,
// below the stored offset, when it was found at Since.
type LogRefusal struct {
	Since  time.Time `json:"since"`
	LogEnd int64     `json:"log_end"`
}

// Status is the ingest part of the service status.
type Status struct {
	Inputs []PartitionStatus
}

// ReadStatus reports every partition of the input topics, whichever instance
// owns it: next_offset and watermark from Postgres, end_offset the last
// stable offset (a read_committed ListOffsets) asked of the cluster now.
func ReadStatus(ctx context.Context, db readstore.Querier, adm *kadm.Client, topics kafka.Topics) (Status, error) {
	inputs := topics.Inputs()
	ends, err := adm.ListCommittedOffsets(ctx, inputs...)
	if err != nil {
		return Status{}, fmt.Errorf("list last stable offsets: %w", err)
	}
	stored, err := readstore.StoredOffsets(ctx, db, inputs)
	if err != nil {
		return Status{}, err
	}
	byPartition := map[topicPartition]readstore.StoredOffset{}
	for _, s := range stored {
		byPartition[topicPartition{s.Topic, s.Partition}] = s
	}
	var st Status
	for _, topic := range inputs {
		parts, ok := ends[topic]
		if !ok {
			return Status{}, fmt.Errorf("list last stable offsets: topic %s not found", topic)
		}
		for p, o := range parts {
			if o.Err != nil {
				return Status{}, fmt.Errorf("last stable offset of %s/%d: %w", topic, p, o.Err)
			}
			s := byPartition[topicPartition{topic, p}]
			in := PartitionStatus{
				Topic: topic, Partition: p, NextOffset: s.NextOffset, EndOffset: o.Offset,
				Lag: o.Offset - s.NextOffset, Watermark: s.Watermark,
			}
			if s.RefusedAt != nil && s.RefusedLogEnd != nil {
				in.Refused = &LogRefusal{Since: *s.RefusedAt, LogEnd: *s.RefusedLogEnd}
			}
			st.Inputs = append(st.Inputs, in)
		}
	}
	slices.SortFunc(st.Inputs, func(a, b PartitionStatus) int {
		if a.Topic != b.Topic {
			return slices.Index(inputs, a.Topic) - slices.Index(inputs, b.Topic)
		}
		return int(a.Partition - b.Partition)
	})
	return st, nil
}

package settlement

// Completeness is what ingest had done with the records of every input
// partition it knows, as one snapshot saw it (settlement/README.md
// "Completeness: every input record accounted for"). A run stores it beside its
// lineage (settlement/postgres) and its exports' manifests carry it
// (reporting), in this one shape. For every input, Records = Applied + Σ
// Quarantined.
type Completeness struct {
	Inputs []CompletenessInput `json:"inputs"`
}

// CompletenessInput is the counts of one input partition through
// OffsetThrough (inclusive; -1: nothing consumed). The reads counts exist
// only for the reads topic's partitions, so they are pointers that a prices
// partition leaves nil, and its JSON has no reads_* keys.
type CompletenessInput struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	OffsetThrough int64  `json:"offset_through"`
	Records       int64  `json:"records"`
	Applied       int64  `json:"applied"`
	// Quarantined is by reason; encoding/json writes a map's keys sorted,
	// so the bytes do not depend on map order.
	Quarantined    map[string]int64 `json:"quarantined"`
	ReadsApplied   *int64           `json:"reads_applied,omitempty"`
	ReadsStale     *int64           `json:"reads_stale,omitempty"`
	ReadsDuplicate *int64           `json:"reads_duplicate,omitempty"`
}

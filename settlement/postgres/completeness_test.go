package postgres

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// ingestBatch commits a batch of topic/partition [from, to) with counts c,
// as the consumer does.
func (e *env) ingestBatch(topic string, partition int32, from, to int64, c readstore.Counts) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := readstore.LoadOffsets(ctx, e.pool, topic, []int32{partition}); err != nil {
		e.t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if ok, _, err := readstore.AdvanceOffset(ctx, tx, topic, partition, from, to); !ok || err != nil {
			e.t.Fatalf("advance %s/%d: %v %v", topic, partition, ok, err)
		}
		_, err := readstore.CloseBatch(ctx, tx, topic, partition, time.Time{}, c)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

// A run stores ingest's counts as its snapshot saw them, every known
// partition listed; later batches and replays change later runs only.
func TestRunCompleteness(t *testing.T) {
	t.Parallel()
	e := newEnv(t, settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900})
	const reads, prices = "ami.interval-reads", "market.prices"
	e.ingestBatch(reads, 0, 0, 13, readstore.Counts{Records: 12, Applied: 10,
		Quarantined:  map[meters.Reason]int64{meters.UnknownMeter: 1, meters.MalformedJSON: 1},
		ReadsApplied: 150, ReadsStale: 2, ReadsDuplicate: 8})
	e.ingestBatch(reads, 1, 0, 0, readstore.Counts{}) // assigned, nothing consumed
	e.ingestBatch(prices, 0, 0, 5, readstore.Counts{Records: 4, Applied: 4})

	r1 := e.start(nov1, settlement.Initial)
	want1 := `{"inputs":[` +
		`{"topic":"ami.interval-reads","partition":0,"offset_through":12,"records":12,"applied":10,"quarantined":{"malformed_json":1,"unknown_meter":1},"reads_applied":150,"reads_stale":2,"reads_duplicate":8},` +
		`{"topic":"ami.interval-reads","partition":1,"offset_through":-1,"records":0,"applied":0,"quarantined":{},"reads_applied":0,"reads_stale":0,"reads_duplicate":0},` +
		`{"topic":"market.prices","partition":0,"offset_through":4,"records":4,"applied":4,"quarantined":{}}]}`
	assertCompleteness(t, r1, want1)

	// A replay and a batch after run 1.
	if err := pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
		return readstore.MoveCounts(t.Context(), tx, []readstore.PartitionCounts{{Topic: reads, Partition: 0,
			Counts: readstore.Counts{Applied: 1, Quarantined: map[meters.Reason]int64{meters.UnknownMeter: -1}, ReadsApplied: 4}}})
	}); err != nil {
		t.Fatal(err)
	}
	e.ingestBatch(reads, 1, 0, 3, readstore.Counts{Records: 2, Applied: 2, ReadsApplied: 32})
	r2 := e.start(nov1, settlement.Final)
	want2 := `{"inputs":[` +
		`{"topic":"ami.interval-reads","partition":0,"offset_through":12,"records":12,"applied":11,"quarantined":{"malformed_json":1},"reads_applied":154,"reads_stale":2,"reads_duplicate":8},` +
		`{"topic":"ami.interval-reads","partition":1,"offset_through":2,"records":2,"applied":2,"quarantined":{},"reads_applied":32,"reads_stale":0,"reads_duplicate":0},` +
		`{"topic":"market.prices","partition":0,"offset_through":4,"records":4,"applied":4,"quarantined":{}}]}`
	assertCompleteness(t, r2, want2)
	for id, want := range map[string]string{r1.RunID: want1, r2.RunID: want2} {
		got, err := e.runs.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		assertCompleteness(t, got, want)
	}

	// Counts that do not start at offset 0 (consumed before ingest counted)
	// make no completeness.
	e.exec(`UPDATE ingest_offsets SET counted_from = 3 WHERE topic = $1 AND partition = 1`, reads)
	if r3 := e.start(nov1, settlement.Resettlement); r3.Completeness != nil {
		t.Errorf("run 3 completeness %+v, want none", r3.Completeness)
	}
	if b, _ := json.Marshal(Run{}); !json.Valid(b) || string(b[len(b)-20:]) != `"completeness":null}` {
		t.Errorf("a run without completeness: %s", b)
	}
}

func assertCompleteness(t *testing.T, r Run, want string) {
	t.Helper()
	b, err := json.Marshal(r.Completeness)
	if err != nil || string(b) != want {
		t.Errorf("%s completeness\n got  %s\n want %s", r.RunID, b, want)
	}
}

package readstore

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// decoded is recs as a batch's records from offset on.
func decoded(offset int64, recs ...string) []ReadRecord {
	in := make([]ReadRecord, len(recs))
	for i, r := range recs {
		in[i].Source = Source{Origin: Origin{Topic: readsTopic, Offset: offset + int64(i)}, Key: []byte("k"), Value: []byte(r)}
		in[i].Block, in[i].Rejection = meters.DecodeReadBlock([]byte(r))
	}
	return in
}

// lookedUp is how many channels the batch of recs would look up in
// read_blocks, and the current reads it would load, as loadReadState
// decides them now (in a transaction rolled back).
func lookedUp(t *testing.T, pool *pgxpool.Pool, recs ...string) (channels, reads int) {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	st, err := loadReadState(ctx, tx, nil, decoded(0, recs...))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.days {
		for _, c := range d.reads {
			if c.version > 0 {
				reads++
			}
		}
	}
	return st.lookedUp, reads
}

// lastEnd is channel_lengths.last_end of (meter, channel), "" for NULL.
func lastEnd(t *testing.T, pool *pgxpool.Pool, meter, channel string) string {
	t.Helper()
	var e *time.Time
	if err := pool.QueryRow(t.Context(), `SELECT last_end FROM channel_lengths WHERE meter_id = $1 AND channel = $2`,
		meter, channel).Scan(&e); err != nil {
		t.Fatal(err)
	}
	if e == nil {
		return ""
	}
	return e.UTC().Format(time.RFC3339)
}

// A channel's day sent in order is never looked up: each record starts at
// the end of the channel's latest stored block. Records that start before
// it (a resend, a correction, an overlapping or earlier record, a conflict)
// still are, and find the stored reads they must be versioned against.
func TestInOrderRecordsSkipTheLookUp(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	b := &batch{pool: pool}

	// A new channel has no row, so no stored block: not looked up.
	first := read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1", "2")
	if n, _ := lookedUp(t, pool, first); n != 0 {
		t.Errorf("new channel: %d channels looked up, want 0", n)
	}
	b.reads(t, first)
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-01T05:30:00Z" {
		t.Fatalf("last_end after the first record: %q", e)
	}

	// In order, the next records of the day: not looked up, even across
	// the UTC day and starting after a gap.
	for _, rec := range []string{
		read("M2", "import", "2026-11-01T05:30:00Z", 900, 1, "3"),
		read("M2", "import", "2026-11-01T07:00:00Z", 900, 1, "4"),
		read("M2", "import", "2026-11-01T23:45:00Z", 900, 1, "5", "6"),
	} {
		if n, _ := lookedUp(t, pool, rec); n != 0 {
			t.Errorf("in-order %s: %d channels looked up, want 0", rec, n)
		}
		if out := b.reads(t, rec); len(out.Changes) == 0 || out.Changes[0].Previous() != nil {
			t.Fatalf("in-order %s: %+v", rec, out)
		}
	}
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-02T00:15:00Z" {
		t.Fatalf("last_end after the in-order records: %q", e)
	}
	// Two channels in one batch: only the one out of order is looked up.
	b.reads(t, read("M2", "export", "2026-11-01T05:00:00Z", 900, 1, "0.5"))
	if n, reads := lookedUp(t, pool,
		read("M2", "import", "2026-11-02T00:15:00Z", 900, 1, "1"),
		read("M2", "export", "2026-11-01T04:45:00Z", 900, 1, "0.5", "0.5"),
	); n != 1 || reads != 1 {
		t.Errorf("one channel in order, one not: %d channels looked up, %d reads loaded; want 1 and 1", n, reads)
	}

	// Starting before last_end: looked up, and versioned against what is
	// stored. A resend is a duplicate,
	resend := read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1", "2")
	if n, reads := lookedUp(t, pool, resend); n != 1 || reads != 2 {
		t.Errorf("resend: %d channels looked up, %d reads loaded; want 1 and 2", n, reads)
	}
	if out := b.reads(t, resend); out.Duplicates != 2 || len(out.Changes) != 0 {
		t.Errorf("resend: %d duplicates, changes %+v; want 2 and none", out.Duplicates, out.Changes)
	}
	// a correction replaces the stored read,
	out := b.reads(t, read("M2", "import", "2026-11-01T05:30:00Z", 900, 2, "3.5"))
	if len(out.Changes) != 1 || out.Changes[0].Previous() == nil || out.Changes[0].Previous().Value.String() != "3" {
		t.Errorf("correction: %+v, want it to replace 3", out.Changes)
	}
	// a record overlapping the end of the stored reads is a duplicate where
	// they are and new after them,
	out = b.reads(t, read("M2", "import", "2026-11-01T23:45:00Z", 900, 1, "5", "6", "7"))
	if out.Duplicates != 2 || len(out.Changes) != 1 || out.Changes[0].Previous() != nil {
		t.Errorf("overlapping record: %d duplicates, changes %+v; want 2 and one new", out.Duplicates, out.Changes)
	}
	// a conflict is found and quarantined,
	out = b.reads(t, read("M2", "import", "2026-11-01T07:00:00Z", 900, 1, "9"))
	equal(t, "conflict", reasons(out.Quarantined), []meters.Reason{meters.ConflictingDuplicate})
	// and an earlier record fills a gap without raising last_end.
	out = b.reads(t, read("M2", "import", "2026-11-01T06:00:00Z", 900, 1, "8"))
	if len(out.Changes) != 1 || out.Changes[0].Previous() != nil {
		t.Errorf("earlier record: %+v", out.Changes)
	}
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-02T00:30:00Z" {
		t.Errorf("last_end: %q, want the overlapping record's end", e)
	}
	equal(t, "M2 reads", currentValues(t, pool, "M2"), []string{
		"05:00 export 0.5 v1 A @4", "05:00 import 1 v1 A @0", "05:15 import 2 v1 A @0", "05:30 import 3.5 v2 A @6",
		"06:00 import 8 v1 A @9", "07:00 import 4 v1 A @2", "23:45 import 5 v1 A @3", "00:00 import 6 v1 A @3",
		"00:15 import 7 v1 A @7",
	})
}

// A writer that waited for another's lock on a channel sees the last_end
// that other committed: the locking statement returns the row's committed
// version after the wait, not the one its snapshot began with. Were it the
// old one, the waiter would take its range (at the old last_end) as past
// every stored block and miss the block the first committed meanwhile.
func TestWaiterSeesTheHoldersLastEnd(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	ctx := t.Context()
	(&batch{pool: pool}).reads(t, read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1"))

	// A appends 05:15, in order, and holds the channel's row.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := ApplyReads(ctx, tx, ReadOptions{SettlementSeconds: 900},
		decoded(1, read("M2", "import", "2026-11-01T05:15:00Z", 900, 1, "2"))); err != nil {
		t.Fatal(err)
	}
	// B corrects 05:15, starting at the last_end stored before A.
	out := secondWriterAfter(t, pool, tx, read("M2", "import", "2026-11-01T05:15:00Z", 900, 2, "5"))
	if len(out.Changes) != 1 || out.Changes[0].Previous() == nil || out.Changes[0].Previous().Version != 1 ||
		out.Changes[0].Previous().Value.String() != "2" {
		t.Fatalf("second writer's changes %+v, want it to replace the first's 2 (version 1)", out.Changes)
	}
	assertPositions(t, pool, map[string]string{
		"RETAILER-A/HB_SOUTH/05:00": "0.0010312", "RETAILER-A/HB_SOUTH/05:15": "0.005156"})
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-01T05:30:00Z" {
		t.Errorf("last_end %q", e)
	}
}

// badLastEnds lists the channels whose last_end is not the greatest end of
// their stored blocks, recomputed from read_blocks, or that have blocks
// but no row.
func badLastEnds(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT meter_id || ' ' || channel || ': ' || CASE WHEN c.meter_id IS NULL THEN 'no row' ELSE 'last_end ' ||
		       coalesce(c.last_end::text, 'NULL') END || ', blocks end ' || coalesce(b.e::text, 'NULL')
		FROM channel_lengths c FULL JOIN (
			SELECT meter_id, channel, max(start + cardinality(values_micro) * interval_seconds * interval '1 second') AS e
			FROM read_blocks GROUP BY meter_id, channel) b USING (meter_id, channel)
		WHERE c.meter_id IS NULL OR c.last_end IS DISTINCT FROM b.e
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

// modelRead is the model's current read of a key.
type modelRead struct {
	version int
	value   string
}

// After any sequence of batches (records in and out of order, resends,
// corrections, conflicts, records cut at UTC midnight, quarantine replays,
// blocks appended outside ingest), every channel's last_end is the greatest
// end of its stored blocks, and the current reads are those of a model
// that always reads every stored version: skipping a look-up never
// changed an outcome.
func TestLastEndProperty(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			lastEndProperty(t, seed)
		})
	}
}

func lastEndProperty(t *testing.T, seed uint64) {
	pool, _ := pgtest.New(t)
	registry(t, pool)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 0x1a57))
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	type channel struct{ meter, name string }
	channels := []channel{{"M1", "import"}, {"M1", "export"}, {"M2", "import"}, {"M2", "export"}, {"M3", "import"}}
	next := map[channel]int{} // the next in-order interval of each channel, from day
	model := map[string]modelRead{}
	m3Known := false
	var parked []string // M3's records quarantined as unknown_meter, in order
	b := &batch{pool: pool}

	// apply runs recs through the model as ApplyReads must: in order, a
	// record for an unknown meter parked, one conflicting with a current
	// read of its version skipped, else each read of a higher version made
	// current.
	apply := func(recs []string) {
		for _, r := range recs {
			blk, rej := meters.DecodeReadBlock([]byte(r))
			if rej != nil {
				t.Fatalf("fixture record %s: %v", r, rej)
			}
			if blk.MeterID == "M3" && !m3Known {
				parked = append(parked, r)
				continue
			}
			key := func(i int) string {
				return fmt.Sprintf("%s %s %s", blk.MeterID, blk.Channel, blk.Start.Add(time.Duration(i*900)*time.Second).Format(time.RFC3339))
			}
			conflict := false
			for i, v := range blk.Values {
				if c, ok := model[key(i)]; ok && c.version == int(blk.Version) && c.value != v.String() {
					conflict = true
				}
			}
			if conflict {
				continue
			}
			for i, v := range blk.Values {
				if c := model[key(i)]; int(blk.Version) > c.version {
					model[key(i)] = modelRead{int(blk.Version), v.String()}
				}
			}
		}
	}
	record := func() string {
		ch := channels[rng.IntN(len(channels))]
		n := 1 + rng.IntN(20)
		var start int
		switch k := rng.IntN(10); {
		case k < 5: // in order, sometimes after a gap
			start = next[ch] + rng.IntN(3)/2*rng.IntN(8)
		case k < 7: // a resend or a correction of what was sent
			start = max(0, next[ch]-rng.IntN(30))
		default: // anywhere in the two days
			start = rng.IntN(2 * 96)
		}
		next[ch] = max(next[ch], start+n)
		version := 1
		if rng.IntN(4) == 0 {
			version = 1 + rng.IntN(3)
		}
		values := make([]string, n)
		for i := range values {
			values[i] = strconv.Itoa(1 + rng.IntN(3))
		}
		return read(ch.meter, ch.name, day.Add(time.Duration(start*900)*time.Second).Format(time.RFC3339), 900, version, values...)
	}
	check := func(step string) {
		t.Helper()
		if bad := badLastEnds(t, pool); len(bad) > 0 {
			t.Fatalf("seed %d, %s: last_end wrong for %v", seed, step, bad)
		}
	}

	for step := range 60 {
		switch {
		case step == 30:
			// M3 enters the registry and its quarantined records are
			// replayed, in the order they were consumed.
			if _, err := pool.Exec(ctx, `INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point,
				loss_factor, effective_from) VALUES ('M3', 'ACC-1', 'RETAILER-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`); err != nil {
				t.Fatal(err)
			}
			m3Known = true
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				items, err := LockReplayable(ctx, tx, meters.UnknownMeter)
				if err != nil {
					return err
				}
				recs := make([]ReadRecord, len(items))
				for i, it := range items {
					recs[i].Source = it.Source
					recs[i].Block, recs[i].Rejection = meters.DecodeReadBlock(it.Source.Value)
				}
				out, err := ApplyReads(ctx, tx, ReadOptions{SettlementSeconds: 900, Slot: ReplaySlot}, recs)
				if err != nil {
					return err
				}
				var ids []int64
				for _, i := range out.Applied {
					ids = append(ids, items[i].ID)
				}
				return MarkReplayed(ctx, tx, ids)
			})
			if err != nil {
				t.Fatal(err)
			}
			replayed := parked
			parked = nil
			apply(replayed)
			check("replay")
		case step%15 == 7:
			// Blocks appended outside ingest, to channels with rows and
			// without: past the end of the stored ones, and before it.
			ch := channels[rng.IntN(4)]
			start := next[ch] + rng.IntN(2)*10 - 5
			if start < 0 {
				start = 0
			}
			blk := StoredBlock{MeterID: ch.meter, Channel: meters.Channel(ch.name),
				Start: day.Unix() + int64(start*900), IntervalSeconds: 900, Version: 7,
				Values: []int64{4_000_000, NoRead, 5_000_000}, Origin: Origin{Topic: readsTopic, Partition: 9, Offset: int64(step)}}
			if err := AppendBlocks(ctx, pool, SplitDays(blk)); err != nil {
				t.Fatal(err)
			}
			next[ch] = max(next[ch], start+3)
			for i, v := range []string{"4", "", "5"} {
				k := fmt.Sprintf("%s %s %s", ch.meter, ch.name, time.Unix(blk.StartAt(i), 0).UTC().Format(time.RFC3339))
				if c := model[k]; v != "" && c.version < 7 {
					model[k] = modelRead{7, v}
				}
			}
			check("append")
		default:
			recs := make([]string, 1+rng.IntN(6))
			for i := range recs {
				recs[i] = record()
			}
			if _, err := b.tryReads(ctx, recs...); err != nil {
				t.Fatalf("seed %d, step %d: %v", seed, step, err)
			}
			apply(recs)
			check(fmt.Sprintf("step %d", step))
		}
	}

	got := map[string]modelRead{}
	for _, m := range []string{"M1", "M2", "M3"} {
		rs, err := CurrentReads(ctx, pool, ReadFilter{MeterID: m}, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got[fmt.Sprintf("%s %s %s", r.MeterID, r.Channel, r.Start.Format(time.RFC3339))] = modelRead{int(r.Version), r.Value.String()}
		}
	}
	if len(got) != len(model) {
		t.Errorf("seed %d: %d current reads, the model has %d", seed, len(got), len(model))
	}
	for k, want := range model {
		if got[k] != want {
			t.Errorf("seed %d: %s is %+v, the model's %+v", seed, k, got[k], want)
		}
	}
}

// AppendBlocks keeps channel rows as ApplyReads does: it creates the row of
// a channel that has none (with its length and last_end), raises last_end
// and never lowers it; ingest then looks the channel up when a record
// starts before its last_end, and finds the blocks.
func TestAppendBlocksKeepsChannelRows(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	at := func(start string, values ...int64) StoredBlock {
		return StoredBlock{MeterID: "M2", Channel: meters.Import, Start: unix(start), IntervalSeconds: 900, Version: 1,
			Values: values, Origin: Origin{Topic: readsTopic, Offset: 90}}
	}
	storeBlocks(t, pool, at("2026-11-01T10:00:00Z", 4_000_000, 5_000_000))
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-01T10:30:00Z" {
		t.Fatalf("last_end %q, want the end of the appended block", e)
	}
	storeBlocks(t, pool, at("2026-11-01T09:00:00Z", 1_000_000))
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-01T10:30:00Z" {
		t.Fatalf("last_end %q after an earlier block, want it kept", e)
	}
	b := &batch{pool: pool}
	out := b.reads(t, read("M2", "import", "2026-11-01T05:00:00Z", 300, 1, "1"))
	equal(t, "another length", reasons(out.Quarantined), []meters.Reason{meters.IntervalLengthMismatch})
	rec := read("M2", "import", "2026-11-01T05:15:00Z", 900, 1, "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "2", "9")
	if n, reads := lookedUp(t, pool, rec); n != 1 || reads != 3 {
		t.Errorf("%d channels looked up, %d reads loaded; want 1 and the stored blocks' 3", n, reads)
	}
	out = b.reads(t, rec)
	equal(t, "conflict with the stored 10:00", reasons(out.Quarantined), []meters.Reason{meters.ConflictingDuplicate})
	storeBlocks(t, pool, at("2026-11-01T11:00:00Z", 6_000_000))
	if e := lastEnd(t, pool, "M2", "import"); e != "2026-11-01T11:15:00Z" {
		t.Fatalf("last_end %q, want it raised", e)
	}
	if bad := badLastEnds(t, pool); len(bad) > 0 {
		t.Errorf("last_end wrong for %v", bad)
	}
}

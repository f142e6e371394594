package readstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

const (
	readsTopic  = "ami.interval-reads"
	pricesTopic = "market.prices"
)

// registry loads a small registry: M1 at HB_NORTH with RETAILER-A (loss
// factor 1.5) until 2026-11-01T12:00Z, then with RETAILER-B (1); M2 at
// HB_SOUTH with RETAILER-A (1.031200), open-ended.
func registry(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
		INSERT INTO participants VALUES ('RETAILER-A', 'A'), ('RETAILER-B', 'B');
		INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub'), ('HB_SOUTH', 'South', 'hub');
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-2', 'two');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to) VALUES
			('M1', 'ACC-1', 'RETAILER-A', 'HB_NORTH', 1.5, '2026-01-01T00:00:00Z', '2026-11-01T12:00:00Z'),
			('M1', 'ACC-1', 'RETAILER-B', 'HB_NORTH', 1, '2026-11-01T12:00:00Z', NULL),
			('M2', 'ACC-2', 'RETAILER-A', 'HB_SOUTH', 1.031200, '2026-01-01T00:00:00Z', NULL)`)
	if err != nil {
		t.Fatalf("load registry: %v", err)
	}
}

type batch struct {
	pool   *pgxpool.Pool
	offset int64
	// settlement is the market's settlement interval (0: 900 s); slot the
	// positions slot the batches write.
	settlement int
	slot       int32
}

// reads applies JSON records as one batch of partition 0, in a transaction.
func (b *batch) reads(t *testing.T, recs ...string) ReadsOutcome {
	t.Helper()
	out, err := b.tryReads(t.Context(), recs...)
	if err != nil {
		t.Fatalf("apply reads: %v", err)
	}
	return out
}

func (b *batch) tryReads(ctx context.Context, recs ...string) (ReadsOutcome, error) {
	in := make([]ReadRecord, len(recs))
	for i, r := range recs {
		in[i].Source = Source{Origin: Origin{Topic: readsTopic, Offset: b.offset}, Key: []byte("k"), Value: []byte(r)}
		b.offset++
		in[i].Block, in[i].Rejection = meters.DecodeReadBlock([]byte(r))
	}
	var out ReadsOutcome
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		out, err = ApplyReads(ctx, tx, ReadOptions{SettlementSeconds: cmp.Or(b.settlement, 900), Slot: b.slot}, in)
		return err
	})
	return out, err
}

func (b *batch) prices(t *testing.T, recs ...string) PricesOutcome {
	t.Helper()
	in := make([]PriceRecord, len(recs))
	for i, r := range recs {
		in[i].Source = Source{Origin: Origin{Topic: pricesTopic, Offset: b.offset}, Value: []byte(r)}
		b.offset++
		in[i].Price, in[i].Rejection = meters.DecodePrice([]byte(r), "USD")
	}
	var out PricesOutcome
	err := pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		var err error
		out, err = ApplyPrices(t.Context(), tx, "USD", in)
		return err
	})
	if err != nil {
		t.Fatalf("apply prices: %v", err)
	}
	return out
}

func read(meter, channel, start string, seconds, version int, values ...string) string {
	return fmt.Sprintf(`{"meter_id":%q,"channel":%q,"start":%q,"interval_seconds":%d,"values":["%s"],"version":%d}`,
		meter, channel, start, seconds, strings.Join(values, `","`), version)
}

func price(market, point, start string, seconds, version int, p, currency string) string {
	return fmt.Sprintf(`{"market":%q,"settlement_point":%q,"start":%q,"interval_seconds":%d,"price":%q,"currency":%q,"version":%d}`,
		market, point, start, seconds, p, currency, version)
}

func reasons(qs []Quarantined) []meters.Reason {
	var out []meters.Reason
	for _, q := range qs {
		out = append(out, q.Reason)
	}
	return out
}

func positions(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ps, err := PositionEnergies(t.Context(), pool, PositionFilter{
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ps {
		out[p.ParticipantID+"/"+p.SettlementPoint+"/"+p.IntervalStart.Format("15:04")] = p.EnergyMWh.String()
	}
	return out
}

func currentValues(t *testing.T, pool *pgxpool.Pool, meter string) []string {
	t.Helper()
	rs, err := CurrentReads(t.Context(), pool, ReadFilter{MeterID: meter}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %s %s v%d %s @%d", r.Start.Format("15:04"), r.Channel, r.Value, r.Version, r.Quality, r.Origin.Offset))
	}
	return out
}

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func TestReadsVersioningAndPositions(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	b := &batch{pool: pool}

	out := b.reads(t,
		read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1", "2"),
		read("M1", "export", "2026-11-01T05:00:00Z", 900, 1, "0.5"),
		read("M2", "import", "2026-11-01T05:00:00Z", 3600, 1, "4"),
	)
	if len(out.Quarantined) != 0 || len(out.Changes) != 4 {
		t.Fatalf("first batch: %+v", out)
	}
	// M1: (1 − 0.5) × 1.5 / 1000 and 2 × 1.5 / 1000; M2 split in four.
	want := map[string]string{
		"RETAILER-A/HB_NORTH/05:00": "0.00075", "RETAILER-A/HB_NORTH/05:15": "0.003",
		"RETAILER-A/HB_SOUTH/05:00": "0.0010312", "RETAILER-A/HB_SOUTH/05:15": "0.0010312",
		"RETAILER-A/HB_SOUTH/05:30": "0.0010312", "RETAILER-A/HB_SOUTH/05:45": "0.0010312",
	}
	assertPositions(t, pool, want)

	// One batch: a resend (duplicate), a correction of 05:15, a stale
	// version, then a second correction of the same key: offset order decides.
	out = b.reads(t,
		read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1", "2"),
		read("M1", "import", "2026-11-01T05:15:00Z", 900, 2, "3"),
		read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "9"),
		read("M1", "import", "2026-11-01T05:15:00Z", 900, 3, "2.5"),
	)
	if len(out.Quarantined) != 0 || out.Duplicates != 2 || out.Stale != 1 || len(out.Changes) != 2 || len(out.Applied) != 4 {
		t.Fatalf("second batch: dup %d stale %d changes %d quarantined %v", out.Duplicates, out.Stale, len(out.Changes), out.Quarantined)
	}
	if c := out.Changes[1]; c.Previous() == nil || c.Previous().Value.String() != "3" || c.Read().Value.String() != "2.5" {
		t.Errorf("second change: %+v", c)
	}
	equal(t, "M1 reads", currentValues(t, pool, "M1"), []string{
		"05:00 export 0.5 v1 A @1", "05:00 import 1 v1 A @0", "05:15 import 2.5 v3 A @6",
	})
	want["RETAILER-A/HB_NORTH/05:15"] = "0.00375"
	assertPositions(t, pool, want)

	// A later batch: version 2 is now stale, and a conflict (same version 3,
	// other value) is quarantined while the current read stands.
	out = b.reads(t,
		read("M1", "import", "2026-11-01T05:15:00Z", 900, 2, "3"),
		read("M1", "import", "2026-11-01T05:15:00Z", 900, 3, "2.50"),
		read("M1", "import", "2026-11-01T05:00:00Z", 900, 3, "7", "2.6"),
	)
	equal(t, "reasons", reasons(out.Quarantined), []meters.Reason{meters.ConflictingDuplicate})
	if out.Stale != 1 || out.Duplicates != 1 || !strings.Contains(out.Quarantined[0].Detail, "values[1]") {
		t.Errorf("third batch: stale %d dup %d %+v", out.Stale, out.Duplicates, out.Quarantined)
	}
	// The conflicting record is quarantined whole: its 05:00 value 7 is not applied.
	equal(t, "M1 reads", currentValues(t, pool, "M1"), []string{
		"05:00 export 0.5 v1 A @1", "05:00 import 1 v1 A @0", "05:15 import 2.5 v3 A @6",
	})
	assertPositions(t, pool, want)
}

func assertPositions(t *testing.T, pool *pgxpool.Pool, want map[string]string) {
	t.Helper()
	got := positions(t, pool)
	if len(got) != len(want) {
		t.Errorf("positions %v, want %v", got, want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !decimal.RequireFromString(g).Equal(decimal.RequireFromString(w)) {
			t.Errorf("position %s = %s, want %s", k, g, w)
		}
	}
}

func TestReadsQuarantineReasons(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	b := &batch{pool: pool}
	b.reads(t, read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1"))
	out := b.reads(t,
		`{"meter_id":"M2"`, // malformed_json, from decoding
		read("M9", "import", "2026-11-01T05:00:00Z", 900, 1, "1"),
		// Before M1's first assignment: unknown for one of its intervals.
		read("M1", "import", "2025-12-31T23:45:00Z", 900, 1, "1", "1"),
		read("M2", "import", "2026-11-01T06:00:00Z", 300, 1, "1"),
		read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "2"),
		// A record whose checks pass applies; the one after it sees its effect.
		read("M2", "export", "2026-11-01T05:00:00Z", 900, 1, "1"),
		read("M2", "export", "2026-11-01T05:00:00Z", 1800, 1, "1"),
	)
	equal(t, "reasons", reasons(out.Quarantined), []meters.Reason{
		meters.MalformedJSON, meters.UnknownMeter, meters.UnknownMeter, meters.IntervalLengthMismatch,
		meters.ConflictingDuplicate, meters.IntervalLengthMismatch,
	})
	equal(t, "applied", out.Applied, []int{5})
	items, err := QuarantineItems(t.Context(), pool, QuarantineFilter{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 6 || items[0].Reason != meters.MalformedJSON || string(items[0].Source.Value) != `{"meter_id":"M2"` ||
		items[0].Source.Offset != 1 || items[1].Source.Offset != 2 || items[0].ReplayedAt != nil {
		t.Errorf("quarantine items: %+v", items)
	}
	items, err = QuarantineItems(t.Context(), pool, QuarantineFilter{Reason: meters.UnknownMeter, AfterID: items[1].ID}, 100)
	if err != nil || len(items) != 1 || items[0].Source.Offset != 3 {
		t.Errorf("filtered quarantine: %+v %v", items, err)
	}
}

// TestReadsNULSource: U+0000 in a source is text Postgres cannot store. The
// store decides it itself, as the last check, so every other reason comes
// first and the batch still commits with the record's neighbours applied.
func TestReadsNULSource(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	b := &batch{pool: pool}
	b.reads(t, read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1"))
	nul := func(rec string) string {
		return strings.Replace(rec, `"version"`, `"source":"head\u0000end","version"`, 1)
	}
	out := b.reads(t,
		nul(read("M2", "import", "2026-11-01T05:15:00Z", 900, 1, "2")),
		nul(read("M9", "import", "2026-11-01T05:15:00Z", 900, 1, "2")),
		nul(read("M2", "import", "2026-11-01T05:30:00Z", 300, 1, "2")),
		nul(read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "3")),
		// Versioning would ignore it, but its source still cannot be stored.
		nul(read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		read("M2", "import", "2026-11-01T05:15:00Z", 900, 1, "2"),
	)
	equal(t, "reasons", reasons(out.Quarantined), []meters.Reason{
		meters.Unprocessable, meters.UnknownMeter, meters.IntervalLengthMismatch, meters.ConflictingDuplicate, meters.Unprocessable,
	})
	equal(t, "applied", out.Applied, []int{5})
	if d := out.Quarantined[0].Detail; d != "source: holds U+0000, which PostgreSQL text cannot store" {
		t.Errorf("detail %q", d)
	}
	equal(t, "M2 reads", currentValues(t, pool, "M2"), []string{"05:00 import 1 v1 A @0", "05:15 import 2 v1 A @6"})
	items, err := QuarantineItems(t.Context(), pool, QuarantineFilter{Reason: meters.Unprocessable}, 100)
	if err != nil || len(items) != 2 || items[0].Source.Offset != 1 || !strings.Contains(string(items[0].Source.Value), `head\u0000end`) {
		t.Errorf("unprocessable items: %+v %v", items, err)
	}
}

func TestPrices(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	b := &batch{pool: pool}
	out := b.prices(t,
		price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 300, 1, "-12.5", "USD"),
		price("DA", "HB_NORTH", "2026-11-01T05:00:00Z", 3600, 1, "30", "USD"),
		price("RT", "HB_WEST", "2026-11-01T05:00:00Z", 300, 1, "1", "USD"),
		price("RT", "HB_NORTH", "2026-11-01T05:05:00Z", 300, 1, "1", "EUR"),
		price("RT", "HB_NORTH", "2026-11-01T05:15:00Z", 900, 1, "1", "USD"),
		price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 300, 1, "-12.500", "USD"),
		price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 300, 1, "-12", "USD"),
		price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 300, 2, "-11", "USD"),
		price("RT", "HB_NORTH", "2026-11-01T05:00:00Z", 300, 1, "5", "USD"),
	)
	equal(t, "reasons", reasons(out.Quarantined), []meters.Reason{
		meters.UnknownSettlementPoint, meters.CurrencyMismatch, meters.IntervalLengthMismatch, meters.ConflictingDuplicate,
	})
	if out.Duplicates != 1 || out.Stale != 1 || len(out.Changes) != 3 || out.Changes[2].Previous == nil {
		t.Errorf("outcome: %+v", out)
	}
	ps, err := CurrentPrices(t.Context(), pool, PriceFilter{SettlementPoint: "HB_NORTH"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s %s %s v%d @%d", p.Market, p.Start.Format("15:04"), p.Price.Price, p.Version, p.Origin.Offset))
	}
	equal(t, "prices", got, []string{"DA 05:00 30 v1 @1", "RT 05:00 -11 v2 @7"})
}

// A writer that read a key's state before another committed a write to it
// must not overwrite that write: it fails and is retried.
func TestConcurrentWriteIsDetected(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	registry(t, pool)
	ctx := t.Context()
	second := &batch{pool: pool, offset: 100}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	rec := read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1")
	block, _ := meters.DecodeReadBlock([]byte(rec))
	if _, err := ApplyReads(ctx, tx, ReadOptions{SettlementSeconds: 900}, []ReadRecord{{Source: Source{Origin: Origin{Topic: readsTopic}}, Block: block}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Blocks on the uncommitted insert of the same key, then finds it taken.
		_, err := second.tryReads(ctx, read("M2", "import", "2026-11-01T05:00:00Z", 900, 2, "5"))
		done <- err
	}()
	// Commit only once the second writer waits on our row lock.
	waitForLockWaiter(t, pool)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrConcurrentWrite) {
		t.Fatalf("second writer: %v, want ErrConcurrentWrite", err)
	}
	// Retried on fresh state, it applies as a correction.
	out := second.reads(t, read("M2", "import", "2026-11-01T05:00:00Z", 900, 2, "5"))
	if len(out.Changes) != 1 || out.Changes[0].Previous() == nil {
		t.Errorf("retry: %+v", out)
	}
	assertPositions(t, pool, map[string]string{"RETAILER-A/HB_SOUTH/05:00": "0.005156"})
}

func TestOffsets(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	got, err := LoadOffsets(ctx, pool, readsTopic, []int32{0, 1})
	if err != nil || got[0] != (LoadedOffset{}) || got[1] != (LoadedOffset{}) || len(got) != 2 {
		t.Fatalf("load: %v %v", got, err)
	}
	wm := time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)
	advance := func(from, to int64, wm time.Time) bool {
		var ok bool
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			ok, _, err = AdvanceOffset(ctx, tx, readsTopic, 1, from, to)
			if ok && !wm.IsZero() {
				_, err = CloseBatch(ctx, tx, readsTopic, 1, wm, Counts{})
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !advance(0, 10, wm) || advance(0, 12, time.Time{}) || !advance(10, 12, wm.Add(-time.Hour)) {
		t.Fatal("compare-and-set")
	}
	got, err = LoadOffsets(ctx, pool, readsTopic, []int32{1, 2})
	if err != nil || got[1] != (LoadedOffset{Next: 12}) || got[2] != (LoadedOffset{}) {
		t.Fatalf("reload: %v %v", got, err)
	}
	st, err := StoredOffsets(ctx, pool, []string{readsTopic})
	if err != nil || len(st) != 3 || st[1].NextOffset != 12 || st[1].Watermark == nil || !st[1].Watermark.Equal(wm) || st[0].Watermark != nil ||
		st[1].RefusedAt != nil || st[1].RefusedLogEnd != nil {
		t.Fatalf("stored: %+v %v", st, err)
	}

	// A refusal needs the stored position it saw, and lasts until cleared.
	if ok, err := RefuseLog(ctx, pool, readsTopic, 1, 11, 3); ok || err != nil {
		t.Fatalf("refuse at a stale position: %v %v", ok, err)
	}
	if ok, err := RefuseLog(ctx, pool, readsTopic, 1, 12, 3); !ok || err != nil {
		t.Fatalf("refuse: %v %v", ok, err)
	}
	got, err = LoadOffsets(ctx, pool, readsTopic, []int32{1, 2})
	if err != nil || got[1] != (LoadedOffset{Next: 12, Refused: true}) || got[2] != (LoadedOffset{}) {
		t.Fatalf("load refused: %v %v", got, err)
	}
	st, err = StoredOffsets(ctx, pool, []string{readsTopic})
	if err != nil || st[1].RefusedAt == nil || st[1].RefusedLogEnd == nil || *st[1].RefusedLogEnd != 3 || st[0].RefusedAt != nil {
		t.Fatalf("stored refused: %+v %v", st, err)
	}
}

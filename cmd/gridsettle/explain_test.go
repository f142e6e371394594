package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/postgres/pgcheck"
)

// explainTable is the printed table: its change rows (those with an
// arrow) and its summary rows, each split into fields.
func explainTable(t *testing.T, out string) (changes, summary [][]string) {
	t.Helper()
	inSummary := false
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "KIND" && f[1] == "CHANGES":
			inSummary = true
		case inSummary:
			summary = append(summary, f)
		case strings.Contains(line, "→") && f[0] != "KIND":
			changes = append(changes, f)
		}
	}
	return changes, summary
}

// The table lists changes largest amount effect first, then largest energy
// effect, then in the contract's order, and its TOTAL row is the exact
// deltas.
func TestWriteExplanation(t *testing.T) {
	d := decimal.RequireFromString
	price := func(s string) decimal.NullDecimal {
		if s == "" {
			return decimal.NullDecimal{}
		}
		return decimal.NewNullDecimal(d(s))
	}
	at := func(h int) time.Time { return time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC) }
	v := func(n int64) *int64 { return &n }
	q := func(s string) *string { return &s }
	state := func(value string, version int64, quality string) *settlement.ReadState {
		return &settlement.ReadState{Value: d(value), Version: v(version), Quality: q(quality), LossFactor: d("1")}
	}
	e, err := settlement.Explain("HB_NORTH/RET-A/2026-11-01/2", "HB_NORTH/RET-A/2026-11-01/1", "HB_NORTH", d("0.4"), d("75"), []settlement.ExplainInterval{
		// a read corrected: +0.5 MWh at 30 → 15
		{Start: at(14), EnergyBefore: d("1"), EnergyAfter: d("1.5"), PriceBefore: price("30"), PriceAfter: price("30"),
			Reads: []settlement.ReadChange{{MeterID: "M1", Channel: "import", Start: at(14), Before: state("1000", 1, "E"),
				After: state("1500", 2, "A"), BeforeMWh: d("1"), AfterMWh: d("1.5")}}},
		// the price corrected 10 → 40 on 2 MWh: 60; a resent read: 0
		{Start: at(15), EnergyBefore: d("2"), EnergyAfter: d("2"), PriceBefore: price("10"), PriceAfter: price("40"),
			Reads: []settlement.ReadChange{{MeterID: "M2", Channel: "import", Start: at(15), Before: state("200", 1, "A"),
				After: state("200", 2, "A"), BeforeMWh: d("0.2"), AfterMWh: d("0.2")}}},
		// priced where it was unpriced (0.1 MWh × 100: 10); a read gone
		// (−0.1 MWh × 100: −10)
		{Start: at(16), EnergyBefore: d("0.1"), EnergyAfter: d("0"), PriceBefore: price(""), PriceAfter: price("100"),
			Reads: []settlement.ReadChange{{MeterID: "M3", Channel: "export", Start: at(16), Before: state("100", 1, "A"),
				BeforeMWh: d("0.1"), AfterMWh: d("0")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writeExplanation(&out, e, 0); err != nil {
		t.Fatal(err)
	}
	changes, summary := explainTable(t, out.String())
	// kind, settlement interval, and the input: the meter or the point
	want := []string{
		"price 2026-11-01T15:00:00Z HB_NORTH",
		"read 2026-11-01T14:00:00Z M1",
		"read 2026-11-01T16:00:00Z M3", // −10, but −0.1 MWh
		"price 2026-11-01T16:00:00Z HB_NORTH",
		"read 2026-11-01T15:00:00Z M2",
	}
	if len(changes) != len(want) {
		t.Fatalf("%d change rows, want %d:\n%s", len(changes), len(want), out.String())
	}
	for i, w := range want {
		if got := strings.Join(changes[i][:3], " "); got != w {
			t.Errorf("row %d: %s, want %s\n%s", i, got, w, out.String())
		}
	}
	if r := strings.Join(changes[2], " "); !strings.Contains(r, "100.000000 kWh v1 A → none") {
		t.Errorf("the read gone: %s", r)
	}
	if r := strings.Join(changes[3], " "); !strings.Contains(r, "unpriced → 100.000000") {
		t.Errorf("the price: %s", r)
	}
	total := summary[len(summary)-1]
	wantTotal := []string{"TOTAL", "5", e.ExactDeltaEnergyMWh.StringFixed(settlement.ExactEnergyScale),
		e.ExactDeltaAmount.StringFixed(settlement.ExactAmountScale)}
	if strings.Join(total, " ") != strings.Join(wantTotal, " ") || !e.ExactDeltaAmount.Equal(d("75")) || !e.ExactDeltaEnergyMWh.Equal(d("0.4")) {
		t.Errorf("TOTAL %v, want %v (exact deltas %s MWh, %s)", total, wantTotal, e.ExactDeltaEnergyMWh, e.ExactDeltaAmount)
	}
	if len(summary) != 3 || summary[0][0] != "read" || summary[0][1] != "3" || summary[1][0] != "price" || summary[1][1] != "2" {
		t.Errorf("summary %v", summary)
	}
	for _, h := range []string{"statement               HB_NORTH/RET-A/2026-11-01/2", "against                 HB_NORTH/RET-A/2026-11-01/1",
		"rounding                0.000000000000000000000000"} {
		if !strings.Contains(out.String(), h) {
			t.Errorf("header lacks %q:\n%s", h, out.String())
		}
	}

	// With a limit (the demo's short table): the largest changes, how many
	// more there are, and the same summary of them all.
	var short bytes.Buffer
	if err := writeExplanation(&short, e, 2); err != nil {
		t.Fatal(err)
	}
	shortChanges, shortSummary := explainTable(t, short.String())
	if len(shortChanges) != 2 || strings.Join(shortChanges[1][:3], " ") != want[1] ||
		!strings.Contains(short.String(), "\n… and 3 more changes\n") || fmt.Sprint(shortSummary) != fmt.Sprint(summary) {
		t.Errorf("limit 2:\n%s", short.String())
	}
}

// gridsettle explain on a day settled twice with a corrected read between
// the runs: the TOTAL row is the exact deltas, a line that does not exist
// is an error naming it.
func TestExplainCommand(t *testing.T) {
	pool, dbURL := pgtest.New(t)
	ctx := t.Context()
	if _, err := registrystore.NewRegistry(pool, nil).Apply(ctx, &registrystore.Batch{
		Participants:     []meters.Participant{{ParticipantID: "RET-A", Name: "A"}},
		SettlementPoints: []meters.SettlementPoint{{SettlementPoint: "HB_NORTH", Name: "North", Kind: "hub"}},
		Accounts:         []meters.Account{{AccountID: "ACC-1", Name: "one"}},
		Assignments: []meters.Assignment{{MeterID: "M1", AccountID: "ACC-1", ParticipantID: "RET-A", SettlementPoint: "HB_NORTH",
			LossFactor: decimal.RequireFromString("1.0125"), EffectiveFrom: time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)}},
	}); err != nil {
		t.Fatal(err)
	}
	var offReads, offPrices int64
	apply := func(reads, prices []string) {
		t.Helper()
		var rr []readstore.ReadRecord
		for _, v := range reads {
			r := readstore.ReadRecord{Source: readstore.Source{Origin: readstore.Origin{Topic: "ami.interval-reads", Offset: offReads}, Value: []byte(v)}}
			r.Block, r.Rejection = meters.DecodeReadBlock([]byte(v))
			rr, offReads = append(rr, r), offReads+1
		}
		var pr []readstore.PriceRecord
		for _, v := range prices {
			p := readstore.PriceRecord{Source: readstore.Source{Origin: readstore.Origin{Topic: "market.prices", Offset: offPrices}, Key: []byte("HB_NORTH"), Value: []byte(v)}}
			p.Price, p.Rejection = meters.DecodePrice([]byte(v), "USD")
			pr, offPrices = append(pr, p), offPrices+1
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := readstore.ApplyReads(ctx, tx, readstore.ReadOptions{SettlementSeconds: 900}, rr); err != nil {
				return err
			}
			if _, err := readstore.ApplyPrices(ctx, tx, "USD", pr); err != nil {
				return err
			}
			if err := readstore.SetNextOffset(ctx, tx, "ami.interval-reads", 0, offReads); err != nil {
				return err
			}
			return readstore.SetNextOffset(ctx, tx, "market.prices", 0, offPrices)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var prices []string
	for i := range 100 {
		prices = append(prices, fmt.Sprintf(`{"market":"RT","settlement_point":"HB_NORTH","start":%q,"interval_seconds":900,"price":"%d.5","version":1}`,
			time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC).Add(time.Duration(i)*15*time.Minute).Format(time.RFC3339), 20+i%9))
	}
	apply([]string{`{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1.25","2.5","3.75"]}`}, prices)
	loc, err := time.LoadLocation("America/Chicago") // the --market-timezone the command gets by default
	if err != nil {
		t.Fatal(err)
	}
	market := settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900}
	runs := settlementpg.NewRuns(pool, settlementpg.Config{Market: market, ReadsTopic: "ami.interval-reads",
		StatementsTopic: "settlement.statements", ChargesTopic: "settlement.account-charges",
		Outbox: outbox.NewWriter(map[string]int32{"settlement.statements": 1, "settlement.account-charges": 1})},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	start := func(rt settlement.RunType) {
		t.Helper()
		run, err := runs.Start(ctx, settlement.Day{Year: 2026, Month: time.November, Day: 1}, rt)
		if err != nil || run.Status != settlementpg.Completed {
			t.Fatalf("run %s: %+v, %v", rt, run, err)
		}
	}
	start(settlement.Initial)
	apply([]string{`{"meter_id":"M1","start":"2026-11-01T05:15:00Z","interval_seconds":900,"values":["4.125"],"version":2}`}, nil)
	start(settlement.Final)

	out, err := runOut(t, "explain", "HB_NORTH/RET-A/2026-11-01/2", "--database-url", dbURL)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	changes, summary := explainTable(t, out)
	// 2.5 → 4.125 kWh at 05:15, × 1.0125 / 1000, at 21.5
	energy := decimal.RequireFromString("1.625").Mul(decimal.RequireFromString("1.0125")).Div(decimal.NewFromInt(1000))
	amount := energy.Mul(decimal.RequireFromString("21.5"))
	if len(changes) != 1 || changes[0][2] != "M1" {
		t.Fatalf("changes %v\n%s", changes, out)
	}
	if total := strings.Join(summary[len(summary)-1], " "); total != "TOTAL 1 "+energy.StringFixed(settlement.ExactEnergyScale)+" "+
		amount.StringFixed(settlement.ExactAmountScale) {
		t.Errorf("TOTAL row %q; want %s MWh and %s\n%s", total, energy, amount, out)
	}
	if out, err := runOut(t, "explain", "HB_NORTH/RET-A/2026-11-01/2", "--against", "0", "--database-url", dbURL); err != nil ||
		!strings.Contains(out, "TOTAL") {
		t.Errorf("explain --against 0: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"HB_NORTH/RET-A/2026-11-01/9"},
		{"HB_NORTH/RET-A/2026-11-01/2", "--against", "2"},
	} {
		out, err := runOut(t, append(append([]string{"explain"}, args...), "--database-url", dbURL)...)
		if err == nil || !strings.Contains(err.Error(), args[0]) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("explain %v: %v\n%s", args, err, out)
		}
	}
	if _, err := runOut(t, "explain", "X", "--against", "-1", "--database-url", dbURL); err == nil || !strings.Contains(err.Error(), "--against") {
		t.Errorf("--against -1: %v", err)
	}
	// A run made before runs recorded their replays cannot be explained.
	if err := pgcheck.ForgetReplays(ctx, pool, 1); err != nil {
		t.Fatal(err)
	}
	if out, err := runOut(t, "explain", "HB_NORTH/RET-A/2026-11-01/2", "--database-url", dbURL); err == nil ||
		!strings.Contains(err.Error(), "cannot be explained") {
		t.Errorf("explain against a run without its replays: %v\n%s", err, out)
	}
}

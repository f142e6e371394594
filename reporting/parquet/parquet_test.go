package parquet_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
	"github.com/gridsettle/gridsettle/settlement"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// writeAll writes the files of a day in layout l into memory.
func writeAll(t *testing.T, d reportingtest.Day, c parquet.Codec, l parquet.Layout) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var b bytes.Buffer
	sw, err := parquet.NewStatementWriter(&b, c, l)
	if err != nil {
		t.Fatal(err)
	}
	writeRows(t, sw, d.Statements)
	out[parquet.StatementsFile] = bytes.Clone(b.Bytes())
	b.Reset()
	iw, err := parquet.NewIntervalWriter(&b, c, l)
	if err != nil {
		t.Fatal(err)
	}
	writeRows(t, iw, d.Intervals)
	out[parquet.IntervalsFile] = bytes.Clone(b.Bytes())
	b.Reset()
	lw, err := parquet.NewLedgerWriter(&b, c)
	if err != nil {
		t.Fatal(err)
	}
	writeRows(t, lw, d.Ledger)
	out[parquet.LedgerFile] = bytes.Clone(b.Bytes())
	if l == parquet.LayoutV1 {
		return out
	}
	b.Reset()
	ew, err := parquet.NewEstimateWriter(&b, c)
	if err != nil {
		t.Fatal(err)
	}
	writeRows(t, ew, d.Estimates)
	out[parquet.EstimatesFile] = bytes.Clone(b.Bytes())
	return out
}

// layouts are the fixture day of each layout and where its golden files
// are: v1's are those written before v2 existed, and must stay the same.
var layouts = []struct {
	layout parquet.Layout
	day    func() reportingtest.Day
	dir    string
}{
	{parquet.LayoutV1, reportingtest.FallBackDay, "testdata"},
	{parquet.LayoutV2, func() reportingtest.Day { return reportingtest.FallBackDay().WithEstimates() }, filepath.Join("testdata", "v2")},
}

func writeRows[R any](t *testing.T, w *parquet.Writer[R], rows []R) {
	t.Helper()
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err == nil {
		t.Fatal("second Close accepted: it would append a second footer")
	}
}

// TestGolden writes the fixture day twice in each layout with each codec:
// both runs must be byte-identical, and identical to the checked-in files,
// which pins the bytes across machines and library upgrades; the v1 files
// are those of exports written before v2, which must regenerate as they
// were.
func TestGolden(t *testing.T) {
	for _, l := range layouts {
		d := l.day()
		for _, c := range []parquet.Codec{parquet.ZSTD, parquet.Snappy} {
			first, second := writeAll(t, d, c, l.layout), writeAll(t, d, c, l.layout)
			for name, b := range first {
				if !bytes.Equal(b, second[name]) {
					t.Fatalf("v%d %s %s: two writes of the same rows differ", l.layout, c, name)
				}
				golden := filepath.Join(l.dir, string(c), name)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, b, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(b, want) {
					t.Errorf("%s differs from %s (%d bytes, golden %d); if the change is intended, run with -update", name, golden, len(b), len(want))
				}
			}
		}
	}
}

// TestRoundTrip reads every file of each layout back with this package's
// reader: the rows are the ones written, value for value.
func TestRoundTrip(t *testing.T) {
	for _, l := range layouts {
		t.Run(fmt.Sprintf("v%d", l.layout), func(t *testing.T) { roundTrip(t, l.day(), l.layout) })
	}
}

func roundTrip(t *testing.T, d reportingtest.Day, l parquet.Layout) {
	files := writeAll(t, d, parquet.ZSTD, l)
	var statements []parquet.Statement
	b := files[parquet.StatementsFile]
	if _, err := parquet.ReadStatements(t.Context(), bytes.NewReader(b), int64(len(b)), l, func(s parquet.Statement) error {
		statements = append(statements, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(statements) != len(d.Statements) {
		t.Fatalf("%d statements read, want %d", len(statements), len(d.Statements))
	}
	for i, s := range statements {
		w := d.Statements[i]
		if s.StatementID != w.StatementID || s.OperatingDay != w.OperatingDay || !s.Amount.Equal(w.Amount) ||
			!s.EnergyMWh.Equal(w.EnergyMWh) || !s.DeltaAmount.Equal(w.DeltaAmount) || s.PricedIntervals != w.PricedIntervals ||
			!s.EstimatedEnergyMWh.Equal(w.EstimatedEnergyMWh) {
			t.Errorf("statement %d: read %+v, wrote %+v", i, s, w)
		}
	}
	i := 0
	b = files[parquet.IntervalsFile]
	if _, err := parquet.ReadIntervals(t.Context(), bytes.NewReader(b), int64(len(b)), l, func(r parquet.Interval) error {
		w := d.Intervals[i]
		if r.ParticipantID != w.ParticipantID || !r.IntervalStart.Equal(w.IntervalStart) || !r.EnergyMWh.Equal(w.EnergyMWh) ||
			r.Price.Valid != w.Price.Valid || !r.Price.Decimal.Equal(w.Price.Decimal) ||
			r.Amount.Valid != w.Amount.Valid || !r.Amount.Decimal.Equal(w.Amount.Decimal) || r.EstimatedReads != w.EstimatedReads ||
			r.GridsettleEstimatedReads != w.GridsettleEstimatedReads || !r.EstimatedEnergyMWh.Equal(w.EstimatedEnergyMWh) {
			t.Errorf("interval %d: read %+v, wrote %+v", i, r, w)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(d.Intervals) {
		t.Fatalf("%d intervals read, want %d", i, len(d.Intervals))
	}
	i = 0
	b = files[parquet.LedgerFile]
	if _, err := parquet.ReadLedger(t.Context(), bytes.NewReader(b), int64(len(b)), func(r parquet.LedgerLine) error {
		w := d.Ledger[i]
		if r.EntryID != w.EntryID || r.Account != w.Account || !r.Amount.Equal(w.Amount) || !r.PostedAt.Equal(w.PostedAt) ||
			r.EffectiveDate != w.EffectiveDate || r.EntryHash != w.EntryHash {
			t.Errorf("ledger line %d: read %+v, wrote %+v", i, r, w)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(d.Ledger) {
		t.Fatalf("%d ledger lines read, want %d", i, len(d.Ledger))
	}
	if l == parquet.LayoutV1 {
		return
	}
	var estimates []parquet.Estimate
	b = files[parquet.EstimatesFile]
	if _, err := parquet.ReadEstimates(t.Context(), bytes.NewReader(b), int64(len(b)), func(e parquet.Estimate) error {
		estimates = append(estimates, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(estimates) != len(d.Estimates) || len(estimates) == 0 {
		t.Fatalf("%d estimates read, want %d", len(estimates), len(d.Estimates))
	}
	for i, e := range estimates {
		w := d.Estimates[i]
		if e.MeterID != w.MeterID || e.Channel != w.Channel || !e.IntervalStart.Equal(w.IntervalStart) ||
			e.IntervalSeconds != w.IntervalSeconds || !e.ValueKWh.Equal(w.ValueKWh) || e.Method != w.Method ||
			e.AccountID != w.AccountID || e.ParticipantID != w.ParticipantID || e.SettlementPoint != w.SettlementPoint ||
			!e.LossFactor.Equal(w.LossFactor) {
			t.Errorf("estimate %d: read %+v, wrote %+v", i, e, w)
		}
	}
}

// TestV1RefusesEstimateFigures: a v1 file has no estimate columns, so a row
// with estimate figures is refused rather than written without them; a v2
// file is not read as v1, nor v1 as v2.
func TestV1RefusesEstimateFigures(t *testing.T) {
	sw, _ := parquet.NewStatementWriter(&bytes.Buffer{}, parquet.ZSTD, parquet.LayoutV1)
	if err := sw.Write(parquet.Statement{StatementID: "a", EstimatedEnergyMWh: decimal.New(1, -6)}); err == nil ||
		!strings.Contains(err.Error(), "column estimated_energy_mwh") {
		t.Fatalf("v1 statement with estimated energy: %v", err)
	}
	at := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	iw, _ := parquet.NewIntervalWriter(&bytes.Buffer{}, parquet.ZSTD, parquet.LayoutV1)
	if err := iw.Write(parquet.Interval{ParticipantID: "P", SettlementPoint: "S", IntervalStart: at, GridsettleEstimatedReads: 1}); err == nil ||
		!strings.Contains(err.Error(), "column gridsettle_estimated_reads") {
		t.Fatalf("v1 interval with estimated reads: %v", err)
	}
	if _, err := parquet.NewStatementWriter(&bytes.Buffer{}, parquet.ZSTD, 3); err == nil {
		t.Fatal("layout 3 accepted")
	}
	v2 := writeAll(t, reportingtest.FallBackDay().WithEstimates(), parquet.ZSTD, parquet.LayoutV2)
	v1 := writeAll(t, reportingtest.FallBackDay(), parquet.ZSTD, parquet.LayoutV1)
	for _, tc := range []struct {
		b []byte
		l parquet.Layout
	}{{v2[parquet.StatementsFile], parquet.LayoutV1}, {v1[parquet.StatementsFile], parquet.LayoutV2}} {
		if _, err := parquet.ReadStatements(t.Context(), bytes.NewReader(tc.b), int64(len(tc.b)), tc.l, func(parquet.Statement) error { return nil }); err == nil {
			t.Errorf("statements read as layout v%d", tc.l)
		}
	}
	for _, tc := range []struct {
		b []byte
		l parquet.Layout
	}{{v2[parquet.IntervalsFile], parquet.LayoutV1}, {v1[parquet.IntervalsFile], parquet.LayoutV2}} {
		if _, err := parquet.ReadIntervals(t.Context(), bytes.NewReader(tc.b), int64(len(tc.b)), tc.l, func(parquet.Interval) error { return nil }); err == nil {
			t.Errorf("intervals read as layout v%d", tc.l)
		}
	}
}

// TestValueThatDoesNotFit: a value with more decimal places than its column's
// scale or more digits than its precision is refused with an error naming
// the file, the row and the column; nothing is rounded.
func TestValueThatDoesNotFit(t *testing.T) {
	start := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	interval := func(f func(*parquet.Interval)) parquet.Interval {
		i := parquet.Interval{ParticipantID: "P", SettlementPoint: "S", IntervalStart: start, EnergyMWh: decimal.NewFromInt(1)}
		f(&i)
		return i
	}
	dec := decimal.RequireFromString
	for _, tc := range []struct {
		name   string
		row    parquet.Interval
		column string
	}{
		{"energy with 19 places", interval(func(i *parquet.Interval) { i.EnergyMWh = dec("0.0000000000000000001") }), "energy_mwh"},
		{"energy with 21 integer digits", interval(func(i *parquet.Interval) { i.EnergyMWh = dec("100000000000000000000") }), "energy_mwh"},
		{"negative energy beyond 38 digits", interval(func(i *parquet.Interval) { i.EnergyMWh = dec("-100000000000000000000.5") }), "energy_mwh"},
		{"price with 7 places", interval(func(i *parquet.Interval) { i.Price = decimal.NewNullDecimal(dec("12.3456785")) }), "price"},
		{"price of 13 integer digits", interval(func(i *parquet.Interval) { i.Price = decimal.NewNullDecimal(dec("1000000000000")) }), "price"},
		{"amount with 25 places", interval(func(i *parquet.Interval) { i.Amount = decimal.NewNullDecimal(dec("1.0000000000000000000000001")) }), "amount"},
		{"amount of 15 integer digits", interval(func(i *parquet.Interval) { i.Amount = decimal.NewNullDecimal(dec("-100000000000000")) }), "amount"},
		{"start with nanoseconds", interval(func(i *parquet.Interval) { i.IntervalStart = start.Add(time.Nanosecond) }), "interval_start"},
		{"participant not UTF-8", interval(func(i *parquet.Interval) { i.ParticipantID = "P\xff" }), "participant_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := parquet.NewIntervalWriter(&bytes.Buffer{}, parquet.ZSTD, parquet.LayoutV2)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Write(tc.row)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "intervals.parquet row 1") || !strings.Contains(err.Error(), "column "+tc.column) {
				t.Fatalf("error %q does not name the row and column %s", err, tc.column)
			}
		})
	}
	// Trailing zeros beyond the scale are exact, so they fit.
	w, err := parquet.NewStatementWriter(&bytes.Buffer{}, parquet.Snappy, parquet.LayoutV2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(parquet.Statement{StatementID: "a", Amount: dec("12.3400000"), EnergyMWh: dec("999999999999.999999")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(parquet.Statement{StatementID: "b", Amount: dec("12.345")}); err == nil || !strings.Contains(err.Error(), "column amount") {
		t.Fatalf("amount with 3 places: %v", err)
	}
	if err := w.Write(parquet.Statement{StatementID: "b", EnergyMWh: dec("1000000000000")}); err == nil || !strings.Contains(err.Error(), "column energy_mwh") {
		t.Fatalf("energy of 13 integer digits: %v", err)
	}
}

// TestNaturalKeyOrder: writers refuse a row that is not strictly after the
// previous one.
func TestNaturalKeyOrder(t *testing.T) {
	day := settlement.Day{Year: 2026, Month: time.November, Day: 1}
	at := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	sw, _ := parquet.NewStatementWriter(&bytes.Buffer{}, parquet.ZSTD, parquet.LayoutV2)
	if err := sw.Write(parquet.Statement{StatementID: "b", OperatingDay: day}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b", "a"} {
		if err := sw.Write(parquet.Statement{StatementID: id, OperatingDay: day}); err == nil {
			t.Fatalf("statement %q after \"b\" accepted", id)
		}
	}
	iw, _ := parquet.NewIntervalWriter(&bytes.Buffer{}, parquet.ZSTD, parquet.LayoutV2)
	if err := iw.Write(parquet.Interval{ParticipantID: "P", SettlementPoint: "S", IntervalStart: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := iw.Write(parquet.Interval{ParticipantID: "P", SettlementPoint: "S", IntervalStart: at}); err == nil {
		t.Fatal("earlier interval start accepted")
	}
	if err := iw.Write(parquet.Interval{ParticipantID: "P", SettlementPoint: "T", IntervalStart: at}); err != nil {
		t.Fatal(err)
	}
	lw, _ := parquet.NewLedgerWriter(&bytes.Buffer{}, parquet.ZSTD)
	if err := lw.Write(parquet.LedgerLine{EntryID: 7, LineNo: 2, PostedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := lw.Write(parquet.LedgerLine{EntryID: 7, LineNo: 1, PostedAt: at}); err == nil {
		t.Fatal("line 1 after line 2 accepted")
	}
}

// TestEmptyFile: a run that posted nothing still has a valid, readable
// ledger.parquet with no rows.
func TestEmptyFile(t *testing.T) {
	var b bytes.Buffer
	w, err := parquet.NewLedgerWriter(&b, parquet.ZSTD)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	n, err := parquet.ReadLedger(t.Context(), bytes.NewReader(b.Bytes()), int64(b.Len()), func(parquet.LedgerLine) error {
		t.Fatal("row read from an empty file")
		return nil
	})
	if err != nil || n != 0 {
		t.Fatalf("read %d rows, %v", n, err)
	}
}

// TestReadRefusesOtherSchemas: a Parquet file that is not the expected one
// (here statements read as ledger) is refused by its schema, not decoded.
func TestReadRefusesOtherSchemas(t *testing.T) {
	b := writeAll(t, reportingtest.FallBackDay(), parquet.ZSTD, parquet.LayoutV2)[parquet.StatementsFile]
	_, err := parquet.ReadLedger(t.Context(), bytes.NewReader(b), int64(len(b)), func(parquet.LedgerLine) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "ledger.parquet") {
		t.Fatalf("statements read as ledger: %v", err)
	}
	_, err = parquet.ReadStatements(t.Context(), bytes.NewReader(b[:len(b)-1]), int64(len(b)-1), parquet.LayoutV2, func(parquet.Statement) error { return nil })
	if err == nil {
		t.Fatal("truncated file read")
	}
}

// TestLibrariesMatchGoMod: the versions recorded in every file and manifest
// are the ones go.mod pins.
func TestLibrariesMatchGoMod(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range strings.Split(parquet.Libraries, ", ") {
		if !strings.Contains(string(mod), "\t"+lib+"\n") && !strings.Contains(string(mod), "\t"+lib+" // indirect\n") {
			t.Errorf("go.mod does not pin %s: update parquet.Libraries (and the golden files)", lib)
		}
	}
}

// BenchmarkIntervalWriter measures intervals.parquet throughput (the
// export benchmark's limit is in rows per second).
func BenchmarkIntervalWriter(b *testing.B) {
	base := reportingtest.FallBackDay().Intervals
	for _, c := range []parquet.Codec{parquet.ZSTD, parquet.Snappy} {
		b.Run(string(c), func(b *testing.B) {
			rows := 0
			for b.Loop() {
				w, err := parquet.NewIntervalWriter(io.Discard, c, parquet.LayoutV2)
				if err != nil {
					b.Fatal(err)
				}
				for p := range 1000 {
					for _, iv := range base[:100] {
						iv.ParticipantID = fmt.Sprintf("P%05d", p)
						if err := w.Write(iv); err != nil {
							b.Fatal(err)
						}
						rows++
					}
				}
				if err := w.Close(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkIntervalReader measures reading intervals.parquet back, as
// verification does.
func BenchmarkIntervalReader(b *testing.B) {
	base := reportingtest.FallBackDay().Intervals
	var buf bytes.Buffer
	w, err := parquet.NewIntervalWriter(&buf, parquet.ZSTD, parquet.LayoutV2)
	if err != nil {
		b.Fatal(err)
	}
	for p := range 1000 {
		for _, iv := range base[:100] {
			iv.ParticipantID = fmt.Sprintf("P%05d", p)
			if err := w.Write(iv); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Close(b.Context()); err != nil {
		b.Fatal(err)
	}
	rows := int64(0)
	for b.Loop() {
		n, err := parquet.ReadIntervals(b.Context(), bytes.NewReader(buf.Bytes()), int64(buf.Len()), parquet.LayoutV2, func(parquet.Interval) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

package parquet_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"

	pgo "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
)

// The files' schemas as reporting/README.md and settlement/README.md
// "Estimation of missing reads (VEE)" declare them, in the notation of
// github.com/parquet-go/parquet-go, an implementation independent of the
// writer's: v1's, then v2's (v1's columns, then the estimate columns, and
// estimates.parquet).
var wantSchemasV1 = map[string]string{
	parquet.StatementsFile: `
	required binary statement_id (STRING);
	required binary participant_id (STRING);
	required binary settlement_point (STRING);
	required int32 operating_day (DATE);
	required binary run_type (STRING);
	required int32 version (INT(32,true));
	required binary currency (STRING);
	required int64 energy_mwh (DECIMAL(18,6));
	required int64 unpriced_energy_mwh (DECIMAL(18,6));
	required int64 amount (DECIMAL(18,2));
	required int64 previous_amount (DECIMAL(18,2));
	required int64 delta_amount (DECIMAL(18,2));
	required int32 intervals (INT(32,true));
	required int32 priced_intervals (INT(32,true));`,
	parquet.IntervalsFile: `
	required binary participant_id (STRING);
	required binary settlement_point (STRING);
	required int64 interval_start (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	required fixed_len_byte_array(16) energy_mwh (DECIMAL(38,18));
	optional int64 price (DECIMAL(18,6));
	optional fixed_len_byte_array(16) amount (DECIMAL(38,24));
	required int32 actual_reads (INT(32,true));
	required int32 estimated_reads (INT(32,true));`,
	parquet.LedgerFile: `
	required int64 entry_id (INT(64,true));
	required binary entry_key (STRING);
	required binary account (STRING);
	required int64 amount (DECIMAL(18,2));
	required binary currency (STRING);
	required int32 effective_date (DATE);
	required int64 posted_at (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	required binary entry_hash (STRING);`,
}

var wantSchemasV2 = map[string]string{
	parquet.StatementsFile: wantSchemasV1[parquet.StatementsFile] + `
	required int64 estimated_energy_mwh (DECIMAL(18,6));`,
	parquet.IntervalsFile: wantSchemasV1[parquet.IntervalsFile] + `
	required int32 gridsettle_estimated_reads (INT(32,true));
	required fixed_len_byte_array(16) estimated_energy_mwh (DECIMAL(38,18));`,
	parquet.LedgerFile: wantSchemasV1[parquet.LedgerFile],
	parquet.EstimatesFile: `
	required binary meter_id (STRING);
	required binary channel (STRING);
	required int64 interval_start (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	required int32 interval_seconds (INT(32,true));
	required int64 value_kwh (DECIMAL(18,6));
	required binary method (STRING);
	required binary account_id (STRING);
	required binary participant_id (STRING);
	required binary settlement_point (STRING);
	required int64 loss_factor (DECIMAL(18,6));`,
}

// convertedTypes are the legacy annotations that readers such as DuckDB
// rely on; columns not listed must have none.
var convertedTypes = map[string]deprecated.ConvertedType{
	"statement_id": deprecated.UTF8, "participant_id": deprecated.UTF8, "settlement_point": deprecated.UTF8,
	"run_type": deprecated.UTF8, "currency": deprecated.UTF8, "entry_key": deprecated.UTF8,
	"account": deprecated.UTF8, "entry_hash": deprecated.UTF8,
	"operating_day": deprecated.Date, "effective_date": deprecated.Date,
	"interval_start": deprecated.TimestampMicros, "posted_at": deprecated.TimestampMicros,
	"energy_mwh": deprecated.Decimal, "unpriced_energy_mwh": deprecated.Decimal, "amount": deprecated.Decimal,
	"previous_amount": deprecated.Decimal, "delta_amount": deprecated.Decimal, "price": deprecated.Decimal,
	"estimated_energy_mwh": deprecated.Decimal, "value_kwh": deprecated.Decimal, "loss_factor": deprecated.Decimal,
	"meter_id": deprecated.UTF8, "channel": deprecated.UTF8, "method": deprecated.UTF8, "account_id": deprecated.UTF8,
}

// TestIndependentReader reads the files with another Parquet implementation:
// declared types (logical and converted), row counts, and totals computed
// from the raw unscaled values match what was written, and each statement
// line's amount is its interval amounts' sum rounded half-even to cents.
func TestIndependentReader(t *testing.T) {
	for _, l := range layouts {
		for _, c := range []parquet.Codec{parquet.ZSTD, parquet.Snappy} {
			t.Run(fmt.Sprintf("v%d/%s", l.layout, c), func(t *testing.T) { readIndependently(t, l.day(), l.layout, c) })
		}
	}
}

func readIndependently(t *testing.T, d reportingtest.Day, l parquet.Layout, c parquet.Codec) {
	wantSchemas := wantSchemasV1
	if l == parquet.LayoutV2 {
		wantSchemas = wantSchemasV2
	}
	files := writeAll(t, d, c, l)
	if len(files) != len(wantSchemas) {
		t.Fatalf("%d files, want %d", len(files), len(wantSchemas))
	}
	cols := map[string][]map[string]pgo.Value{}
	for name, b := range files {
		f, err := pgo.OpenFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, want := schemaBody(f.Schema().String()), schemaBody(wantSchemas[name]); got != want {
			t.Errorf("%s schema:\n%s\nwant:\n%s", name, got, want)
		}
		for _, e := range f.Metadata().Schema[1:] {
			want, annotated := convertedTypes[e.Name]
			if e.ConvertedType.Valid != annotated || (annotated && e.ConvertedType.V != want) {
				t.Errorf("%s column %s: converted type %v (set %t), want %v (set %t)", name, e.Name, e.ConvertedType.V, e.ConvertedType.Valid, want, annotated)
			}
		}
		cols[name] = readValues(t, f)
	}
	checkIndependentTotals(t, d, cols)
}

func schemaBody(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "message ") || l == "}" {
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// readValues is every row of f as column name → value.
func readValues(t *testing.T, f *pgo.File) []map[string]pgo.Value {
	t.Helper()
	names := []string{}
	for _, col := range f.Schema().Columns() {
		names = append(names, col[0])
	}
	r := pgo.NewReader(f)
	var out []map[string]pgo.Value
	buf := make([]pgo.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			m := map[string]pgo.Value{}
			for _, v := range row {
				m[names[v.Column()]] = v.Clone()
			}
			out = append(out, m)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if int64(len(out)) != f.NumRows() {
		t.Fatalf("read %d rows, footer says %d", len(out), f.NumRows())
	}
	return out
}

// unscaled decodes a DECIMAL value from its physical form without the
// writer's code: INT64 as is, FIXED_LEN_BYTE_ARRAY as big-endian two's
// complement.
func unscaled(v pgo.Value, scale int32) decimal.Decimal {
	if v.Kind() == pgo.Int64 {
		return decimal.New(v.Int64(), -scale)
	}
	b := v.ByteArray()
	i := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return decimal.NewFromBigInt(i, -scale)
}

func checkIndependentTotals(t *testing.T, d reportingtest.Day, cols map[string][]map[string]pgo.Value) {
	t.Helper()
	type sums struct {
		energy, amount, estimated decimal.Decimal
		rows, priced              int32
	}
	byLine := map[string]*sums{}
	intervals := cols[parquet.IntervalsFile]
	if len(intervals) != len(d.Intervals) {
		t.Fatalf("%d interval rows, want %d", len(intervals), len(d.Intervals))
	}
	for i, r := range intervals {
		key := r["participant_id"].String() + "|" + r["settlement_point"].String()
		s := byLine[key]
		if s == nil {
			s = &sums{}
			byLine[key] = s
		}
		s.rows++
		s.energy = s.energy.Add(unscaled(r["energy_mwh"], 18))
		if v, ok := r["estimated_energy_mwh"]; ok {
			s.estimated = s.estimated.Add(unscaled(v, 18))
		}
		if r["price"].IsNull() != r["amount"].IsNull() {
			t.Fatalf("interval row %d: price null %t, amount null %t", i, r["price"].IsNull(), r["amount"].IsNull())
		}
		if !r["amount"].IsNull() {
			s.priced++
			s.amount = s.amount.Add(unscaled(r["amount"], 24))
			if w := d.Intervals[i].Amount.Decimal; !unscaled(r["amount"], 24).Equal(w) {
				t.Fatalf("interval row %d amount %s, wrote %s", i, unscaled(r["amount"], 24), w)
			}
		}
		if got, want := r["interval_start"].Int64(), d.Intervals[i].IntervalStart.UnixMicro(); got != want {
			t.Fatalf("interval row %d start %d µs, wrote %d", i, got, want)
		}
	}
	statements := cols[parquet.StatementsFile]
	if len(statements) != len(d.Statements) {
		t.Fatalf("%d statement rows, want %d", len(statements), len(d.Statements))
	}
	var total decimal.Decimal
	for i, r := range statements {
		key := r["participant_id"].String() + "|" + r["settlement_point"].String()
		s := byLine[key]
		amount := unscaled(r["amount"], 2)
		total = total.Add(amount)
		if s == nil || !s.amount.RoundBank(2).Equal(amount) || !s.energy.RoundBank(6).Equal(unscaled(r["energy_mwh"], 6)) ||
			s.rows != r["intervals"].Int32() || s.priced != r["priced_intervals"].Int32() {
			t.Errorf("statement %s: amount %s, energy %s, intervals %d/%d; its interval rows give %s", r["statement_id"], amount,
				unscaled(r["energy_mwh"], 6), r["priced_intervals"].Int32(), r["intervals"].Int32(), fmt.Sprintf("%+v", s))
		}
		if !amount.Equal(d.Statements[i].Amount) {
			t.Errorf("statement row %d amount %s, wrote %s", i, amount, d.Statements[i].Amount)
		}
		if v, ok := r["estimated_energy_mwh"]; ok && (s == nil || !s.estimated.RoundBank(6).Equal(unscaled(v, 6))) {
			t.Errorf("statement %s: estimated energy %s; its interval rows give %+v", r["statement_id"], unscaled(v, 6), s)
		}
	}
	var ledger decimal.Decimal
	for _, r := range cols[parquet.LedgerFile] {
		ledger = ledger.Add(unscaled(r["amount"], 2))
	}
	if len(cols[parquet.LedgerFile]) != len(d.Ledger) || !ledger.IsZero() {
		t.Errorf("ledger: %d rows summing to %s, want %d rows summing to 0", len(cols[parquet.LedgerFile]), ledger, len(d.Ledger))
	}
	if est := cols[parquet.EstimatesFile]; len(est) != len(d.Estimates) {
		t.Errorf("%d estimate rows, want %d", len(est), len(d.Estimates))
	}
	if total.IsZero() {
		t.Error("fixture statements sum to zero: the totals check would not notice a dropped row")
	}
}

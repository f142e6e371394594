package kafka_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/meters/kafka"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func validBlock() meters.ReadBlock {
	return meters.ReadBlock{
		MeterID: "MTR-000123", Channel: meters.Import,
		Start:           time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),
		IntervalSeconds: 900,
		Values:          []decimal.Decimal{dec("0.4215"), dec("0.3980"), dec("0.4102")},
		Quality:         []meters.Quality{meters.Actual, meters.Actual, meters.Estimated},
		Version:         1, Source: "headend-east",
	}
}

func TestEncodeReadBlock(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	tests := []struct {
		name  string
		block func(b *meters.ReadBlock)
		want  string
	}{
		{"the meters/README.md example", func(*meters.ReadBlock) {},
			`{"meter_id":"MTR-000123","channel":"import","start":"2026-11-01T05:00:00Z","interval_seconds":900,` +
				`"values":["0.4215","0.398","0.4102"],"quality":["A","A","E"],"version":1,"source":"headend-east"}`},
		{"plain notation after unit shifts, start in UTC, no source", func(b *meters.ReadBlock) {
			b.Start = time.Date(2026, 11, 1, 14, 0, 0, 0, tokyo)
			b.Values = []decimal.Decimal{dec("1.5").Shift(3), dec("10").Shift(-3), decimal.New(1, -6)}
			b.Channel, b.Version, b.Source = meters.Export, 3, ""
		}, `{"meter_id":"MTR-000123","channel":"export","start":"2026-11-01T05:00:00Z","interval_seconds":900,` +
			`"values":["1500","0.01","0.000001"],"quality":["A","A","E"],"version":3}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := validBlock()
			tc.block(&b)
			if got := string(kafka.EncodeReadBlock(b)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCheckReadBlock(t *testing.T) {
	tests := []struct {
		name   string
		block  func(b *meters.ReadBlock)
		reason meters.Reason // "" = valid
		detail string
	}{
		{"valid", func(*meters.ReadBlock) {}, "", ""},
		{"bad meter id", func(b *meters.ReadBlock) { b.MeterID = "MTR 1" }, meters.SchemaViolation, "meter_id"},
		{"bad channel", func(b *meters.ReadBlock) { b.Channel = "net" }, meters.SchemaViolation, "channel"},
		{"no values", func(b *meters.ReadBlock) { b.Values, b.Quality = nil, nil }, meters.SchemaViolation, "values"},
		{"version 0", func(b *meters.ReadBlock) { b.Version = 0 }, meters.SchemaViolation, "version"},
		{"long source", func(b *meters.ReadBlock) { b.Source = strings.Repeat("s", 129) }, meters.SchemaViolation, "source"},
		{"bad quality", func(b *meters.ReadBlock) { b.Quality[1] = "X" }, meters.SchemaViolation, "quality"},
		{"10-minute", func(b *meters.ReadBlock) { b.IntervalSeconds = 600 }, meters.UnsupportedInterval, "interval_seconds"},
		{"misaligned", func(b *meters.ReadBlock) { b.Start = b.Start.Add(5 * time.Minute) }, meters.MisalignedStart, "start"},
		{"negative", func(b *meters.ReadBlock) { b.Values[2] = dec("-0.1") }, meters.ValueOutOfRange, "values"},
		{"too large", func(b *meters.ReadBlock) { b.Values[0] = dec("1000000.000001") }, meters.ValueOutOfRange, "values"},
		{"largest", func(b *meters.ReadBlock) { b.Values[0] = dec("1000000") }, "", ""},
		{"7 decimals", func(b *meters.ReadBlock) { b.Values[0] = dec("0.1234567") }, meters.TooManyDecimals, "values"},
		{"trailing zeros do not count", func(b *meters.ReadBlock) { b.Values[0] = dec("0.12345600000") }, "", ""},
		{"quality length", func(b *meters.ReadBlock) { b.Quality = b.Quality[:2] }, meters.QualityLengthMismatch, "quality"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := validBlock()
			tc.block(&b)
			rej := kafka.CheckReadBlock(b)
			switch {
			case tc.reason == "" && rej != nil:
				t.Fatalf("rejected: %v", rej)
			case tc.reason != "" && (rej == nil || rej.Reason != tc.reason || !strings.Contains(rej.Detail, tc.detail)):
				t.Fatalf("got %v, want %s naming %q", rej, tc.reason, tc.detail)
			}
		})
	}
}

// TestRoundTrip: the ingest's decoder reads every block of the real files
// back exactly as the importers made it.
func TestRoundTrip(t *testing.T) {
	for _, file := range []string{"Example_NEM12_month_solar.csv", "Example_NEM12_multiple_quality.csv", "Example_NEM12_multiple_meters.csv"} {
		for _, b := range nemBlocks(t, file) {
			got, rej := meters.DecodeReadBlock(kafka.EncodeReadBlock(b))
			if rej != nil {
				t.Fatalf("%s %s %s: %v", file, b.MeterID, b.Channel, rej)
			}
			if got.MeterID != b.MeterID || got.Channel != b.Channel || !got.Start.Equal(b.Start) ||
				got.IntervalSeconds != b.IntervalSeconds || got.Version != b.Version || got.Source != b.Source ||
				!slices.Equal(got.Quality, b.Quality) || len(got.Values) != len(b.Values) {
				t.Fatalf("%s: decoded %+v", file, got)
			}
			for i, v := range got.Values {
				if !v.Equal(b.Values[i]) {
					t.Fatalf("%s %s: value %d decoded %s, was %s", file, b.MeterID, i, v, b.Values[i])
				}
			}
		}
	}
}

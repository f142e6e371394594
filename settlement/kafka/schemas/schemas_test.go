package schemas_test

import (
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

func validator(t *testing.T) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEveryOwnedFileIsListed: a schema file an owner keeps but the list
// forgets would be neither served nor checked.
func TestEveryOwnedFileIsListed(t *testing.T) {
	listed := map[string]bool{}
	for _, s := range schemas.All() {
		listed[s.Name] = true
		if s.ID != schemas.IDPrefix+s.Name || !json.Valid(s.JSON) {
			t.Errorf("%s: $id %q", s.Name, s.ID)
		}
	}
	for _, files := range []fs.FS{meters.Schemas, settlement.Schemas, alerts.Schemas, ingest.Schemas} {
		err := fs.WalkDir(files, "schemas", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			name, ok := strings.CutSuffix(strings.TrimPrefix(path, "schemas/"), ".json")
			if !ok || !listed[name] {
				t.Errorf("%s is not a listed schema", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(listed) != 6 {
		t.Errorf("%d schemas, want 6 (2 inputs, statements, charges, alerts, dead letters)", len(listed))
	}
	if _, ok := schemas.Get("settlement.statement/v2"); ok {
		t.Error("Get found an unknown name")
	}
}

// TestContractExamples: the examples of meters/README.md and
// settlement/alerts/README.md are valid.
func TestContractExamples(t *testing.T) {
	v := validator(t)
	for name, doc := range map[string]string{
		meters.ReadsSchema: `{"meter_id":"MTR-000123","channel":"import","start":"2026-11-01T05:00:00Z","interval_seconds":900,
			"values":["0.4215","0.3980","0.4102"],"quality":["A","A","E"],"version":1,"source":"headend-east"}`,
		meters.PricesSchema: `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":300,
			"price":"-12.5","currency":"USD","version":1}`,
		settlement.StatementSchema: `{"statement_id":"HB_NORTH/RETAILER-A/2026-11-01/2","participant_id":"RETAILER-A",
			"settlement_point":"HB_NORTH","operating_day":"2026-11-01","run_type":"final","version":2,"previous_version":1,
			"currency":"USD","energy_mwh":"1234.567890","amount":"45678.90","unpriced_energy_mwh":"0.000000",
			"previous_energy_mwh":"1230.000000","previous_amount":"45500.00","delta_energy_mwh":"4.567890","delta_amount":"178.90",
			"intervals":100,"priced_intervals":100,"estimated_energy_mwh":"0.000000",
			"reads":{"actual":9600,"estimated":0,"substituted":0,"gridsettle_estimated":{"LIN":0,"LDY":0,"ZER":0}},
			"run_id":"run-2026-11-01-final-2","computed_at":"2026-12-27T06:00:00Z"}`,
		settlement.ChargeSchema: `{"charge_id":"ACC-0042/RETAILER-A/2026-11-01/2","account_id":"ACC-0042","participant_id":"RETAILER-A",
			"operating_day":"2026-11-01","run_type":"final","version":2,"import_kwh":"31.204000","export_kwh":"4.100000",
			"net_kwh":"27.104000","estimated_kwh":"0.000000","energy_cost":"1.23","previous_energy_cost":"1.20",
			"delta_energy_cost":"0.03","currency":"USD"}`,
		alerts.Schema: `{"alert_id":"daily_usage/ACC-0042/2026-11-01","type":"daily_usage","account_id":"ACC-0042",
			"operating_day":"2026-11-01","observed":"31.204000","threshold":"30","unit":"kWh","data_quality":"actual",
			"event_time":"2026-11-01T21:15:00Z","message":"Your electricity use on Sun 1 Nov 2026 reached 31.2 kWh."}`,
	} {
		if err := v.Value(name, []byte(doc)); err != nil {
			t.Errorf("%s example: %v", name, err)
		}
	}
}

// TestGoMessagesValidate: what the Go types marshal to is valid, and a
// broken field is not.
func TestGoMessagesValidate(t *testing.T) {
	v := validator(t)
	day, err := settlement.ParseDay("2026-11-01")
	if err != nil {
		t.Fatal(err)
	}
	one := 1
	d := decimal.RequireFromString
	for _, ref := range []settlement.RunRef{
		{RunID: "run-2026-11-01-initial-1", Day: day, Type: settlement.Initial, Version: 1, Currency: "USD", ComputedAt: time.Now()},
		{RunID: "run-2026-11-01-final-2", Day: day, Type: settlement.Final, Version: 2, PreviousVersion: &one, Currency: "EUR",
			ComputedAt: time.Date(2026, 12, 27, 6, 0, 0, 123456000, time.FixedZone("x", 3600))},
	} {
		line := ref.Line("RETAILER-A", "HB_NORTH", settlement.LineFigures{EnergyMWh: d("-1.5"), Amount: d("12.345"), Intervals: 92},
			settlement.ReadCounts{Actual: 3}, d("2"), d("-7.1"))
		charge := ref.Charge("ACC-1", "RETAILER-A", settlement.ChargeFigures{ImportKWh: d("1"), EnergyCost: d("0.005")}, d("0"))
		check(t, v, settlement.StatementSchema, line.Message(), true)
		check(t, v, settlement.ChargeSchema, charge.Message(), true)
	}
	loc := alerts.Locale{Location: time.UTC, Currency: "USD"}
	now := time.Date(2026, 11, 1, 21, 15, 0, 0, time.UTC)
	var as []alerts.Alert
	add := func(a alerts.Alert, ok bool) {
		if !ok {
			t.Fatalf("alert %+v did not fire", a)
		}
		as = append(as, a)
	}
	add(alerts.CheckDailyUsage(alerts.Usage{AccountID: "ACC-1", OperatingDay: "2026-11-01", KWh: d("31.2"), EventTime: now}, d("30"), loc))
	add(alerts.CheckMonthlyBudget(alerts.Spend{AccountID: "ACC-1", Month: "2026-11", Amount: d("100.004"), AllActual: true, EventTime: now}, d("100"), loc))
	add(alerts.CheckPrice(alerts.PriceEvent{AccountID: "ACC-1", OperatingDay: "2026-11-01", SettlementPoint: "HB_NORTH",
		IntervalStart: now, IntervalEnd: now.Add(5 * time.Minute), Price: d("1500")}, d("1000"), loc))
	add(alerts.CheckPrice(alerts.PriceEvent{AccountID: "ACC-1", OperatingDay: "2026-11-01", SettlementPoint: "HB_NORTH",
		IntervalStart: now, IntervalEnd: now.Add(5 * time.Minute), Price: d("-3.25")}, d("1000"), loc))
	add(alerts.CheckMissingData(alerts.Silence{MeterID: "M1", AccountID: "ACC-1", LastEnd: now, Watermark: now.Add(7 * time.Hour)}, 6*time.Hour, loc))
	for _, a := range as {
		check(t, v, alerts.Schema, a, true)
	}
	// What the schema must refuse.
	bad := as[4]
	bad.GapStart = nil
	check(t, v, alerts.Schema, bad, false) // missing_data without gap_start
	bad = as[0]
	bad.Observed = "3.1e1"
	check(t, v, alerts.Schema, bad, false) // not a plain decimal
	m := map[string]any{}
	raw, _ := json.Marshal(as[0])
	_ = json.Unmarshal(raw, &m)
	m["observed"] = 31.2 // a decimal as a JSON number
	check(t, v, alerts.Schema, m, false)
}

func check(t *testing.T, v *schemas.Validator, name string, msg any, valid bool) {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Value(name, b); (err == nil) != valid {
		t.Errorf("%s %s: valid %v, want %v: %v", name, b, err == nil, valid, err)
	}
}

// deadLetter is a dead letter as the relay publishes it.
func deadLetter() *kgo.Record {
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	return &kgo.Record{Topic: "gridsettle.dead-letter", Key: []byte("M1"), Value: []byte("\xff not JSON"), Headers: []kgo.RecordHeader{
		h("gridsettle-schema", ingest.DeadLetterSchema), h("gridsettle-id", "ami.interval-reads/3/42"), h("gridsettle-seq", "7"),
		h("ce_specversion", "1.0"), h("ce_id", "ami.interval-reads/3/42"), h("ce_source", "gridsettle/prod"),
		h("ce_type", ingest.DeadLetterSchema), h("ce_time", "2026-12-06T10:25:51.123456Z"),
		h("content-type", "application/octet-stream"), h("gridsettle-reason", "malformed_json"),
		h("gridsettle-source-topic", "ami.interval-reads"), h("gridsettle-source-partition", "3"), h("gridsettle-source-offset", "42"),
	}}
}

func TestRecord(t *testing.T) {
	v := validator(t)
	if err := v.Record(deadLetter()); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	set := func(r *kgo.Record, k, val string) *kgo.Record {
		r.Headers = slices.DeleteFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == k })
		if val != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(val)})
		}
		return r
	}
	for name, r := range map[string]*kgo.Record{
		"no reason":             set(deadLetter(), "gridsettle-reason", ""),
		"unknown reason":        set(deadLetter(), "gridsettle-reason", "bad_vibes"),
		"truncated without sum": set(deadLetter(), "gridsettle-truncated", "2000000"),
		"no ce_time":            set(deadLetter(), "ce_time", ""),
		"ce_time not RFC 3339":  set(deadLetter(), "ce_time", "2026-12-06 10:25:51"),
		"ce_id not the id":      set(deadLetter(), "ce_id", "x"),
		"ce_type not the type":  set(deadLetter(), "ce_type", "settlement.statement/v1"),
		"spec version 0.3":      set(deadLetter(), "ce_specversion", "0.3"),
		"no source":             set(deadLetter(), "ce_source", ""),
		"JSON content type":     set(deadLetter(), "content-type", "application/json"),
		"unknown schema":        set(deadLetter(), "gridsettle-schema", "x/v1"),
		"input schema":          set(deadLetter(), "gridsettle-schema", meters.ReadsSchema),
		"header twice":          func() *kgo.Record { r := deadLetter(); r.Headers = append(r.Headers, r.Headers[0]); return r }(),
	} {
		if err := v.Record(r); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	// The MQTT bridge's own dead letters: no source position, an id of the
	// payload, the bridge's reasons only.
	bridged := func() *kgo.Record {
		r := set(set(set(deadLetter(), "gridsettle-source-partition", ""), "gridsettle-source-offset", ""), "gridsettle-seq", "")
		id := "mqtt/" + strings.Repeat("ab", 32)
		for k, val := range map[string]string{"gridsettle-id": id, "ce_id": id, "gridsettle-reason": "payload_too_large",
			"gridsettle-mqtt-topic": "gridsettle/reads/gw-7", "gridsettle-mqtt-client": "bridge-1"} {
			set(r, k, val)
		}
		return r
	}
	if err := v.Record(bridged()); err != nil {
		t.Errorf("bridge dead letter: %v", err)
	}
	for name, r := range map[string]*kgo.Record{
		"bridge letter with an ingest reason":  set(bridged(), "gridsettle-reason", "malformed_json"),
		"bridge letter without its MQTT topic": set(bridged(), "gridsettle-mqtt-topic", ""),
		"ingest letter with a bridge reason":   set(deadLetter(), "gridsettle-reason", "payload_too_large"),
		"ingest letter without its offset":     set(deadLetter(), "gridsettle-source-offset", ""),
	} {
		if err := v.Record(r); err == nil {
			t.Errorf("%s: valid", name)
		}
	}

	// A statement: its value is checked, and its content type is JSON.
	st := deadLetter()
	for _, k := range []string{"gridsettle-schema", "ce_type"} {
		set(st, k, settlement.StatementSchema)
	}
	set(st, "content-type", "application/json")
	if err := v.Record(st); err == nil || !strings.Contains(err.Error(), "not UTF-8") {
		t.Errorf("a statement whose value is not JSON: %v", err)
	}
}

func TestValueRefusesWhatIsNotJSON(t *testing.T) {
	v := validator(t)
	for _, doc := range []string{"", "{", `{"a":1} {}`, "{\"meter_id\":\"\xff\"}", "null"} {
		if err := v.Value(meters.ReadsSchema, []byte(doc)); err == nil {
			t.Errorf("%q: valid", doc)
		}
	}
	if err := v.Value("nope/v1", []byte(`{}`)); err == nil {
		t.Error("unknown schema: valid")
	}
}

package oracle

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shopspring/decimal"
)

const (
	readsTopic  = "ami.interval-reads"
	pricesTopic = "market.prices"
)

// fixture is a small hand-built world: a registry from CSV rows and a log
// appended record by record.
type fixture struct {
	t      *testing.T
	reg    *Registry
	m      Market
	o      *Oracle
	log    []Input
	offset map[TopicPartition]int64
}

// newFixture builds a registry whose meters.csv rows are meterRows
// (meter_id,account_id,participant_id,settlement_point,loss_factor,from,to)
// and whose accounts.csv rows are accountRows.
func newFixture(t *testing.T, intervalSeconds int64, accountRows, meterRows []string) *fixture {
	t.Helper()
	fs := fstest.MapFS{
		"participants.csv": {Data: []byte("participant_id,name\nRETAILER-A,A\nRETAILER-B,B\n")},
		"settlement_points.csv": {Data: []byte("settlement_point,name,kind\nHB_NORTH,North,hub\n" +
			"LZ_WEST,West,zone\n")},
		"accounts.csv": {Data: []byte("account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\n" +
			strings.Join(accountRows, "\n") + "\n")},
		"meters.csv": {Data: []byte("meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			strings.Join(meterRows, "\n") + "\n")},
	}
	reg, err := ReadRegistry(fs)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, reg: reg, offset: map[TopicPartition]int64{}, m: Market{Location: chicago(t), Currency: "USD",
		IntervalSeconds: intervalSeconds, PriceSpikeThreshold: decimal.NewFromInt(1000), Now: fixtureNow}}
	f.market(func(*Market) {})
	return f
}

// market changes the fixture's market with set and builds its oracle anew.
func (f *fixture) market(set func(*Market)) *fixture {
	f.t.Helper()
	set(&f.m)
	o, err := New(f.reg, f.m, Topics{Reads: readsTopic, Prices: pricesTopic})
	if err != nil {
		f.t.Fatal(err)
	}
	f.o = o
	return f
}

// noEstimation is --estimation none, for what reads alone must give.
func noEstimation(m *Market) { m.Estimation.Off = true }

// fixtureNow is the consumer's clock of every fixture.
var fixtureNow = time.Date(2026, time.December, 6, 7, 30, 0, 0, time.UTC)

func chicago(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// add appends a record to partition part of topic and returns its position.
func (f *fixture) add(topic string, part int32, value string) Position {
	tp := TopicPartition{topic, part}
	off := f.offset[tp]
	f.offset[tp] = off + 2 // leave a gap, as a transaction marker does
	f.log = append(f.log, Input{Topic: topic, Partition: part, Offset: off, Value: []byte(value)})
	return Position{topic, part, off}
}

// snapshot is the current end of every partition.
func (f *fixture) snapshot() Snapshot {
	s := Snapshot{}
	for tp, n := range f.offset {
		s[tp] = n
	}
	return s
}

// reads appends a reads block of meter on partition 0 of the reads topic.
func (f *fixture) reads(meter, channel, start string, length int, values ...string) Position {
	return f.add(readsTopic, 0, fmt.Sprintf(`{"meter_id":%q,"channel":%q,"start":%q,"interval_seconds":%d,"values":["%s"]}`,
		meter, channel, start, length, strings.Join(values, `","`)))
}

// prices appends consecutive RT prices of point from start.
func (f *fixture) prices(point, start string, length int, prices ...string) {
	t0 := mustTime(f.t, start)
	for i, p := range prices {
		if p == "" {
			continue // a missing price
		}
		at := t0.Add(time.Duration(i*length) * time.Second).Format(time.RFC3339)
		f.add(pricesTopic, 0, fmt.Sprintf(`{"market":"RT","settlement_point":%q,"start":%q,"interval_seconds":%d,"price":%q}`,
			point, at, length, p))
	}
}

func (f *fixture) ingest() *State {
	f.t.Helper()
	s, err := f.o.Ingest(f.log, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) statement(day string) *Statement {
	f.t.Helper()
	st, err := f.ingest().Statement(day, "initial", 1, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func repeat(v string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func line(t *testing.T, st *Statement, point, participant string) Line {
	t.Helper()
	for _, l := range st.Lines {
		if l.SettlementPoint == point && l.ParticipantID == participant {
			return l
		}
	}
	t.Fatalf("no line %s/%s in %+v", point, participant, st.Lines)
	return Line{}
}

func charge(t *testing.T, st *Statement, account, participant string) Charge {
	t.Helper()
	for _, c := range st.Charges {
		if c.AccountID == account && c.ParticipantID == participant {
			return c
		}
	}
	t.Fatalf("no charge %s/%s in %+v", account, participant, st.Charges)
	return Charge{}
}

func interval(t *testing.T, st *Statement, point, participant, start string) IntervalFigure {
	t.Helper()
	at := mustTime(t, start)
	for _, f := range st.Intervals {
		if f.SettlementPoint == point && f.ParticipantID == participant && f.Start.Equal(at) {
			return f
		}
	}
	t.Fatalf("no interval %s/%s/%s", point, participant, start)
	return IntervalFigure{}
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func decPtr(t *testing.T, d *decimal.Decimal) string {
	t.Helper()
	if d == nil {
		return "unpriced"
	}
	return d.String()
}

//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// TestExplainScenario is the acceptance test of settlement/README.md
// "Explaining every figure": a simulated day goes through the real platform
// (kfake broker, the platform's ingest, Postgres, the registry import) and is
// settled twice, with late reads, corrections, price corrections, actuals
// replacing estimates, a retailer switch and a loss-factor change between the
// runs. For every statement line of the second run, the engine's explanation
// must equal the independent oracle's change by change and add up exactly to
// the delta.
func TestExplainScenario(t *testing.T) {
	began := time.Now()
	ctx := t.Context()
	pool, _ := pgtest.New(t)
	brokers := kafkatest.New(t)
	day := demoDay // the 25-hour fall-back day: 100 settlement intervals
	sc, err := simulate.Generate(simulate.Config{Seed: 7, Meters: 60, Days: 1, StartDay: day})
	if err != nil {
		t.Fatal(err)
	}
	m := sc.Config.Market
	dir := t.TempDir()
	reg1, reg2 := filepath.Join(dir, "registry-1"), filepath.Join(dir, "registry-2")
	if err := simulate.WriteRegistry(reg1, sc); err != nil {
		t.Fatal(err)
	}

	// The platform's own wiring of ingest and runs (newServices, newIngest)
	// on the test's broker and database.
	kcfg := kafka.Config{Brokers: brokers}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	topics := kafka.DefaultTopics()
	ob, err := outboxWriter(ctx, kcl, topics.Outputs())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Market: m, Kafka: kcfg, Environment: "test", ExportDir: filepath.Join(dir, "exports"),
		SigningKey: filepath.Join(dir, "keys", "export-signing.pem"), ExportCompression: parquet.ZSTD}
	p := &Platform{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DB: pool, Kafka: kcl, Topics: topics,
		Outbox: ob, Metrics: prometheus.NewRegistry(), Out: io.Discard}
	p.shared = sync.OnceValues(func() (*services, error) { return newServices(ctx, p) })
	s, err := p.shared()
	if err != nil {
		t.Fatal(err)
	}
	importRegistry(ctx, t, pool, s, reg1)
	ing, err := newIngest(p)
	if err != nil {
		t.Fatal(err)
	}
	ingestCtx, stopIngest := context.WithCancel(ctx)
	ingestDone := make(chan error, 1)
	go func() { ingestDone <- ing.Run(ingestCtx) }()
	defer func() {
		stopIngest()
		if err := <-ingestDone; err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), context.Canceled.Error()) {
			t.Errorf("ingest: %v", err)
		}
	}()

	produceAndIngest(ctx, t, p, sc.Records)
	run1, err := s.runs.Start(ctx, day, settlement.Initial)
	if err != nil || run1.Status != settlementpg.Completed {
		t.Fatalf("initial run: %+v, %v", run1, err)
	}

	// Between the runs: a registry correction through the import (a
	// retailer switch inside the day, a loss factor corrected from the day
	// start), then the late part of the stream.
	ch := pickRegistryChange(t, sc, m, day)
	sc2 := *sc
	sc2.Assignments = ch.apply(sc.Assignments)
	if err := simulate.WriteRegistry(reg2, &sc2); err != nil {
		t.Fatal(err)
	}
	importRegistry(ctx, t, pool, s, reg2)
	// With estimation on, a late read of a known channel replaces an
	// estimate; a read appears where the first run had nothing only on a
	// channel it did not know yet, so the late part gains the first reads
	// of a new export channel.
	produceAndIngest(ctx, t, p, append(slices.Clone(sc.Late), ch.newChannelReads()))
	run2, err := s.runs.Start(ctx, day, settlement.Final)
	if err != nil || run2.Status != settlementpg.Completed {
		t.Fatalf("final run: %+v, %v", run2, err)
	}
	t.Logf("%d + %d records ingested and two runs in %s; switch %s to %s at %s, loss factor of %s from the day start, new channel of %s",
		len(sc.Records), len(sc.Late)+1, time.Since(began).Round(time.Millisecond), ch.switchMeter, ch.newParticipant,
		ch.switchAt.Format(time.RFC3339), ch.lfMeter, ch.newChannelMeter)

	// The oracle: the committed input log, each run's snapshot from its
	// lineage, each run's registry from its CSV files.
	recs, err := readTopics(ctx, kcfg, true, topics.Inputs()...)
	if err != nil {
		t.Fatal(err)
	}
	var inputLog []oracle.Input
	for _, r := range recs {
		inputLog = append(inputLog, oracle.Input{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
	}
	snap1, snap2 := lineageSnapshot(run1.Lineage), lineageSnapshot(run2.Lineage)
	before := oracleState(t, reg1, m, inputLog, snap1)
	after := oracleState(t, reg2, m, inputLog, snap2)

	lines, err := s.runs.Statements(ctx, settlementpg.StatementQuery{Day: &day, Version: run2.Version, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Fatal("the final run has no statement lines")
	}
	seen := &scenarioKinds{change: ch, snap1: snap1}
	changes := 0
	for _, l := range lines {
		got, err := s.runs.Explain(ctx, l.StatementID, nil)
		if err != nil {
			t.Errorf("engine: %v", err)
			continue
		}
		want, err := oracle.Explain(before, after, day.String(), l.ParticipantID, l.SettlementPoint)
		if err != nil {
			t.Errorf("oracle %s: %v", l.StatementID, err)
			continue
		}
		changes += len(got.Changes)
		checkExplanation(t, l, settlement.StatementID(l.SettlementPoint, l.ParticipantID, day, run1.Version), got, want)
		for _, c := range got.Changes {
			seen.note(l, c)
		}
	}
	seen.check(t)
	t.Logf("%d statement lines, %d changes explained and equal to the oracle's (%s), in %s",
		len(lines), changes, seen, time.Since(began).Round(time.Millisecond))
}

// importRegistry loads a registry folder's CSV files through the registry
// import, as `gridsettle registry import` does.
func importRegistry(ctx context.Context, t *testing.T, pool *pgxpool.Pool, s *services, dir string) {
	t.Helper()
	var files []string
	for _, name := range []string{simulate.ParticipantsFile, simulate.SettlementPointsFile, simulate.AccountsFile, simulate.MetersFile} {
		files = append(files, filepath.Join(dir, name))
	}
	if _, err := registrystore.ImportFiles(ctx, pool, s.alerts.SettingsChanged, files...); err != nil {
		t.Fatalf("registry import %s: %v", dir, err)
	}
}

// produceAndIngest commits records in Kafka transactions and waits until
// ingest has consumed every input partition to its end.
func produceAndIngest(ctx context.Context, t *testing.T, p *Platform, records []simulate.Record) {
	t.Helper()
	if _, err := simulate.Produce(ctx, p.Config.Kafka, records, simulate.ProduceOptions{TransactionalID: "explain-scenario"}, p.Log); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(p.Kafka)
	deadline := time.Now().Add(2 * time.Minute) // a safety net, not an assertion
	for {
		st, err := ingest.ReadStatus(ctx, p.DB, adm, p.Topics)
		lag := int64(-1)
		if err == nil {
			lag = 0
			for _, in := range st.Inputs {
				lag += in.Lag
			}
			if lag == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not catch up: lag %d, %v", lag, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registryChange is the registry correction between the runs: switchMeter
// moves to newParticipant at switchAt; lfMeter's loss factor is corrected
// from the day's start. newChannelMeter, an import-only meter, gains an
// export channel in the late part.
type registryChange struct {
	switchMeter, newParticipant, lfMeter, newChannelMeter string
	switchAt, dayStart                                    time.Time
	lossFactor                                            decimal.Decimal
}

// pickRegistryChange picks two meters of no fixed role of the simulator
// with one open assignment from before the day and reads in it.
func pickRegistryChange(t *testing.T, sc *simulate.Scenario, m settlement.Market, day settlement.Day) registryChange {
	t.Helper()
	dayStart, _ := m.Bounds(day)
	reading, exporting := map[string]bool{}, map[string]bool{}
	for _, r := range slices.Concat(sc.Records, sc.Late) {
		var v struct {
			MeterID string    `json:"meter_id"`
			Channel string    `json:"channel"`
			Start   time.Time `json:"start"`
		}
		if r.Topic != sc.Config.Topics.Reads || r.Reason != "" || json.Unmarshal(r.Value, &v) != nil {
			continue
		}
		reading[v.MeterID] = reading[v.MeterID] || !v.Start.Before(dayStart)
		exporting[v.MeterID] = exporting[v.MeterID] || v.Channel == string(meters.Export)
	}
	n := map[string]int{}
	for _, a := range sc.Assignments {
		n[a.MeterID]++
	}
	var picked []meters.Assignment
	for _, a := range sc.Assignments {
		// The simulator's first 12 meters play fixed roles (switch,
		// outage, move-out, ...): leave them as they are.
		if a.MeterID > "MTR-000012" && n[a.MeterID] == 1 && a.EffectiveTo == nil && a.EffectiveFrom.Before(dayStart) && reading[a.MeterID] {
			picked = append(picked, a)
		}
	}
	importOnly := slices.IndexFunc(picked, func(a meters.Assignment) bool { return !exporting[a.MeterID] })
	if len(picked) < 3 || importOnly < 0 {
		t.Fatalf("the scenario has %d meters fit for the registry change, %d of them import-only; want 3 and 1", len(picked), importOnly+1)
	}
	// The late channel's meter is moved to the end, so the other two differ from it.
	late := picked[importOnly]
	picked = append(slices.Delete(picked, importOnly, importOnly+1), late)
	ch := registryChange{switchMeter: picked[0].MeterID, lfMeter: picked[1].MeterID, dayStart: dayStart,
		switchAt: dayStart.Add(15 * time.Hour), lossFactor: picked[1].LossFactor.Add(decimal.RequireFromString("0.0125")),
		newChannelMeter: late.MeterID}
	for _, p := range sc.Participants {
		if p.ParticipantID != picked[0].ParticipantID {
			ch.newParticipant = p.ParticipantID
			break
		}
	}
	if ch.newParticipant == "" {
		t.Fatal("the scenario has one participant: no retailer to switch to")
	}
	return ch
}

// apply closes the two meters' assignments and adds their successors:
// assignments never change in place.
func (ch registryChange) apply(as []meters.Assignment) []meters.Assignment {
	var out []meters.Assignment
	for _, a := range as {
		switch a.MeterID {
		case ch.switchMeter:
			old, next := a, a
			old.EffectiveTo = &ch.switchAt
			next.ParticipantID, next.EffectiveFrom = ch.newParticipant, ch.switchAt
			out = append(out, old, next)
		case ch.lfMeter:
			old, next := a, a
			old.EffectiveTo = &ch.dayStart
			next.LossFactor, next.EffectiveFrom = ch.lossFactor, ch.dayStart
			out = append(out, old, next)
		default:
			out = append(out, a)
		}
	}
	return out
}

// newChannelReads is the first block of newChannelMeter's export channel:
// an hour of 15-minute reads at 10:00 local time.
func (ch registryChange) newChannelReads() simulate.Record {
	v := fmt.Sprintf(`{"meter_id":%q,"channel":"export","start":%q,"interval_seconds":900,"values":["0.125","0.25","0.375","0.5"],`+
		`"quality":["A","A","A","A"],"version":1,"source":"explain-scenario"}`, ch.newChannelMeter, stamp(ch.dayStart.Add(10*time.Hour)))
	return simulate.Record{Topic: kafka.DefaultTopics().Reads, Key: []byte(ch.newChannelMeter), Value: []byte(v)}
}

// oracleState is the oracle's state of a run: the log up to its snapshot,
// over the registry of the folder dir.
func oracleState(t *testing.T, dir string, m settlement.Market, log []oracle.Input, snap oracle.Snapshot) *oracle.State {
	t.Helper()
	reg, err := oracle.ReadRegistry(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	topics := kafka.DefaultTopics()
	// Ingest consumed with the wall clock and the default future bounds;
	// the scenario's records do not depend on when (simulate's doc).
	o, err := oracle.New(reg, oracle.Market{Location: m.Location, Currency: m.Currency, IntervalSeconds: int64(m.IntervalSeconds),
		PriceSpikeThreshold: m.PriceSpikeThreshold, Now: time.Now(),
		Estimation: oracle.Estimation{Off: m.Estimation.Off, MaxLinear: m.Estimation.MaxLinear}},
		oracle.Topics{Reads: topics.Reads, Prices: topics.Prices})
	if err != nil {
		t.Fatal(err)
	}
	s, err := o.Ingest(log, snap)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkExplanation compares the engine's explanation of line l with the
// oracle's, change by change, and checks from the engine's answer alone
// that it adds up: Σ effects = exact deltas, rounding = delta − exact
// delta, and the deltas are the line's.
func checkExplanation(t *testing.T, l settlement.StatementLine, against string, got *settlement.Explanation, want *oracle.Explanation) {
	t.Helper()
	id := l.StatementID
	if got.StatementID != id || got.Against != against {
		t.Errorf("%s: explained %s against %s, want against %s", id, got.StatementID, got.Against, against)
	}
	var energy, amount decimal.Decimal
	kinds := map[string]settlement.KindSummary{}
	for _, c := range got.Changes {
		energy, amount = energy.Add(c.EnergyMWhEffect), amount.Add(c.AmountEffect)
		k := kinds[c.Kind]
		k.Changes++
		k.EnergyMWhEffect, k.AmountEffect = k.EnergyMWhEffect.Add(c.EnergyMWhEffect), k.AmountEffect.Add(c.AmountEffect)
		kinds[c.Kind] = k
	}
	if !energy.Equal(got.ExactDeltaEnergyMWh) || !amount.Equal(got.ExactDeltaAmount) {
		t.Errorf("%s: effects add up to %s MWh and %s, the exact deltas are %s MWh and %s", id, energy, amount,
			got.ExactDeltaEnergyMWh, got.ExactDeltaAmount)
	}
	if !got.Rounding.Equal(got.DeltaAmount.Sub(got.ExactDeltaAmount)) {
		t.Errorf("%s: rounding %s, but delta %s − exact delta %s", id, got.Rounding, got.DeltaAmount, got.ExactDeltaAmount)
	}
	if !got.DeltaAmount.Equal(l.DeltaAmount) || !got.DeltaEnergyMWh.Equal(l.DeltaEnergyMWh) {
		t.Errorf("%s: deltas %s MWh and %s, the line's are %s MWh and %s", id, got.DeltaEnergyMWh, got.DeltaAmount,
			l.DeltaEnergyMWh, l.DeltaAmount)
	}
	for _, k := range []string{settlement.ChangeRead, settlement.ChangePrice} {
		g, w := got.Summary[k], kinds[k]
		if g.Changes != w.Changes || !g.EnergyMWhEffect.Equal(w.EnergyMWhEffect) || !g.AmountEffect.Equal(w.AmountEffect) {
			t.Errorf("%s: summary of %s %+v, its changes add up to %+v", id, k, g, w)
		}
	}
	if !got.ExactDeltaEnergyMWh.Equal(want.ExactDeltaEnergyMWh) || !got.ExactDeltaAmount.Equal(want.ExactDeltaAmount) {
		t.Errorf("%s: exact deltas %s MWh and %s, the oracle's %s MWh and %s", id, got.ExactDeltaEnergyMWh,
			got.ExactDeltaAmount, want.ExactDeltaEnergyMWh, want.ExactDeltaAmount)
	}
	gs := make([]string, len(got.Changes))
	for i, c := range got.Changes {
		gs[i] = changeText(c)
	}
	ws := make([]string, len(want.Changes))
	for i, c := range want.Changes {
		ws[i] = changeText(oracleChange(c, l.SettlementPoint))
	}
	if d := changeDiffs(gs, ws, 5); d != "" {
		t.Errorf("%s: %d changes, the oracle has %d:%s", id, len(gs), len(ws), d)
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// scenarioKinds records which kinds of change the scenario's explanations
// hold, so that a scenario that stops making one fails rather than stops
// testing it.
type scenarioKinds struct {
	change registryChange
	snap1  oracle.Snapshot
	counts map[string]int
}

// The kinds of change the scenario must contain.
var scenarioKindNames = []string{
	"correction",        // a read's value changed
	"late read",         // a read not in the first run's snapshot appeared
	"price",             // a price correction with a nonzero effect
	"leaves (switch)",   // the switched meter's read left its old retailer's line
	"joins (switch)",    // ... and joined the new retailer's
	"loss factor",       // a read's loss factor changed
	"estimate replaced", // an estimate replaced by an actual read
}

func (k *scenarioKinds) note(l settlement.StatementLine, c settlement.Change) {
	if k.counts == nil {
		k.counts = map[string]int{}
	}
	if c.Kind == settlement.ChangePrice {
		if !c.AmountEffect.IsZero() {
			k.counts["price"]++
		}
		return
	}
	b, a := c.Before, c.After
	actual := func(s *settlement.ReadState) bool { return s != nil && s.Estimate == nil }
	switch {
	case actual(b) && actual(a) && !b.Value.Equal(a.Value):
		k.counts["correction"]++
	case b == nil && actual(a) && *a.Offset >= k.snap1[oracle.TopicPartition{Topic: *a.Topic, Partition: *a.Partition}]:
		k.counts["late read"]++
	}
	switch {
	case b != nil && a == nil && c.MeterID == k.change.switchMeter && l.ParticipantID != k.change.newParticipant:
		k.counts["leaves (switch)"]++
	case b == nil && a != nil && c.MeterID == k.change.switchMeter && l.ParticipantID == k.change.newParticipant:
		k.counts["joins (switch)"]++
	}
	if b != nil && a != nil && !b.LossFactor.Equal(a.LossFactor) {
		k.counts["loss factor"]++
	}
	if b != nil && b.Estimate != nil && actual(a) {
		k.counts["estimate replaced"]++
	}
}

func (k *scenarioKinds) check(t *testing.T) {
	t.Helper()
	for _, name := range scenarioKindNames {
		if k.counts[name] == 0 {
			t.Errorf("the scenario has no change of kind %q: it no longer tests it", name)
		}
	}
}

func (k *scenarioKinds) String() string {
	var parts []string
	for _, name := range scenarioKindNames {
		parts = append(parts, fmt.Sprintf("%s %d", name, k.counts[name]))
	}
	return strings.Join(parts, ", ")
}

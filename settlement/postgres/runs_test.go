package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

var (
	nov1     = settlement.Day{Year: 2026, Month: time.November, Day: 1}
	nov1UTC  = time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC) // 00:00 CDT, first interval of the fall-back day
	longAgo  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	switchAt = time.Date(2026, 11, 1, 18, 0, 0, 0, time.UTC) // 12:00 CST: M3 moves from RET-A to RET-B
)

// iv is the start of interval i of 2026-11-01.
func iv(i int) time.Time { return nov1UTC.Add(time.Duration(i) * 15 * time.Minute) }

func hour(h int) time.Time { return time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC) }

// scenario loads version v of the inputs of 2026-11-01 (America/Chicago,
// 100 intervals): 5-minute prices at HB_NORTH with a half-even mean, a
// negative mean and a missing price; hourly prices at LZ_WEST with a spike
// and a negative hour; 15-minute, 5-minute and hourly reads; a prosumer
// exporting; loss factors; a retailer switch mid-day. Version 2 adds an
// upward correction, a late read, a corrected export, the missing price, a
// price correction and a registry fix that moves M4 from RET-B to RET-A.
func scenario(e *env, v int) {
	if v == 1 {
		e.registry([]string{"RET-A", "RET-B"}, []string{"HB_NORTH", "LZ_WEST"}, []string{"ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5"})
		e.assign("M1", "ACC-1", "RET-A", "HB_NORTH", "1.031200", longAgo, time.Time{})
		e.assign("M2", "ACC-2", "RET-A", "HB_NORTH", "1", longAgo, time.Time{})
		e.assign("M3", "ACC-3", "RET-A", "LZ_WEST", "1", longAgo, switchAt)
		e.assign("M3", "ACC-3", "RET-B", "LZ_WEST", "1.02", switchAt, time.Time{})
		e.assign("M4", "ACC-4", "RET-B", "HB_NORTH", "0.98", longAgo, time.Time{})
		e.assign("M5", "ACC-5", "RET-B", "LZ_WEST", "1.5", longAgo, time.Time{})

		e.read("M1", "import", iv(0), 900, "1500.5", "A", 1)
		e.read("M1", "import", iv(1), 900, "2000", "E", 1)
		e.read("M1", "import", iv(2), 900, "800.25", "A", 1)
		e.read("M1", "import", iv(50), 900, "1000", "S", 1)
		e.read("M2", "import", iv(0), 900, "500", "A", 1)
		e.read("M2", "export", iv(0), 900, "1250.75", "A", 1)
		e.read("M2", "export", iv(1), 900, "400", "A", 1)
		e.read("M3", "import", hour(17), 3600, "4000", "A", 1)
		e.read("M3", "import", hour(18), 3600, "2000", "A", 1)
		e.read("M3", "import", hour(19), 3600, "1000.000001", "E", 1)
		e.read("M4", "import", iv(10), 900, "300", "A", 1)
		e.read("M5", "import", iv(20), 300, "0.333333", "A", 1)
		e.read("M5", "import", iv(20).Add(5*time.Minute), 300, "0.333333", "A", 1)
		e.read("M5", "import", iv(20).Add(10*time.Minute), 300, "0.333334", "E", 1)

		for i := range 100 {
			for k := range 3 {
				e.price("HB_NORTH", iv(i).Add(time.Duration(k)*5*time.Minute), 300, "20", 1)
			}
		}
		for k, p := range []string{"30.000001", "30.000001", "30.000002", "-12.5", "-12.5", "-12.4", "21", "", "22"} {
			at := iv(0).Add(time.Duration(k) * 5 * time.Minute)
			if p == "" {
				e.exec(`DELETE FROM prices WHERE settlement_point = 'HB_NORTH' AND interval_start = $1`, at)
				continue
			}
			e.price("HB_NORTH", at, 300, p, 1)
		}
		for h := range 25 {
			e.price("LZ_WEST", nov1UTC.Add(time.Duration(h)*time.Hour), 3600, "35.5", 1)
		}
		e.price("LZ_WEST", hour(18), 3600, "1500", 1)
		e.price("LZ_WEST", hour(19), 3600, "-5", 1)
		e.offsets("ami.interval-reads", 0, 14)
		e.offsets("ami.interval-reads", 1, 0)
		e.offsets("market.prices", 0, 327)
		return
	}
	e.read("M1", "import", iv(0), 900, "1600.25", "A", 2)
	e.read("M1", "import", iv(60), 900, "500", "A", 1)
	e.read("M2", "export", iv(1), 900, "450", "A", 2)
	e.price("HB_NORTH", iv(2).Add(5*time.Minute), 300, "23", 1)
	e.price("LZ_WEST", hour(19), 3600, "-4.5", 2)
	e.exec(`DELETE FROM meter_assignments WHERE meter_id = 'M4'`)
	e.assign("M4", "ACC-4", "RET-A", "HB_NORTH", "0.98", longAgo, time.Time{})
	e.offsets("ami.interval-reads", 0, 17)
	e.offsets("ami.interval-reads", 1, 3)
	e.offsets("market.prices", 0, 329)
}

// wantLine is a statement line computed by hand (with an independent
// decimal calculator) from the scenario.
type wantLine struct {
	participant, point             string
	energy, unpriced, amount       string
	priced                         int
	actual, estimated, substituted int
	prevEnergy, prevAmount         string
	deltaEnergy, deltaAmount       string
}

type wantCharge struct {
	account, participant                 string
	imp, exp, net, cost, prevCost, delta string
}

var (
	wantLinesV1 = []wantLine{
		{"RET-A", "HB_NORTH", "4.315383", "0.825218", "23.80", 99, 5, 1, 1, "0.000000", "0.00", "4.315383", "23.80"},
		{"RET-A", "LZ_WEST", "4.000000", "0.000000", "142.00", 100, 1, 0, 0, "0.000000", "0.00", "4.000000", "142.00"},
		{"RET-B", "HB_NORTH", "0.294000", "0.000000", "5.88", 99, 1, 0, 0, "0.000000", "0.00", "0.294000", "5.88"},
		{"RET-B", "LZ_WEST", "3.061500", "0.000000", "3054.95", 100, 3, 2, 0, "0.000000", "0.00", "3.061500", "3054.95"},
	}
	wantChargesV1 = []wantCharge{
		{"ACC-1", "RET-A", "5300.750000", "0.000000", "5300.750000", "41.33", "0.00", "41.33"},
		{"ACC-2", "RET-A", "500.000000", "1650.750000", "-1150.750000", "-17.54", "0.00", "-17.54"},
		{"ACC-3", "RET-A", "4000.000000", "0.000000", "4000.000000", "142.00", "0.00", "142.00"},
		{"ACC-3", "RET-B", "3000.000001", "0.000000", "3000.000001", "3054.90", "0.00", "3054.90"},
		{"ACC-4", "RET-B", "300.000000", "0.000000", "300.000000", "5.88", "0.00", "5.88"},
		{"ACC-5", "RET-B", "1.000000", "0.000000", "1.000000", "0.05", "0.00", "0.05"},
	}
	wantLinesV2 = []wantLine{
		{"RET-A", "HB_NORTH", "5.177846", "0.000000", "61.85", 100, 7, 1, 1, "4.315383", "23.80", "0.862463", "38.05"},
		{"RET-A", "LZ_WEST", "4.000000", "0.000000", "142.00", 100, 1, 0, 0, "4.000000", "142.00", "0.000000", "0.00"},
		// no reads any more after the registry fix: a line of zeros reversing version 1
		{"RET-B", "HB_NORTH", "0.000000", "0.000000", "0.00", 100, 0, 0, 0, "0.294000", "5.88", "-0.294000", "-5.88"},
		{"RET-B", "LZ_WEST", "3.061500", "0.000000", "3055.46", 100, 3, 2, 0, "3.061500", "3054.95", "0.000000", "0.51"},
	}
	wantChargesV2 = []wantCharge{
		{"ACC-1", "RET-A", "5900.500000", "0.000000", "5900.500000", "72.88", "41.33", "31.55"},
		{"ACC-2", "RET-A", "500.000000", "1700.750000", "-1200.750000", "-16.91", "-17.54", "0.63"},
		{"ACC-3", "RET-A", "4000.000000", "0.000000", "4000.000000", "142.00", "142.00", "0.00"},
		{"ACC-3", "RET-B", "3000.000001", "0.000000", "3000.000001", "3055.41", "3054.90", "0.51"},
		{"ACC-4", "RET-A", "300.000000", "0.000000", "300.000000", "5.88", "0.00", "5.88"},
		{"ACC-4", "RET-B", "0.000000", "0.000000", "0.000000", "0.00", "5.88", "-5.88"},
		{"ACC-5", "RET-B", "1.000000", "0.000000", "1.000000", "0.05", "0.05", "0.00"},
	}
)

// again is the statement of a run with no new input after want: the same
// figures, previous = current, zero deltas.
func again(want []wantLine) []wantLine {
	out := make([]wantLine, len(want))
	for i, w := range want {
		w.prevEnergy, w.prevAmount = w.energy, w.amount
		w.deltaEnergy, w.deltaAmount = "0.000000", "0.00"
		out[i] = w
	}
	return out
}

func againCharges(want []wantCharge) []wantCharge {
	out := make([]wantCharge, len(want))
	for i, w := range want {
		w.prevCost, w.delta = w.cost, "0.00"
		out[i] = w
	}
	return out
}

func checkStatement(t *testing.T, e *env, run Run, prevVersion *int, lines []wantLine, charges []wantCharge) {
	t.Helper()
	day, _ := settlement.ParseDay(run.OperatingDay)
	got, err := e.runs.Statements(t.Context(), StatementQuery{Day: &day, Version: run.Version})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(lines) {
		t.Fatalf("%s: %d statement lines, want %d", run.RunID, len(got), len(lines))
	}
	for i, w := range lines {
		m := got[i].Message()
		want := settlement.StatementMessage{
			StatementID:   fmt.Sprintf("%s/%s/%s/%d", w.point, w.participant, run.OperatingDay, run.Version),
			ParticipantID: w.participant, SettlementPoint: w.point, OperatingDay: run.OperatingDay,
			RunType: run.RunType, Version: run.Version, PreviousVersion: prevVersion, Currency: "USD",
			EnergyMWh: w.energy, Amount: w.amount, UnpricedEnergyMWh: w.unpriced,
			PreviousEnergyMWh: w.prevEnergy, PreviousAmount: w.prevAmount,
			DeltaEnergyMWh: w.deltaEnergy, DeltaAmount: w.deltaAmount,
			Intervals: 100, PricedIntervals: w.priced, EstimatedEnergyMWh: "0.000000",
			Reads: settlement.ReadCounts{Actual: w.actual, Estimated: w.estimated, Substituted: w.substituted},
			RunID: run.RunID, ComputedAt: run.ComputedAt,
		}
		gj, _ := json.Marshal(m)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("%s line %d\n got %s\nwant %s", run.RunID, i, gj, wj)
		}
	}
	var acc []settlement.AccountCharge
	for _, a := range []string{"ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5"} {
		cs, err := e.runs.Charges(t.Context(), ChargeQuery{AccountID: a, From: &day, To: &day, Version: run.Version})
		if err != nil {
			t.Fatal(err)
		}
		acc = append(acc, cs...)
	}
	if len(acc) != len(charges) {
		t.Fatalf("%s: %d account charges, want %d", run.RunID, len(acc), len(charges))
	}
	for i, w := range charges {
		want := settlement.ChargeMessage{
			ChargeID:  fmt.Sprintf("%s/%s/%s/%d", w.account, w.participant, run.OperatingDay, run.Version),
			AccountID: w.account, ParticipantID: w.participant, OperatingDay: run.OperatingDay,
			RunType: run.RunType, Version: run.Version, ImportKWh: w.imp, ExportKWh: w.exp, NetKWh: w.net,
			EstimatedKWh: "0.000000", EnergyCost: w.cost, PreviousEnergyCost: w.prevCost, DeltaEnergyCost: w.delta,
			Currency: "USD",
		}
		if got := acc[i].Message(); got != want {
			t.Errorf("%s charge %d\n got %+v\nwant %+v", run.RunID, i, got, want)
		}
	}
}

func TestTwoRunsAndARerun(t *testing.T) {
	t.Parallel()
	// The scenario's meters report a few reads each: it is about reads and
	// corrections, settled without estimates (settlement/README.md "Estimation
	// of missing reads (VEE)" --estimation none), which also holds that Off
	// gives the figures of before.
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900,
		Estimation: settlement.Estimation{Off: true}}
	e := newEnv(t, m)
	var completed []string
	e.runs.cfg.Completed = func(_ context.Context, r Run) error { completed = append(completed, r.RunID); return nil }
	scenario(e, 1)

	e.now = time.Date(2026, 11, 7, 6, 0, 0, 250000000, time.UTC)
	r1 := e.start(nov1, settlement.Initial)
	if r1.Status != Completed || r1.RunID != "run-2026-11-01-initial-1" || r1.Version != 1 || r1.Error != "" ||
		!r1.ComputedAt.Equal(time.Date(2026, 11, 7, 6, 0, 0, 0, time.UTC)) {
		t.Fatalf("run 1: %+v", r1)
	}
	// No replay yet; the registry as the scenario left it.
	wantLineage := fmt.Sprintf(`{"inputs":[{"topic":"ami.interval-reads","partition":0,"offset_through":13},{"topic":"market.prices","partition":0,"offset_through":326}],"replays_through":0,"registry_version":%d}`,
		e.count(`SELECT version FROM registry_version`))
	if b, _ := json.Marshal(r1.Lineage); string(b) != wantLineage {
		t.Fatalf("lineage %s, want %s", b, wantLineage)
	}
	checkStatement(t, e, r1, nil, wantLinesV1, wantChargesV1)
	if n := e.count(`SELECT count(*) FROM journal_entries WHERE run_id = $1`, r1.RunID); n != 4 {
		t.Fatalf("run 1 posted %d entries, want 4", n)
	}

	scenario(e, 2)
	e.now = time.Date(2026, 12, 27, 6, 0, 0, 0, time.UTC)
	r2 := e.start(nov1, settlement.Final)
	one := 1
	checkStatement(t, e, r2, &one, wantLinesV2, wantChargesV2)
	// three lines changed amount: RET-A HB_NORTH, RET-B HB_NORTH, RET-B LZ_WEST
	if n := e.count(`SELECT count(*) FROM journal_entries WHERE run_id = $1`, r2.RunID); n != 3 {
		t.Fatalf("run 2 posted %d entries, want 3", n)
	}

	r3 := e.start(nov1, settlement.Resettlement)
	two := 2
	checkStatement(t, e, r3, &two, again(wantLinesV2), againCharges(wantChargesV2))
	if n := e.count(`SELECT count(*) FROM journal_entries WHERE run_id = $1`, r3.RunID); n != 0 {
		t.Fatalf("a run with no new input posted %d entries", n)
	}
	if strings.Join(completed, " ") != "run-2026-11-01-initial-1 run-2026-11-01-final-2 run-2026-11-01-resettlement-3" {
		t.Fatalf("completed hook saw %v", completed)
	}

	// every run publishes its full statement and every charge
	for _, c := range []struct {
		run            Run
		lines, charges int
	}{{r1, 4, 6}, {r2, 4, 7}, {r3, 4, 7}} {
		suffix := fmt.Sprintf("/%d", c.run.Version)
		if n := e.count(`SELECT count(*) FROM outbox WHERE topic = $1 AND schema = 'settlement.statement/v1' AND record_id LIKE '%' || $2`, statementsTopic, suffix); n != c.lines {
			t.Errorf("%s: %d statement messages, want %d", c.run.RunID, n, c.lines)
		}
		if n := e.count(`SELECT count(*) FROM outbox WHERE topic = $1 AND schema = 'settlement.account-charge/v1' AND record_id LIKE '%' || $2`, chargesTopic, suffix); n != c.charges {
			t.Errorf("%s: %d charge messages, want %d", c.run.RunID, n, c.charges)
		}
	}
	// every message validates against the schema it names
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := e.pool.Query(t.Context(), `SELECT schema, value FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var name string
		var value []byte
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if err := v.Value(name, value); err != nil {
			t.Error(err)
		}
		n++
	}
	if err := rows.Err(); err != nil || n == 0 {
		t.Fatalf("outbox messages (%d): %v", n, err)
	}
	// the message is the API's statement, byte for byte
	var value []byte
	var key string
	if err := e.pool.QueryRow(t.Context(), `SELECT value, convert_from(key, 'UTF8') FROM outbox WHERE record_id = 'HB_NORTH/RET-A/2026-11-01/2'`).Scan(&value, &key); err != nil {
		t.Fatal(err)
	}
	lines, err := e.runs.Statements(t.Context(), StatementQuery{Day: &nov1, ParticipantID: "RET-A", SettlementPoint: "HB_NORTH", Version: 2})
	if err != nil || len(lines) != 1 {
		t.Fatalf("statement: %v %v", lines, err)
	}
	if api, _ := json.Marshal(lines[0].Message()); string(api) != string(value) || key != "RET-A" {
		t.Fatalf("outbox message %s (key %s)\nAPI statement  %s", value, key, api)
	}

	checkLedger(t, e)
	checkIntervals(t, e, r1)
}

// checkLedger: the chain verifies, the deltas of every line sum to its
// latest amount, and each participant's receivable equals the sum of its
// latest statement amounts.
func checkLedger(t *testing.T, e *env) {
	t.Helper()
	rep, err := ledgerpg.Verify(t.Context(), e.pool)
	if err != nil || !rep.OK {
		t.Fatalf("ledger verify: %+v %v %v", rep, rep.FirstBadEntry, err)
	}
	if n := e.count(`
		SELECT count(*) FROM (
			SELECT participant_id, settlement_point, operating_day, sum(delta_amount) AS deltas,
			       (array_agg(amount ORDER BY version DESC))[1] AS latest
			FROM statement_lines GROUP BY 1, 2, 3) x
		WHERE deltas <> latest`); n != 0 {
		t.Fatalf("%d lines whose deltas do not sum to their latest amount", n)
	}
	if n := e.count(`
		SELECT count(*) FROM (
			SELECT l.participant_id, l.settlement_point, l.operating_day, l.amount,
			       (SELECT coalesce(sum(j.amount), 0) FROM journal_lines j
			        WHERE j.account = 'participant:' || l.participant_id || ':energy_receivable'
			          AND j.settlement_point = l.settlement_point AND j.operating_day = l.operating_day) AS posted
			FROM statement_lines l
			WHERE l.version = (SELECT max(version) FROM runs r WHERE r.operating_day = l.operating_day AND r.status = 'completed')) x
		WHERE amount <> posted`); n != 0 {
		t.Fatalf("%d latest lines whose postings do not sum to their amount", n)
	}
	balances, err := ledgerpg.Balances(t.Context(), e.pool, ledgerpg.BalanceQuery{})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := e.runs.Statements(t.Context(), StatementQuery{})
	if err != nil {
		t.Fatal(err)
	}
	owed := map[string]decimal.Decimal{}
	for _, l := range latest {
		a := ReceivableAccount(l.ParticipantID)
		owed[a] = owed[a].Add(l.Amount)
	}
	total := decimal.Zero
	for _, b := range balances {
		total = total.Add(b.Balance)
		if strings.HasSuffix(b.Account, ":energy_receivable") && !b.Balance.Equal(owed[b.Account]) {
			t.Errorf("%s balance %s, latest statements %s", b.Account, b.Balance, owed[b.Account])
		}
	}
	if !total.IsZero() {
		t.Errorf("ledger accounts sum to %s", total)
	}
}

// checkIntervals: one row per line and interval of the day, exact figures
// that round to the line's amount.
func checkIntervals(t *testing.T, e *env, run Run) {
	t.Helper()
	if n := e.count(`SELECT count(*) FROM run_intervals WHERE run_id = $1`, run.RunID); n != 4*100 {
		t.Fatalf("%d run intervals, want 400", n)
	}
	if n := e.count(`
		SELECT count(*) FROM statement_lines l
		WHERE l.run_id = $1 AND l.amount <> (SELECT round(coalesce(sum(amount), 0), 2) FROM run_intervals i
			WHERE i.run_id = l.run_id AND i.participant_id = l.participant_id AND i.settlement_point = l.settlement_point)`, run.RunID); n != 0 {
		t.Fatalf("%d lines whose interval amounts do not add up", n)
	}
	var energy, price, amount string
	var actual, estimated int
	err := e.pool.QueryRow(t.Context(), `SELECT energy_mwh::text, price::text, amount::text, actual_reads, estimated_reads
		FROM run_intervals WHERE run_id = $1 AND participant_id = 'RET-A' AND settlement_point = 'HB_NORTH' AND interval_start = $2`,
		run.RunID, iv(0)).Scan(&energy, &price, &amount, &actual, &estimated)
	if err != nil {
		t.Fatal(err)
	}
	// 1500.5 × 1.0312 + 500 − 1250.75 = 796.5656 kWh; × 30.000001 per MWh
	if !decimal.RequireFromString(energy).Equal(decimal.RequireFromString("0.7965656")) || price != "30.000001" ||
		!decimal.RequireFromString(amount).Equal(decimal.RequireFromString("23.8969687965656")) || actual != 3 || estimated != 0 {
		t.Fatalf("interval 0: energy %s price %s amount %s reads %d/%d", energy, price, amount, actual, estimated)
	}
	var unpriced *string
	if err := e.pool.QueryRow(t.Context(), `SELECT price::text FROM run_intervals WHERE run_id = $1 AND participant_id = 'RET-A'
		AND settlement_point = 'HB_NORTH' AND interval_start = $2`, run.RunID, iv(2)).Scan(&unpriced); err != nil || unpriced != nil {
		t.Fatalf("interval 2 price %v (%v), want NULL", unpriced, err)
	}
}

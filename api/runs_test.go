package api

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

func init() {
	testAreas = append(testAreas,
		func(t *testing.T, pool *pgxpool.Pool) Routes { return RunRoutes{Runs: testRuns(t, pool)} },
		func(t *testing.T, pool *pgxpool.Pool) Routes { return LedgerRoutes{Pool: pool} },
	)
}

func testRuns(t *testing.T, pool *pgxpool.Pool) *settlementpg.Runs {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return settlementpg.NewRuns(pool, settlementpg.Config{
		Market:          settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900},
		ReadsTopic:      "ami.interval-reads",
		StatementsTopic: "settlement.statements",
		ChargesTopic:    "settlement.account-charges",
		Outbox:          outbox.NewWriter(map[string]int32{"settlement.statements": 2, "settlement.account-charges": 2}),
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// seedDay loads a small operating day with plain SQL: two participants at
// one point, 15-minute reads at 30 per MWh.
func seedDay(t *testing.T, s *testServer, kwh string) {
	t.Helper()
	for _, q := range []string{
		`INSERT INTO participants VALUES ('RET-A', 'A'), ('RET-B', 'B') ON CONFLICT DO NOTHING`,
		`INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub') ON CONFLICT DO NOTHING`,
		`INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-2', 'two') ON CONFLICT DO NOTHING`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 SELECT 'M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01Z' WHERE NOT EXISTS (SELECT 1 FROM meter_assignments)`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 SELECT 'M2', 'ACC-2', 'RET-B', 'HB_NORTH', 1, '2026-01-01Z' WHERE (SELECT count(*) FROM meter_assignments) = 1`,
		`INSERT INTO prices (market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset")
		 SELECT 'RT', 'HB_NORTH', t, 900, 30, 'USD', 1, 'market.prices', 0, 0
		 FROM generate_series(timestamptz '2026-11-01T05:00:00Z', '2026-11-02T05:45:00Z', interval '15 minutes') t
		 ON CONFLICT DO NOTHING`,
	} {
		if _, err := s.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := s.pool.Exec(t.Context(), `SELECT read_blocks_partition('2026-11-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"M1", "M2"} {
		// a read block of one value (migrations/00800_read_blocks.sql); a
		// second seed supersedes the first with the next version
		if _, err := s.pool.Exec(t.Context(), `
			INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, topic, partition, "offset")
			SELECT $1, 'import', '2026-11-01T05:00:00Z', 900,
			       coalesce((SELECT max(version) + 1 FROM read_versions
			                 WHERE meter_id = $1 AND channel = 'import' AND interval_start = '2026-11-01T05:00:00Z'), 1),
			       ARRAY[($2::numeric * 1000000)::bigint], 'ami.interval-reads', 0, 0`,
			m, kwh); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunsAndStatementsAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedDay(t, s, "1000")

	// only operators (and admins) start runs
	problem(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Analyst], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusForbidden)
	var r1 settlementpg.Run
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, &r1)
	if r1.RunID != "run-2026-11-01-initial-1" || r1.Status != "completed" || r1.Version != 1 || r1.FinishedAt == nil {
		t.Fatalf("run %+v", r1)
	}
	seedDay(t, s, "2000")
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO ingest_offsets (topic, partition, next_offset, records, applied, quarantined,
		reads_applied) VALUES ('ami.interval-reads', 0, 3, 2, 1, '{"unknown_meter": 1}', 4)`); err != nil {
		t.Fatal(err)
	}
	var r2 settlementpg.Run
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Admin], body: `{"operating_day":"2026-11-01","run_type":"final"}`}), http.StatusCreated, &r2)

	var raw map[string]any
	ok(t, s.do(req{method: "GET", path: "/api/v1/runs/" + r2.RunID, token: toks[Analyst]}), http.StatusOK, &raw)
	for _, f := range []string{"run_id", "operating_day", "run_type", "version", "status", "started_at", "finished_at", "lineage",
		"completeness"} {
		if _, has := raw[f]; !has {
			t.Errorf("run lacks %s: %v", f, raw)
		}
	}
	wantCompleteness := `{"inputs":[{"applied":1,"offset_through":2,"partition":0,"quarantined":{"unknown_meter":1},` +
		`"reads_applied":4,"reads_duplicate":0,"reads_stale":0,"records":2,"topic":"ami.interval-reads"}]}`
	if b, _ := json.Marshal(raw["completeness"]); string(b) != wantCompleteness {
		t.Errorf("completeness %s, want %s", b, wantCompleteness)
	}
	if _, has := raw["error"]; has {
		t.Errorf("a completed run carries an error: %v", raw)
	}
	problem(t, s.do(req{method: "GET", path: "/api/v1/runs/run-2026-11-01-final-9", token: toks[Analyst]}), http.StatusNotFound)

	var runs Page[settlementpg.Run]
	ok(t, s.do(req{method: "GET", path: "/api/v1/runs?operating_day=2026-11-01&limit=1", token: toks[Analyst]}), http.StatusOK, &runs)
	if len(runs.Items) != 1 || runs.Items[0].Version != 1 || runs.NextCursor == "" {
		t.Fatalf("first page %+v", runs)
	}
	ok(t, s.do(req{method: "GET", path: "/api/v1/runs?limit=1&cursor=" + runs.NextCursor, token: toks[Analyst]}), http.StatusOK, &runs)
	if len(runs.Items) != 1 || runs.Items[0].Version != 2 {
		t.Fatalf("second page %+v", runs)
	}

	// latest version by default: 2 MWh at 30 = 60.00, delta 30.00
	var lines Page[map[string]any]
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01&participant_id=RET-A", token: toks[Analyst]}), http.StatusOK, &lines)
	if len(lines.Items) != 1 {
		t.Fatalf("statements %+v", lines)
	}
	l := lines.Items[0]
	if l["statement_id"] != "HB_NORTH/RET-A/2026-11-01/2" || l["amount"] != "60.00" || l["previous_amount"] != "30.00" ||
		l["delta_amount"] != "30.00" || l["energy_mwh"] != "2.000000" || l["previous_version"] != 1.0 || l["intervals"] != 100.0 {
		t.Fatalf("statement %v", l)
	}
	reads, _ := l["reads"].(map[string]any)
	if len(l) != 21 || l["estimated_energy_mwh"] != "0.000000" || reads["gridsettle_estimated"] == nil {
		t.Errorf("statement has %d fields, meters/README.md has 21 (estimated_energy_mwh and reads.gridsettle_estimated among them): %v", len(l), l)
	}
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements?version=1", token: toks[Analyst]}), http.StatusOK, &lines)
	if len(lines.Items) != 2 || lines.Items[0]["amount"] != "30.00" || lines.Items[0]["previous_version"] != nil {
		t.Fatalf("version 1 %+v", lines)
	}
	// CSV has the same rows
	w := s.do(req{method: "GET", path: "/api/v1/statements?version=1", token: toks[Analyst], accept: "text/csv"})
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil || len(rows) != 3 || !strings.Contains(strings.Join(rows[0], ","), "reads.actual") {
		t.Fatalf("csv %q %v", w.Body.String(), err)
	}

	var charges Page[settlement.ChargeMessage]
	ok(t, s.do(req{method: "GET", path: "/api/v1/accounts/ACC-2/charges?from=2026-11-01&to=2026-11-01", token: toks[Analyst]}), http.StatusOK, &charges)
	if len(charges.Items) != 1 || charges.Items[0].EnergyCost != "60.00" || charges.Items[0].DeltaEnergyCost != "30.00" ||
		charges.Items[0].ImportKWh != "2000.000000" || charges.Items[0].ChargeID != "ACC-2/RET-B/2026-11-01/2" {
		t.Fatalf("charges %+v", charges)
	}

	// bad input is a 400 naming the parameter
	for _, c := range []struct{ method, path, body, param string }{
		{"POST", "/api/v1/runs", `{"operating_day":"2026-13-01","run_type":"initial"}`, "operating_day"},
		{"POST", "/api/v1/runs", `{"operating_day":"2026-11-01","run_type":"weekly"}`, "run_type"},
		{"POST", "/api/v1/runs", `{"run_type":"final"}`, "operating_day"},
		{"POST", "/api/v1/runs", `{"operating_day":"2026-11-01","run_type":"final","x":1}`, "x"},
		{"GET", "/api/v1/runs?operating_day=11/01/2026", "", "operating_day"},
		{"GET", "/api/v1/statements?version=0", "", "version"},
		{"GET", "/api/v1/statements?participant_id=bad%20id", "", "participant_id"},
		{"GET", "/api/v1/accounts/ACC-1/charges?from=2026-11-02&to=2026-11-01", "", "to"},
		{"GET", "/api/v1/ledger/balances?as_of=yesterday", "", "as_of"},
		{"GET", "/api/v1/ledger/entries?from=2026-11-31", "", "from"},
	} {
		p := problem(t, s.do(req{method: c.method, path: c.path, token: toks[Admin], body: c.body}), http.StatusBadRequest)
		if p.Parameter != c.param {
			t.Errorf("%s %s: parameter %q, want %q (%s)", c.method, c.path, p.Parameter, c.param, p.Detail)
		}
	}
}

func TestLedgerAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedDay(t, s, "1000")
	for _, typ := range []string{"initial", "final"} {
		if typ == "final" {
			seedDay(t, s, "1500")
		}
		ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"` + typ + `"}`}), http.StatusCreated, nil)
	}

	var bal Page[LedgerBalance]
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/balances", token: toks[Analyst]}), http.StatusOK, &bal)
	want := map[string]string{
		"participant:RET-A:energy_receivable":       "45.00",
		"participant:RET-B:energy_receivable":       "45.00",
		"settlement_point:HB_NORTH:energy_clearing": "-90.00",
	}
	if len(bal.Items) != len(want) {
		t.Fatalf("balances %+v", bal)
	}
	for _, b := range bal.Items {
		if want[b.Account] != b.Balance || b.Currency != "USD" {
			t.Errorf("balance %+v, want %s", b, want[b.Account])
		}
	}
	// as of a time before anything was posted
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/balances?account=participant:RET-A:energy_receivable&as_of=2026-01-01T00:00:00Z", token: toks[Analyst]}), http.StatusOK, &bal)
	if len(bal.Items) != 0 {
		t.Fatalf("balances before any posting %+v", bal)
	}

	var entries Page[LedgerEntry]
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/entries?account=participant:RET-A:energy_receivable&from=2026-11-01&to=2026-11-01", token: toks[Analyst]}), http.StatusOK, &entries)
	if len(entries.Items) != 2 || entries.Items[0].EntryKey != "HB_NORTH/RET-A/2026-11-01/1" || entries.Items[1].Lines[0].Amount != "15.00" ||
		entries.Items[1].Lines[1].Amount != "-15.00" || entries.Items[1].Lines[1].Account != "settlement_point:HB_NORTH:energy_clearing" ||
		entries.Items[1].PrevHash == "" || len(entries.Items[1].Hash) != 64 || entries.Items[1].Lines[0].OperatingDay != "2026-11-01" {
		t.Fatalf("entries %+v", entries)
	}

	var rep map[string]any
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/verify", token: toks[Analyst]}), http.StatusOK, &rep)
	if b, _ := json.Marshal(rep); string(b) != `{"entries_checked":4,"ok":true}` {
		t.Fatalf("verify %s", b)
	}
	// a superuser's edit is named
	err := pgx.BeginFunc(t.Context(), s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), `UPDATE journal_lines SET account = 'participant:RET-C:energy_receivable'
			WHERE entry_id = $1 AND line_no = 1`, entries.Items[1].EntryID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var bad ledgerpg.Report
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/verify", token: toks[Analyst]}), http.StatusOK, &bad)
	if bad.OK || bad.FirstBadEntry == nil || bad.FirstBadEntry.EntryID != entries.Items[1].EntryID {
		t.Fatalf("verify after tampering %+v", bad)
	}
}

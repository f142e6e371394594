package api

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// seedEstimates stores a completed run of 2026-11-01 and its estimates as
// the runs would have (the estimates' rows straight into run_estimates):
// two meters, both channels, the three methods.
func seedEstimates(t *testing.T, s *testServer) string {
	t.Helper()
	const run = "run-2026-11-01-initial-1"
	for _, q := range []string{
		`INSERT INTO runs (run_id, operating_day, run_type, version, status, started_at, finished_at, computed_at)
		 VALUES ('` + run + `', '2026-11-01', 'initial', 1, 'completed', '2026-11-06T06:00:00Z', '2026-11-06T06:00:01Z', '2026-11-06T06:00:00Z')`,
		`INSERT INTO run_estimates (run_id, meter_id, channel, interval_start, interval_seconds, value_kwh, method, account_id,
		     participant_id, settlement_point, loss_factor)
		 VALUES ('` + run + `', 'M2', 'import', '2026-11-01T06:00:00Z', 900, 0, 'ZER', 'ACC-2', 'RET-B', 'HB_NORTH', 1),
		        ('` + run + `', 'M1', 'import', '2026-11-01T05:30:00Z', 900, 1.5, 'LIN', 'ACC-1', 'RET-A', 'HB_NORTH', 1.0312),
		        ('` + run + `', 'M1', 'import', '2026-11-01T05:15:00Z', 900, 1.25, 'LIN', 'ACC-1', 'RET-A', 'HB_NORTH', 1.0312),
		        ('` + run + `', 'M1', 'export', '2026-11-01T05:00:00Z', 3600, 0.000001, 'LDY', 'ACC-1', 'RET-A', 'HB_NORTH', 1.0312),
		        ('` + run + `', 'M1', 'import', '2026-11-01T07:00:00Z', 900, 2.123456, 'LDY', 'ACC-1', 'RET-A', 'HB_NORTH', 1.0312)`,
	} {
		if _, err := s.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return run
}

// TestRunEstimates: a run's estimates in the order of estimates.parquet
// (meter, channel, interval start) with decimals at its scale, filtered by
// meter and method, paged with a cursor; an unknown run is a 404, a run
// without estimates an empty list; regulators may not read them.
func TestRunEstimates(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	run := seedEstimates(t, s)
	path := "/api/v1/runs/" + run + "/estimates"

	var all Page[Estimate]
	ok(t, s.do(req{method: "GET", path: path, token: toks[Analyst]}), http.StatusOK, &all)
	var got []string
	for _, e := range all.Items {
		got = append(got, e.MeterID+" "+e.Channel+" "+e.IntervalStart.Format("15:04")+" "+e.Method+" "+e.ValueKWh)
	}
	want := []string{
		"M1 export 05:00 LDY 0.000001",
		"M1 import 05:15 LIN 1.250000",
		"M1 import 05:30 LIN 1.500000",
		"M1 import 07:00 LDY 2.123456",
		"M2 import 06:00 ZER 0.000000",
	}
	if !slices.Equal(got, want) || all.NextCursor != "" {
		t.Fatalf("estimates %q (next %q), want %q", got, all.NextCursor, want)
	}
	if e := all.Items[0]; e.IntervalSeconds != 3600 || e.AccountID != "ACC-1" || e.ParticipantID != "RET-A" ||
		e.SettlementPoint != "HB_NORTH" || e.LossFactor != "1.031200" || e.IntervalStart.Location().String() != "UTC" {
		t.Fatalf("estimate %+v", e)
	}

	for _, tc := range []struct {
		query string
		n     int
	}{
		{"meter_id=M1", 4}, {"meter_id=M2", 1}, {"method=LIN", 2}, {"method=ZER", 1},
		{"meter_id=M1&method=LDY", 2}, {"meter_id=M2&method=LIN", 0}, {"meter_id=M404", 0},
	} {
		var page Page[Estimate]
		ok(t, s.do(req{method: "GET", path: path + "?" + tc.query, token: toks[Analyst]}), http.StatusOK, &page)
		if len(page.Items) != tc.n {
			t.Errorf("%s: %d estimates, want %d", tc.query, len(page.Items), tc.n)
		}
		for _, e := range page.Items {
			if q, _ := url.ParseQuery(tc.query); (q.Has("meter_id") && e.MeterID != q.Get("meter_id")) || (q.Has("method") && e.Method != q.Get("method")) {
				t.Errorf("%s: %+v", tc.query, e)
			}
		}
	}

	// Pages of two give the whole list, in order.
	var paged []Estimate
	for cursor, pages := "", 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		var page Page[Estimate]
		p := path + "?limit=2"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		ok(t, s.do(req{method: "GET", path: p, token: toks[Analyst]}), http.StatusOK, &page)
		paged = append(paged, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, all.Items) {
		t.Fatalf("paged %+v, want %+v", paged, all.Items)
	}

	// CSV, as every list.
	w := s.do(req{method: "GET", path: path + "?method=ZER", token: toks[Analyst], accept: "text/csv"})
	mustStatus(t, w, http.StatusOK)
	if body := w.Body.String(); !strings.HasPrefix(body, "meter_id,channel,interval_start,interval_seconds,value_kwh,method,account_id,participant_id,settlement_point,loss_factor\n") ||
		!strings.Contains(body, "M2,import,2026-11-01T06:00:00Z,900,0.000000,ZER,ACC-2,RET-B,HB_NORTH,1.000000") {
		t.Fatalf("csv:\n%s", body)
	}

	problem(t, s.do(req{method: "GET", path: "/api/v1/runs/run-2026-11-02-initial-1/estimates", token: toks[Analyst]}), http.StatusNotFound)
	problem(t, s.do(req{method: "GET", path: path, token: toks[Regulator]}), http.StatusForbidden)
	problem(t, s.do(req{method: "GET", path: path}), http.StatusUnauthorized)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO runs (run_id, operating_day, run_type, version, status, started_at, finished_at, computed_at)
		VALUES ('run-2026-11-01-final-2', '2026-11-01', 'final', 2, 'completed', '2026-12-26T06:00:00Z', '2026-12-26T06:00:01Z', '2026-12-26T06:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	var none Page[Estimate]
	ok(t, s.do(req{method: "GET", path: "/api/v1/runs/run-2026-11-01-final-2/estimates", token: toks[Analyst]}), http.StatusOK, &none)
	if len(none.Items) != 0 {
		t.Fatalf("estimates of a run that made none: %+v", none.Items)
	}
}

// TestRunEstimatesHostileInput: whatever a client puts in the path or the
// query is a 400 that names the parameter, or an empty list; never a 500,
// and the database is what it was.
func TestRunEstimatesHostileInput(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	run := seedEstimates(t, s)
	path := "/api/v1/runs/" + run + "/estimates"
	cursor := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	for _, tc := range []struct {
		name, path, param string
	}{
		{"method not of the contract", path + "?method=AVG", "method"},
		{"method in lower case", path + "?method=lin", "method"},
		{"method as SQL", path + "?method=" + url.QueryEscape("LIN' OR '1'='1"), "method"},
		{"method twice", path + "?method=LIN&method=LDY", "method"},
		{"empty meter list", path + "?meter_id=M1,M2", "meter_id"},
		{"meter of 65 characters", path + "?meter_id=" + strings.Repeat("M", 65), "meter_id"},
		{"meter of 1 MB", path + "?meter_id=" + strings.Repeat("M", 1<<20), "meter_id"},
		{"meter in unicode", path + "?meter_id=" + url.QueryEscape("Zähler-1"), "meter_id"},
		{"meter with an emoji", path + "?meter_id=" + url.QueryEscape("M1⚡"), "meter_id"},
		{"meter as SQL", path + "?meter_id=" + url.QueryEscape("M1' OR '1'='1"), "meter_id"},
		{"meter dropping a table", path + "?meter_id=" + url.QueryEscape("M1; DROP TABLE run_estimates;--"), "meter_id"},
		{"meter with NUL", path + "?meter_id=M1%00", "meter_id"},
		{"meter not UTF-8", path + "?meter_id=M%ff%fe", "meter_id"},
		{"meter twice", path + "?meter_id=M1&meter_id=M2", "meter_id"},
		{"unknown parameter", path + "?meter=M1", "meter"},
		{"unknown parameter as SQL", path + "?" + url.QueryEscape("1=1;--") + "=x", ""},
		{"limit of 0", path + "?limit=0", "limit"},
		{"limit above the cap", path + "?limit=1001", "limit"},
		{"limit not a number", path + "?limit=1e3", "limit"},
		{"cursor not base64", path + "?cursor=%25%25", "cursor"},
		{"cursor of another list", path + "?cursor=" + cursor(`{"seq":1}`), "cursor"},
		{"cursor with a bad instant", path + "?cursor=" + cursor(`{"meter_id":"M1","channel":"import","interval_start":"soon"}`), "cursor"},
		{"cursor with NUL", path + "?cursor=" + cursor(`{"meter_id":"M1\u0000","channel":"import","interval_start":"2026-11-01T05:00:00Z"}`), "cursor"},
		{"run as SQL", "/api/v1/runs/" + url.PathEscape("run' OR '1'='1") + "/estimates", "run_id"},
		{"run of 1 MB", "/api/v1/runs/" + strings.Repeat("r", 1<<20) + "/estimates", "run_id"},
		{"run in unicode", "/api/v1/runs/" + url.PathEscape("läuft-1") + "/estimates", "run_id"},
		{"run with NUL", "/api/v1/runs/run%00/estimates", "run_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := problem(t, s.do(req{method: "GET", path: tc.path, token: tok}), http.StatusBadRequest)
			if tc.param != "" && p.Parameter != tc.param {
				t.Fatalf("problem names %q, want %q: %+v", p.Parameter, tc.param, p)
			}
		})
	}
	// Well-formed but matching nothing: empty lists, even from a cursor
	// past every key.
	for _, p := range []string{
		path + "?meter_id=" + url.QueryEscape("M1:OR:1.1--"),
		path + "?meter_id=" + strings.Repeat("9", 64),
		path + "?cursor=" + cursor(`{"meter_id":"`+strings.Repeat("z", 64)+`","channel":"import","interval_start":"2026-11-01T05:00:00Z"}`),
		path + "?cursor=" + cursor(`{"meter_id":"Zähler' OR 1=1--","channel":"☃","interval_start":"9999-12-31T23:59:59Z"}`),
	} {
		var page Page[Estimate]
		ok(t, s.do(req{method: "GET", path: p, token: tok}), http.StatusOK, &page)
		if len(page.Items) != 0 {
			t.Errorf("%.120s: %d estimates", p, len(page.Items))
		}
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM run_estimates`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("run_estimates holds %d rows (%v), want the 5 seeded", n, err)
	}
}

// TestStatementIntervalsShowEstimates: a line's intervals carry the estimate
// figures the run stored (estimated_energy_mwh exact, at intervals.parquet's
// scale, and gridsettle_estimated_reads).
func TestStatementIntervalsShowEstimates(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedVariedDay(t, s, "0.125")
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, nil)
	if _, err := s.pool.Exec(t.Context(), `UPDATE run_intervals SET estimated_energy_mwh = 0.000123456789012345, gridsettle_estimated_reads = 2
		WHERE participant_id = 'RET-A' AND interval_start = '2026-11-01T05:15:00Z'`); err != nil {
		t.Fatal(err)
	}
	var page Page[StatementInterval]
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements/HB_NORTH%2FRET-A%2F2026-11-01%2F1/intervals?limit=3", token: toks[Analyst]}), http.StatusOK, &page)
	if len(page.Items) != 3 {
		t.Fatalf("%d intervals", len(page.Items))
	}
	for _, i := range page.Items {
		wantMWh, wantReads := "0.000000000000000000", int32(0)
		if i.SettlementInterval.Format("15:04") == "05:15" {
			wantMWh, wantReads = "0.000123456789012345", 2
		}
		if i.EstimatedEnergyMWh != wantMWh || i.GridsettleEstimatedReads != wantReads {
			t.Errorf("interval %+v: want estimated_energy_mwh %s, gridsettle_estimated_reads %d", i, wantMWh, wantReads)
		}
	}
}

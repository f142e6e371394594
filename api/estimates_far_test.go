package api

import (
	"net/http"
	"strings"
	"testing"

	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// TestRunOfAFarDayEstimates: a run of operating day 9999-12-30 (its
// estimation window reaching into year 10000) or 0001-01-01 completes, and
// its estimates list: the open assignments cover the former, so every
// channel interval of it is estimated (ZER, no read anywhere near), and no
// assignment covers the latter. 9999-12-31 in America/Chicago ends in year
// 10000, which no RFC 3339 instant can write: a 400, not a run whose
// figures could never be served.
func TestRunOfAFarDayEstimates(t *testing.T) {
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedDay(t, s, "1")
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO channel_lengths (meter_id, channel, interval_seconds)
		VALUES ('M1', 'import', 900), ('M2', 'import', 3600) ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		day       string
		estimates int
	}{{"9999-12-30", 96 + 24}, {"0001-01-01", 0}} {
		var run settlementpg.Run
		ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator],
			body: `{"operating_day":"` + c.day + `","run_type":"initial"}`}), http.StatusCreated, &run)
		if run.Status != settlementpg.Completed {
			t.Fatalf("%s: run %+v", c.day, run)
		}
		var page Page[Estimate]
		ok(t, s.do(req{method: "GET", path: "/api/v1/runs/" + run.RunID + "/estimates?limit=1000", token: toks[Analyst]}), http.StatusOK, &page)
		zer := 0
		for _, e := range page.Items {
			if e.Method == "ZER" {
				zer++
			}
		}
		if len(page.Items) != c.estimates || zer != c.estimates {
			t.Errorf("%s: %d estimates (%d ZER), want %d, all ZER", c.day, len(page.Items), zer, c.estimates)
		}
	}
	rec := s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"9999-12-31","run_type":"initial"}`})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "operating_day") {
		t.Errorf("9999-12-31: %d %s, want a 400 naming operating_day", rec.Code, rec.Body)
	}
}

package api

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
)

func init() {
	testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes { return IntervalRoutes{Pool: pool} })
}

// TestStatementIntervalsEqualExport: every line's intervals, read a page
// at a time, are exactly the rows of the export's intervals.parquet for
// that line (the fall-back day: 100 settlement intervals, negative and
// missing prices); an unknown line is a 404.
func TestStatementIntervalsEqualExport(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedVariedDay(t, s, "0.125")
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, nil)
	ok(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Operator],
		body: `{"operating_day":"2026-11-01","run_type":"initial","version":1}`}), http.StatusCreated, nil)
	w := s.do(req{method: "GET", path: "/api/v1/exports/export-2026-11-01-initial-v1/files/intervals.parquet", token: toks[Regulator]})
	if w.Code != http.StatusOK {
		t.Fatalf("intervals.parquet: %d %s", w.Code, w.Body)
	}
	file := w.Body.Bytes()
	want := map[[2]string][]StatementInterval{}
	if _, err := parquet.ReadIntervals(t.Context(), bytes.NewReader(file), int64(len(file)), parquet.LayoutV2, func(i parquet.Interval) error {
		k := [2]string{i.SettlementPoint, i.ParticipantID}
		want[k] = append(want[k], statementInterval(i))
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var lines Page[settlement.StatementMessage]
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]}), http.StatusOK, &lines)
	if len(lines.Items) != 2 || len(want) != 2 {
		t.Fatalf("%d lines, %d lines in the file", len(lines.Items), len(want))
	}
	for _, l := range lines.Items {
		var got []StatementInterval
		for cursor := ""; ; {
			var page Page[StatementInterval]
			path := "/api/v1/statements/" + url.PathEscape(l.StatementID) + "/intervals?limit=40"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			ok(t, s.do(req{method: "GET", path: path, token: toks[Analyst]}), http.StatusOK, &page)
			got = append(got, page.Items...)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		w := want[[2]string{l.SettlementPoint, l.ParticipantID}]
		if len(got) != 100 || len(w) != 100 {
			t.Fatalf("%s: %d intervals, %d in the file; want 100", l.StatementID, len(got), len(w))
		}
		unpriced, negative := 0, 0
		for i := range got {
			g, x := got[i], w[i]
			if !g.SettlementInterval.Equal(x.SettlementInterval) || g.EnergyMWh != x.EnergyMWh || !eqPtr(g.Price, x.Price) ||
				!eqPtr(g.Amount, x.Amount) || g.ActualReads != x.ActualReads || g.EstimatedReads != x.EstimatedReads {
				t.Fatalf("%s interval %d: API %+v, file %+v", l.StatementID, i, g, x)
			}
			if g.Price == nil {
				unpriced++
			} else if (*g.Price)[0] == '-' {
				negative++
			}
		}
		if unpriced != 1 || negative == 0 {
			t.Errorf("%s: %d unpriced, %d negative prices; the fixture has one unpriced and some negative", l.StatementID, unpriced, negative)
		}
	}
	// The unencoded form of a statement_id is the same line.
	id := lines.Items[0].StatementID
	var encoded, plain Page[StatementInterval]
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements/" + url.PathEscape(id) + "/intervals", token: toks[Analyst]}), http.StatusOK, &encoded)
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements/" + id + "/intervals", token: toks[Analyst]}), http.StatusOK, &plain)
	if len(plain.Items) != 100 || !slices.EqualFunc(plain.Items, encoded.Items, func(a, b StatementInterval) bool { return a.EnergyMWh == b.EnergyMWh }) {
		t.Errorf("unencoded id: %d intervals, encoded %d", len(plain.Items), len(encoded.Items))
	}
	problem(t, s.do(req{method: "GET", path: "/api/v1/statements/" + url.PathEscape("HB_NORTH/RET-A/2026-11-01/9") + "/intervals", token: toks[Analyst]}), http.StatusNotFound)
	problem(t, s.do(req{method: "GET", path: "/api/v1/statements/HB_NORTH/RET-A/2026-11-01/9/intervals", token: toks[Analyst]}), http.StatusNotFound)
	problem(t, s.do(req{method: "GET", path: "/api/v1/statements/a%FF%00/intervals", token: toks[Analyst]}), http.StatusBadRequest)
}

func eqPtr(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

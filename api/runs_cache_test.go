package api

import (
	"net/http"
	"testing"
)

// A cached statements page is answered again byte for byte, and a run that
// completes afterwards is seen at once: the latest version moves to it.
func TestStatementPagesFollowCompletedRuns(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedDay(t, s, "1000")
	start := func(runType string) {
		w := s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator],
			body: `{"operating_day":"2026-11-01","run_type":"` + runType + `"}`})
		if w.Code != http.StatusCreated {
			t.Fatalf("start %s: %d %s", runType, w.Code, w.Body)
		}
	}
	page := func() Page[map[string]any] {
		var p Page[map[string]any]
		ok(t, s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]}), http.StatusOK, &p)
		return p
	}
	start("initial")
	first := s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]}).Body.String()
	again := s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]}).Body.String()
	if first != again {
		t.Fatalf("the same page answered differently:\n%s\n%s", first, again)
	}
	if p := page(); len(p.Items) != 2 || p.Items[0]["version"] != 1.0 || p.Items[0]["amount"] != "30.00" {
		t.Fatalf("version 1 page %+v", p)
	}
	seedDay(t, s, "2000")
	start("final")
	if p := page(); len(p.Items) != 2 || p.Items[0]["version"] != 2.0 || p.Items[0]["amount"] != "60.00" {
		t.Fatalf("after the final run, page %+v", p)
	}
}

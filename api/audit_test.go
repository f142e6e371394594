package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// auditEntries is the whole audit log, oldest first.
func (s *testServer) auditEntries() []AuditEntry {
	s.t.Helper()
	var page Page[AuditEntry]
	ok(s.t, s.do(req{method: "GET", path: "/api/v1/audit?limit=1000", token: testAdminToken}), 200, &page)
	return page.Items
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op, an := s.token(Operator), s.token(Analyst)
	start := time.Now().UTC().Add(-time.Second)

	hr := httptest.NewRequestWithContext(t.Context(), "POST", "/api/v1/participants", strings.NewReader(`[{"participant_id":"P1","name":"One"}]`))
	hr.Header.Set("Authorization", "Bearer "+op)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(HeaderRequestID, "gateway-1234abcd")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, hr)
	mustStatus(t, w, 200)
	serverID := w.Header().Get(HeaderRequestID)

	// Refused before a handler ran, or matching no route: no row, whatever
	// the caller sends.
	long := strings.Repeat("x", 100_000)
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants", token: an, body: `[{"participant_id":"P2","name":"Two"}]`}), 403)
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants?" + long, body: `[]`}), 401)
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants", token: "gs_unknown", body: `[]`}), 401)
	problem(t, s.do(req{method: "POST", path: "/api/v1/no-such-route/" + long, token: op, body: `[]`}), 404)
	problem(t, s.do(req{method: "DELETE", path: "/api/v1/" + long}), 404)
	problem(t, s.do(req{method: "DELETE", path: "/api/v1/tokens/tok_nothere", token: testAdminToken}), 404)
	mustStatus(t, s.do(req{method: "GET", path: "/api/v1/participants", token: an}), 200) // reads are not audited

	// An authenticated call of a route that is refused for its input is
	// kept, with its detail, and a path cut to 2,048 bytes at a character
	// boundary (the query's é are 2 bytes each; the odd prefix puts the
	// cut inside one).
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants?a=" + strings.Repeat("é", 5000), token: op, body: `[]`}), 400)

	// Token management records the token and role it changed.
	var created NewToken
	ok(t, s.do(req{method: "POST", path: "/api/v1/tokens", token: testAdminToken, body: `{"role":"regulator","name":"auditor"}`}), 201, &created)
	mustStatus(t, s.do(req{method: "DELETE", path: "/api/v1/tokens/" + created.ID, token: testAdminToken}), 204)

	entries := s.auditEntries()
	if len(entries) != 4 {
		t.Fatalf("audit has %d entries, want 4: %+v", len(entries), entries)
	}
	e := entries[0]
	if e.TokenName == nil || *e.TokenName != "test operator" || e.Role == nil || *e.Role != "operator" ||
		e.Method != "POST" || e.Path != "/api/v1/participants" || e.Route != "/api/v1/participants" ||
		e.Status != 200 || e.At.Before(start) || e.Action != "wrote participants: 1 rows (1 inserted, 0 updated, 0 unchanged)" {
		t.Errorf("first entry %+v", e)
	}
	if e.RequestID != serverID || e.ClientRequestID == nil || *e.ClientRequestID != "gateway-1234abcd" {
		t.Errorf("request ids: stored %q and %v, answered %q", e.RequestID, e.ClientRequestID, serverID)
	}
	if e := entries[1]; e.Status != 400 || e.Action != "" || e.Detail == "" || e.TokenID == nil ||
		len(e.Path) > maxAuditPath || len(e.Path) < maxAuditPath-3 || !utf8.ValidString(e.Path) {
		t.Errorf("refused entry: status %d action %q detail %q, path of %d bytes (valid %t)",
			e.Status, e.Action, e.Detail, len(e.Path), utf8.ValidString(e.Path))
	}
	if e := entries[2]; e.Status != 201 || e.Action != "created token "+created.ID+" (role regulator)" ||
		e.TokenID == nil || *e.TokenID != AdminTokenID {
		t.Errorf("token creation entry %+v", e)
	}
	if e := entries[3]; e.Status != 204 || e.Action != "revoked token "+created.ID+" (role regulator)" {
		t.Errorf("token revocation entry %+v", e)
	}

	// Filters: actor by name or id, and a time range.
	var page Page[AuditEntry]
	ok(t, s.do(req{method: "GET", path: "/api/v1/audit?actor=test+operator", token: testAdminToken}), 200, &page)
	if len(page.Items) != 2 {
		t.Errorf("actor filter: %+v", page.Items)
	}
	ok(t, s.do(req{method: "GET", path: "/api/v1/audit?to=" + start.Format(time.RFC3339), token: testAdminToken}), 200, &page)
	if len(page.Items) != 0 {
		t.Errorf("to filter: %+v", page.Items)
	}

	// Append-only, enforced by the database.
	for _, sql := range []string{`UPDATE api_audit SET status = 200`, `DELETE FROM api_audit`, `TRUNCATE api_audit`} {
		if _, err := s.pool.Exec(t.Context(), sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused", sql, err)
		}
	}
}

// breakAudit makes every insert into api_audit fail, as a full disk or a
// lost privilege would.
func breakAudit(t *testing.T, s *testServer) {
	t.Helper()
	for _, sql := range []string{
		`CREATE FUNCTION test_audit_broken() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'audit unavailable'; END $$`,
		`CREATE TRIGGER test_audit_broken BEFORE INSERT ON api_audit FOR EACH ROW EXECUTE FUNCTION test_audit_broken()`,
	} {
		if _, err := s.pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNoChangeWithoutItsAuditRow: when the audit row cannot be written, the
// change it records does not happen either.
func TestNoChangeWithoutItsAuditRow(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op := s.token(Operator)
	breakAudit(t, s)
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants", token: op, body: `[{"participant_id":"P1","name":"One"}]`}), 500)
	problem(t, s.do(req{method: "POST", path: "/api/v1/tokens", token: testAdminToken, body: `{"role":"admin","name":"sneaky"}`}), 500)
	problem(t, s.do(req{method: "POST", path: "/api/v1/runs", token: op, body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), 500)
	var participants, tokens, runs int
	if err := s.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM participants), (SELECT count(*) FROM api_tokens WHERE name = 'sneaky'),
		(SELECT count(*) FROM runs)`).Scan(&participants, &tokens, &runs); err != nil {
		t.Fatal(err)
	}
	if participants != 0 || tokens != 0 || runs != 0 {
		t.Errorf("changes without their audit rows: %d participants, %d tokens, %d runs", participants, tokens, runs)
	}
}

// TestMetricsLabelsAreBounded: made-up methods and paths do not grow
// /metrics (api/README.md "Safe under abuse").
func TestMetricsLabelsAreBounded(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	size := func() int {
		w := s.do(req{method: "GET", path: "/metrics"})
		mustStatus(t, w, 200)
		return w.Body.Len()
	}
	// Every label value the flood will use, once, so that the baseline
	// already holds their series.
	s.do(req{method: "BREW", path: "/warmup"})
	before := size()
	for i := range 40 {
		method := strings.Repeat(string(rune('A'+i%26)), 20_000)
		w := httptest.NewRecorder()
		hr := httptest.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("/%s/%d", strings.Repeat("p", i+1), time.Now().UnixNano()), nil)
		hr.Method = method
		s.Handler().ServeHTTP(w, hr)
		if w.Code < 400 {
			t.Fatalf("made-up method answered %d", w.Code)
		}
	}
	after := size()
	if after-before >= 100_000 {
		t.Errorf("/metrics grew by %d bytes after 40 made-up requests", after-before)
	}
	body := s.do(req{method: "GET", path: "/metrics"}).Body.String()
	if !strings.Contains(body, `method="OTHER"`) || !strings.Contains(body, `route="unmatched"`) || strings.Contains(body, "AAAA") {
		t.Errorf("labels are not the fixed sets:\n%s", grepLines(body, "gridsettle_http_requests_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStatementTimeoutIs503: a query cut by the API pool's statement
// timeout is the server being busy, not the client's fault nor a defect.
func TestStatementTimeoutIs503(t *testing.T) {
	t.Parallel()
	var s *testServer
	s = newTestServer(t, nil, RouteList{{Method: "GET", Path: "/api/v1/test/slow", Roles: Everyone, Summary: "slow",
		Response: JSONBody(Health{}), Handler: func(c echo.Context) error {
			return pgx.BeginFunc(c.Request().Context(), s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(c.Request().Context(), `SET LOCAL statement_timeout = 50`); err != nil {
					return err
				}
				_, err := tx.Exec(c.Request().Context(), `SELECT pg_sleep(2)`)
				return fmt.Errorf("slow query: %w", err)
			})
		}}})
	p := problem(t, s.do(req{method: "GET", path: "/api/v1/test/slow", token: testAdminToken}), http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "statement timeout") {
		t.Errorf("detail %q", p.Detail)
	}
}

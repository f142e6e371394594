package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/gridsettle/gridsettle/settlement/alerts"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// The committed document, api/openapi.json, is what the server serves, byte
// for byte. After changing a route or a body type, regenerate it with
//
//	go test ./api -run TestOpenAPIGolden -update
var updateOpenAPI = flag.Bool("update", false, "rewrite api/openapi.json with the document the server serves")

const openAPIFile = "openapi.json"

// TestOpenAPIGolden: the document is served without a token, equals
// api/openapi.json, and is a valid OpenAPI 3.1 document for a standard
// validator (pb33f/libopenapi-validator checks it against the
// specification's own JSON Schema) with named component schemas.
func TestOpenAPIGolden(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	w := s.do(req{method: http.MethodGet, path: "/api/v1/openapi.json"})
	mustStatus(t, w, http.StatusOK)
	served := w.Body.Bytes()
	if *updateOpenAPI {
		if err := os.WriteFile(openAPIFile, served, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./api -run TestOpenAPIGolden -update", err)
	}
	if !bytes.Equal(served, file) {
		t.Fatalf("the served document differs from api/openapi.json at %s; regenerate it with: go test ./api -run TestOpenAPIGolden -update",
			firstDifference(served, file))
	}
	v := openAPIValidator(t)
	if valid, errs := v.ValidateDocument(); !valid {
		for _, e := range errs {
			t.Errorf("not valid OpenAPI 3.1: %s", e.Error())
		}
	}
	for _, name := range []string{"Problem", "Run", "StatementLine", "AccountCharge", "QuarantineItem", "Read", "Price",
		"Position", "Token", "NewToken", "Alert", "Export", "StatementLinePage", "LedgerVerification"} {
		if !bytes.Contains(file, []byte(`"$ref": "#/components/schemas/`+name+`"`)) {
			t.Errorf("no reference to the component schema %s", name)
		}
	}
}

func firstDifference(a, b []byte) string {
	line := 1
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("line %d", line)
		}
		if a[i] == '\n' {
			line++
		}
	}
	return fmt.Sprintf("line %d (one is longer)", line)
}

// openAPIValidator is a validator of answers against api/openapi.json,
// built once per test binary (building it compiles every schema).
var openAPIValidator = func() func(t *testing.T) validator.Validator {
	var (
		once sync.Once
		v    validator.Validator
		err  error
	)
	return func(t *testing.T) validator.Validator {
		t.Helper()
		once.Do(func() {
			var b []byte
			if b, err = os.ReadFile(openAPIFile); err != nil {
				return
			}
			doc, derr := libopenapi.NewDocument(b)
			if derr != nil {
				err = derr
				return
			}
			var errs []error
			if v, errs = validator.NewValidator(doc); len(errs) > 0 {
				err = errors.Join(errs...)
			}
		})
		if err != nil {
			t.Fatalf("load api/openapi.json: %v", err)
		}
		return v
	}
}()

// answerChecker sends requests to a test server and validates every answer
// (status, content type, headers, body) against api/openapi.json, noting
// which kinds of answer each route gave.
type answerChecker struct {
	t      *testing.T
	s      *testServer
	v      validator.Validator
	mu     sync.Mutex
	routes map[string]*Route
	seen   map[string]map[string]bool // route → answer kinds: ok, csv, problem, 304, gzip
}

// check sends r, which must be answered with want, to the route named
// "METHOD /path/{template}", validates the answer and returns it.
func (a *answerChecker) check(route string, r req, want int, headers ...string) *httptest.ResponseRecorder {
	a.t.Helper()
	if a.routes[route] == nil {
		a.t.Fatalf("no route %s", route)
	}
	hr := withHeaders(a.s.request(r), headers...)
	w := a.s.send(hr)
	if w.Code != want {
		a.t.Errorf("%s %s: status %d, want %d (%.300s)", r.method, r.path, w.Code, want, w.Body)
		return w
	}
	res := w.Result()
	kind := "ok"
	switch {
	case res.StatusCode == http.StatusNotModified:
		kind = "304"
	case res.StatusCode >= 400:
		kind = "problem"
	case res.Header.Get("Content-Encoding") == "gzip":
		kind = "gzip"
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			a.t.Fatalf("%s %s: gzip: %v", r.method, r.path, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			a.t.Fatalf("%s %s: gunzip: %v", r.method, r.path, err)
		}
		res.Header.Del("Content-Encoding")
		res.Body = io.NopCloser(bytes.NewReader(plain))
	case strings.HasPrefix(res.Header.Get("Content-Type"), MIMETextCSV):
		kind = "csv"
	}
	// The validator reads the request's path and method only: a fresh
	// request, since the server consumed the body.
	vr := httptest.NewRequestWithContext(a.t.Context(), r.method, r.path, nil)
	vr.Header = hr.Header.Clone()
	if valid, errs := a.v.ValidateHttpResponse(vr, res); !valid {
		for _, e := range errs {
			var why []string
			for _, se := range e.SchemaValidationErrors {
				why = append(why, se.FieldPath+": "+se.Reason)
			}
			a.t.Errorf("%s %s → %d: the answer does not match api/openapi.json: %s %v", r.method, r.path, w.Code, e.Message, why)
		}
		return w
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[route] == nil {
		a.seen[route] = map[string]bool{}
	}
	a.seen[route][kind] = true
	return w
}

// TestAnswersMatchOpenAPI drives every route of a server with real data in a
// real database and validates each answer against api/openapi.json: a
// success for every route, CSV for every list, an ETag 304 and a gzip
// answer where offered, and problem answers (401 for every protected
// route, 404 for every path parameter, 400 for every body and query
// parameter, 406, 409, 503). It fails for a route without a validated
// answer of each kind it offers, so a new route must be added here.
func TestAnswersMatchOpenAPI(t *testing.T) {
	t.Parallel()
	ready := true
	s := newTestServer(t, []Check{{Name: "kafka", Check: func(context.Context) error {
		if ready {
			return nil
		}
		return errors.New("down")
	}}})
	a := &answerChecker{t: t, s: s, v: openAPIValidator(t), routes: map[string]*Route{}, seen: map[string]map[string]bool{}}
	for i := range s.routes {
		r := &s.routes[i]
		a.routes[r.Method+" "+r.Path] = r
	}
	toks := s.tokens()
	an, op, reg, adm := toks[Analyst], toks[Operator], toks[Regulator], toks[Admin]

	// The data: a settled day, its export, alerts, quarantined input (one
	// replayable) and a refused output record.
	seedVariedDay(t, s, "0.125")
	seedAlerts(t, s, alerts.Alert{AlertID: "a-1", Type: alerts.PriceSpike, AccountID: "ACC-1", OperatingDay: "2026-11-01",
		EventTime: time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC), Message: "price spike"})
	ingestData(t, s.pool, []string{
		`{"meter_id":"M9","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"]}`,
		"\xff not json",
	}, nil)
	if _, err := s.pool.Exec(t.Context(), `
		INSERT INTO outbox_quarantine (topic, partition, seq, record_id, schema, key, value, headers, created_at, reason, detail)
		VALUES ('settlement.statements', 1, 4, 'line-1', 'gridsettle.statement/v1', 'P1', '{"a":1}', '[]', '2026-12-06T09:00:00Z', 'record_too_large', 'MESSAGE_TOO_LARGE')`); err != nil {
		t.Fatal(err)
	}

	get := func(route, path, tok string, want int) *httptest.ResponseRecorder {
		return a.check("GET "+route, req{method: http.MethodGet, path: path, token: tok}, want)
	}
	// Operational and framework routes.
	get("/healthz", "/healthz", "", 200)
	get("/readyz", "/readyz", "", 200)
	ready = false
	get("/readyz", "/readyz", "", 503)
	ready = true
	get("/metrics", "/metrics", "", 200)
	get("/api/v1/openapi.json", "/api/v1/openapi.json", "", 200)

	// Registry: JSON and CSV uploads, then the lists.
	post := func(route, body, contentType, tok string, want int) *httptest.ResponseRecorder {
		return a.check("POST "+route, req{method: http.MethodPost, path: route, token: tok, body: body, contentType: contentType}, want)
	}
	post("/api/v1/participants", `[{"participant_id":"RET-C","name":"C"}]`, "", op, 200)
	post("/api/v1/settlement-points", "settlement_point,name,kind\nHB_SOUTH,South,hub\n", "text/csv", op, 200)
	post("/api/v1/accounts", `[{"account_id":"ACC-9","name":"nine"}]`, "", op, 200)
	post("/api/v1/meters", `[{"meter_id":"M9","account_id":"ACC-9","participant_id":"RET-C","settlement_point":"HB_SOUTH","loss_factor":"1","effective_from":"2026-01-01T00:00:00Z"}]`, "", op, 200)
	post("/api/v1/meters", `[{"meter_id":"M9","account_id":"NOPE","participant_id":"RET-C","settlement_point":"HB_SOUTH","loss_factor":"1","effective_from":"2026-02-01T00:00:00Z"}]`, "", op, 400)
	post("/api/v1/participants", `<xml/>`, "application/xml", op, 415)
	for _, p := range []string{"/api/v1/participants", "/api/v1/settlement-points", "/api/v1/accounts", "/api/v1/meters"} {
		get(p, p, an, 200)
	}

	// Runs, statements, charges, ledger.
	var run settlementpg.Run
	ok(t, post("/api/v1/runs", `{"operating_day":"2026-11-01","run_type":"initial"}`, "", op, 201), 201, &run)
	post("/api/v1/runs", `{"operating_day":"2026-11-01","run_type":"sometime"}`, "", op, 400)
	get("/api/v1/runs", "/api/v1/runs?operating_day=2026-11-01", an, 200)
	get("/api/v1/runs/{run_id}", "/api/v1/runs/"+run.RunID, an, 200)
	// The run's estimates, stored as a run stores them (a meter the day's
	// run has no assignment for, so it cannot have estimated it itself).
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO run_estimates (run_id, meter_id, channel, interval_start, interval_seconds,
		value_kwh, method, account_id, participant_id, settlement_point, loss_factor)
		VALUES ($1, 'M-EST', 'import', '2026-11-01T05:00:00Z', 900, 1.5, 'LIN', 'ACC-1', 'RET-A', 'HB_NORTH', 1),
		       ($1, 'M-EST', 'export', '2026-11-01T06:00:00Z', 3600, 0, 'ZER', 'ACC-1', 'RET-A', 'HB_NORTH', 1)`, run.RunID); err != nil {
		t.Fatal(err)
	}
	if w := get("/api/v1/runs/{run_id}/estimates", "/api/v1/runs/"+run.RunID+"/estimates", an, 200); !strings.Contains(w.Body.String(), `"value_kwh":"1.500000"`) {
		t.Errorf("estimates: %s", w.Body)
	}
	get("/api/v1/runs/{run_id}/estimates", "/api/v1/runs/"+run.RunID+"/estimates?method=AVG", an, 400)
	get("/api/v1/statements", "/api/v1/statements?operating_day=2026-11-01", an, 200)
	get("/api/v1/statements", "/api/v1/statements?operating_day=2026-13-01", an, 400)
	const line = "HB_NORTH%2FRET-A%2F2026-11-01%2F1"
	get("/api/v1/statements/{statement_id}/intervals", "/api/v1/statements/"+line+"/intervals", an, 200)
	// Explaining rebuilds the runs' inputs from what ingest recorded,
	// which the day above, written with plain SQL, does not hold: a day
	// ingested as ingest does, on a server of its own.
	{
		xs := newTestServer(t, nil)
		xa := &answerChecker{t: t, s: xs, v: a.v, routes: a.routes, seen: a.seen}
		explain := "GET /api/v1/statements/{statement_id}/explain"
		path := "/api/v1/statements/" + url.PathEscape(seedExplainDays(t, xs, xs.tokens())) + "/explain"
		xan := xs.token(Analyst)
		xa.check(explain, req{method: http.MethodGet, path: path + "?limit=2", token: xan}, 200)
		xa.check(explain, req{method: http.MethodGet, path: path + "?against=-1", token: xan}, 400)
		xa.check(explain, req{method: http.MethodGet, path: path + "?limit=3", token: xan, accept: "text/csv;q=0.5, application/json;q=0.1"}, 200)
		xa.check(explain, req{method: http.MethodGet, path: path, token: xan, accept: "image/png"}, http.StatusNotAcceptable)
		tag := xa.check(explain, req{method: http.MethodGet, path: path, token: xan}, 200).Header().Get("ETag")
		xa.check(explain, req{method: http.MethodGet, path: path, token: xan}, http.StatusNotModified, "If-None-Match", tag)
	}
	get("/api/v1/accounts/{account_id}/charges", "/api/v1/accounts/ACC-1/charges?from=2026-11-01&to=2026-11-01", an, 200)
	get("/api/v1/ledger/balances", "/api/v1/ledger/balances", an, 200)
	get("/api/v1/ledger/entries", "/api/v1/ledger/entries", an, 200)
	get("/api/v1/ledger/verify", "/api/v1/ledger/verify", an, 200)

	// Exports: written, written again (200, identical), read, verified.
	post("/api/v1/exports", `{"operating_day":"2026-11-01","run_type":"initial","version":1}`, "", op, 201)
	post("/api/v1/exports", `{"operating_day":"2026-11-01","run_type":"initial","version":1}`, "", op, 200)
	post("/api/v1/exports", `{"operating_day":"2026-11-02","run_type":"initial","version":1}`, "", op, 404)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO runs (run_id, operating_day, run_type, version, status, error, started_at, finished_at)
		VALUES ('run-2026-11-01-final-2', '2026-11-01', 'final', 2, 'failed', 'boom', '2026-11-10T00:03:00Z', '2026-11-10T00:03:01Z')`); err != nil {
		t.Fatal(err)
	}
	post("/api/v1/exports", `{"operating_day":"2026-11-01","run_type":"final","version":2}`, "", op, 409)
	id := "export-2026-11-01-initial-v1"
	get("/api/v1/exports", "/api/v1/exports", reg, 200)
	get("/api/v1/exports/public-key", "/api/v1/exports/public-key", reg, 200)
	get("/api/v1/exports/{export_id}", "/api/v1/exports/"+id, reg, 200)
	get("/api/v1/exports/{export_id}/verify", "/api/v1/exports/"+id+"/verify", reg, 200)
	for _, name := range []string{"statements.parquet", "manifest.json", "manifest.json.sig", "signing-key.pub.pem"} {
		get("/api/v1/exports/{export_id}/files/{name}", "/api/v1/exports/"+id+"/files/"+name, reg, 200)
	}

	// Ingest: reads, prices, positions, quarantine and its replay, the
	// output quarantine, status.
	get("/api/v1/meters/{meter_id}/reads", "/api/v1/meters/M1/reads?from=2026-11-01T05:00:00Z", an, 200)
	get("/api/v1/meters/{meter_id}/reads", "/api/v1/meters/M1/reads?from=yesterday", an, 400)
	get("/api/v1/prices", "/api/v1/prices?settlement_point=HB_NORTH&market=RT", an, 200)
	// Every version: superseded reads and a corrected price, with superseded_by.
	seedReadVersions(t, s.pool, "M8")
	ingestData(t, s.pool, nil, []string{`{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":900,"price":"31","version":2}`})
	if w := get("/api/v1/meters/{meter_id}/reads", "/api/v1/meters/M8/reads?versions=all", an, 200); !strings.Contains(w.Body.String(), `"superseded_by":{`) {
		t.Errorf("no superseded read in %s", w.Body)
	}
	get("/api/v1/meters/{meter_id}/reads", "/api/v1/meters/M8/reads?versions=current", an, 200)
	a.check("GET /api/v1/meters/{meter_id}/reads", req{method: http.MethodGet, path: "/api/v1/meters/M8/reads?versions=all&limit=2", token: an, accept: "text/csv"}, 200)
	get("/api/v1/meters/{meter_id}/reads", "/api/v1/meters/M8/reads?versions=every", an, 400)
	if w := get("/api/v1/prices", "/api/v1/prices?settlement_point=HB_NORTH&market=RT&versions=all&limit=3", an, 200); !strings.Contains(w.Body.String(), `"superseded_by":{`) {
		t.Errorf("no superseded price in %s", w.Body)
	}
	a.check("GET /api/v1/prices", req{method: http.MethodGet, path: "/api/v1/prices?versions=all", token: an, accept: "text/csv"}, 200)
	get("/api/v1/prices", "/api/v1/prices?versions=every", an, 400)
	get("/api/v1/positions", "/api/v1/positions?operating_day=2026-11-01", an, 200)
	get("/api/v1/positions", "/api/v1/positions", an, 400)
	get("/api/v1/quarantine", "/api/v1/quarantine", an, 200)
	post("/api/v1/quarantine/replay", `{"reason":"unknown_meter"}`, "", op, 200)
	post("/api/v1/quarantine/replay", `{"reason":"malformed_json"}`, "", op, 400)
	get("/api/v1/outbox/quarantine", "/api/v1/outbox/quarantine", an, 200)
	get("/api/v1/status", "/api/v1/status", an, 200)
	get("/api/v1/alerts", "/api/v1/alerts?account_id=ACC-1", an, 200)

	// Message schemas.
	get("/api/v1/schemas", "/api/v1/schemas", an, 200)
	get("/api/v1/schemas/{name}", "/api/v1/schemas/settlement.statement%2Fv1", an, 200)
	get("/api/v1/schemas/{name}", "/api/v1/schemas/a%20b", an, 400)

	// Tokens and the audit log.
	var tok NewToken
	ok(t, post("/api/v1/tokens", `{"role":"analyst","name":"client"}`, "", adm, 201), 201, &tok)
	post("/api/v1/tokens", `{"role":"owner","name":"client"}`, "", adm, 400)
	get("/api/v1/tokens", "/api/v1/tokens", adm, 200)
	get("/api/v1/whoami", "/api/v1/whoami", reg, 200)
	a.check("DELETE /api/v1/tokens/{id}", req{method: http.MethodDelete, path: "/api/v1/tokens/" + tok.ID, token: adm}, 204)
	get("/api/v1/audit", "/api/v1/audit", adm, 200)

	// Every route: what the table above did not cover by itself.
	for key, r := range a.routes {
		path := fill(r.Path, "nonexistent")
		if !r.public {
			a.check(key, req{method: r.Method, path: path}, http.StatusUnauthorized)
		}
		if strings.Contains(r.Path, "{") && r.Method == http.MethodGet {
			// A 404, a 400 (a name outside an enum) or an empty list.
			a.check(key, req{method: r.Method, path: path, token: adm}, s.do(req{method: r.Method, path: path, token: adm}).Code)
		}
		if r.Response == nil || !r.Response.List {
			continue
		}
		listPath := strings.NewReplacer("{meter_id}", "M1", "{account_id}", "ACC-1", "{statement_id}", line, "{run_id}", run.RunID).Replace(r.Path)
		if r.Path == "/api/v1/positions" {
			listPath += "?operating_day=2026-11-01"
		}
		tok := adm
		a.check(key, req{method: r.Method, path: listPath, token: tok, accept: "text/csv;q=0.5, application/json;q=0.1"}, 200)
		a.check(key, req{method: r.Method, path: listPath, token: tok, accept: "image/png"}, http.StatusNotAcceptable)
		a.check(key, req{method: r.Method, path: listPath + sep(listPath) + "limit=0", token: tok}, http.StatusBadRequest)
	}
	for key, r := range a.routes {
		if r.Request != nil {
			a.check(key, req{method: r.Method, path: fill(r.Path, "nonexistent"), token: adm, body: "{"}, http.StatusBadRequest)
		}
	}

	// Conditional requests and compression on what offers them.
	etagged := map[string]string{
		"GET /api/v1/runs":                                "/api/v1/runs",
		"GET /api/v1/runs/{run_id}":                       "/api/v1/runs/" + run.RunID,
		"GET /api/v1/runs/{run_id}/estimates":             "/api/v1/runs/" + run.RunID + "/estimates",
		"GET /api/v1/statements":                          "/api/v1/statements?operating_day=2026-11-01",
		"GET /api/v1/statements/{statement_id}/intervals": "/api/v1/statements/" + line + "/intervals",
		"GET /api/v1/accounts/{account_id}/charges":       "/api/v1/accounts/ACC-1/charges",
	}
	for key, path := range etagged {
		w := a.check(key, req{method: http.MethodGet, path: path, token: an}, 200)
		tag := w.Header().Get("ETag")
		a.check(key, req{method: http.MethodGet, path: path, token: an}, http.StatusNotModified, "If-None-Match", `"other", `+tag)
	}
	a.check("GET /api/v1/statements", req{method: http.MethodGet, path: "/api/v1/statements", token: an}, 200, "Accept-Encoding", "gzip")

	for key, r := range a.routes {
		var want []string
		switch {
		case r.public:
			want = []string{"ok"}
		default:
			want = []string{"ok", "problem"}
		}
		if r.Response != nil && r.Response.List {
			want = append(want, "csv")
		}
		if r.ETag {
			want = append(want, "304")
		}
		for _, k := range want {
			if !a.seen[key][k] && !(k == "ok" && a.seen[key]["gzip"]) {
				t.Errorf("%s: no validated %s answer; drive it in TestAnswersMatchOpenAPI", key, k)
			}
		}
	}
	if !slices.ContainsFunc(s.routes, func(r Route) bool { return a.seen[r.Method+" "+r.Path]["gzip"] }) {
		t.Error("no gzip answer validated")
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

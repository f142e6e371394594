package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// TestRoutesByRole walks every registered route (all areas included) and
// checks authentication and roles: no token and an unknown token are 401, a
// role outside the route's set is 403, a role inside it gets past both.
func TestRoutesByRole(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	for _, r := range s.routes {
		if r.public {
			continue
		}
		path := fill(r.Path, "nonexistent")
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			w := s.do(req{method: r.Method, path: path})
			problem(t, w, http.StatusUnauthorized)
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: %v", w.Header())
			}
			problem(t, s.do(req{method: r.Method, path: path, token: "gs_not-a-real-token"}), http.StatusUnauthorized)
			for _, role := range AllRoles {
				w := s.do(req{method: r.Method, path: path, token: toks[role]})
				allowed := slices.Contains(r.Roles, role)
				switch {
				case !allowed && w.Code != http.StatusForbidden:
					t.Errorf("%s: status %d, want 403", role, w.Code)
				case allowed && (w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized):
					t.Errorf("%s: status %d, want access (%s)", role, w.Code, w.Body)
				case allowed && w.Code >= 500:
					t.Errorf("%s: status %d on an empty request (%s)", role, w.Code, w.Body)
				}
			}
		})
	}
}

// TestFrameworkRoutesByRole pins the exact success statuses of the
// framework's and the registry's routes for every role.
func TestFrameworkRoutesByRole(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	toks[Admin] = testAdminToken // the configured admin token works like a stored one
	cases := []struct {
		method, path, body string
		ok                 int
		roles              []Role
	}{
		{"GET", "/api/v1/participants", "", 200, Readers},
		{"GET", "/api/v1/settlement-points", "", 200, Readers},
		{"GET", "/api/v1/accounts", "", 200, Readers},
		{"GET", "/api/v1/meters", "", 200, Readers},
		{"POST", "/api/v1/participants", `[{"participant_id":"P1","name":"One"}]`, 200, Operators},
		{"POST", "/api/v1/settlement-points", `[{"settlement_point":"HB_X","name":"Hub","kind":"hub"}]`, 200, Operators},
		{"POST", "/api/v1/accounts", `[{"account_id":"A1","name":"Acc"}]`, 200, Operators},
		{"POST", "/api/v1/meters", `[]`, 200, Operators},
		{"GET", "/api/v1/tokens", "", 200, Admins},
		{"POST", "/api/v1/tokens", `{"role":"analyst","name":"x"}`, 201, Admins},
		{"GET", "/api/v1/audit", "", 200, Admins},
		{"GET", "/api/v1/whoami", "", 200, Everyone},
		{"GET", "/api/v1/schemas", "", 200, Readers},
		{"GET", "/api/v1/schemas/settlement.statement/v1", "", 200, Readers},
		{"GET", "/api/v1/schemas/settlement.statement%2Fv1", "", 200, Readers},
	}
	for _, c := range cases {
		for _, role := range AllRoles {
			want := http.StatusForbidden
			if slices.Contains(c.roles, role) {
				want = c.ok
			}
			w := s.do(req{method: c.method, path: c.path, token: toks[role], body: c.body})
			if w.Code != want {
				t.Errorf("%s %s as %s: %d, want %d (%s)", c.method, c.path, role, w.Code, want, w.Body)
			}
		}
		if w := s.do(req{method: c.method, path: c.path, body: c.body}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without token: %d, want 401", c.method, c.path, w.Code)
		}
	}
	// DELETE: 204 for admins, 403 for the others.
	for _, role := range AllRoles {
		tok, err := CreateToken(t.Context(), s.pool, Analyst, "victim")
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusForbidden
		if role == Admin {
			want = http.StatusNoContent
		}
		if w := s.do(req{method: "DELETE", path: "/api/v1/tokens/" + tok.ID, token: toks[role]}); w.Code != want {
			t.Errorf("DELETE token as %s: %d, want %d", role, w.Code, want)
		}
	}
}

func TestPublicOperationalEndpoints(t *testing.T) {
	t.Parallel()
	failing := errors.New("broker down")
	kafkaUp := true
	s := newTestServer(t, []Check{{Name: "kafka", Check: func(context.Context) error {
		if kafkaUp {
			return nil
		}
		return failing
	}}})
	var h Health
	ok(t, s.do(req{method: "GET", path: "/healthz"}), 200, &h)
	if h.Status != "ok" {
		t.Errorf("healthz %+v", h)
	}
	ok(t, s.do(req{method: "GET", path: "/readyz"}), 200, &h)
	if h.Status != "ready" || h.Checks["postgres"] != "ok" || h.Checks["kafka"] != "ok" {
		t.Errorf("readyz %+v", h)
	}
	kafkaUp = false
	p := problem(t, s.do(req{method: "GET", path: "/readyz"}), http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "kafka") || strings.Contains(p.Detail, "broker down") {
		t.Errorf("readyz detail %q: should name the check, not its error", p.Detail)
	}
	w := s.do(req{method: "GET", path: "/metrics"})
	mustStatus(t, w, 200)
	for _, name := range []string{"gridsettle_http_requests_total", "gridsettle_http_request_duration_seconds"} {
		if !strings.Contains(w.Body.String(), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if !strings.Contains(w.Body.String(), `route="/readyz"`) {
		t.Errorf("/metrics does not label requests by route:\n%s", w.Body)
	}
}

func TestErrorsAreProblems(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, RouteList{
		{Method: "GET", Path: "/api/v1/test/fail", Roles: Everyone, Summary: "fails",
			Response: JSONBody(Health{}), Handler: func(echo.Context) error {
				return fmt.Errorf("query: %w", errors.New(`SELECT secret FROM api_tokens WHERE hash = 'x'`))
			}},
		{Method: "GET", Path: "/api/v1/test/panic", Roles: Everyone, Summary: "panics",
			Response: JSONBody(Health{}), Handler: func(echo.Context) error { panic("boom: secret state") }},
		{Method: "POST", Path: "/api/v1/test/echo", Roles: Everyone, Summary: "reads a body",
			Request: JSONBody(TokenRequest{}), Response: JSONBody(TokenRequest{}), Handler: func(c echo.Context) error {
				var v TokenRequest
				if err := DecodeJSON(c, &v); err != nil {
					return err
				}
				return c.JSON(200, v)
			}},
	})
	admin := testAdminToken

	for _, path := range []string{"/api/v1/test/fail", "/api/v1/test/panic"} {
		w := s.do(req{method: "GET", path: path, token: admin})
		p := problem(t, w, 500)
		for _, leak := range []string{"SELECT", "secret", "goroutine", "boom", ".go:"} {
			if strings.Contains(w.Body.String(), leak) {
				t.Errorf("%s: 500 body leaks %q: %s", path, leak, w.Body)
			}
		}
		// The cause is logged, with the request id.
		if !strings.Contains(s.logs.String(), p.RequestID) || !strings.Contains(s.logs.String(), "secret") {
			t.Errorf("%s: the internal error is not logged with request id %s", path, p.RequestID)
		}
	}

	p := problem(t, s.do(req{method: "GET", path: "/api/v1/no/such/thing", token: admin}), 404)
	if p.Type != ProblemType("not-found") {
		t.Errorf("404 type %q", p.Type)
	}
	problem(t, s.do(req{method: "GET", path: "/nothing-here"}), 404)
	w := s.do(req{method: "PUT", path: "/api/v1/participants", token: admin, body: "[]"})
	problem(t, w, 405)
	if allow := w.Header().Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow header %q", allow)
	}

	big := `{"role":"analyst","name":"` + strings.Repeat("x", 2<<20) + `"}`
	problem(t, s.do(req{method: "POST", path: "/api/v1/test/echo", token: admin, body: big}), 413)
	// Without Content-Length the limit still holds while reading.
	hr, _ := http.NewRequestWithContext(t.Context(), "POST", "/api/v1/test/echo", io.MultiReader(strings.NewReader(big)))
	hr.Header.Set("Authorization", "Bearer "+admin)
	hr.Header.Set("Content-Type", "application/json")
	hr.ContentLength = -1
	rec := &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(rec, hr)
	if rec.code != 413 {
		t.Errorf("chunked oversize body: %d, want 413", rec.code)
	}

	for _, c := range []struct{ body, param string }{
		{`{"role":"analyst","name":"x","extra":1}`, "extra"},
		{`{"role":7,"name":"x"}`, "role"},
	} {
		p := problem(t, s.do(req{method: "POST", path: "/api/v1/test/echo", token: admin, body: c.body}), 400)
		if p.Parameter != c.param {
			t.Errorf("body %s: parameter %q, want %q", c.body, p.Parameter, c.param)
		}
	}
	problem(t, s.do(req{method: "POST", path: "/api/v1/test/echo", token: admin, body: `{"role":`}), 400)
	problem(t, s.do(req{method: "POST", path: "/api/v1/test/echo", token: admin, body: `x`, contentType: "text/plain"}), 415)
}

// recorder is a minimal ResponseWriter for requests httptest.NewRequest
// cannot make (no Content-Length).
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}

func TestBadParametersNameTheParameter(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	admin := testAdminToken
	cases := []struct{ path, param string }{
		{"/api/v1/participants?limit=0", "limit"},
		{"/api/v1/participants?limit=1001", "limit"},
		{"/api/v1/participants?limit=ten", "limit"},
		{"/api/v1/participants?cursor=%21%21%21", "cursor"},
		{"/api/v1/participants?cursor=eyJ4IjoxfQ", "cursor"}, // valid base64 JSON of another keyset
		{"/api/v1/participants?colour=blue", "colour"},
		{"/api/v1/participants?limit=1&limit=2", "limit"},
		{"/api/v1/meters?at=yesterday", "at"},
		{"/api/v1/meters?meter_id=bad%20id", "meter_id"},
		{"/api/v1/audit?from=2026-11-01", "from"},
		{"/api/v1/audit?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "to"},
	}
	for _, c := range cases {
		p := problem(t, s.do(req{method: "GET", path: c.path, token: admin}), 400)
		if p.Parameter != c.param || !strings.Contains(p.Detail, c.param) || p.Type != ProblemType("invalid-parameter") {
			t.Errorf("%s: problem %+v, want parameter %s", c.path, p, c.param)
		}
	}
}

func TestDeclaredParamsAreEnforced(t *testing.T) {
	t.Parallel()
	handled := 0
	s := newTestServer(t, nil, RouteList{{
		Method: "GET", Path: "/api/v1/test/things/{thing_id}", Roles: Everyone, Summary: "params",
		Params: []Param{
			Path("thing_id", "a thing"),
			DayParam("operating_day", "a day").Require(),
			EnumParam("run_type", "a run type", "initial", "final"),
			IntParam("version", "a version", 1, 99),
			InstantParam("from", "an instant"),
		},
		Response: JSONBody(Health{}),
		Handler: func(c echo.Context) error {
			handled++
			d, err := QueryDay(c, "operating_day")
			if err != nil {
				return err
			}
			return c.JSON(200, Health{Status: d.String()})
		},
	}})
	admin := testAdminToken
	for _, c := range []struct{ query, param string }{
		{"", "operating_day"},
		{"operating_day=2026-13-01", "operating_day"},
		{"operating_day=2026-11-01&run_type=weekly", "run_type"},
		{"operating_day=2026-11-01&version=0", "version"},
		{"operating_day=2026-11-01&version=1.5", "version"},
		{"operating_day=2026-11-01&from=2026-11-01T00:00:00", "from"},
	} {
		p := problem(t, s.do(req{method: "GET", path: "/api/v1/test/things/t1?" + c.query, token: admin}), 400)
		if p.Parameter != c.param {
			t.Errorf("%q: parameter %q, want %q", c.query, p.Parameter, c.param)
		}
	}
	if handled != 0 {
		t.Errorf("handler ran %d times on invalid parameters", handled)
	}
	var h Health
	ok(t, s.do(req{method: "GET", path: "/api/v1/test/things/t1?operating_day=2026-11-01&run_type=final&version=2&from=2026-11-01T05:00:00Z", token: admin}), 200, &h)
	if h.Status != "2026-11-01" {
		t.Errorf("day %q", h.Status)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	w := s.do(req{method: "GET", path: "/healthz"})
	id := w.Header().Get(HeaderRequestID)
	if len(id) < 16 {
		t.Fatalf("request id %q", id)
	}
	if !strings.Contains(s.logs.String(), `"request_id":"`+id+`"`) {
		t.Errorf("log lacks request id %s:\n%s", id, s.logs)
	}
	hr := httptestRequest(t, "GET", "/api/v1/participants")
	hr.Header.Set(HeaderRequestID, "gateway-1234abcd")
	rec := &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(rec, hr)
	// The server answers and logs its own id; the client's is logged beside it.
	if got := rec.header.Get(HeaderRequestID); got == "gateway-1234abcd" || len(got) < 16 {
		t.Errorf("request id %q: want the server's own", got)
	}
	if !strings.Contains(s.logs.String(), `"request_id":"`+rec.header.Get(HeaderRequestID)+`","client_request_id":"gateway-1234abcd"`) {
		t.Errorf("log lacks the client's request id beside the server's:\n%s", s.logs)
	}
	hr = httptestRequest(t, "GET", "/healthz")
	hr.Header.Set(HeaderRequestID, "bad id\nwith newline")
	rec = &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(rec, hr)
	if got := rec.header.Get(HeaderRequestID); strings.ContainsAny(got, " \n") || got == "" {
		t.Errorf("unsafe client request id kept: %q", got)
	}
}

func httptestRequest(t *testing.T, method, path string) *http.Request {
	hr, err := http.NewRequestWithContext(t.Context(), method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return hr
}

// TestOpenAPIMatchesRouter fails on any served route missing from the
// document and on any documented operation the router does not serve.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string           `json:"operationId"`
			Parameters  []map[string]any `json:"parameters"`
			Responses   map[string]any   `json:"responses"`
			Security    []map[string]any `json:"security"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
			Schemas         map[string]any `json:"schemas"`
		} `json:"components"`
	}
	ok(t, s.do(req{method: "GET", path: "/api/v1/openapi.json"}), 200, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Components.SecuritySchemes["bearer"] == nil || doc.Components.Schemas["Problem"] == nil {
		t.Fatalf("document header: openapi %q, components %+v", doc.OpenAPI, doc.Components)
	}
	served := map[string]bool{}
	for _, r := range s.echo.Routes() {
		path, ok := s.paths[r.Path] // echo's * has no name to map back
		if !ok {
			path = regexpEchoParam.ReplaceAllString(r.Path, "{$1}")
		}
		key := strings.ToLower(r.Method) + " " + path
		served[key] = true
		op, found := doc.Paths[path][strings.ToLower(r.Method)]
		if !found {
			t.Errorf("served but not documented: %s %s", r.Method, path)
			continue
		}
		if op.OperationID == "" || len(op.Responses) == 0 {
			t.Errorf("%s: incomplete operation", key)
		}
		// Every path parameter is documented.
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !slices.ContainsFunc(op.Parameters, func(p map[string]any) bool { return p["name"] == m[1] && p["in"] == "path" }) {
				t.Errorf("%s: path parameter %s not documented", key, m[1])
			}
		}
		public := path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/api/v1/openapi.json"
		if public != (len(op.Security) == 0) {
			t.Errorf("%s: security %v", key, op.Security)
		}
		if !public {
			if _, has := op.Responses["401"]; !has {
				t.Errorf("%s: 401 not documented", key)
			}
		}
	}
	for path, ops := range doc.Paths {
		if path != "/healthz" && path != "/readyz" && path != "/metrics" && !strings.HasPrefix(path, "/api/v1/") {
			t.Errorf("documented path %s is not a full /api/v1 path", path)
		}
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("documented but not served: %s %s", strings.ToUpper(method), path)
			}
		}
	}
	if len(served) < 15 {
		t.Errorf("only %d routes served", len(served))
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h Health
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil || h.Status != "ok" {
		t.Fatalf("healthz over TCP: %+v %v", h, err)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "http address"},
		{Config{Addr: "nohostport"}, "http address"},
		{Config{Addr: "127.0.0.1:0", TLSCert: "x.pem"}, "--tls-key"},
		{Config{Addr: "127.0.0.1:0", TLSCert: "/nonexistent.pem", TLSKey: "/nonexistent.key"}, "tls"},
		{Config{Addr: "127.0.0.1:0", MaxBodyBytes: -1}, "body"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	if err := (Config{Addr: "127.0.0.1:8080"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestServeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pool, _ := pgtest.New(t)
	s := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), pool, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	roots := x509.NewCertPool()
	roots.AddCert(must(x509.ParseCertificate(der)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	res, err := client.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Errorf("https healthz: %d tls=%v", res.StatusCode, res.TLS != nil)
	}
	if res, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil && res.StatusCode == 200 {
		t.Error("plain HTTP answered on the TLS listener")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestContextHandlerAddsRequestID(t *testing.T) {
	var buf strings.Builder
	log := slog.New(ContextHandler(slog.NewTextHandler(&buf, nil)))
	ctx := context.WithValue(t.Context(), requestIDKey{}, "req-0123456789")
	log.InfoContext(ctx, "from a store")
	log.With("request_id", "req-0123456789").InfoContext(ctx, "from a handler")
	log.Info("no request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || strings.Count(lines[0], "request_id=req-0123456789") != 1 ||
		strings.Count(lines[1], "request_id=") != 1 || strings.Contains(lines[2], "request_id") {
		t.Errorf("log lines:\n%s", buf.String())
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testAreas are the areas every test server includes besides the registry.
// Each area's test file adds its own from an init function, so the route x
// role test and the OpenAPI test cover every endpoint without anyone editing
// this file:
//
//	func init() {
//		testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes {
//			return RunRoutes{Runs: settlementpg.NewRuns(pool)}
//		})
//	}
var testAreas []func(t *testing.T, pool *pgxpool.Pool) Routes

// testAdminToken is the --admin-token of test servers.
const testAdminToken = "test-admin-token-0123456789"

// testServer is a Server over a fresh database, called in-process through
// Handler().
type testServer struct {
	*Server
	t    *testing.T
	pool *pgxpool.Pool
	reg  *prometheus.Registry
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestServer builds a server with the registry, every test area and
// extra, a 1 MiB body limit and testAdminToken.
func newTestServer(t *testing.T, checks []Check, extra ...Routes) *testServer {
	t.Helper()
	pool, _ := pgtest.New(t)
	ts := &testServer{t: t, pool: pool, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	areas := []Routes{RegistryRoutes{Store: registrystore.NewRegistry(pool, nil), Pool: pool}}
	for _, f := range testAreas {
		areas = append(areas, f(t, pool))
	}
	areas = append(areas, extra...)
	log := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.Server = New(Config{Addr: "127.0.0.1:0", AdminToken: testAdminToken, MaxBodyBytes: 1 << 20},
		log, ts.reg, pool, checks, areas...)
	// Every successful state-changing call of every test must have been
	// audited in its own transaction.
	t.Cleanup(func() {
		if strings.Contains(ts.logs.String(), "answered without an audit row") {
			t.Errorf("a state-changing call succeeded without its audit row:\n%s", ts.logs)
		}
	})
	return ts
}

// req is one request to the test server.
type req struct {
	method, path, token string
	body                string
	contentType, accept string
}

// do sends r and returns the recorded response.
func (s *testServer) do(r req) *httptest.ResponseRecorder {
	s.t.Helper()
	return s.send(s.request(r))
}

// request is the HTTP request of r.
func (s *testServer) request(r req) *http.Request {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequestWithContext(s.t.Context(), r.method, r.path, body)
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	} else if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.accept != "" {
		hr.Header.Set("Accept", r.accept)
	}
	return hr
}

// withHeaders sets headers, name and value pairs, on hr.
func withHeaders(hr *http.Request, headers ...string) *http.Request {
	for i := 0; i+1 < len(headers); i += 2 {
		hr.Header.Set(headers[i], headers[i+1])
	}
	return hr
}

// send serves hr and returns the recorded response.
func (s *testServer) send(hr *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, hr)
	return w
}

// token creates a stored token of role and returns its secret.
func (s *testServer) token(role Role) string {
	s.t.Helper()
	tok, err := CreateToken(s.t.Context(), s.pool, role, "test "+string(role))
	if err != nil {
		s.t.Fatal(err)
	}
	return tok.Token
}

// tokens creates one stored token per role.
func (s *testServer) tokens() map[Role]string {
	out := map[Role]string{}
	for _, r := range AllRoles {
		out[r] = s.token(r)
	}
	return out
}

// problem decodes a problem+json answer, failing unless it is one with the
// given status.
func problem(t *testing.T, w *httptest.ResponseRecorder, status int) Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != MIMEProblemJSON {
		t.Fatalf("content type %q, want %s; body %s", ct, MIMEProblemJSON, w.Body)
	}
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem: %v; body %s", err, w.Body)
	}
	if p.Status != status || p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem %+v", p)
	}
	if p.RequestID == "" || p.RequestID != w.Header().Get(HeaderRequestID) {
		t.Fatalf("problem request_id %q, header %q", p.RequestID, w.Header().Get(HeaderRequestID))
	}
	return p
}

// ok decodes a JSON answer into v, failing unless the status is status.
func ok(t *testing.T, w *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if v == nil {
		return
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decode: %v; body %s", err, w.Body)
	}
}

// fill replaces every {param} of an OpenAPI path with value.
func fill(path, value string) string {
	return pathParam.ReplaceAllString(path, value)
}

// mustStatus fails unless w has the status.
func mustStatus(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d (%s)", w.Code, status, w.Body)
	}
}

// regexpEchoParam matches echo's :param path segments.
var regexpEchoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

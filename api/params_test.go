package api

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileValues are parameter values no parameter may hold, by what is
// wrong with them.
var hostileValues = map[string]string{
	"NUL":          "\x00",
	"inner NUL":    "2026-11-01\x00",
	"invalid UTF8": "\xff\xfe\xfd",
	"cut UTF8":     "caf\xc3",
	"control":      "a\x1bb",
	"1 MB":         strings.Repeat("é", 1<<19),
}

// TestHostileParametersAre400 sends every hostile value as every query and
// path parameter of every route: each is a 400 naming the parameter, never
// a 500 (api/README.md "Safe under abuse").
func TestHostileParametersAre400(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	for _, r := range s.routes {
		if r.public {
			continue
		}
		params := r.params()
		for _, p := range params {
			for what, v := range hostileValues {
				// Every other required parameter valid, so that only the
				// one under test is bad.
				path, q := r.Path, url.Values{}
				for _, o := range params {
					ov := validValue(o)
					if o.Name == p.Name {
						ov = v
					}
					switch {
					case o.in() == "path":
						path = strings.ReplaceAll(path, "{"+o.Name+"}", url.PathEscape(ov))
					case o.Name == p.Name || o.Required:
						q.Set(o.Name, ov)
					}
				}
				path += "?" + q.Encode()
				t.Run(r.Method+" "+r.Path+" "+p.Name+" "+what, func(t *testing.T) {
					pr := problem(t, s.do(req{method: r.Method, path: path, token: testAdminToken}), http.StatusBadRequest)
					if pr.Parameter != p.Name {
						t.Errorf("parameter %q, want %q (%s)", pr.Parameter, p.Name, pr.Detail)
					}
				})
			}
		}
		// An undeclared parameter whose very name is hostile.
		for what, v := range hostileValues {
			t.Run(r.Method+" "+r.Path+" name "+what, func(t *testing.T) {
				path := fill(r.Path, "nonexistent") + "?" + url.QueryEscape(v) + "=1"
				pr := problem(t, s.do(req{method: r.Method, path: path, token: testAdminToken}), http.StatusBadRequest)
				if !utf8.ValidString(pr.Parameter) || utf8.RuneCountInString(pr.Parameter) > 200 || strings.ContainsRune(pr.Parameter, 0) {
					t.Errorf("unsafe parameter name in the problem: %q", pr.Parameter[:min(len(pr.Parameter), 100)])
				}
			})
		}
	}
}

// TestCraftedCursorsAre400: a cursor that decodes to a key holding U+0000
// is a 400 naming the cursor, not a database error.
func TestCraftedCursorsAre400(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	for _, path := range []string{"/api/v1/tokens", "/api/v1/audit", "/api/v1/participants", "/api/v1/quarantine"} {
		for _, key := range []string{`{"id":"\u0000"}`, `{"id":"a\U0000"}`, "{\"id\":\"\xff\"}"} {
			cursor := base64.RawURLEncoding.EncodeToString([]byte(key))
			pr := problem(t, s.do(req{method: "GET", path: path + "?cursor=" + cursor, token: testAdminToken}), http.StatusBadRequest)
			if pr.Parameter != "cursor" {
				t.Errorf("%s with cursor %q: parameter %q", path, key, pr.Parameter)
			}
		}
	}
}

// validValue is a value that passes p's declared checks.
func validValue(p Param) string {
	switch {
	case len(p.Enum) > 0:
		return p.Enum[0]
	case p.Type == "integer":
		return "1"
	case p.Type == "boolean":
		return "true"
	case p.Format == "date":
		return "2026-11-01"
	case p.Format == "date-time":
		return "2026-11-01T05:00:00Z"
	}
	return "nonexistent"
}

// TestHostileBodyTextIs400: text that Postgres cannot store, in a JSON
// body, is a 400 too.
func TestHostileBodyTextIs400(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op := s.token(Operator)
	for _, c := range []struct{ path, token, body string }{
		{"/api/v1/tokens", testAdminToken, `{"role":"analyst","name":"a\u0000b"}`},
		{"/api/v1/participants", op, `[{"participant_id":"P1","name":"x\u0000y"}]`},
		{"/api/v1/runs", op, `{"operating_day":"2026-11-01\u0000","run_type":"initial"}`},
		{"/api/v1/quarantine/replay", op, `{"reason":"unknown_meter\u0000"}`},
	} {
		problem(t, s.do(req{method: "POST", path: c.path, token: c.token, body: c.body}), http.StatusBadRequest)
	}
}

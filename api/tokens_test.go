package api

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
)

func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	admin := testAdminToken

	var created NewToken
	ok(t, s.do(req{method: "POST", path: "/api/v1/tokens", token: admin, body: `{"role":"operator","name":"ops bot"}`}), 201, &created)
	if created.Role != Operator || created.Name != "ops bot" || !strings.HasPrefix(created.ID, "tok_") ||
		!strings.HasPrefix(created.Token, "gs_") || len(created.Token) != len("gs_")+43 || created.CreatedAt.IsZero() {
		t.Fatalf("created %+v", created)
	}

	// Only the hash is at rest.
	var hash []byte
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT hash, (SELECT count(*) FROM api_tokens t WHERE row_to_json(t)::text LIKE '%'||$2||'%')
		FROM api_tokens WHERE id = $1`, created.ID, created.Token[3:]).Scan(&hash, &n); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(created.Token))
	if !bytes.Equal(hash, sum[:]) || n != 0 {
		t.Errorf("stored hash %x, want sha256 of the token; rows holding the secret: %d", hash, n)
	}

	// The new token works for its role...
	mustStatus(t, s.do(req{method: "GET", path: "/api/v1/participants", token: created.Token}), 200)
	problem(t, s.do(req{method: "GET", path: "/api/v1/tokens", token: created.Token}), 403)

	// ...is listed without its secret...
	w := s.do(req{method: "GET", path: "/api/v1/tokens", token: admin})
	var list Page[Token]
	ok(t, w, 200, &list)
	if len(list.Items) != 1 || list.Items[0].ID != created.ID || list.Items[0].RevokedAt != nil {
		t.Fatalf("list %+v", list)
	}
	if strings.Contains(w.Body.String(), created.Token) || strings.Contains(w.Body.String(), `"token"`) {
		t.Errorf("token list shows a secret: %s", w.Body)
	}

	// ...and stops working the moment it is revoked.
	mustStatus(t, s.do(req{method: "DELETE", path: "/api/v1/tokens/" + created.ID, token: admin}), 204)
	p := problem(t, s.do(req{method: "GET", path: "/api/v1/participants", token: created.Token}), 401)
	if !strings.Contains(p.Detail, "revoked") {
		t.Errorf("revoked detail %q", p.Detail)
	}
	mustStatus(t, s.do(req{method: "DELETE", path: "/api/v1/tokens/" + created.ID, token: admin}), 204)
	problem(t, s.do(req{method: "DELETE", path: "/api/v1/tokens/tok_nothere", token: admin}), 404)
	ok(t, s.do(req{method: "GET", path: "/api/v1/tokens", token: admin}), 200, &list)
	if list.Items[0].RevokedAt == nil {
		t.Errorf("revoked token listed without revoked_at")
	}

	for _, c := range []struct{ body, param string }{
		{`{"role":"superuser","name":"x"}`, "role"},
		{`{"role":"analyst","name":""}`, "name"},
		{`{"role":"analyst"}`, "name"},
	} {
		p := problem(t, s.do(req{method: "POST", path: "/api/v1/tokens", token: admin, body: c.body}), 400)
		if p.Parameter != c.param {
			t.Errorf("%s: parameter %q, want %s", c.body, p.Parameter, c.param)
		}
	}
	for _, h := range []string{"Basic " + admin, "Bearer", "Bearer " + admin + "x", admin} {
		hr := httptestRequest(t, "GET", "/api/v1/participants")
		hr.Header.Set("Authorization", h)
		rec := &recorder{header: http.Header{}}
		s.Handler().ServeHTTP(rec, hr)
		if rec.code != 401 || !strings.Contains(rec.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("Authorization %q: %d %v", h, rec.code, rec.header)
		}
	}
}

// TestWhoami: each token learns its own role and name, never another's.
func TestWhoami(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	for role, tok := range s.tokens() {
		var w Whoami
		ok(t, s.do(req{method: "GET", path: "/api/v1/whoami", token: tok}), http.StatusOK, &w)
		if w.Role != role || w.ID == "" || w.Name == "" {
			t.Errorf("%s token: whoami %+v", role, w)
		}
	}
	var w Whoami
	ok(t, s.do(req{method: "GET", path: "/api/v1/whoami", token: testAdminToken}), http.StatusOK, &w)
	if w.Role != Admin || w.ID != AdminTokenID {
		t.Errorf("--admin-token: whoami %+v", w)
	}
}

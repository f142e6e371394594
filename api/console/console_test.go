package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler: every address under the prefix answers the page or an
// asset, each with the CSP, without a token; the page loads only its own
// assets; nothing but GET and HEAD is served.
func TestHandler(t *testing.T) {
	h := Handler()
	get := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	for _, p := range []string{"/console/", "/console/day/2026-11-01", "/console/day/2026-11-01/line/HB_NORTH%2FP1%2F2026-11-01%2F1",
		"/console/day/2026-11-01/line/HB_NORTH%2FP1%2F2026-11-01%2F2/explain?against=1", "/console/inputs?meter_id=M1",
		"/console/quarantine", "/console/exports?operating_day=2026-11-01", "/console/status", "/console/../console/x"} {
		w := get(http.MethodGet, p)
		body := w.Body.String()
		if w.Code != http.StatusOK || w.Header().Get("Content-Security-Policy") != CSP ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(body, `<form id="sign-in" method="post"`) {
			t.Errorf("%s: %d %v", p, w.Code, w.Header())
		}
		// No inline script, no other origin: the CSP would refuse them.
		if strings.Contains(body, "<script>") || strings.Contains(body, "://") {
			t.Errorf("%s: the page has an inline script or another origin", p)
		}
	}
	for path, ctype := range map[string]string{
		"/console/assets/app.js":    "text/javascript",
		"/console/assets/style.css": "text/css",
		"/console/assets/icon.svg":  "image/svg+xml",
	} {
		w := get(http.MethodGet, path)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Header().Get("Content-Security-Policy") != CSP {
			t.Errorf("%s: %d %v", path, w.Code, w.Header())
		}
	}
	if w := get(http.MethodGet, "/console/assets/nope.js"); w.Code != http.StatusNotFound {
		t.Errorf("a missing asset: %d", w.Code)
	}
	if w := get(http.MethodPost, "/console/"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	w := get(http.MethodGet, "/console/assets/app.js")
	js, _ := io.ReadAll(w.Body)
	// The token travels in the Authorization header only.
	if !strings.Contains(string(js), "Authorization: 'Bearer '") || strings.Contains(string(js), "innerHTML") {
		t.Error("app.js: the token header is missing, or markup is built from strings")
	}
}

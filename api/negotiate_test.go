package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestWantsCSV: RFC 9110 content negotiation with weights, the most specific
// range deciding, ties to JSON, and a 406 when neither is acceptable.
func TestWantsCSV(t *testing.T) {
	const refused = "406"
	for accept, want := range map[string]string{
		"":                                       "json",
		"application/json":                       "json",
		"text/csv":                               "csv",
		"application/json;q=0.9, text/csv":       "csv",
		"TEXT/CSV; charset=utf-8":                "csv",
		"text/csv;q=0.5, application/json;q=0.1": "csv",
		"text/csv;q=0.5, application/json;q=0.5": "json", // a tie: the server's preference
		"text/csv;q=0.5":                         "csv",
		"text/csv;q=0":                           refused,
		"text/csv;q=0, */*":                      "json",
		"application/json;q=0, */*":              "csv",
		"application/json;q=0, text/*;q=0.2":     "csv",
		"text/*":                                 "csv",
		"*/*":                                    "json",
		"*/*;q=0.1, text/csv;q=0.2":              "csv",
		"application/xml":                        refused,
		"image/png, text/html;q=0.9":             refused,
		"text/csv;q=2":                           refused, // a malformed weight drops the element
		"text/csv;q=abc, application/json":       "json",
		"text/csv;q=0.0001":                      refused,
		",,,;;;":                                 refused,
		"\x00text/csv":                           refused,
		strings.Repeat("image/png,", 100) + "text/csv": refused, // past the elements read
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", accept)
		c := echo.New().NewContext(r, httptest.NewRecorder())
		csv, err := WantsCSV(c)
		got := "json"
		switch {
		case err != nil:
			got = refused
			if classify(err).Kind.Status() != http.StatusNotAcceptable {
				t.Errorf("Accept %q: %v, want a 406", accept, err)
			}
		case csv:
			got = "csv"
		}
		if got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
		if v := c.Response().Header().Values("Vary"); len(v) != 1 || v[0] != "Accept" {
			t.Errorf("Accept %q: Vary %q", accept, v)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                    false,
		"gzip":                true,
		"deflate, gzip;q=0.5": true,
		"gzip;q=0":            false,
		"*":                   true,
		"*, gzip;q=0":         false,
		"gzip;q=0, *":         false,
		"br":                  false,
		"identity, *;q=0":     false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if header != "" {
			r.Header.Set("Accept-Encoding", header)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: %v, want %v", header, got, want)
		}
	}
}

// TestGzipAndETag: answers are compressed when asked (and only then, and
// not when tiny), /metrics is compressed once (by promhttp), and a run's
// answers carry a strong ETag per content coding that If-None-Match turns
// into a 304 without a body.
func TestGzipAndETag(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op, an := s.token(Operator), s.token(Analyst)
	seedDay(t, s, "1000")
	mustStatus(t, s.do(req{method: "POST", path: "/api/v1/runs", token: op, body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), 201)

	send := func(path string, headers ...string) *httptest.ResponseRecorder {
		t.Helper()
		return s.send(withHeaders(s.request(req{method: http.MethodGet, path: path, token: an}), headers...))
	}
	const path = "/api/v1/statements?operating_day=2026-11-01"
	plain := send(path)
	zipped := send(path, "Accept-Encoding", "gzip, br")
	if plain.Code != 200 || zipped.Code != 200 || plain.Header().Get("Content-Encoding") != "" || zipped.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("plain %d %v, gzip %d %v", plain.Code, plain.Header(), zipped.Code, zipped.Header())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) || zipped.Body.Len() >= plain.Body.Len() {
		t.Fatalf("gzip answer: %v, %d bytes for %d", err, zipped.Body.Len(), plain.Body.Len())
	}
	if !slices.Contains(zipped.Header().Values("Vary"), "Accept-Encoding") {
		t.Errorf("gzip answer without Vary: Accept-Encoding: %v", zipped.Header())
	}
	if w := send(path, "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" || !slices.Contains(w.Header().Values("Vary"), "Accept-Encoding") {
		t.Errorf("gzip;q=0: %v", w.Header())
	}
	if w := send("/healthz", "Accept-Encoding", "gzip"); w.Header().Get("Content-Encoding") != "" || w.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Errorf("a tiny answer was compressed: %v %q", w.Header(), w.Body)
	}
	metrics := send("/metrics", "Accept-Encoding", "gzip")
	if zr, err := gzip.NewReader(metrics.Body); err != nil {
		t.Errorf("/metrics with gzip: %v", err)
	} else if b, err := io.ReadAll(zr); err != nil || !bytes.Contains(b, []byte("gridsettle_http_requests_total")) {
		t.Errorf("/metrics is not Prometheus text once decompressed: %v %.100q", err, b)
	}

	tag, ztag := plain.Header().Get("ETag"), zipped.Header().Get("ETag")
	if !strings.HasPrefix(tag, `"`) || tag == ztag || ztag == "" {
		t.Fatalf("ETags %q (identity), %q (gzip): want two strong ones", tag, ztag)
	}
	if again := send(path); again.Header().Get("ETag") != tag {
		t.Errorf("the same answer got another ETag: %q, %q", again.Header().Get("ETag"), tag)
	}
	for _, inm := range []string{tag, `"x", ` + tag, "W/" + tag, "*"} {
		w := send(path, "If-None-Match", inm)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != tag || w.Header().Get("Content-Type") != "" {
			t.Errorf("If-None-Match %s: %d %v %q", inm, w.Code, w.Header(), w.Body)
		}
	}
	if w := send(path, "If-None-Match", ztag); w.Code != 200 {
		t.Errorf("the gzip ETag matched the identity answer: %d", w.Code)
	}
	if w := send(path, "If-None-Match", ztag, "Accept-Encoding", "gzip"); w.Code != http.StatusNotModified {
		t.Errorf("the gzip ETag with gzip: %d", w.Code)
	}
	if w := send(path, "If-None-Match", `"stale"`); w.Code != 200 || w.Body.Len() == 0 {
		t.Errorf("a stale ETag: %d", w.Code)
	}
	// A new run changes the latest statements, and so their ETag.
	mustStatus(t, s.do(req{method: "POST", path: "/api/v1/runs", token: op, body: `{"operating_day":"2026-11-01","run_type":"final"}`}), 201)
	if w := send(path, "If-None-Match", tag); w.Code != 200 || w.Header().Get("ETag") == tag {
		t.Errorf("after a new run: %d, ETag %q", w.Code, w.Header().Get("ETag"))
	}
	// Hostile negotiation headers are answered, never a 500.
	huge := strings.Repeat("x", 1<<20)
	for _, h := range [][]string{
		{"Accept", huge},
		{"Accept", strings.Repeat("text/csv;q=0,", 50_000)},
		{"Accept", "text/csv;q=\xff\x00"},
		{"Accept-Encoding", strings.Repeat("gzip;q=0.5,", 50_000)},
		{"If-None-Match", strings.Repeat(`"x",`, 100_000) + tag},
		{"If-None-Match", huge},
	} {
		if w := send(path, h...); w.Code >= 500 || (w.Code != 200 && w.Code != http.StatusNotAcceptable) {
			t.Errorf("%s of %d bytes: %d", h[0], len(h[1]), w.Code)
		}
	}
	// Lists without ETag carry none; a problem carries none.
	if w := send("/api/v1/participants"); w.Header().Get("ETag") != "" {
		t.Errorf("participants carry an ETag")
	}
	if w := send("/api/v1/runs/run-none"); w.Code != 404 || w.Header().Get("ETag") != "" {
		t.Errorf("a 404 with an ETag: %d %v", w.Code, w.Header())
	}
}

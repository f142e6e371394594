package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// A cached statements page is answered again byte for byte, with the same
// headers as when it was rendered, and a run that completes afterwards is
// seen at once: the latest version moves to it.
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
	first := s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]})
	again := s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]})
	if first.Body.String() != again.Body.String() {
		t.Fatalf("the same page answered differently:\n%s\n%s", first.Body, again.Body)
	}
	for _, h := range []string{"Content-Type", "Content-Length"} {
		if first.Header().Get(h) != again.Header().Get(h) {
			t.Errorf("%s: rendered %q, cached %q", h, first.Header().Get(h), again.Header().Get(h))
		}
	}
	if n := again.Header().Get("Content-Length"); n != strconv.Itoa(again.Body.Len()) {
		t.Errorf("Content-Length %s for %d bytes", n, again.Body.Len())
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

// Under concurrent load (requests sharing batched look-ups and waiting for
// one another's renders), every request that starts after a run completed
// is answered with that run's version.
func TestStatementPagesUnderLoadAreNeverOlderThanTheRequest(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedDay(t, s, "1000")
	run := func(runType string) {
		w := s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator],
			body: `{"operating_day":"2026-11-01","run_type":"` + runType + `"}`})
		if w.Code != http.StatusCreated {
			t.Fatalf("start %s: %d %s", runType, w.Code, w.Body)
		}
	}
	run("initial")
	seedDay(t, s, "2000")

	var completed, stop atomic.Bool
	var after atomic.Int64 // requests started after the final run completed
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() || after.Load() < 200 {
				wasCompleted := completed.Load()
				hr := httptest.NewRequestWithContext(t.Context(), "GET", "/api/v1/statements?operating_day=2026-11-01", nil)
				hr.Header.Set("Authorization", "Bearer "+toks[Analyst])
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, hr)
				var p Page[map[string]any]
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != http.StatusOK || len(p.Items) != 2 {
					errs <- fmt.Errorf("status %d, %v: %s", w.Code, err, w.Body)
					return
				}
				if wasCompleted {
					after.Add(1)
					if p.Items[0]["version"] != 2.0 {
						errs <- fmt.Errorf("a request started after the final run completed got version %v", p.Items[0]["version"])
						return
					}
				}
			}
		})
	}
	run("final")
	completed.Store(true)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A page is rendered by one request per generation while the others wait
// for it; a new generation wakes them and drops the pages of the old one.
func TestPageCacheRendersOncePerGeneration(t *testing.T) {
	t.Parallel()
	p := &pageCache{}
	p.moveTo("1/1")
	if page, wait, render := p.lookup("1/1", "k"); page.body != nil || wait != nil || !render {
		t.Fatalf("first lookup: %q %v %v, want to render", page, wait, render)
	}
	_, wait, render := p.lookup("1/1", "k")
	if wait == nil || render {
		t.Fatalf("second lookup: %v %v, want to wait", wait, render)
	}
	p.filled("1/1", "k", cachedPage{body: []byte("v1")})
	<-wait
	if page, _, _ := p.lookup("1/1", "k"); string(page.body) != "v1" {
		t.Fatalf("after filled: %q", page.body)
	}

	_, _, render = p.lookup("1/1", "other")
	_, wait, _ = p.lookup("1/1", "other")
	if !render || wait == nil {
		t.Fatal("other key: want one renderer and one waiter")
	}
	p.moveTo("2/3")
	<-wait // woken: its renderer's page is of the old generation
	p.filled("1/1", "other", cachedPage{body: []byte("old")})
	if page, wait, render := p.lookup("1/1", "k"); page.body != nil || wait != nil || render {
		t.Fatalf("a request of the old generation must bypass the cache: %q %v %v", page.body, wait, render)
	}
	if page, _, render := p.lookup("2/3", "k"); page.body != nil || !render {
		t.Fatalf("new generation: %q %v, want to render", page.body, render)
	}
}

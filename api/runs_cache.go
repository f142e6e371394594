package api

import (
	"bytes"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"

	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// Statement pages are cached as the bytes answered: lines of a completed run
// never change, so a page is valid as long as no run completes (the runs'
// CompletedGeneration). A hit costs one small query instead of reading,
// converting and encoding up to 1,000 lines (issue 9: 50 concurrent clients
// of a day's statements on 2 cores). Only JSON answers are cached.

const (
	maxCachedPages = 256
	maxCachedBytes = 128 << 20
)

// pageCache holds the JSON pages of one Runs, for one generation.
type pageCache struct {
	mu    sync.Mutex
	gen   string
	pages map[string][]byte
	bytes int
}

// pageCaches are the caches by Runs (a process has one; tests make many).
var pageCaches sync.Map // *settlementpg.Runs → *pageCache

func pagesOf(r *settlementpg.Runs) *pageCache {
	c, _ := pageCaches.LoadOrStore(r, &pageCache{pages: map[string][]byte{}})
	return c.(*pageCache)
}

func (p *pageCache) get(gen, key string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		return nil, false
	}
	b, ok := p.pages[key]
	return b, ok
}

func (p *pageCache) put(gen, key string, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen || len(p.pages) >= maxCachedPages || p.bytes+len(b) > maxCachedBytes {
		// A new generation, or full: start over rather than track ages.
		p.gen, p.pages, p.bytes = gen, map[string][]byte{}, 0
	}
	if len(b) <= maxCachedBytes {
		p.pages[key], p.bytes = b, p.bytes+len(b)
	}
}

// cached answers a GET of completed runs' data from the cache of g.Runs, or
// runs next and keeps its 200 JSON answer.
func (g RunRoutes) cached(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if WantsCSV(c) {
			return next(c)
		}
		gen, err := g.Runs.CompletedGeneration(c.Request().Context())
		if err != nil {
			return err
		}
		cache, key := pagesOf(g.Runs), c.Path()+"?"+c.QueryString()
		if b, ok := cache.get(gen, key); ok {
			return c.JSONBlob(http.StatusOK, b)
		}
		res := c.Response()
		rec := &pageRecorder{ResponseWriter: res.Writer}
		res.Writer = rec
		err = next(c)
		res.Writer = rec.ResponseWriter
		if err == nil && res.Status == http.StatusOK && !rec.over {
			cache.put(gen, key, bytes.Clone(rec.buf.Bytes()))
		}
		return err
	}
}

// pageRecorder keeps a copy of what is written, up to the cache's bound.
type pageRecorder struct {
	http.ResponseWriter
	buf  bytes.Buffer
	over bool
}

func (r *pageRecorder) Write(b []byte) (int, error) {
	if !r.over {
		if r.buf.Len()+len(b) > maxCachedBytes {
			r.over, r.buf = true, bytes.Buffer{}
		} else {
			r.buf.Write(b)
		}
	}
	return r.ResponseWriter.Write(b)
}

package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"

	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// Statement pages are cached as the bytes answered: lines of a completed run
// never change, so a page is valid as long as no run completes (the runs'
// CompletedGeneration). A hit costs a share of one small query (batched
// with the concurrent requests', see batcher) instead of reading,
// converting and encoding up to 1,000 lines (measured with 50 concurrent
// clients of a day's statements on 2 cores). Only JSON answers are cached.
//
// The generation a request is answered for is read by a query that started
// after the request arrived, and the page is read after it, so a page is
// never older than the request: a run that completed before a request
// arrived is in its answer.

const (
	maxCachedPages = 256
	maxCachedBytes = 128 << 20
)

// pageCache holds the JSON pages of one Runs, for the latest generation
// read.
type pageCache struct {
	generation batcher[struct{}, string]

	mu      sync.Mutex
	gen     string
	pages   map[string]cachedPage
	filling map[string]chan struct{} // pages being rendered, closed when done
	bytes   int
}

// pageCaches are the caches by Runs (a process has one; tests make many).
var pageCaches sync.Map // *settlementpg.Runs → *pageCache

func pagesOf(r *settlementpg.Runs) *pageCache {
	if c, ok := pageCaches.Load(r); ok {
		return c.(*pageCache)
	}
	p := &pageCache{pages: map[string]cachedPage{}, filling: map[string]chan struct{}{}}
	p.generation.fetch = func(ctx context.Context, _ []struct{}) (map[struct{}]string, error) {
		gen, err := r.CompletedGeneration(ctx)
		if err != nil {
			return nil, err
		}
		p.moveTo(gen)
		return map[struct{}]string{{}: gen}, nil
	}
	c, _ := pageCaches.LoadOrStore(r, p)
	return c.(*pageCache)
}

// moveTo makes gen the cache's generation. Batches are fetched one after
// the other, so the last one read is the latest: a request still holding
// an earlier one is answered without the cache rather than making it go
// back.
func (p *pageCache) moveTo(gen string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.gen {
		return
	}
	for _, ch := range p.filling {
		close(ch) // their renderers' pages are of a past generation
	}
	p.gen, p.pages, p.filling, p.bytes = gen, map[string]cachedPage{}, map[string]chan struct{}{}, 0
}

// lookup returns gen's page of key when cached. Otherwise either wait is
// closed when another request has rendered it (then look again), or render
// is true: the caller renders it and hands it to filled. With none of
// them, gen is not the cache's generation: answer without the cache.
func (p *pageCache) lookup(gen, key string) (page cachedPage, wait <-chan struct{}, render bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return cachedPage{}, nil, false
	}
	if b, ok := p.pages[key]; ok {
		return b, nil, false
	}
	if ch, ok := p.filling[key]; ok {
		return cachedPage{}, ch, false
	}
	p.filling[key] = make(chan struct{})
	return cachedPage{}, nil, true
}

// filled ends the rendering of key that lookup asked for: it keeps page (nil
// when the answer was not a page to keep) and wakes the requests waiting.
func (p *pageCache) filled(gen, key string, page cachedPage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return // moveTo woke them
	}
	if ch, ok := p.filling[key]; ok {
		close(ch)
		delete(p.filling, key)
	}
	if page.body == nil || len(page.body) > maxCachedBytes {
		return
	}
	if len(p.pages) >= maxCachedPages || p.bytes+len(page.body) > maxCachedBytes {
		// Full: start over rather than track ages.
		p.pages, p.bytes = map[string]cachedPage{}, 0
	}
	p.pages[key], p.bytes = page, p.bytes+len(page.body)
}

// cached answers a GET of completed runs' data from the cache of g.Runs, or
// renders it with next, keeps its 200 JSON answer and answers it the same
// way. A page is rendered once per generation: concurrent requests for it
// wait for the first (after a run completes, 50 clients would otherwise
// each read and encode the same lines at once).
func (g RunRoutes) cached(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		csv, err := WantsCSV(c)
		if err != nil {
			return err
		}
		if csv {
			return next(c)
		}
		ctx := c.Request().Context()
		cache := pagesOf(g.Runs)
		gen, _, err := cache.generation.get(ctx, struct{}{})
		if err != nil {
			return err
		}
		key := c.Path() + "?" + c.QueryString()
		for {
			page, wait, render := cache.lookup(gen, key)
			switch {
			case page.body != nil:
				c.Response().Header().Set(headerETag, page.etag)
				return JSONBytes(c, http.StatusOK, page.body)
			case wait != nil:
				select {
				case <-wait:
					continue
				case <-ctx.Done():
					return fmt.Errorf("wait for a statements page: %w", ctx.Err())
				}
			case !render:
				return next(c)
			}
			page, err := renderPage(c, next)
			cache.filled(gen, key, page)
			return err
		}
	}
}

// renderPage runs next with the response held back, then answers it: a
// 200 JSON page as JSONBytes does (so a rendered and a cached answer are the
// same bytes and headers), anything else as next wrote it. It returns the
// page when there is one to keep.
func renderPage(c echo.Context, next echo.HandlerFunc) (cachedPage, error) {
	rec, err := holdBack(c, next)
	var page cachedPage
	if err == nil && rec.status == http.StatusOK {
		page.body = bytes.Clone(rec.buf.Bytes())
		page.etag = strongETag(page.body)
		c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(page.body)))
		c.Response().Header().Set(headerETag, page.etag)
	}
	return page, rec.send(err)
}

// cachedPage is a page answered as is, with its ETag (hashed once, not per
// request).
type cachedPage struct {
	body []byte
	etag string
}

// holdBack runs next with what it writes held back in a pageRecorder, to be
// sent (or replaced) with its send.
func holdBack(c echo.Context, next echo.HandlerFunc) (*pageRecorder, error) {
	res := c.Response()
	rec := &pageRecorder{ResponseWriter: res.Writer}
	res.Writer = rec
	err := next(c)
	res.Writer = rec.ResponseWriter
	return rec, err
}

// pageRecorder holds back what a handler writes.
type pageRecorder struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (r *pageRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *pageRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.buf.Write(b)
}

// send writes the held answer to the writer beneath (the handler already
// went through echo's Response: status, size, committed) and returns err,
// or the write's error. With nothing written, the error handler answers.
func (r *pageRecorder) send(err error) error {
	if r.status == 0 {
		return err
	}
	r.ResponseWriter.WriteHeader(r.status)
	if r.buf.Len() == 0 {
		return err
	}
	if _, werr := r.ResponseWriter.Write(r.buf.Bytes()); werr != nil && err == nil {
		err = fmt.Errorf("write the answer: %w", werr)
	}
	return err
}

// JSONBytes answers b, a JSON document already encoded, with its
// Content-Length: the client then reads a plain body instead of chunks, and
// the server writes it in one piece (cached pages are answered this way).
func JSONBytes(c echo.Context, status int, b []byte) error {
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}

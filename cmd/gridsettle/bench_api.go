package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/settlement"
)

// benchStaticPath is the API bench's static route: the same handler chain
// (request id, metrics, access log, body limit, token lookup, role and
// parameter checks) answering a fixed body, the bytes of a statements page,
// written as a cached page is.
const benchStaticPath = "/api/v1/bench/static"

func (b *bench) api(ctx context.Context) error {
	d, err := b.completedRun(ctx)
	if err != nil {
		return err
	}
	var static []byte
	staticRoute := api.Route{
		Method: http.MethodGet, Path: benchStaticPath, Roles: api.Readers,
		Summary:  "Bench: a fixed statements page",
		Response: api.JSONBody(settlement.StatementMessage{}),
		Handler:  func(c echo.Context) error { return api.JSONBytes(c, http.StatusOK, static) },
	}
	// The server logs every request at info, as in production; the bench
	// discards the lines but pays for them.
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := api.New(api.Config{Addr: "127.0.0.1:0"}, log, benchRegistry(), b.pool, nil,
		api.RunRoutes{Runs: d.runs}, api.RouteList{staticRoute})
	tok, err := api.CreateToken(ctx, b.pool, api.Analyst, "bench")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	defer func() { stop(); <-served }()

	base := "http://" + ln.Addr().String()
	lines := min(d.lines, 1000)
	statementsURL := fmt.Sprintf("%s/api/v1/statements?operating_day=%s&limit=%d", base, d.day, lines)
	// The first request renders the page (the statements query, converting
	// and encoding the lines); the load below is answered from the cache,
	// as every request is until the next run completes.
	t0 := time.Now()
	static, err = fetch(ctx, statementsURL, tok.Token)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "api check: first answer (renders and caches the page) %.1f ms\n", float64(time.Since(t0))/float64(time.Millisecond))
	s := b.opts.sizes
	var p50, p99, lp50, lp99, rps []float64
	for rep := range b.opts.repeat {
		// Alternate which route goes first, so that neither always meets
		// the machine (GC, caches, neighbours) the other left behind.
		urls := []string{base + benchStaticPath, statementsURL}
		if rep%2 == 1 {
			slices.Reverse(urls)
		}
		res := map[string]loadResult{}
		for _, u := range urls {
			r, err := loadTest(ctx, u, tok.Token, s.APIClients, s.APIDuration)
			if err != nil {
				return err
			}
			res[u] = r
		}
		st, sm := res[base+benchStaticPath], res[statementsURL]
		p50, p99 = append(p50, sm.quantile(0.50)), append(p99, sm.quantile(0.99))
		lp50, lp99 = append(lp50, st.quantile(0.50)), append(lp99, st.quantile(0.99))
		rps = append(rps, sm.perSecond())
		fmt.Fprintf(b.out, "api check: statements %s requests (%.0f/s), static %s requests (%.0f/s), %d clients, %s each, %s bytes per answer\n",
			human(float64(len(sm.latencies))), sm.perSecond(), human(float64(len(st.latencies))), st.perSecond(),
			s.APIClients, s.APIDuration, human(float64(len(static))))
	}
	what := fmt.Sprintf("same chain, static route, same %s-byte body", human(float64(len(static))))
	note := fmt.Sprintf("%d lines per page, %d clients on loopback, server and clients in this process; %s req/s",
		lines, s.APIClients, human(median(rps)))
	b.print(benchFigure{name: "API statements, p50", unit: "ms", values: p50, limits: lp50, lowerIsBetter: true, limitWhat: what, note: note})
	b.print(benchFigure{name: "API statements, p99", unit: "ms", values: p99, limits: lp99, lowerIsBetter: true, limitWhat: what,
		target: "p99 < 50 ms", pass: func(v, _ float64) bool { return v < 50 },
		note: cmpJoin(sizeNote(lines, 1000, "lines"), sizeNote(s.APIClients, 50, "clients"))})
	return nil
}

func fetch(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, res.Status, body)
	}
	return body, nil
}

type loadResult struct {
	latencies []time.Duration
	elapsed   time.Duration
}

func (r loadResult) quantile(q float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := min(len(r.latencies)-1, int(q*float64(len(r.latencies))))
	return float64(r.latencies[i]) / float64(time.Millisecond)
}

func (r loadResult) perSecond() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// loadTest has clients concurrent clients, each on its own keep-alive
// connection, GET url back to back for d, reading every answer whole.
func loadTest(ctx context.Context, url, token string, clients int, d time.Duration) (loadResult, error) {
	var (
		mu    sync.Mutex
		all   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	t0 := time.Now()
	deadline := t0.Add(d)
	for range clients {
		wg.Go(func() {
			// The clients share the 2 cores with the server: read answers in
			// large pieces rather than through net/http's default 4 KiB
			// buffer, whose 70 reads per 563 KB answer cost more CPU than
			// the server spent writing it.
			cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true,
				ReadBufferSize: 256 << 10}}
			defer cl.CloseIdleConnections()
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				s := time.Now()
				res, err := cl.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", res.Status)
					}
				}
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(s))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if first != nil {
		return loadResult{}, fmt.Errorf("load %s: %w", url, first)
	}
	slices.Sort(all)
	return loadResult{latencies: all, elapsed: time.Since(t0)}, nil
}

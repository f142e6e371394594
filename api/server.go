package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is the HTTP server's configuration (parsed and validated in cmd).
type Config struct {
	Addr       string // listen address, e.g. 127.0.0.1:8080
	TLSCert    string // PEM certificate file; with TLSKey, serve HTTPS
	TLSKey     string // PEM private key file
	AdminToken string // accepted as an admin bearer token; "" for none

	MaxBodyBytes      int64         // request body limit; 0: DefaultMaxBodyBytes
	ReadHeaderTimeout time.Duration // 0: 10s
	ReadTimeout       time.Duration // whole request incl. body; 0: 60s
	WriteTimeout      time.Duration // until the response is written; 0: 5m (a run answers when committed)
	IdleTimeout       time.Duration // keep-alive; 0: 120s
	ShutdownTimeout   time.Duration // grace for in-flight requests; 0: 30s
}

// DefaultMaxBodyBytes is the default request body limit: room for a registry
// CSV of a few hundred thousand meters.
const DefaultMaxBodyBytes = 64 << 20

// Validate reports the first bad setting, naming it.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("http address: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("http address %q: %w", c.Addr, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls: --tls-cert and --tls-key must be given together")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("tls: load --tls-cert/--tls-key: %w", err)
		}
	}
	if c.MaxBodyBytes < 0 {
		return errors.New("max body bytes: must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 60*time.Second)
	def(&c.WriteTimeout, 5*time.Minute)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// Check is a readiness check: /readyz answers 200 only when every check
// returns nil. The Postgres ping is always included.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server is gridsettle's HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	echo    *echo.Echo
	auth    *authenticator
	checks  []Check
	routes  []Route
	paths   map[string]string // echo path -> OpenAPI path, for metric labels and logs
	etagged map[string]bool   // echo paths of GET routes with Route.ETag
	openapi []byte
	metrics *httpMetrics
}

// New builds the server: the framework's own routes (/healthz, /readyz,
// /metrics, /api/v1/openapi.json, tokens, audit) plus every area's routes.
// It panics on a route that is wrong by construction (no roles, a path
// parameter not declared, a duplicate) since routes are static values that
// the first test catches. reg receives the HTTP metrics and is served at
// /metrics.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry, pool *pgxpool.Pool, checks []Check, areas ...Routes) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		log:     log,
		pool:    pool,
		echo:    echo.New(),
		checks:  append([]Check{{Name: "postgres", Check: pool.Ping}}, checks...),
		paths:   map[string]string{},
		etagged: map[string]bool{},
		metrics: newHTTPMetrics(reg),
		auth:    newAuthenticator(pool, cfg.AdminToken),
	}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// etag runs outside compress: it hashes the bytes sent.
	e.Pre(statementIDPath)
	e.Use(s.requestID, s.observe, s.limitBody, s.etag, s.compress())

	s.add(Route{Method: http.MethodGet, Path: "/healthz", Summary: "Liveness: the process is up", public: true,
		Response: JSONBody(Health{}), Handler: s.healthz})
	s.add(Route{Method: http.MethodGet, Path: "/readyz", Summary: "Readiness: Postgres and every dependency answer", public: true,
		Response: JSONBody(Health{}), Errors: []int{http.StatusServiceUnavailable}, Handler: s.readyz})
	s.add(Route{Method: http.MethodGet, Path: "/metrics", Summary: "Prometheus metrics (text exposition format)", public: true,
		Response: &Body{Other: map[string]Schema{"text/plain": {"type": "string"}}},
		Handler:  echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))})
	// The document needs no token: client teams generate code from it.
	s.add(Route{Method: http.MethodGet, Path: "/api/v1/openapi.json", public: true,
		Summary:  "This OpenAPI 3.1 document (also api/openapi.json in the repository)",
		Response: JSONBody(Schema{"type": "object"}), Handler: s.serveOpenAPI})
	for _, r := range (tokenRoutes{pool: pool}).Routes() {
		s.add(r)
	}
	for _, r := range (auditRoutes{pool: pool}).Routes() {
		s.add(r)
	}
	for _, a := range areas {
		for _, r := range a.Routes() {
			s.add(r)
		}
	}
	doc, err := s.buildOpenAPI()
	if err != nil {
		panic(fmt.Sprintf("api: build OpenAPI document: %v", err))
	}
	s.openapi = doc
	return s
}

// add registers one route with its middleware: authentication and role
// check, then the declared-parameter check.
func (s *Server) add(r Route) {
	r.check()
	ep := r.echoPath()
	key := r.Method + " " + ep
	for _, old := range s.routes {
		if old.Method+" "+old.echoPath() == key {
			panic(fmt.Sprintf("api: route %s %s registered twice", r.Method, r.Path))
		}
	}
	path := r.Path
	mw := []echo.MiddlewareFunc{func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(routeKey, path)
			return next(c)
		}
	}}
	if !r.public {
		mw = append(mw, s.auth.authorize(&r))
	}
	mw = append(mw, checkParams(&r, r.params()))
	if r.Response != nil && r.Response.List {
		mw = append(mw, negotiateList)
	}
	if r.ETag && r.Method == http.MethodGet {
		s.etagged[ep] = true
	}
	s.echo.Add(r.Method, ep, r.Handler, mw...)
	s.routes = append(s.routes, r)
	s.paths[ep] = r.Path
}

// Mount serves h at prefix and every path under it (prefix ends in '/';
// the path without it redirects there): pages and assets outside /api/v1
// that hold no data, so they need no token and are not in the OpenAPI
// document (the console, api/console). They get the request id, metrics,
// logs and compression like every route; their metric label is prefix*.
func (s *Server) Mount(prefix string, h http.Handler) {
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/api/") {
		panic(fmt.Sprintf("api: mount %q: must be /name/ outside /api/", prefix))
	}
	ep := prefix + "*"
	s.paths[ep] = ep
	s.echo.Any(ep, echo.WrapHandler(h))
	bare := strings.TrimSuffix(prefix, "/")
	s.paths[bare] = ep
	s.echo.GET(bare, func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, prefix) })
}

// Handler is the server's http.Handler (for httptest and for embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Run listens on cfg.Addr and serves until ctx ends, then shuts down
// gracefully, letting in-flight requests finish within ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (e.g. on port 0 in tests).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load tls certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s.log.Info("api listening", "addr", ln.Addr().String(), "tls", s.cfg.TLSCert != "")
	if err := ServeUntil(ctx, srv, ln, s.cfg.ShutdownTimeout); err != nil {
		return err
	}
	s.log.Info("api stopped")
	return nil
}

// ServeUntil serves srv on ln until ctx ends, then shuts it down, letting
// requests in flight finish for up to grace. An error of serving before
// that is returned.
func ServeUntil(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Health is the answer of /healthz and /readyz.
type Health struct {
	Status string            `json:"status"`           // "ok" (/healthz) or "ready" (/readyz)
	Checks map[string]string `json:"checks,omitempty"` // check name -> "ok"
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, Health{Status: "ok"})
}

// readyz runs every check with a short deadline. Failures are logged with
// their cause but named to the (unauthenticated) caller only as failing.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	h := Health{Status: "ready", Checks: map[string]string{}}
	var failing []string
	for _, chk := range s.checks {
		if err := chk.Check(ctx); err != nil {
			Logger(c).Warn("readiness check failing", "check", chk.Name, "err", err)
			failing = append(failing, chk.Name)
			continue
		}
		h.Checks[chk.Name] = "ok"
	}
	if len(failing) > 0 {
		return Unavailablef("not ready: %s failing", strings.Join(failing, ", "))
	}
	return c.JSON(http.StatusOK, h)
}

package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// HeaderRequestID carries the request id, in every response.
const HeaderRequestID = "X-Request-Id"

const (
	loggerKey  = "gridsettle.log"
	problemKey = "gridsettle.problem"
)

type requestIDKey struct{}

// RequestID is the request id carried by ctx (a request's context), or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Logger is the server's logger with the request id attached: log with it in
// handlers so every line of a request can be found by its id.
func Logger(c echo.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// ContextHandler wraps a slog.Handler so that every record logged with a
// request's context (log.InfoContext(ctx, ...)) carries its request_id,
// whichever package logs it. cmd wraps the root logger's handler with it.
func ContextHandler(h slog.Handler) slog.Handler { return ctxHandler{h: h} }

type ctxHandler struct {
	h   slog.Handler
	has bool // request_id already attached with With (e.g. by Logger)
}

func (c ctxHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }

func (c ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" && !c.has {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return c.h.Handle(ctx, r)
}

func (c ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	has := c.has || slices.ContainsFunc(as, func(a slog.Attr) bool { return a.Key == "request_id" })
	return ctxHandler{h: c.h.WithAttrs(as), has: has}
}

func (c ctxHandler) WithGroup(name string) slog.Handler {
	return ctxHandler{h: c.h.WithGroup(name), has: c.has}
}

// A client's own request id (e.g. a gateway's) is kept beside the server's
// when it is of this safe form, and dropped otherwise, so it is safe to log.
var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

const clientRequestIDKey = "gridsettle.client_request_id"

// requestID gives every request the server's own id: a client cannot choose
// the id that the logs and the audit log file its request under.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		c.Response().Header().Set(HeaderRequestID, id)
		req := c.Request()
		c.SetRequest(req.WithContext(context.WithValue(req.Context(), requestIDKey{}, id)))
		log := s.log.With("request_id", id)
		if cid := req.Header.Get(HeaderRequestID); clientRequestID.MatchString(cid) {
			c.Set(clientRequestIDKey, cid)
			log = log.With("client_request_id", cid)
		}
		c.Set(loggerKey, log)
		return next(c)
	}
}

// limitBody refuses a body over the limit: at once when Content-Length says
// so, else when reading crosses it (http.MaxBytesError, mapped to 413).
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.MaxBodyBytes {
			return &Error{Kind: TooLarge, Detail: fmt.Sprintf("request body exceeds %d bytes", s.cfg.MaxBodyBytes)}
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
		return next(c)
	}
}

// isBodyError reports errors of reading the request body that must keep
// their own kind rather than become "malformed input".
func isBodyError(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// observe is the outermost handler of every request: it turns a panic into a
// 500, renders any error as problem+json (so the status is final), then
// records metrics, the access log line and, for state-changing calls, the
// audit row.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				}
			}()
			return next(c)
		}()
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		route := s.paths[c.Path()]
		label := route
		if label == "" {
			label = "unmatched"
		}
		method := methodLabel(req.Method)
		code := strconv.Itoa(res.Status)
		s.metrics.requests.WithLabelValues(method, label, code).Inc()
		s.metrics.duration.WithLabelValues(method, label).Observe(time.Since(start).Seconds())

		who, authenticated := CallerOf(c)
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		Logger(c).Log(req.Context(), level, "http request",
			"method", method, "path", safeText(req.URL.Path, maxAuditPath), "route", route, "status", res.Status,
			"bytes", res.Size, "duration", time.Since(start), "token_id", who.TokenID)

		if isStateChanging(req.Method) && route != "" && authenticated {
			s.auditAfter(c, who)
		}
		return nil
	}
}

// methodLabel is the method as a metric label: one of the standard methods
// or OTHER, since a client may send any token as its method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func isStateChanging(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// handleError is echo's HTTPErrorHandler: every error becomes problem+json
// through classify. Internal errors are logged with the request id and
// answered with a generic detail, never the error text.
func (s *Server) handleError(err error, c echo.Context) {
	e := classify(err)
	if c.Response().Committed {
		Logger(c).Error("error after the response was sent", "err", err)
		return
	}
	switch {
	case e.Kind == Internal:
		Logger(c).Error("internal error", "err", err)
	case e.Err != nil:
		Logger(c).Debug("request refused", "err", err)
	}
	k := kinds[e.Kind]
	p := Problem{
		Type:      ProblemType(k.slug),
		Title:     k.title,
		Status:    k.status,
		Detail:    e.Detail,
		Instance:  safeText(c.Request().URL.Path, maxAuditPath),
		RequestID: RequestID(c.Request().Context()),
		Parameter: e.Parameter,
		Row:       e.Row,
		Line:      e.Line,
		Column:    e.Column,
	}
	switch {
	case e.Parameter != "":
		p.Type = ProblemType("invalid-parameter")
	case e.Row != 0 && e.Kind == Invalid:
		p.Type = ProblemType("invalid-row")
	}
	if e.Kind == Unauthorized {
		v := `Bearer realm="gridsettle"`
		if e != errNoToken {
			v += `, error="invalid_token"`
		}
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, v)
	}
	c.Set(problemKey, p)
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(p.Status)
	} else {
		c.Response().Header().Set(echo.HeaderContentType, MIMEProblemJSON)
		c.Response().WriteHeader(p.Status)
		err = writeJSON(c.Response(), p)
	}
	if err != nil {
		Logger(c).Warn("write problem response", "err", err)
	}
}

// MIMEProblemJSON is the media type of every error answer (RFC 9457).
const MIMEProblemJSON = "application/problem+json"

type httpMetrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	auditFailures prometheus.Counter
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gridsettle_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and route pattern.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 30, 16),
		}, []string{"method", "route"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gridsettle_api_audit_failures_total",
			Help: "Audit rows of refused calls that could not be written, and successful state-changing calls that wrote none (a defect).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.auditFailures)
	return m
}

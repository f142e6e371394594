package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// Bounds of what an audit row keeps of a call, so that no caller can grow
// the append-only table by more than a few kilobytes a call.
const (
	maxAuditPath   = 2048 // the request path with its query, in bytes
	maxAuditDetail = 1024 // a refused call's problem detail, in bytes
	maxAuditAction = 1024 // the action summary, in bytes
)

const (
	routeKey   = "gridsettle.route"
	auditedKey = "gridsettle.audited"
)

// Beginner opens a transaction: a pool, or a transaction (which then opens
// a savepoint), as pgx.BeginFunc takes.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Audited runs a state-changing handler's change and the call's audit row
// in one transaction on db: if either fails, neither happens. change
// returns its result, the status the handler will answer with and the
// action summary (what changed, e.g. "created token tok_… (operator)").
//
//	tok, err := Audited(c, pool, func(ctx context.Context, tx pgx.Tx) (NewToken, int, string, error) {
//		t, err := createToken(ctx, tx, role, name)
//		return t, http.StatusCreated, "created token " + t.ID + " (" + string(t.Role) + ")", err
//	})
//
// A store that opens its own transaction (a run, an export) instead takes a
// hook that calls Audit in that transaction before it commits.
func Audited[T any](c echo.Context, db Beginner, change func(ctx context.Context, tx pgx.Tx) (T, int, string, error)) (T, error) {
	ctx := c.Request().Context()
	var out T
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		v, status, action, err := change(ctx, tx)
		if err != nil {
			return err
		}
		out = v
		return Audit(ctx, tx, c, status, action)
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// Audit writes the audit row of the call c, which answers status after
// doing action, in tx: the transaction of the change itself. Only an
// authenticated call of a route may be audited (the server refuses every
// other before a handler runs).
func Audit(ctx context.Context, tx pgx.Tx, c echo.Context, status int, action string) error {
	row, err := auditRowOf(c, status, action, "")
	if err != nil {
		return err
	}
	if err := row.insert(ctx, tx); err != nil {
		return err
	}
	c.Set(auditedKey, true)
	return nil
}

// auditRow is one row of api_audit.
type auditRow struct {
	requestID, method, path, route, action, detail string
	clientRequestID                                *string
	who                                            Caller
	status                                         int
}

var errNotAuditable = errors.New("audit: the call has no authenticated caller or no route")

func auditRowOf(c echo.Context, status int, action, detail string) (auditRow, error) {
	who, ok := CallerOf(c)
	route, _ := c.Get(routeKey).(string)
	if !ok || route == "" {
		return auditRow{}, errNotAuditable
	}
	req := c.Request()
	r := auditRow{
		requestID: RequestID(req.Context()),
		method:    req.Method, // a route matched, so one of the route methods
		path:      safeText(req.URL.RequestURI(), maxAuditPath),
		route:     route,
		action:    safeText(action, maxAuditAction),
		detail:    safeText(detail, maxAuditDetail),
		who:       who,
		status:    status,
	}
	if cid, ok := c.Get(clientRequestIDKey).(string); ok {
		r.clientRequestID = &cid
	}
	return r, nil
}

func (r auditRow) insert(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}) error {
	_, err := db.Exec(ctx, `INSERT INTO api_audit
		(request_id, client_request_id, token_id, token_name, role, method, path, route, status, action, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.requestID, r.clientRequestID, r.who.TokenID, r.who.Name, string(r.who.Role),
		r.method, r.path, r.route, r.status, r.action, r.detail)
	if err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	return nil
}

// auditAfter runs once the answer of an authenticated, state-changing call
// of a route is written. A refused call (400, 409, 5xx, ...) changed
// nothing, so its row, with the problem detail, is written now; a failure
// is logged and counted, not turned into an error the client would misread
// as the call's outcome. 401, 403 and 404 leave no row, so that a caller
// cannot fill the log by probing. A successful call must have been audited
// in its own transaction (Audited, Audit); one that was not is a defect,
// logged and counted.
func (s *Server) auditAfter(c echo.Context, who Caller) {
	status := c.Response().Status
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		return
	case status < 400:
		if audited, _ := c.Get(auditedKey).(bool); !audited {
			s.metrics.auditFailures.Inc()
			Logger(c).Error("state-changing call answered without an audit row", "route", c.Get(routeKey), "token_id", who.TokenID)
		}
		return
	}
	detail := ""
	if p, ok := c.Get(problemKey).(Problem); ok {
		detail = p.Detail
	}
	row, err := auditRowOf(c, status, "", detail)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
		defer cancel()
		err = row.insert(ctx, s.pool)
	}
	if err != nil {
		s.metrics.auditFailures.Inc()
		Logger(c).Error("write audit row of a refused call", "err", err, "token_id", who.TokenID)
	}
}

// safeText is s as Postgres text can hold it (valid UTF-8, no NUL) cut to
// at most max bytes at a character boundary.
func safeText(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// AuditEntry is one state-changing call as recorded in the audit log.
type AuditEntry struct {
	ID              int64     `json:"id"`
	At              time.Time `json:"at"`
	RequestID       string    `json:"request_id"`        // the server's own
	ClientRequestID *string   `json:"client_request_id"` // the client's X-Request-Id; null: none
	TokenID         *string   `json:"token_id"`          // null only in rows older than this rule
	TokenName       *string   `json:"token_name"`
	Role            *string   `json:"role"`
	Method          string    `json:"method"`
	Path            string    `json:"path"` // with its query, cut to 2,048 bytes
	Route           string    `json:"route"`
	Status          int       `json:"status"`
	Action          string    `json:"action"` // what changed; "" when the call was refused
	Detail          string    `json:"detail"` // why a refused call was refused
}

type auditRoutes struct{ pool *pgxpool.Pool }

func (a auditRoutes) Routes() []Route {
	return []Route{{
		Method: http.MethodGet, Path: "/api/v1/audit", Roles: Admins,
		Summary: "The audit log of every authenticated state-changing call of a route, oldest first",
		Params: []Param{
			InstantParam("from", "calls at or after this instant (RFC 3339)"),
			InstantParam("to", "calls before this instant (RFC 3339)"),
			Query("actor", "token id or token name"),
		},
		Response: ListBody(AuditEntry{}), Handler: a.list,
	}}
}

type auditKey struct {
	ID int64 `json:"id"`
}

func (a auditRoutes) list(c echo.Context) error {
	from, to, err := QueryRange(c)
	if err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after auditKey
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	actor := c.QueryParam("actor")
	rows, err := a.pool.Query(c.Request().Context(), `
		SELECT id, at, request_id, client_request_id, token_id, token_name, role, method, path, route, status, action, detail
		FROM api_audit
		WHERE id > $1
		  AND ($2::timestamptz IS NULL OR at >= $2)
		  AND ($3::timestamptz IS NULL OR at < $3)
		  AND ($4 = '' OR token_id = $4 OR token_name = $4)
		ORDER BY id
		LIMIT $5`, after.ID, from, to, actor, limit+1)
	if err != nil {
		return fmt.Errorf("list audit: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.RequestID, &e.ClientRequestID, &e.TokenID, &e.TokenName, &e.Role,
			&e.Method, &e.Path, &e.Route, &e.Status, &e.Action, &e.Detail)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return fmt.Errorf("list audit: %w", err)
	}
	return List(c, entries, limit, func(e AuditEntry) any { return auditKey{e.ID} })
}

package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// AuditEntry is one state-changing call as recorded in the audit log.
type AuditEntry struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	RequestID string    `json:"request_id"`
	TokenID   *string   `json:"token_id"` // null: no valid token was presented
	TokenName *string   `json:"token_name"`
	Role      *string   `json:"role"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Route     string    `json:"route"`
	Status    int       `json:"status"`
	Detail    string    `json:"detail"` // why a refused call was refused
}

type auditRoutes struct{ pool *pgxpool.Pool }

func (a auditRoutes) Routes() []Route {
	return []Route{{
		Method: http.MethodGet, Path: "/api/v1/audit", Roles: Admins,
		Summary: "The audit log of every state-changing call, oldest first",
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
		SELECT id, at, request_id, token_id, token_name, role, method, path, route, status, detail
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
		err := row.Scan(&e.ID, &e.At, &e.RequestID, &e.TokenID, &e.TokenName, &e.Role,
			&e.Method, &e.Path, &e.Route, &e.Status, &e.Detail)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return fmt.Errorf("list audit: %w", err)
	}
	return List(c, entries, limit, func(e AuditEntry) any { return auditKey{e.ID} })
}

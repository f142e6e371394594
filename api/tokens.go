package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// tokenRoutes are the admin's token management endpoints.
type tokenRoutes struct{ pool *pgxpool.Pool }

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Role Role   `json:"role"`
	Name string `json:"name"`
}

func (t tokenRoutes) Routes() []Route {
	return []Route{
		{
			Method: http.MethodGet, Path: "/api/v1/tokens", Roles: Admins,
			Summary:  "List API tokens (never their secrets)",
			Response: ListBody(Token{}), Handler: t.list,
		},
		{
			Method: http.MethodPost, Path: "/api/v1/tokens", Roles: Admins,
			Summary:     "Create an API token",
			Description: "The secret (token) is in this answer only; it is stored as a SHA-256 hash.",
			Request:     JSONBody(TokenRequest{}),
			Status:      http.StatusCreated, Response: JSONBody(NewToken{}), Handler: t.create,
		},
		{
			// The console asks it at sign-in to show the role and offer
			// only what the role may do; any client may.
			Method: http.MethodGet, Path: "/api/v1/whoami", Roles: Everyone,
			Summary:  "The calling token: its id, name and role",
			Response: JSONBody(Whoami{}), Handler: whoami,
		},
		{
			Method: http.MethodDelete, Path: "/api/v1/tokens/{id}", Roles: Admins,
			Summary: "Revoke an API token, effective immediately",
			Params:  []Param{Path("id", "token id, e.g. tok_3f2a9c0d1e2b4a5c")},
			Handler: t.revoke,
		},
	}
}

// Whoami is the answer of GET /api/v1/whoami.
type Whoami struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
}

func whoami(c echo.Context) error {
	who, _ := CallerOf(c) // the route needs a token: always set
	return c.JSON(http.StatusOK, Whoami{ID: who.TokenID, Name: who.Name, Role: who.Role})
}

func (t tokenRoutes) create(c echo.Context) error {
	var req TokenRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	tok, err := Audited(c, t.pool, func(ctx context.Context, tx pgx.Tx) (NewToken, int, string, error) {
		tok, err := CreateToken(ctx, tx, req.Role, req.Name)
		return tok, http.StatusCreated, fmt.Sprintf("created token %s (role %s)", tok.ID, tok.Role), err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, tok)
}

func (t tokenRoutes) revoke(c echo.Context) error {
	id := c.Param("id") // any text: checkParams bounds it, the look-up answers 404
	_, err := Audited(c, t.pool, func(ctx context.Context, tx pgx.Tx) (Role, int, string, error) {
		role, err := RevokeToken(ctx, tx, id)
		return role, http.StatusNoContent, fmt.Sprintf("revoked token %s (role %s)", id, role), err
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type tokenKey struct {
	ID string `json:"id"`
}

func (t tokenRoutes) list(c echo.Context) error {
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after tokenKey
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	rows, err := t.pool.Query(c.Request().Context(),
		`SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE id > $1 ORDER BY id LIMIT $2`,
		after.ID, limit+1)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	toks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Token, error) {
		var tok Token
		err := row.Scan(&tok.ID, &tok.Name, &tok.Role, &tok.CreatedAt, &tok.RevokedAt)
		tok.CreatedAt = tok.CreatedAt.UTC()
		if tok.RevokedAt != nil {
			r := tok.RevokedAt.UTC()
			tok.RevokedAt = &r
		}
		return tok, err
	})
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	return List(c, toks, limit, func(tok Token) any { return tokenKey{tok.ID} })
}

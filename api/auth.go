package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// Caller is who made a request: the token's id, name and role.
type Caller struct {
	TokenID string
	Name    string
	Role    Role
}

// AdminTokenID is the Caller.TokenID of the configured --admin-token.
const AdminTokenID = "admin-token"

const callerKey = "gridsettle.caller"

// CallerOf is the authenticated caller of the request; ok is false on the
// unauthenticated routes (/healthz, /readyz, /metrics).
func CallerOf(c echo.Context) (Caller, bool) {
	who, ok := c.Get(callerKey).(Caller)
	return who, ok
}

// Token is an API token as listed; its secret is never stored.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// NewToken is a freshly created token with its secret, shown only once.
type NewToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
}

// tokenPrefix marks gridsettle secrets, so they are recognisable in a leak
// scan; the rest is 32 random bytes, base64url.
const tokenPrefix = "gs_"

func hashToken(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// CreateToken makes a token with a random secret, stores only its SHA-256
// and returns the secret once. Used by POST /api/v1/tokens and by
// `gridsettle token create`.
func CreateToken(ctx context.Context, db Querier, role Role, name string) (NewToken, error) {
	if !slices.Contains(AllRoles, role) {
		return NewToken{}, BadParam("role", "%q is not one of analyst, operator, regulator, admin", role)
	}
	if name == "" || len(name) > 100 {
		return NewToken{}, BadParam("name", "must be 1 to 100 characters")
	}
	var secret [32]byte
	var id [8]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return NewToken{}, fmt.Errorf("generate token: %w", err)
	}
	if _, err := rand.Read(id[:]); err != nil {
		return NewToken{}, fmt.Errorf("generate token id: %w", err)
	}
	t := NewToken{
		ID:    "tok_" + hex.EncodeToString(id[:]),
		Name:  name,
		Role:  role,
		Token: tokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:]),
	}
	hash := hashToken(t.Token)
	err := db.QueryRow(ctx,
		`INSERT INTO api_tokens (id, name, role, hash) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		t.ID, t.Name, string(t.Role), hash[:]).Scan(&t.CreatedAt)
	if err != nil {
		return NewToken{}, fmt.Errorf("store token: %w", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// Querier is a pool or a transaction: CreateToken and RevokeToken run in
// the audit's transaction when the API calls them.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// RevokeToken revokes the token id from now on and returns its role;
// revoking a revoked token is a no-op. A NotFound error when there is no
// such token.
func RevokeToken(ctx context.Context, db Querier, id string) (Role, error) {
	var role string
	err := db.QueryRow(ctx,
		`UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING role`, id).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", NotFoundf("token %q not found", id)
	} else if err != nil {
		return "", fmt.Errorf("revoke token: %w", err)
	}
	return Role(role), nil
}

// authenticator checks bearer tokens: the configured admin token, or a
// stored one, looked up by hash for every request by a query that starts
// after the request arrived, so that a revocation takes effect at once.
// Concurrent requests share that query (see batcher).
type authenticator struct {
	pool      *pgxpool.Pool
	adminHash []byte // nil: no admin token configured
	tokens    batcher[[sha256.Size]byte, storedToken]
}

// storedToken is a row of api_tokens.
type storedToken struct {
	who     Caller
	hash    []byte
	revoked bool
}

func newAuthenticator(pool *pgxpool.Pool, adminToken string) *authenticator {
	a := &authenticator{pool: pool}
	if adminToken != "" {
		h := hashToken(adminToken)
		a.adminHash = h[:]
	}
	a.tokens.fetch = a.lookup
	return a
}

// lookup reads the tokens with these hashes.
func (a *authenticator) lookup(ctx context.Context, hashes [][sha256.Size]byte) (map[[sha256.Size]byte]storedToken, error) {
	arg := make([][]byte, len(hashes))
	for i := range hashes {
		arg[i] = hashes[i][:]
	}
	rows, err := a.pool.Query(ctx, `SELECT id, name, role, hash, revoked_at IS NOT NULL FROM api_tokens WHERE hash = ANY($1)`, arg)
	if err != nil {
		return nil, fmt.Errorf("look up tokens: %w", err)
	}
	found := make(map[[sha256.Size]byte]storedToken, len(hashes))
	var t storedToken
	var role string
	_, err = pgx.ForEachRow(rows, []any{&t.who.TokenID, &t.who.Name, &role, &t.hash, &t.revoked}, func() error {
		if len(t.hash) != sha256.Size {
			return fmt.Errorf("token %s: stored hash of %d bytes", t.who.TokenID, len(t.hash))
		}
		t.who.Role = Role(role)
		found[[sha256.Size]byte(t.hash)] = t
		t.hash = nil // found keeps this row's slice: scan the next into a new one
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up tokens: %w", err)
	}
	return found, nil
}

var errNoToken = &Error{Kind: Unauthorized, Detail: "an Authorization: Bearer <token> header is required"}

func (a *authenticator) caller(ctx context.Context, header string) (Caller, error) {
	scheme, secret, ok := strings.Cut(header, " ")
	if header == "" {
		return Caller{}, errNoToken
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return Caller{}, E(Unauthorized, "the Authorization header must be Bearer <token>")
	}
	hash := hashToken(strings.TrimSpace(secret))
	if a.adminHash != nil && subtle.ConstantTimeCompare(hash[:], a.adminHash) == 1 {
		return Caller{TokenID: AdminTokenID, Name: "configured admin token", Role: Admin}, nil
	}
	t, found, err := a.tokens.get(ctx, hash)
	switch {
	case err != nil:
		return Caller{}, err
	case !found:
		return Caller{}, E(Unauthorized, "unknown token")
	}
	// The index lookup already matched the hash; compare again in constant
	// time so acceptance never hinges on a variable-time comparison.
	if subtle.ConstantTimeCompare(hash[:], t.hash) != 1 {
		return Caller{}, E(Unauthorized, "unknown token")
	}
	if t.revoked {
		return Caller{}, E(Unauthorized, "token revoked")
	}
	return t.who, nil
}

// authorize is the per-route middleware: 401 without a valid token, 403 when
// the token's role is not among the route's roles.
func (a *authenticator) authorize(r *Route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			who, err := a.caller(c.Request().Context(), c.Request().Header.Get(echo.HeaderAuthorization))
			if err != nil {
				return err
			}
			c.Set(callerKey, who)
			if !slices.Contains(r.Roles, who.Role) {
				return E(Forbidden, "role %s may not %s %s", who.Role, r.Method, r.Path)
			}
			return next(c)
		}
	}
}

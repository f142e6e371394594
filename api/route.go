package api

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Role is what a token may do (api/README.md "Authentication and roles").
type Role string

// The roles of the contract.
const (
	Analyst   Role = "analyst"
	Operator  Role = "operator"
	Regulator Role = "regulator"
	Admin     Role = "admin"
)

// AllRoles lists every role, for validation and documentation.
var AllRoles = []Role{Analyst, Operator, Regulator, Admin}

// Role sets for Route.Roles. A route names exactly who may call it; admin is
// in every set.
var (
	Readers       = []Role{Analyst, Operator, Admin}            // reads: everything but tokens and audit
	Operators     = []Role{Operator, Admin}                     // runs, registry edits, replays, creating exports
	ExportReaders = []Role{Analyst, Operator, Regulator, Admin} // exports: list, manifest, files, verify, key
	Admins        = []Role{Admin}                               // tokens, audit
	Everyone      = []Role{Analyst, Operator, Regulator, Admin} // any valid token
)

// Route is one endpoint: what the router serves and what the OpenAPI
// document says about it, from the same value, so they cannot drift.
type Route struct {
	Method      string // http.MethodGet, ...
	Path        string // full path in OpenAPI form: /api/v1/meters/{meter_id}/reads
	Roles       []Role // who may call it; required for every /api/v1 route
	Summary     string // one line for the document
	Description string // optional longer text
	// Params are the query and path parameters. Each {name} in Path needs
	// an In: "path" param. The server rejects query parameters not listed
	// here, and checks Required, Enum and the Type/Format of each before the
	// handler runs, so the document is what the server enforces. List
	// responses get limit and cursor added automatically.
	Params   []Param
	Request  *Body // nil: no request body
	Status   int   // success status; 0 means 200 (204 when Response is nil)
	Response *Body // nil: no content
	// AlsoOK lists further success statuses answered with Response (e.g.
	// 200 for a POST that found the thing already made, beside its 201).
	AlsoOK []int
	// Errors lists extra problem statuses the route can answer (e.g. 409),
	// beyond those implied: 400 (params or body), 401/403 (roles), 404 (path
	// params), 413 (body), 500.
	Errors []int
	// ETag: a 200 answer carries a strong ETag (a hash of its bytes) and a
	// request whose If-None-Match names it gets a 304 without a body. For
	// answers that rarely change and are large: runs, statements, charges.
	ETag    bool
	Handler echo.HandlerFunc
	// public marks the unauthenticated operational routes (/healthz, ...).
	public bool
}

// Routes is implemented by each area (ingest, runs, ledger, ...) to hand
// its endpoints to New.
type Routes interface {
	Routes() []Route
}

// RouteList adapts a plain slice to Routes.
type RouteList []Route

// Routes returns the list itself.
func (l RouteList) Routes() []Route { return l }

// Param is a query or path parameter.
type Param struct {
	Name        string
	In          string // "query" (default) or "path"
	Required    bool   // path params are always required
	Description string
	Type        string   // "string" (default), "integer", "boolean"
	Format      string   // with string: "date" (YYYY-MM-DD), "date-time" (RFC 3339); else free
	Enum        []string // allowed values, when a closed set
	Min, Max    *int64   // bounds for integers
	// Rest marks a path parameter that ends the path and may hold '/' (a
	// schema name such as settlement.statement/v1): it is routed as echo's
	// * and read with PathParam.
	Rest bool
}

// Query is a query parameter of type string.
func Query(name, description string) Param {
	return Param{Name: name, In: "query", Description: description}
}

// Path is a path parameter of type string.
func Path(name, description string) Param {
	return Param{Name: name, In: "path", Required: true, Description: description}
}

// DayParam is an operating-day query parameter (YYYY-MM-DD).
func DayParam(name, description string) Param {
	return Param{Name: name, In: "query", Description: description, Format: "date"}
}

// InstantParam is an RFC 3339 instant query parameter.
func InstantParam(name, description string) Param {
	return Param{Name: name, In: "query", Description: description, Format: "date-time"}
}

// IntParam is an integer query parameter within [lo, hi].
func IntParam(name, description string, lo, hi int64) Param {
	return Param{Name: name, In: "query", Description: description, Type: "integer", Min: &lo, Max: &hi}
}

// EnumParam is a query parameter with a closed set of values.
func EnumParam(name, description string, values ...string) Param {
	return Param{Name: name, In: "query", Description: description, Enum: values}
}

// Require marks the parameter required.
func (p Param) Require() Param { p.Required = true; return p }

// Body describes a request or response body for the OpenAPI document.
type Body struct {
	Description string
	// JSON is a Go value whose type is the JSON body (e.g. Token{} or
	// []Participant{}), or a Schema used as is; nil: no JSON media type.
	JSON any
	// List makes a response the paginated list envelope
	// {"items": [JSON...], "next_cursor"} and adds text/csv (see List);
	// on a request it adds text/csv with a header row.
	List bool
	// Other media types, each with its schema (e.g. "application/x-pem-file":
	// Schema{"type": "string"}).
	Other map[string]Schema
}

// Schema is a JSON Schema (OpenAPI 3.1 dialect) written out by hand.
type Schema map[string]any

// JSONBody is a body of one JSON value of v's type.
func JSONBody(v any) *Body { return &Body{JSON: v} }

// ListBody is a paginated list response of items of v's type (JSON and CSV).
func ListBody(item any) *Body { return &Body{JSON: item, List: true} }

var pathParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// echoPath turns /a/{b}/c into echo's /a/:b/c, and a final {rest} declared
// Rest into echo's *.
func (r *Route) echoPath() string {
	p := r.Path
	for _, x := range r.Params {
		if x.Rest {
			p = strings.TrimSuffix(p, "{"+x.Name+"}") + "*"
		}
	}
	return pathParam.ReplaceAllString(p, ":$1")
}

// PathParam is the value of path parameter p as routed: percent-escapes
// are left to the handler (checkParams checks both forms).
func PathParam(c echo.Context, p Param) string {
	if p.Rest {
		return c.Param("*")
	}
	return c.Param(p.Name)
}

// check panics on a route that is wrong by construction; routes are static
// values, so this fires in the first test that builds the server.
func (r *Route) check() {
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("api: route %s %s: %s", r.Method, r.Path, fmt.Sprintf(format, args...)))
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		fail("unsupported method")
	}
	if r.Handler == nil {
		fail("no handler")
	}
	if !r.public {
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			fail("path must start with /api/v1/")
		}
		if len(r.Roles) == 0 {
			fail("no roles: say who may call it")
		}
		for _, role := range r.Roles {
			if !slices.Contains(AllRoles, role) {
				fail("unknown role %q", role)
			}
		}
	}
	inPath := map[string]bool{}
	for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
		inPath[m[1]] = true
	}
	seen := map[string]bool{}
	for _, p := range r.Params {
		if seen[p.Name] {
			fail("parameter %q declared twice", p.Name)
		}
		seen[p.Name] = true
		switch p.in() {
		case "path":
			if !inPath[p.Name] {
				fail("path parameter %q not in the path", p.Name)
			}
			if p.Rest && !strings.HasSuffix(r.Path, "{"+p.Name+"}") {
				fail("path parameter %q is Rest but does not end the path", p.Name)
			}
		case "query":
			if p.Rest {
				fail("query parameter %q cannot be Rest", p.Name)
			}
		default:
			fail("parameter %q: In must be query or path", p.Name)
		}
	}
	for name := range inPath {
		if !seen[name] {
			fail("path parameter {%s} not declared in Params", name)
		}
	}
	if r.Response == nil && r.Status != 0 && r.Status != http.StatusNoContent {
		fail("status %d without a response body", r.Status)
	}
}

func (p Param) in() string {
	if p.In == "" {
		return "query"
	}
	return p.In
}

func (r *Route) status() int {
	switch {
	case r.Status != 0:
		return r.Status
	case r.Response == nil:
		return http.StatusNoContent
	}
	return http.StatusOK
}

// params is the full parameter list: the declared ones plus, for list
// responses, limit and cursor unless declared.
func (r *Route) params() []Param {
	ps := slices.Clone(r.Params)
	if r.Response != nil && r.Response.List {
		has := func(n string) bool {
			return slices.ContainsFunc(ps, func(p Param) bool { return p.Name == n })
		}
		if !has("limit") {
			ps = append(ps, IntParam("limit", fmt.Sprintf("page size (default %d)", DefaultLimit), 1, MaxLimit))
		}
		if !has("cursor") {
			ps = append(ps, Query("cursor", "opaque cursor: the next_cursor of the previous page"))
		}
	}
	return ps
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
)

// Kind classifies an error for the client. Every kind maps to exactly one
// HTTP status and problem type, in problemFor; nothing else decides statuses.
type Kind int

// The error kinds. The zero value is Internal, so an unclassified error is
// never mistaken for the client's fault.
const (
	Internal         Kind = iota // 500; detail never reaches the client
	Invalid                      // 400: bad parameter, body, row or column
	Unauthorized                 // 401: no, unknown or revoked token
	Forbidden                    // 403: the token's role may not do this
	NotFound                     // 404
	MethodNotAllowed             // 405
	NotAcceptable                // 406: the Accept header takes none of the route's media types
	Conflict                     // 409: collides with existing state
	TooLarge                     // 413: request body over the limit
	UnsupportedMedia             // 415: a body in a content type the route does not take
	Unavailable                  // 503: a dependency is down or timed out
)

var kinds = [...]struct {
	status int
	slug   string
	title  string
}{
	Internal:         {http.StatusInternalServerError, "internal", "Internal server error"},
	Invalid:          {http.StatusBadRequest, "invalid-request", "Invalid request"},
	Unauthorized:     {http.StatusUnauthorized, "unauthorized", "Unauthorized"},
	Forbidden:        {http.StatusForbidden, "forbidden", "Forbidden"},
	NotFound:         {http.StatusNotFound, "not-found", "Not found"},
	MethodNotAllowed: {http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"},
	NotAcceptable:    {http.StatusNotAcceptable, "not-acceptable", "Not acceptable"},
	Conflict:         {http.StatusConflict, "conflict", "Conflict"},
	TooLarge:         {http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	UnsupportedMedia: {http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
	Unavailable:      {http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
}

// Status is the HTTP status of the kind.
func (k Kind) Status() int { return kinds[k].status }

// Error is an error with a kind and a detail meant for the client. Parameter,
// Row, Line and Column locate a 400 when there is something to point at.
type Error struct {
	Kind      Kind
	Detail    string
	Parameter string // the query, path or body parameter at fault
	Row       int    // 1-based data row of an uploaded batch
	Line      int    // line of an uploaded CSV file
	Column    string // column (CSV) or field (JSON) of the row at fault
	Err       error  // cause, for logs and errors.Is; never shown to the client
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// E makes an *Error of kind k with a formatted detail for the client.
func E(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// BadParam is a 400 naming the parameter at fault, e.g.
// BadParam("operating_day", "%q is not YYYY-MM-DD", s).
func BadParam(name, format string, args ...any) error {
	return &Error{Kind: Invalid, Parameter: name, Detail: name + ": " + fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 about the request as a whole (e.g. a malformed body).
func BadRequest(format string, args ...any) error { return E(Invalid, format, args...) }

// BadRow is a 400 naming the row (1-based data row), the CSV line (0 when not
// CSV) and the column of an uploaded batch.
func BadRow(row, line int, column, format string, args ...any) error {
	return &Error{Kind: Invalid, Row: row, Line: line, Column: column, Detail: rowDetail(row, line, column, fmt.Sprintf(format, args...))}
}

// NotFoundf is a 404 with a detail, e.g. NotFoundf("run %q not found", id).
func NotFoundf(format string, args ...any) error { return E(NotFound, format, args...) }

// Conflictf is a 409 with a detail.
func Conflictf(format string, args ...any) error { return E(Conflict, format, args...) }

// Unavailablef is a 503 with a detail.
func Unavailablef(format string, args ...any) error { return E(Unavailable, format, args...) }

func rowDetail(row, line int, column, msg string) string {
	s := fmt.Sprintf("row %d", row)
	if line > 0 {
		s += fmt.Sprintf(" (line %d)", line)
	}
	if column != "" {
		s += ", column " + column
	}
	return s + ": " + msg
}

// Problem is an RFC 9457 problem details document
// (application/problem+json), with gridsettle's extension members.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Parameter string `json:"parameter,omitempty"`
	Row       int    `json:"row,omitempty"`
	Line      int    `json:"line,omitempty"`
	Column    string `json:"column,omitempty"`
}

// ProblemType is the problem "type" URI of a problem slug.
func ProblemType(slug string) string { return "urn:gridsettle:problem:" + slug }

// classify turns any error into the *Error the client sees. It is the one
// place where errors become statuses: our own *Error, echo's HTTP errors,
// body-limit errors, registry row errors and Postgres constraint violations.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var rowErr *registrystore.RowError
	if errors.As(err, &rowErr) {
		k := Invalid
		if rowErr.Conflict {
			k = Conflict
		}
		return &Error{Kind: k, Row: rowErr.Row, Line: rowErr.Line, Column: rowErr.Column,
			Detail: rowErr.Error(), Err: err}
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return &Error{Kind: TooLarge, Detail: fmt.Sprintf("request body exceeds %d bytes", maxBytes.Limit), Err: err}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fromEcho(he)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		if e := fromPostgres(pg); e != nil {
			e.Err = err
			return e
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: Unavailable, Detail: "the request timed out", Err: err}
	}
	return &Error{Kind: Internal, Detail: "internal error; quote the request id when reporting it", Err: err}
}

func fromEcho(he *echo.HTTPError) *Error {
	e := &Error{Err: he}
	switch he.Code {
	case http.StatusNotFound:
		e.Kind, e.Detail = NotFound, "no such resource"
	case http.StatusMethodNotAllowed:
		e.Kind, e.Detail = MethodNotAllowed, "method not allowed on this resource"
	case http.StatusRequestEntityTooLarge:
		e.Kind, e.Detail = TooLarge, "request body too large"
	case http.StatusUnsupportedMediaType:
		e.Kind, e.Detail = UnsupportedMedia, "unsupported media type"
	case http.StatusUnauthorized:
		e.Kind, e.Detail = Unauthorized, "authentication required"
	case http.StatusForbidden:
		e.Kind, e.Detail = Forbidden, "forbidden"
	case http.StatusServiceUnavailable:
		e.Kind, e.Detail = Unavailable, "service unavailable"
	default:
		if he.Code >= 400 && he.Code < 500 {
			e.Kind, e.Detail = Invalid, http.StatusText(he.Code)
		} else {
			e.Kind, e.Detail = Internal, "internal error; quote the request id when reporting it"
		}
	}
	return e
}

// fromPostgres maps the constraint violations that mean "the client's data
// collides with the database" to client errors; nil for anything else. The
// detail names the constraint, never the SQL.
func fromPostgres(pg *pgconn.PgError) *Error {
	switch pg.Code {
	case "23505": // unique_violation
		return E(Conflict, "already exists (%s)", pg.ConstraintName)
	case "23P01": // exclusion_violation
		return E(Conflict, "overlaps an existing entry (%s)", pg.ConstraintName)
	case "23503": // foreign_key_violation
		return E(Invalid, "refers to something that does not exist (%s)", pg.ConstraintName)
	case "23514", "23502": // check_violation, not_null_violation
		return E(Invalid, "a value is out of range or missing (%s)", pg.ConstraintName)
	case "22001", "22003", "22007", "22008", "22P02": // too long, out of range, bad datetime/text
		return E(Invalid, "a value is malformed or out of range")
	case "57014": // query_canceled: the API pool's statement_timeout
		return E(Unavailable, "the request took longer than the API's statement timeout")
	case "22021", "22P05": // invalid UTF-8 or U+0000 in text, untranslatable character
		return E(Invalid, "a value is not valid text (invalid UTF-8 or U+0000)")
	}
	return nil
}

// writeJSON encodes v to w without HTML escaping, as one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

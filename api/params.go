package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
)

// Pagination limits of the contract.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ParseDay parses an operating day (YYYY-MM-DD); the error names the
// parameter.
func ParseDay(name, s string) (settlement.Day, error) {
	d, err := settlement.ParseDay(s)
	if err != nil {
		return settlement.Day{}, BadParam(name, "%q is not a date YYYY-MM-DD", s)
	}
	return d, nil
}

// ParseInstant parses an RFC 3339 instant (with a zone offset) and returns
// it in UTC; the error names the parameter.
func ParseInstant(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, BadParam(name, "%q is not an RFC 3339 instant such as 2026-11-01T05:00:00Z", s)
	}
	return t.UTC(), nil
}

// ParseInt parses a base-10 integer in [lo, hi]; the error names the
// parameter.
func ParseInt(name, s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, BadParam(name, "%q is not an integer", s)
	}
	if n < lo || n > hi {
		return 0, BadParam(name, "%d is outside [%d, %d]", n, lo, hi)
	}
	return n, nil
}

// ParseEnum checks that s is one of allowed; the error names the parameter
// and lists the allowed values.
func ParseEnum(name, s string, allowed ...string) (string, error) {
	if !slices.Contains(allowed, s) {
		return "", BadParam(name, "%q is not one of %s", s, strings.Join(allowed, ", "))
	}
	return s, nil
}

// ParseID checks that s is a registry identifier (meters.ValidIdentifier:
// [A-Za-z0-9._:-]{1,64}).
func ParseID(name, s string) (string, error) {
	if !meters.ValidIdentifier(s) {
		return "", BadParam(name, "%q is not an identifier ([A-Za-z0-9._:-], 1 to 64 characters)", s)
	}
	return s, nil
}

// QueryDay is the optional operating-day query parameter name; nil when
// absent or empty.
func QueryDay(c echo.Context, name string) (*settlement.Day, error) {
	s := c.QueryParam(name)
	if s == "" {
		return nil, nil
	}
	d, err := ParseDay(name, s)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// QueryInstant is the optional RFC 3339 query parameter name; nil when
// absent or empty.
func QueryInstant(c echo.Context, name string) (*time.Time, error) {
	s := c.QueryParam(name)
	if s == "" {
		return nil, nil
	}
	t, err := ParseInstant(name, s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// QueryRange reads the half-open instant range [from, to) of the query
// parameters "from" and "to"; either may be absent (nil). to must be after
// from when both are given.
func QueryRange(c echo.Context) (from, to *time.Time, err error) {
	if from, err = QueryInstant(c, "from"); err != nil {
		return nil, nil, err
	}
	if to, err = QueryInstant(c, "to"); err != nil {
		return nil, nil, err
	}
	if from != nil && to != nil && !to.After(*from) {
		return nil, nil, BadParam("to", "must be after from")
	}
	return from, to, nil
}

// QueryDayRange reads the inclusive operating-day range of the query
// parameters "from" and "to"; either may be absent (nil). to must not be
// before from.
func QueryDayRange(c echo.Context) (from, to *settlement.Day, err error) {
	if from, err = QueryDay(c, "from"); err != nil {
		return nil, nil, err
	}
	if to, err = QueryDay(c, "to"); err != nil {
		return nil, nil, err
	}
	if from != nil && to != nil && to.Before(*from) {
		return nil, nil, BadParam("to", "must not be before from")
	}
	return from, to, nil
}

// QueryInt is the optional integer query parameter name in [lo, hi]; nil
// when absent or empty.
func QueryInt(c echo.Context, name string, lo, hi int64) (*int64, error) {
	s := c.QueryParam(name)
	if s == "" {
		return nil, nil
	}
	n, err := ParseInt(name, s, lo, hi)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// QueryEnum is the optional query parameter name, one of allowed; "" when
// absent.
func QueryEnum(c echo.Context, name string, allowed ...string) (string, error) {
	s := c.QueryParam(name)
	if s == "" {
		return "", nil
	}
	return ParseEnum(name, s, allowed...)
}

// QueryID is the optional identifier query parameter name; "" when absent.
func QueryID(c echo.Context, name string) (string, error) {
	s := c.QueryParam(name)
	if s == "" {
		return "", nil
	}
	return ParseID(name, s)
}

// Required is the query parameter name, or a 400 naming it when absent.
func Required(c echo.Context, name string) (string, error) {
	s := c.QueryParam(name)
	if s == "" {
		return "", BadParam(name, "is required")
	}
	return s, nil
}

// PathID is the path parameter name, checked to be an identifier.
func PathID(c echo.Context, name string) (string, error) {
	return ParseID(name, c.Param(name))
}

// Limit is the page size: the "limit" query parameter, default
// DefaultLimit, at most MaxLimit.
func Limit(c echo.Context) (int, error) {
	s := c.QueryParam("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := ParseInt("limit", s, 1, MaxLimit)
	return int(n), err
}

// Cursor decodes the "cursor" query parameter into key (a pointer to the
// keyset struct the handler encoded with List). It reports false when there
// is no cursor (the first page).
func Cursor(c echo.Context, key any) (bool, error) {
	s := c.QueryParam("cursor")
	if s == "" {
		return false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	// A crafted cursor may carry text no key holds (U+0000 reaches Postgres
	// as an error): refuse it here, naming the parameter.
	if err != nil || !utf8.Valid(b) || bytes.Contains(bytes.ToLower(b), []byte(`\u0000`)) {
		return false, BadParam("cursor", "is not a cursor returned by this endpoint")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(key); err != nil {
		return false, BadParam("cursor", "is not a cursor returned by this endpoint")
	}
	return true, nil
}

// EncodeCursor is the opaque cursor of a keyset value: base64url of its JSON.
func EncodeCursor(key any) (string, error) {
	b, err := json.Marshal(key)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeJSON reads the request body, which must be JSON, into v. Unknown
// fields are refused; untyped numbers arrive as json.Number (declare amounts
// as decimal.Decimal, json.Number or string fields, never binary floats).
func DecodeJSON(c echo.Context, v any) error {
	if ct := mediaType(c.Request().Header.Get(echo.HeaderContentType)); ct != "" && ct != echo.MIMEApplicationJSON {
		return E(UnsupportedMedia, "the body must be application/json, not %s", ct)
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return BadRequest("the body must hold one JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a 400 naming the field where the
// decoder tells which; errors of the body reader (e.g. the size limit) pass
// through.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return BadRequest("the request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("the request body is truncated JSON")
	case errors.As(err, &syn):
		return BadRequest("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return BadParam(typ.Field, "must be a JSON %s, not %s", typ.Type, typ.Value)
		}
		return BadRequest("the body must be a JSON %s, not %s", typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadParam(name, "unknown field")
	}
	var ae *Error
	if errors.As(err, &ae) {
		return err
	}
	if isBodyError(err) {
		return err
	}
	// Errors from a field's own UnmarshalJSON (e.g. a malformed decimal).
	return BadRequest("malformed JSON: %s", err.Error())
}

// mediaType is the lower-cased media type of a Content-Type header, without
// parameters; "" when absent.
func mediaType(h string) string {
	if h == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(h)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(h))
	}
	return mt
}

// checkParams enforces a route's declared query parameters: no undeclared
// ones, required present, and each value of its declared type, format and
// enum; the 400 names the parameter.
func checkParams(r *Route, params []Param) echo.MiddlewareFunc {
	byName := map[string]Param{}
	for _, p := range params {
		byName[p.Name] = p
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			q := c.QueryParams()
			names := make([]string, 0, len(q))
			for name := range q {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				p, ok := byName[name]
				if !ok || p.in() != "query" {
					return BadParam(meters.SafeDetail(name), "unknown parameter for %s %s", r.Method, r.Path)
				}
				if len(q[name]) > 1 {
					return BadParam(name, "given more than once")
				}
			}
			for _, p := range params {
				v := c.QueryParam(p.Name)
				if p.in() == "path" {
					v = PathParam(c, p)
					if u, err := url.PathUnescape(v); err == nil {
						v = u // routed on the raw path: check what the handler may decode too
					}
				}
				if err := plainText(p.Name, v); err != nil {
					return err
				}
				if v == "" {
					if p.Required {
						return BadParam(p.Name, "is required")
					}
					continue
				}
				if err := p.check(v); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

// MaxParamBytes bounds every query and path parameter value: room for any
// identifier, instant or cursor of the API, far less than a value that
// would cost the server to carry through logs and queries.
const MaxParamBytes = 4096

// plainText refuses, naming the parameter, a value that no parameter of the
// API can hold: longer than MaxParamBytes, not UTF-8, or holding a control
// character (U+0000 included). Checked before any typed check or query, so
// such bytes are a 400 whatever the handler does with the value, never a
// database error.
func plainText(name, v string) error {
	switch {
	case len(v) > MaxParamBytes:
		return BadParam(name, "is longer than %d bytes", MaxParamBytes)
	case !utf8.ValidString(v):
		return BadParam(name, "is not valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		return BadParam(name, "holds a control character")
	}
	return nil
}

// check validates one value against the declaration.
func (p Param) check(v string) error {
	if len(p.Enum) > 0 {
		_, err := ParseEnum(p.Name, v, p.Enum...)
		return err
	}
	switch p.Type {
	case "integer":
		lo, hi := int64(-1<<63), int64(1<<63-1)
		if p.Min != nil {
			lo = *p.Min
		}
		if p.Max != nil {
			hi = *p.Max
		}
		_, err := ParseInt(p.Name, v, lo, hi)
		return err
	case "boolean":
		if v != "true" && v != "false" {
			return BadParam(p.Name, "%q is not true or false", v)
		}
		return nil
	}
	switch p.Format {
	case "date":
		_, err := ParseDay(p.Name, v)
		return err
	case "date-time":
		_, err := ParseInstant(p.Name, v)
		return err
	}
	return nil
}

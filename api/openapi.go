package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/shopspring/decimal"
)

// buildOpenAPI writes the OpenAPI 3.1 document of every registered route.
// It is derived from the same Route values the router serves, and
// TestOpenAPIMatchesRouter checks the two against each other.
func (s *Server) buildOpenAPI() ([]byte, error) {
	paths := map[string]map[string]any{}
	for i := range s.routes {
		r := &s.routes[i]
		if paths[r.Path] == nil {
			paths[r.Path] = map[string]any{}
		}
		paths[r.Path][strings.ToLower(r.Method)] = operation(r)
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "gridsettle API",
			"version": "v1",
			"description": "Electricity settlement: registry, reads, prices, positions, runs, statements, " +
				"ledger, alerts, quarantine and regulatory exports. Errors are RFC 9457 problem details " +
				"(application/problem+json). Lists are paginated with limit and an opaque cursor, and " +
				"answer text/csv when asked with Accept: text/csv. Every response carries X-Request-Id.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "an API token: Authorization: Bearer <token>"},
			},
			"schemas": map[string]any{"Problem": schemaOf(reflect.TypeFor[Problem]())},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func (s *Server) serveOpenAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.openapi)
}

func operation(r *Route) map[string]any {
	op := map[string]any{
		"operationId": operationID(r),
		"summary":     r.Summary,
		"tags":        []string{tag(r.Path)},
		"responses":   responses(r),
	}
	desc := r.Description
	if r.public {
		op["security"] = []any{}
	} else {
		op["security"] = []any{map[string]any{"bearer": []string{}}}
		roles := make([]string, len(r.Roles))
		for i, role := range r.Roles {
			roles[i] = string(role)
		}
		op["x-roles"] = roles
		desc = strings.TrimSpace(desc + "\n\nRoles: " + strings.Join(roles, ", ") + ".")
	}
	if desc != "" {
		op["description"] = desc
	}
	var params []any
	for _, p := range r.params() {
		params = append(params, paramDoc(p))
	}
	if params != nil {
		op["parameters"] = params
	}
	if r.Request != nil {
		op["requestBody"] = map[string]any{
			"required":    true,
			"description": r.Request.Description,
			"content":     content(r.Request, false),
		}
	}
	return op
}

func operationID(r *Route) string {
	id := strings.ToLower(r.Method) + strings.TrimPrefix(r.Path, "/api/v1")
	return strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(id)
}

func tag(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return "operations"
	}
	first, _, _ := strings.Cut(rest, "/")
	return strings.TrimSuffix(first, ".json")
}

func paramDoc(p Param) map[string]any {
	sch := Schema{"type": "string"}
	if p.Type != "" {
		sch["type"] = p.Type
	}
	if p.Format != "" {
		sch["format"] = p.Format
	}
	if len(p.Enum) > 0 {
		sch["enum"] = p.Enum
	}
	if p.Min != nil {
		sch["minimum"] = *p.Min
	}
	if p.Max != nil {
		sch["maximum"] = *p.Max
	}
	if p.Name == "limit" && p.Type == "integer" {
		sch["default"] = DefaultLimit
	}
	d := map[string]any{"name": p.Name, "in": p.in(), "required": p.Required || p.in() == "path", "schema": sch}
	if p.Description != "" {
		d["description"] = p.Description
	}
	return d
}

func responses(r *Route) map[string]any {
	out := map[string]any{}
	ok := map[string]any{"description": http.StatusText(r.status())}
	if r.Response != nil {
		if r.Response.Description != "" {
			ok["description"] = r.Response.Description
		}
		ok["content"] = content(r.Response, true)
		if r.Response.List {
			ok["headers"] = map[string]any{HeaderNextCursor: map[string]any{
				"description": "next_cursor of a text/csv page (absent on the last page)",
				"schema":      Schema{"type": "string"},
			}}
		}
	}
	out[strconv.Itoa(r.status())] = ok
	codes := []int{http.StatusInternalServerError}
	if len(r.params()) > 0 || r.Request != nil {
		codes = append(codes, http.StatusBadRequest)
	}
	if !r.public {
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden)
	}
	if strings.Contains(r.Path, "{") {
		codes = append(codes, http.StatusNotFound)
	}
	if r.Request != nil {
		codes = append(codes, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	codes = append(codes, r.Errors...)
	for _, code := range codes {
		out[strconv.Itoa(code)] = map[string]any{
			"description": http.StatusText(code),
			"content": map[string]any{MIMEProblemJSON: map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}},
		}
	}
	return out
}

// content is the media-type map of a body.
func content(b *Body, response bool) map[string]any {
	out := map[string]any{}
	if b.JSON != nil {
		sch := valueSchema(b.JSON)
		switch {
		case b.List && response:
			sch = Schema{
				"type":     "object",
				"required": []string{"items"},
				"properties": map[string]any{
					"items":       Schema{"type": "array", "items": sch},
					"next_cursor": Schema{"type": "string", "description": "absent on the last page"},
				},
			}
		case b.List:
			sch = Schema{"type": "array", "items": sch}
		}
		out[echo.MIMEApplicationJSON] = map[string]any{"schema": sch}
		if b.List {
			out[MIMETextCSV] = map[string]any{"schema": Schema{"type": "string",
				"description": "CSV with a header row; columns are the JSON fields, nested ones as parent.child"}}
		}
	}
	for mt, sch := range b.Other {
		out[mt] = map[string]any{"schema": sch}
	}
	return out
}

// valueSchema is the schema of v: v itself when it is a Schema, else the
// schema of its Go type.
func valueSchema(v any) Schema {
	if s, ok := v.(Schema); ok {
		return s
	}
	return schemaOf(reflect.TypeOf(v))
}

var (
	decimalType = reflect.TypeFor[decimal.Decimal]()
	timeType    = reflect.TypeFor[time.Time]()
	rawType     = reflect.TypeFor[json.RawMessage]()
	numberType  = reflect.TypeFor[json.Number]()
)

// schemaOf derives a JSON Schema from a Go type the way encoding/json
// encodes it: json tags name the properties, omitempty and pointers make
// them optional, decimals are strings.
func schemaOf(t reflect.Type) Schema {
	return schemaWalk(t, map[reflect.Type]bool{})
}

func schemaWalk(t reflect.Type, seen map[reflect.Type]bool) Schema {
	switch t {
	case decimalType:
		return Schema{"type": "string", "format": "decimal", "pattern": `^-?[0-9]+(\.[0-9]+)?$`}
	case timeType:
		return Schema{"type": "string", "format": "date-time"}
	case rawType:
		return Schema{}
	case numberType:
		return Schema{"type": "number"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		inner := schemaWalk(t.Elem(), seen)
		return Schema{"anyOf": []any{inner, Schema{"type": "null"}}}
	case reflect.String:
		return Schema{"type": "string"}
	case reflect.Bool:
		return Schema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return Schema{"type": "integer"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return Schema{"type": "string", "contentEncoding": "base64"}
		}
		return Schema{"type": "array", "items": schemaWalk(t.Elem(), seen)}
	case reflect.Map:
		return Schema{"type": "object", "additionalProperties": schemaWalk(t.Elem(), seen)}
	case reflect.Interface:
		return Schema{}
	case reflect.Struct:
		if isLeaf(t) {
			return Schema{} // marshals itself: any JSON value
		}
		if seen[t] {
			return Schema{"type": "object"}
		}
		seen[t] = true
		defer delete(seen, t)
		props := map[string]any{}
		var required []string
		structFields(t, seen, props, &required)
		sch := Schema{"type": "object", "properties": props}
		if len(required) > 0 {
			slices.Sort(required)
			sch["required"] = required
		}
		return sch
	}
	panic(fmt.Sprintf("api: no JSON schema for Go type %s", t))
}

func structFields(t reflect.Type, seen map[reflect.Type]bool, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				structFields(et, seen, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		sch := schemaWalk(f.Type, seen)
		if strings.Contains(opts, "string") {
			sch = Schema{"type": "string"}
		}
		props[name] = sch
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/shopspring/decimal"

	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/settlement"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// buildOpenAPI writes the OpenAPI 3.1 document of every registered route.
// It is derived from the same Route values the router serves, and
// TestOpenAPIMatchesRouter checks the two against each other; the file
// api/openapi.json is the same bytes (TestOpenAPIGolden).
//
// Every named Go struct type of a body becomes a component schema under its
// name (or the contract's name, schemaNames) and is referenced with $ref, so
// that generated clients get named types.
func (s *Server) buildOpenAPI() ([]byte, error) {
	sb := newSchemaBuilder()
	paths := map[string]map[string]any{}
	for i := range s.routes {
		r := &s.routes[i]
		if paths[r.Path] == nil {
			paths[r.Path] = map[string]any{}
		}
		paths[r.Path][strings.ToLower(r.Method)] = sb.operation(r)
	}
	sb.ref(reflect.TypeFor[Problem]())
	doc := map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": map[string]any{
			"title":   "gridsettle API",
			"version": "v1",
			"license": map[string]any{"name": "Apache-2.0", "identifier": "Apache-2.0"},
			"description": "Electricity settlement: registry, reads, prices, positions, runs, statements, " +
				"ledger, alerts, quarantine and regulatory exports. Errors are RFC 9457 problem details " +
				"(application/problem+json). Lists are paginated with limit and an opaque cursor, and " +
				"answer text/csv when the Accept header prefers it (RFC 9110 content negotiation with " +
				"q-values; nothing acceptable is a 406). Answers are gzip-compressed when asked with " +
				"Accept-Encoding: gzip. Answers about runs, statements and charges carry a strong ETag " +
				"and honour If-None-Match with a 304. Every response carries X-Request-Id.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "an API token: Authorization: Bearer <token>"},
			},
			"schemas": sb.components,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Server) serveOpenAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.openapi)
}

// schemaBuilder collects the named component schemas of a document.
type schemaBuilder struct {
	components map[string]Schema
	names      map[reflect.Type]string
}

func newSchemaBuilder() *schemaBuilder {
	return &schemaBuilder{components: map[string]Schema{}, names: map[reflect.Type]string{}}
}

// schemaNames are the contract's names (api/README.md, meters/README.md) of
// types whose Go names differ; every other named struct is a component under
// its Go name.
var schemaNames = map[reflect.Type]string{
	reflect.TypeFor[settlement.StatementMessage]():    "StatementLine",
	reflect.TypeFor[settlement.ChargeMessage]():       "AccountCharge",
	reflect.TypeFor[ledgerpg.Report]():                "LedgerVerification",
	reflect.TypeFor[settlementpg.Lineage]():           "RunLineage",
	reflect.TypeFor[settlementpg.Completeness]():      "RunCompleteness",
	reflect.TypeFor[settlementpg.CompletenessInput](): "CompletenessInput",
	reflect.TypeFor[reporting.Lineage]():              "ManifestLineage",
	reflect.TypeFor[reporting.Completeness]():         "ManifestCompleteness",
}

// componentName is the name t gets in components.schemas, or "" when t is
// described inline (unnamed, generic or self-marshalling types).
func componentName(t reflect.Type) string {
	if n, ok := schemaNames[t]; ok {
		return n
	}
	if t.Kind() != reflect.Struct || t.Name() == "" || strings.ContainsAny(t.Name(), "[]") || isLeaf(t) {
		return ""
	}
	return t.Name()
}

// ref is a $ref to the component schema of the named struct t, made on first
// use. Two Go types of one name are a defect of the route tables (their
// clients would get one type for two shapes): it panics, so the first test
// building a server fails.
func (sb *schemaBuilder) ref(t reflect.Type) Schema {
	name := componentName(t)
	if owner, ok := sb.names[t]; ok {
		return Schema{"$ref": "#/components/schemas/" + owner}
	}
	for other, n := range sb.names {
		if n == name {
			panic(fmt.Sprintf("api: OpenAPI schema name %s is taken by %s and %s; add one to schemaNames", name, other, t))
		}
	}
	sb.names[t] = name
	sb.components[name] = Schema{} // placeholder: a type may refer to itself
	sb.components[name] = sb.structSchema(t)
	return Schema{"$ref": "#/components/schemas/" + name}
}

func (sb *schemaBuilder) operation(r *Route) map[string]any {
	op := map[string]any{
		"operationId": operationID(r),
		"summary":     r.Summary,
		"tags":        []string{tag(r.Path)},
		"responses":   sb.responses(r),
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
	if r.ETag {
		params = append(params, map[string]any{"name": headerIfNoneMatch, "in": "header", "required": false,
			"description": "the ETag of an earlier answer: 304 Not Modified while it is still the answer",
			"schema":      Schema{"type": "string"}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if r.Request != nil {
		op["requestBody"] = map[string]any{
			"required":    true,
			"description": r.Request.Description,
			"content":     sb.content(r.Request, false),
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

func (sb *schemaBuilder) responses(r *Route) map[string]any {
	out := map[string]any{}
	ok := map[string]any{"description": http.StatusText(r.status())}
	headers := map[string]any{}
	if r.Response != nil {
		if r.Response.Description != "" {
			ok["description"] = r.Response.Description
		}
		ok["content"] = sb.content(r.Response, true)
		if r.Response.List {
			headers[HeaderNextCursor] = map[string]any{
				"description": "next_cursor of a text/csv page (absent on the last page)",
				"schema":      Schema{"type": "string"},
			}
		}
	}
	etag := map[string]any{"description": "a strong validator of this answer's bytes", "schema": Schema{"type": "string"}}
	if r.ETag {
		headers[headerETag] = etag
		out[strconv.Itoa(http.StatusNotModified)] = map[string]any{
			"description": "Not Modified: the answer is still the one of the ETag sent in If-None-Match",
			"headers":     map[string]any{headerETag: etag},
		}
	}
	if len(headers) > 0 {
		ok["headers"] = headers
	}
	out[strconv.Itoa(r.status())] = ok
	for _, code := range r.AlsoOK {
		also := maps.Clone(ok)
		also["description"] = http.StatusText(code)
		out[strconv.Itoa(code)] = also
	}
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
	if r.Response != nil && r.Response.List {
		codes = append(codes, http.StatusNotAcceptable)
	}
	if r.Request != nil {
		codes = append(codes, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	codes = append(codes, r.Errors...)
	problem := sb.ref(reflect.TypeFor[Problem]())
	for _, code := range codes {
		out[strconv.Itoa(code)] = map[string]any{
			"description": http.StatusText(code),
			"content":     map[string]any{MIMEProblemJSON: map[string]any{"schema": problem}},
		}
	}
	return out
}

// content is the media-type map of a body.
func (sb *schemaBuilder) content(b *Body, response bool) map[string]any {
	out := map[string]any{}
	if b.JSON != nil {
		sch := sb.valueSchema(b.JSON)
		switch {
		case b.List && response:
			sch = sb.page(b.JSON, sch)
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

// page is the schema of the list envelope {"items": [item...], "next_cursor"}:
// a component named <Item>Page when the item type is named.
func (sb *schemaBuilder) page(item any, itemSchema Schema) Schema {
	env := Schema{
		"type":                 "object",
		"required":             []string{"items"},
		"additionalProperties": false,
		"properties": map[string]any{
			"items":       Schema{"type": "array", "items": itemSchema},
			"next_cursor": Schema{"type": "string", "description": "absent on the last page"},
		},
	}
	if alts, ok := item.(OneOf); ok && len(alts) > 0 {
		item = alts[0]
	}
	if _, isSchema := item.(Schema); isSchema {
		return env
	}
	name := componentName(reflect.TypeOf(item))
	if name == "" {
		return env
	}
	name += "Page"
	if _, taken := sb.components[name]; !taken {
		sb.components[name] = env
	}
	return Schema{"$ref": "#/components/schemas/" + name}
}

// OneOf is a body of one of several Go types, which a request parameter
// picks (versions=all lists ReadVersion where the default lists Read): its
// schema is oneOf theirs, and a list's page is named after the first.
type OneOf []any

// NamedSchema is a body whose schema is written by hand (its Go type
// marshals itself) and named in components.schemas, so that generated
// clients still get a named type.
type NamedSchema struct {
	Name   string
	Schema Schema
}

// valueSchema is the schema of v: v itself when it is a Schema, a reference
// to it when it is a NamedSchema, oneOf its members' when it is a OneOf,
// else the schema of its Go type.
func (sb *schemaBuilder) valueSchema(v any) Schema {
	switch x := v.(type) {
	case Schema:
		return x
	case NamedSchema:
		sb.components[x.Name] = x.Schema
		return Schema{"$ref": "#/components/schemas/" + x.Name}
	case OneOf:
		alts := make([]any, len(x))
		for i, m := range x {
			alts[i] = sb.valueSchema(m)
		}
		return Schema{"oneOf": alts}
	}
	return sb.schemaOf(reflect.TypeOf(v))
}

var (
	decimalType = reflect.TypeFor[decimal.Decimal]()
	timeType    = reflect.TypeFor[time.Time]()
	rawType     = reflect.TypeFor[json.RawMessage]()
	numberType  = reflect.TypeFor[json.Number]()
)

// schemaOf derives a JSON Schema from a Go type the way encoding/json
// encodes it: json tags name the properties, omitempty and pointers make
// them optional, decimals are strings, named structs are references to
// their component schema.
func (sb *schemaBuilder) schemaOf(t reflect.Type) Schema {
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
		inner := sb.schemaOf(t.Elem())
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
		return Schema{"type": "array", "items": sb.schemaOf(t.Elem())}
	case reflect.Map:
		return Schema{"type": "object", "additionalProperties": sb.schemaOf(t.Elem())}
	case reflect.Interface:
		return Schema{}
	case reflect.Struct:
		if isLeaf(t) {
			return Schema{} // marshals itself: any JSON value
		}
		if componentName(t) != "" {
			return sb.ref(t)
		}
		return sb.structSchema(t)
	}
	panic(fmt.Sprintf("api: no JSON schema for Go type %s", t))
}

// structSchema is the object schema of struct t's JSON fields.
func (sb *schemaBuilder) structSchema(t reflect.Type) Schema {
	props := map[string]any{}
	var required []string
	sb.structFields(t, props, &required)
	// Closed: an answer with a field the document does not name fails
	// the response validation of the tests.
	sch := Schema{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		slices.Sort(required)
		sch["required"] = required
	}
	return sch
}

func (sb *schemaBuilder) structFields(t reflect.Type, props map[string]any, required *[]string) {
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
				sb.structFields(et, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		sch := sb.schemaOf(f.Type)
		if strings.Contains(opts, "string") {
			sch = Schema{"type": "string"}
		}
		props[name] = sch
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

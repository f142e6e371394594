package api

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

// SchemaRoutes serve the JSON Schemas of every message gridsettle reads or
// writes on Kafka (meters/README.md "Schemas and CloudEvents"), from the list
// in package schemas.
type SchemaRoutes struct{}

// MessageSchema is one entry of the schema list.
type MessageSchema struct {
	Name string `json:"name"` // the gridsettle-schema header, e.g. settlement.statement/v1
	ID   string `json:"$id"`  // where GET answers it: /api/v1/schemas/{name}
	// Direction is "in" (a topic gridsettle reads) or "out".
	Direction string `json:"direction"`
	// Describes is "value", or "headers" for the dead letter, whose value
	// is the input's bytes.
	Describes string `json:"describes"`
}

// MIMESchemaJSON is the media type of a JSON Schema document.
const MIMESchemaJSON = "application/schema+json"

// schemaName is the shape of a schema name: segments of letters, digits,
// '.', '_' and '-' joined by '/', none of them only dots.
var schemaName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}(/[A-Za-z0-9._-]{1,64}){0,3}$`)

var schemaNameParam = Param{Name: "name", In: "path", Required: true, Rest: true,
	Description: "a schema name, which holds '/': settlement.statement/v1 (or escaped, settlement.statement%2Fv1)"}

// Routes lists the schema endpoints.
func (g SchemaRoutes) Routes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/api/v1/schemas", Roles: Readers,
			Summary:     "The message schemas: every Kafka message in and out",
			Description: "JSON Schemas (draft 2020-12); each record's gridsettle-schema header names its schema.",
			Response:    ListBody(MessageSchema{}), Handler: g.list},
		{Method: http.MethodGet, Path: "/api/v1/schemas/{name}", Roles: Readers,
			Summary:  "One message schema (JSON Schema draft 2020-12), its $id this path",
			Params:   []Param{schemaNameParam},
			Response: &Body{Other: map[string]Schema{MIMESchemaJSON: {"type": "object"}}}, Handler: g.get},
	}
}

func (g SchemaRoutes) list(c echo.Context) error {
	all := schemas.All()
	items := make([]MessageSchema, len(all))
	for i, s := range all {
		items[i] = MessageSchema{Name: s.Name, ID: s.ID, Direction: "out", Describes: "value"}
		if s.In {
			items[i].Direction = "in"
		}
		if s.Headers {
			items[i].Describes = "headers"
		}
	}
	return listByID(c, func(after string, n int) ([]MessageSchema, error) {
		i, _ := slices.BinarySearchFunc(items, after, func(m MessageSchema, a string) int { return strings.Compare(m.Name, a) })
		if i < len(items) && items[i].Name == after {
			i++
		}
		return items[i:min(len(items), i+n)], nil
	}, func(m MessageSchema) string { return m.Name })
}

func (g SchemaRoutes) get(c echo.Context) error {
	raw := PathParam(c, schemaNameParam)
	name, err := url.PathUnescape(raw)
	if err != nil {
		name = raw
	}
	if err != nil || !schemaName.MatchString(name) || slices.ContainsFunc(strings.Split(name, "/"), func(s string) bool {
		return strings.Trim(s, ".") == ""
	}) {
		return BadParam("name", "%q is not a schema name such as settlement.statement/v1", name)
	}
	s, ok := schemas.Get(name)
	if !ok {
		return NotFoundf("no schema %q: GET /api/v1/schemas lists them", name)
	}
	return c.Blob(http.StatusOK, MIMESchemaJSON, s.JSON)
}

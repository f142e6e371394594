package meters

import "embed"

// Schema names of the input messages, as GET /api/v1/schemas/{name} serves
// them (meters/README.md "Schemas and CloudEvents").
const (
	ReadsSchema  = "ami.interval-reads/v1"
	PricesSchema = "market.prices/v1"
)

// Schemas holds the JSON Schemas (draft 2020-12) of the input messages, the
// schema of name at schemas/{name}.json. A record valid against its schema
// passes SchemaViolation, except an integer field written with a fraction or
// an exponent; decimals given as JSON numbers are accepted by the decoder
// but not by the schema (its decimals are strings).
//
//go:embed schemas
var Schemas embed.FS

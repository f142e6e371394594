package settlement

import "embed"

// Schemas holds the JSON Schemas (draft 2020-12) of StatementMessage
// (StatementSchema) and ChargeMessage (ChargeSchema), the schema of name at
// schemas/{name}.json. Every published message validates against its
// schema.
//
//go:embed schemas
var Schemas embed.FS

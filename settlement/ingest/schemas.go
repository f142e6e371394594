package ingest

import "embed"

// Schemas holds the JSON Schema (draft 2020-12) of the dead letter
// (DeadLetterSchema), at schemas/{DeadLetterSchema}.json. It describes the
// record's headers, as the value is the rejected input's bytes.
//
//go:embed schemas
var Schemas embed.FS

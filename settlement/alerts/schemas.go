package alerts

import "embed"

// Schemas holds the JSON Schema (draft 2020-12) of Alert as published
// (Schema), at schemas/{Schema}.json.
//
//go:embed schemas
var Schemas embed.FS

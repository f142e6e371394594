// Package schemas lists the JSON Schemas (draft 2020-12) of every message
// gridsettle reads or writes on Kafka, and validates records against them
// (meters/README.md "Schemas and CloudEvents").
//
// It owns no schema: each file lives beside the code that owns its message
// and is embedded there (meters: the inputs; settlement: statements and
// account charges; settlement/alerts: customer alerts; settlement/ingest:
// the dead letter). This package is the one list of them, which the API
// serves at /api/v1/schemas, and the Validator the end-to-end tests and the
// chaos check run on every record they read.
//
// Invariants:
//   - a schema's $id is /api/v1/schemas/{name}, and {name} is the
//     gridsettle-schema header of the records it describes;
//   - every schema in an owner's embedded files is listed, and every
//     listed one compiles (tests);
//   - a record is checked against the schema its gridsettle-schema header
//     names: its value, or for the dead letter (whose value is the input's
//     bytes) its headers; and against the CloudEvents attributes the
//     relay writes.
package schemas

package schemas

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// IDPrefix is the path under which the API serves schemas; a schema's $id
// is IDPrefix + its name.
const IDPrefix = "/api/v1/schemas/"

// Schema is one message schema.
type Schema struct {
	Name string // the gridsettle-schema header, e.g. settlement.statement/v1
	ID   string // $id: IDPrefix + Name
	// In: an input message (gridsettle reads it); otherwise an output.
	In bool
	// Headers: the schema describes the record's headers, as an object of
	// name to value, not its value (the dead letter).
	Headers bool
	// ContentType is the content-type header of output records.
	ContentType string
	JSON        []byte // the schema document, as kept in the repository
}

// owned names each schema and the files of the package that owns it.
var owned = []struct {
	files       fs.FS
	name        string
	in, headers bool
	contentType string
}{
	{files: meters.Schemas, name: meters.ReadsSchema, in: true},
	{files: meters.Schemas, name: meters.PricesSchema, in: true},
	{files: settlement.Schemas, name: settlement.StatementSchema, contentType: publish.ContentTypeJSON},
	{files: settlement.Schemas, name: settlement.ChargeSchema, contentType: publish.ContentTypeJSON},
	{files: alerts.Schemas, name: alerts.Schema, contentType: publish.ContentTypeJSON},
	{files: ingest.Schemas, name: ingest.DeadLetterSchema, headers: true, contentType: ingest.DeadLetterContentType},
}

var all = load()

// load reads every owned schema; the files are embedded, so a wrong one
// fails every test that imports this package.
func load() []Schema {
	out := make([]Schema, 0, len(owned))
	for _, o := range owned {
		b, err := fs.ReadFile(o.files, Path(o.name))
		if err != nil {
			panic(fmt.Sprintf("schemas: %s: %v", o.name, err))
		}
		var doc struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			panic(fmt.Sprintf("schemas: %s: %v", o.name, err))
		}
		if doc.ID != IDPrefix+o.name {
			panic(fmt.Sprintf("schemas: %s: $id %q, want %q", o.name, doc.ID, IDPrefix+o.name))
		}
		out = append(out, Schema{Name: o.name, ID: doc.ID, In: o.in, Headers: o.headers, ContentType: o.contentType, JSON: b})
	}
	slices.SortFunc(out, func(a, b Schema) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Path is where an owner keeps the schema of name in its embedded files.
func Path(name string) string { return "schemas/" + name + ".json" }

// All returns every schema, by name.
func All() []Schema { return slices.Clone(all) }

// Get returns the schema of name.
func Get(name string) (Schema, bool) {
	i, found := slices.BinarySearchFunc(all, name, func(s Schema, n string) int { return strings.Compare(s.Name, n) })
	if !found {
		return Schema{}, false
	}
	return all[i], true
}

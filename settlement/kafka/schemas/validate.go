package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// base makes the schemas' relative $id absolute for the compiler, which
// resolves references against it; nothing is fetched from it.
const base = "https://gridsettle.invalid"

// Validator validates messages against the schemas, formats asserted
// (date-time, date). It is safe for concurrent use.
type Validator struct {
	compiled map[string]*jsonschema.Schema
}

// NewValidator compiles every schema.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, s := range all {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s.JSON))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", s.Name, err)
		}
		if err := c.AddResource(base+s.ID, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", s.Name, err)
		}
	}
	v := &Validator{compiled: map[string]*jsonschema.Schema{}}
	for _, s := range all {
		sch, err := c.Compile(base + s.ID)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", s.Name, err)
		}
		v.compiled[s.Name] = sch
	}
	return v, nil
}

// Value validates a message value against the schema of name. A value
// that is not JSON text (RFC 8259: UTF-8, one value) is invalid.
func (v *Validator) Value(name string, value []byte) error {
	sch, ok := v.compiled[name]
	if !ok {
		return fmt.Errorf("no schema %q", name)
	}
	if !utf8.Valid(value) {
		return fmt.Errorf("%s: value is not UTF-8", name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return fmt.Errorf("%s: value is not JSON: %w", name, err)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Record validates an output record as a consumer reads it: against the
// schema its gridsettle-schema header names (its value, or its headers for
// a schema of headers), and its CloudEvents attributes (CloudEvent).
func (v *Validator) Record(r *kgo.Record) error {
	hs, err := headerMap(r)
	if err != nil {
		return err
	}
	name := hs[publish.HeaderSchema]
	s, ok := Get(name)
	if !ok || s.In {
		return fmt.Errorf("%s: gridsettle-schema %q names no output schema", where(r), name)
	}
	if err := CloudEvent(r); err != nil {
		return err
	}
	if !s.Headers {
		if err := v.Value(name, r.Value); err != nil {
			return fmt.Errorf("%s: %w", where(r), err)
		}
		return nil
	}
	doc := make(map[string]any, len(hs))
	for k, x := range hs {
		doc[k] = x
	}
	if err := v.compiled[name].Validate(doc); err != nil {
		return fmt.Errorf("%s: headers: %s: %w", where(r), name, err)
	}
	return nil
}

// CloudEvent checks that r carries the CloudEvents 1.0 attributes of the
// Kafka binding's binary mode the relay writes: the required ones
// (specversion 1.0, id, source a URI-reference, type) with time as RFC
// 3339, id and type equal to gridsettle-id and gridsettle-schema, and the
// content-type of r's schema.
func CloudEvent(r *kgo.Record) error {
	hs, err := headerMap(r)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if got := hs[publish.HeaderCESpecVersion]; got != publish.CESpecVersion {
		bad("ce_specversion %q, want %q", got, publish.CESpecVersion)
	}
	if id := hs[publish.HeaderCEID]; id == "" || id != hs[publish.HeaderID] {
		bad("ce_id %q, want the gridsettle-id %q", id, hs[publish.HeaderID])
	}
	if src := hs[publish.HeaderCESource]; src == "" {
		bad("ce_source missing")
	} else if _, err := url.Parse(src); err != nil {
		bad("ce_source %q is not a URI-reference: %v", src, err)
	}
	if typ := hs[publish.HeaderCEType]; typ == "" || typ != hs[publish.HeaderSchema] {
		bad("ce_type %q, want the gridsettle-schema %q", typ, hs[publish.HeaderSchema])
	}
	if _, err := time.Parse(time.RFC3339Nano, hs[publish.HeaderCETime]); err != nil {
		bad("ce_time %q is not RFC 3339", hs[publish.HeaderCETime])
	}
	s, _ := Get(hs[publish.HeaderSchema])
	if ct := hs[outbox.HeaderContentType]; s.ContentType != "" && ct != s.ContentType {
		bad("content-type %q, want %q", ct, s.ContentType)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: CloudEvents headers: %w", where(r), err)
	}
	return nil
}

// headerMap is r's headers by name; a name given twice is an error, as a
// consumer could not tell which one counts.
func headerMap(r *kgo.Record) (map[string]string, error) {
	hs := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		if _, dup := hs[h.Key]; dup {
			return nil, fmt.Errorf("%s: header %q given twice", where(r), h.Key)
		}
		hs[h.Key] = string(h.Value)
	}
	return hs, nil
}

func where(r *kgo.Record) string { return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset) }

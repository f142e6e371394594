package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// MIMETextCSV is the media type of CSV lists and uploads.
const MIMETextCSV = "text/csv"

// HeaderNextCursor carries next_cursor on a CSV page (CSV has no envelope).
const HeaderNextCursor = "X-Next-Cursor"

// Page is the JSON envelope of every list.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// List answers a page of a list, as JSON {"items", "next_cursor"} or, when
// the client prefers text/csv (WantsCSV), as CSV with a header row (see WriteCSV) and
// the next cursor in the X-Next-Cursor header.
//
// Fetch limit+1 rows in the list's stable order and pass them all: when there
// are more than limit, List drops the extra one and makes next_cursor from
// key(last item kept), which the next request decodes with Cursor.
func List[T any](c echo.Context, items []T, limit int, key func(T) any) error {
	next := ""
	if len(items) > limit {
		items = items[:limit]
		var err error
		if next, err = EncodeCursor(key(items[limit-1])); err != nil {
			return err
		}
	}
	if items == nil {
		items = []T{}
	}
	csv, err := WantsCSV(c)
	if err != nil {
		return err
	}
	if csv {
		if next != "" {
			c.Response().Header().Set(HeaderNextCursor, next)
		}
		return WriteCSV(c, http.StatusOK, items)
	}
	return c.JSON(http.StatusOK, Page[T]{Items: items, NextCursor: next})
}

// WriteCSV answers items as text/csv: a header row of columns derived from
// T's json tags (nested objects flattened as parent.child), then one row per
// item with the values of its JSON encoding, so CSV and JSON always agree
// (decimals keep their fixed-scale strings, instants their RFC 3339 text,
// null is an empty cell, arrays and free-form objects are JSON text), but
// for cells that would be formulas, which are neutralised.
func WriteCSV[T any](c echo.Context, status int, items []T) error {
	return writeCSVColumns(c, status, csvColumns(reflect.TypeFor[T]()), len(items), func(i int) any { return items[i] })
}

// writeCSVColumns is WriteCSV with the columns given: n rows, the i-th
// from item(i)'s JSON encoding.
func writeCSVColumns(c echo.Context, status int, cols [][]string, n int, item func(i int) any) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	header := make([]string, len(cols))
	for i, col := range cols {
		header[i] = strings.Join(col, ".")
	}
	if err := w.Write(header); err != nil {
		return fmt.Errorf("write csv header: %w", err)
	}
	row := make([]string, len(cols))
	for k := range n {
		b, err := json.Marshal(item(k))
		if err != nil {
			return fmt.Errorf("encode csv row: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return fmt.Errorf("decode csv row: %w", err)
		}
		for i, col := range cols {
			if row[i], err = csvCell(obj, col); err != nil {
				return err
			}
			row[i] = neutralise(row[i])
		}
		if err := w.Write(row); err != nil {
			return fmt.Errorf("write csv row: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return c.Blob(status, MIMETextCSV+"; charset=utf-8", buf.Bytes())
}

// csvNumber is a plain decimal number, which a spreadsheet reads as a
// number whatever its sign.
var csvNumber = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// neutralise defuses formula injection (OWASP "CSV injection"): a cell a
// spreadsheet would evaluate as a formula (starting with =, +, -, @, tab
// or carriage return) gets a leading ' unless it is a number, so a
// quarantined value such as =HYPERLINK(...) is shown, never run.
func neutralise(cell string) string {
	if cell == "" || !strings.ContainsRune("=+-@\t\r", rune(cell[0])) || csvNumber.MatchString(cell) {
		return cell
	}
	return "'" + cell
}

func csvCell(obj map[string]any, path []string) (string, error) {
	var v any = obj
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", nil // a null parent: every child cell is empty
		}
		v = m[k]
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode csv cell: %w", err)
	}
	return string(b), nil
}

var columnCache sync.Map // reflect.Type -> [][]string

// csvColumns are the JSON paths of t's leaves in field order. Structs that
// marshal themselves (decimals, times) are leaves; other structs are
// flattened; maps, slices and interfaces are one column of JSON text.
func csvColumns(t reflect.Type) [][]string {
	if cols, ok := columnCache.Load(t); ok {
		return cols.([][]string)
	}
	var cols [][]string
	var walk func(t reflect.Type, prefix []string)
	walk = func(t reflect.Type, prefix []string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || isLeaf(t) {
			cols = append(cols, prefix)
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			if f.Anonymous && name == "" {
				walk(f.Type, prefix) // promoted fields, as encoding/json does
				continue
			}
			if name == "" {
				name = f.Name
			}
			walk(f.Type, append(append([]string{}, prefix...), name))
		}
	}
	walk(t, nil)
	columnCache.Store(t, cols)
	return cols
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
)

func isLeaf(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(marshalerType) || p.Implements(marshalerType) ||
		t.Implements(textMarshalerType) || p.Implements(textMarshalerType)
}

// Package contractdoc reads the package documents of the contract
// (meters/README.md, settlement/README.md, settlement/alerts/README.md,
// reporting/README.md, api/README.md) and the Go declarations they describe,
// so that a package's tests can hold a statement of its document: a list of
// reasons, alert types or routes equal to what the code defines.
//
// Its own test holds the rule that comments cite only files of the
// repository (citations_test.go).
//
// It lives under meters, the lowest layer: every package whose document it
// reads (api, settlement, settlement/alerts, reporting) may import meters,
// and meters none of them; the repository's top level is fixed (README.md
// "Packages"). Only tests import it.
package contractdoc

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TableRows returns the rows of the Markdown tables in the section of file
// whose heading (of any level) is heading, up to the next heading: each
// row's cells, trimmed, with the backticks of a cell that is one code span
// removed. Only rows whose first cell is a code span count, so header and
// separator rows are left out.
func TableRows(file, heading string) ([][]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the document: %w", err)
	}
	var rows [][]string
	in, found := false, false
	for line := range strings.SplitSeq(string(b), "\n") {
		if title, ok := headingOf(line); ok {
			in = title == heading
			found = found || in
			continue
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue
		}
		for i, c := range cells {
			cells[i] = unquote(strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if !found {
		return nil, fmt.Errorf("%s has no section %q", file, heading)
	}
	return rows, nil
}

// headingOf returns the title of a Markdown heading line.
func headingOf(line string) (string, bool) {
	title := strings.TrimLeft(line, "#")
	if title == line || !strings.HasPrefix(title, " ") {
		return "", false
	}
	return strings.TrimSpace(title), true
}

// unquote removes the backticks of a cell that is exactly one code span.
func unquote(cell string) string {
	if len(cell) > 2 && strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`") && strings.Count(cell, "`") == 2 {
		return cell[1 : len(cell)-1]
	}
	return cell
}

// Consts returns the values of the string constants of type typeName
// declared in the Go file, in source order.
func Consts(file, typeName string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("parse the declarations: %w", err)
	}
	var values []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != typeName {
				continue
			}
			for _, e := range v.Values {
				lit, ok := e.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return nil, fmt.Errorf("%s: a %s constant whose value is not a string literal", file, typeName)
				}
				value, err := strconv.Unquote(lit.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				values = append(values, value)
			}
		}
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("%s declares no constant of type %s", file, typeName)
	}
	return values, nil
}

// CheckConsts fails t unless the first column of the tables in the section
// heading of the document doc lists exactly the constants of type typeName
// of the Go file goFile, in their order.
func CheckConsts(t testing.TB, doc, heading, goFile, typeName string) {
	t.Helper()
	rows, err := TableRows(doc, heading)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range rows {
		documented = append(documented, r[0])
	}
	defined, err := Consts(goFile, typeName)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(documented, defined) {
		t.Errorf("%s %q lists\n  %v\n%s defines the %s constants\n  %v", doc, heading, documented, goFile, typeName, defined)
	}
}

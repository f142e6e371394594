package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sqlLike matches a string literal that begins as SQL does. Keywords are
// matched in capitals, as this repository writes its SQL, and with the
// grammar that follows them, so that prose ("create topic %s: %w", "COPY
// of the day's reads") is not taken for SQL.
var sqlLike = regexp.MustCompile(`^\s*\(?\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\b|` +
	`COPY\s+(\(|\w+\s*(\(|FROM\b|TO\b))|(CREATE|ALTER|DROP)\s+(TABLE|DATABASE|ROLE|INDEX|SCHEMA|FUNCTION|TRIGGER|VIEW)\b|` +
	`TRUNCATE\s|SET\s+(LOCAL\s+|SESSION\s+)?\w+\s*(=|TO\s)|BEGIN\b|COMMIT\b|ANALYZE\b|VACUUM\b|CHECKPOINT\b|SHOW\s|GRANT\s|REVOKE\s)`)

// looksLikeSQL: s begins as a statement does, or holds both a FROM and a
// WHERE clause.
func looksLikeSQL(s string) bool {
	return sqlLike.MatchString(s) || (strings.Contains(s, " FROM ") && strings.Contains(s, " WHERE "))
}

// sqlStrings returns the string literals of f that look like SQL.
func sqlStrings(fset *token.FileSet, f *ast.File) []string {
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			s = lit.Value
		}
		if looksLikeSQL(s) {
			found = append(found, fset.Position(lit.Pos()).String()+": "+strconv.Quote(s))
		}
		return true
	})
	return found
}

// TestNoSQLInCommand: cmd/gridsettle keeps wiring, configuration and the
// command surface; the SQL that its commands, bench, chaos suite and tests
// run lives in the packages that own the tables (or, for the server and
// its sessions, migrations/pgserver and migrations/pgtest). Every Go file
// of the package is read, whatever its build tags, tests included.
func TestNoSQLInCommand(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sqlStrings(fset, f) {
			t.Errorf("SQL in cmd/gridsettle (move it to the package that owns the table): %s", s)
		}
	}
}

// TestNoSQLInCommandFindsSQL reads planted files, so that
// TestNoSQLInCommand can fail: every literal of testdata/nosql/sql.go.txt
// is taken for SQL, none of prose.go.txt (messages the command prints).
func TestNoSQLInCommandFindsSQL(t *testing.T) {
	for _, c := range []struct {
		file string
		sql  bool
	}{{"sql.go.txt", true}, {"prose.go.txt", false}} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join("testdata", "nosql", c.file), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		literals := 0
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				literals++
			}
			return true
		})
		want := 0
		if c.sql {
			want = literals
		}
		if found := sqlStrings(fset, f); literals < 10 || len(found) != want {
			t.Errorf("%s: %d of %d literals taken for SQL, want %d:\n%s", c.file, len(found), literals, want, strings.Join(found, "\n"))
		}
	}
}

package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// storeAliases is the one import name of each package called postgres: five
// packages share that name, so a bare postgres.X would not say whose store
// it is, and a reader moving between files should meet the same name for the
// same package everywhere.
var storeAliases = map[string]string{
	"github.com/gridsettle/gridsettle/meters/postgres":            "registrystore",
	"github.com/gridsettle/gridsettle/settlement/postgres":        "settlementpg",
	"github.com/gridsettle/gridsettle/ledger/postgres":            "ledgerpg",
	"github.com/gridsettle/gridsettle/reporting/postgres":         "exportpg",
	"github.com/gridsettle/gridsettle/settlement/alerts/postgres": "alertspg",
}

// TestStoreImportAliases fails when any Go file of the module imports one of
// the postgres packages under another name than its agreed alias.
func TestStoreImportAliases(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			ipath, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			want, ok := storeAliases[ipath]
			if !ok {
				continue
			}
			checked++
			got := "(none)"
			if imp.Name != nil {
				got = imp.Name.Name
			}
			if got != want {
				t.Errorf("%s: imports %s as %s, want %s", fset.Position(imp.Pos()), ipath, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no import of a postgres package found: is the walk at the module root?")
	}
}

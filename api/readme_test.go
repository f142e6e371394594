package api

import (
	"slices"
	"testing"

	"github.com/gridsettle/gridsettle/meters/contractdoc"
)

// TestReadmeEndpoints: the table of api/README.md "Endpoints" lists exactly
// the routes the server serves, method and path, so the document cannot
// drift from the router.
func TestReadmeEndpoints(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	var served []string
	for _, r := range s.routes {
		served = append(served, r.Method+" "+r.Path)
	}
	rows, err := contractdoc.TableRows("README.md", "Endpoints")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range rows {
		documented = append(documented, r[0]+" "+r[1])
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("api/README.md \"Endpoints\" does not list the route %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("api/README.md \"Endpoints\" lists %s, which the server does not serve", r)
		}
	}
	if c := slices.Compact(slices.Clone(documented)); len(c) != len(documented) {
		t.Errorf("api/README.md \"Endpoints\" lists a route twice")
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

func init() {
	testAreas = append(testAreas, func(*testing.T, *pgxpool.Pool) Routes { return SchemaRoutes{} })
}

// Every listed schema is served at its $id, as kept in the repository, and
// names that are not schema names are a 400, unknown ones a 404.
func TestSchemas(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	var page Page[MessageSchema]
	ok(t, s.do(req{method: "GET", path: "/api/v1/schemas", token: tok}), http.StatusOK, &page)
	if len(page.Items) != len(schemas.All()) || page.NextCursor != "" {
		t.Fatalf("list %+v, want the %d schemas on one page", page, len(schemas.All()))
	}
	dirs := map[string]int{}
	for _, m := range page.Items {
		dirs[m.Direction+" "+m.Describes]++
		w := s.do(req{method: "GET", path: m.ID, token: tok})
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != MIMESchemaJSON {
			t.Fatalf("GET %s: %d %s", m.ID, w.Code, w.Header().Get("Content-Type"))
		}
		want, _ := schemas.Get(m.Name)
		var doc struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc.ID != m.ID || !bytes.Equal(w.Body.Bytes(), want.JSON) {
			t.Errorf("GET %s: $id %q (%v), or not the kept file", m.ID, doc.ID, err)
		}
	}
	if dirs["in value"] != 2 || dirs["out value"] != 3 || dirs["out headers"] != 1 {
		t.Errorf("directions %v, want 2 inputs, 3 outputs and the dead letter's headers", dirs)
	}
	// Paged: a cursor takes up after the last name.
	ok(t, s.do(req{method: "GET", path: "/api/v1/schemas?limit=4", token: tok}), http.StatusOK, &page)
	next := page
	ok(t, s.do(req{method: "GET", path: "/api/v1/schemas?limit=4&cursor=" + page.NextCursor, token: tok}), http.StatusOK, &next)
	if len(page.Items) != 4 || page.NextCursor == "" || len(next.Items) != 2 || next.Items[0].Name <= page.Items[3].Name {
		t.Errorf("pages %+v then %+v", page, next)
	}

	for path, status := range map[string]int{
		"/api/v1/schemas/settlement.statement%2Fv1": http.StatusOK,
		"/api/v1/schemas/settlement.statement/v2":   http.StatusNotFound,
		"/api/v1/schemas/nothing":                   http.StatusNotFound,
		"/api/v1/schemas/":                          http.StatusBadRequest,
		"/api/v1/schemas/settlement.statement/":     http.StatusBadRequest,
		"/api/v1/schemas/../settlement.statement":   http.StatusBadRequest,
		"/api/v1/schemas/a//b":                      http.StatusBadRequest,
		"/api/v1/schemas/a%00b":                     http.StatusBadRequest,
		"/api/v1/schemas/%ff":                       http.StatusBadRequest,
		"/api/v1/schemas/%25zz":                     http.StatusBadRequest,
		"/api/v1/schemas/a%20b":                     http.StatusBadRequest,
		"/api/v1/schemas/a/b/c/d/e":                 http.StatusBadRequest,
	} {
		w := s.do(req{method: "GET", path: path, token: tok})
		if status == http.StatusOK {
			ok(t, w, status, nil)
			continue
		}
		if p := problem(t, w, status); status == http.StatusBadRequest && p.Parameter != "name" {
			t.Errorf("%s: problem %+v does not name the parameter", path, p)
		}
	}
}

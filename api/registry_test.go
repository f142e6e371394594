package api

import (
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const (
	participantsCSV = "participant_id,name\nQSE-A,Alpha Energy\nQSE-B,Beta Power\nQSE-C,Gamma\n"
	pointsCSV       = "settlement_point,name,kind\nHB_NORTH,North Hub,hub\nLZ_WEST,West Zone,zone\n"
	accountsCSV     = "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\n" +
		"ACC-1,Ann,30,150.00,true\nACC-2,Bob,,,false\nACC-3,Cat,12.5,,\n"
	metersCSV = "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
		"M-1,ACC-1,QSE-A,HB_NORTH,1.0312,2026-10-01T00:00:00-05:00,2026-11-01T12:00:00-06:00\n" +
		"M-1,ACC-1,QSE-B,HB_NORTH,1.031200,2026-11-01T12:00:00-06:00,\n" +
		"M-2,ACC-2,QSE-A,LZ_WEST,1,2026-10-01T05:00:00Z,\n" +
		"M-3,ACC-3,QSE-C,LZ_WEST,0.98,2026-10-01T05:00:00Z,\n"
)

// loadRegistry posts the sample registry as CSV through the API.
func loadRegistry(t *testing.T, s *testServer, tok string) {
	t.Helper()
	for _, c := range []struct{ path, body string }{
		{"/api/v1/participants", participantsCSV},
		{"/api/v1/settlement-points", pointsCSV},
		{"/api/v1/accounts", accountsCSV},
		{"/api/v1/meters", metersCSV},
	} {
		var res RegistryResult
		ok(t, s.do(req{method: "POST", path: c.path, token: tok, body: c.body, contentType: "text/csv"}), 200, &res)
		if res.Rows != strings.Count(c.body, "\n")-1 || res.Inserted != res.Rows {
			t.Fatalf("%s: %+v", c.path, res)
		}
	}
}

func TestRegistryLoadAndList(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op, an := s.token(Operator), s.token(Analyst)
	loadRegistry(t, s, op)

	var meters Page[MeterAssignment]
	ok(t, s.do(req{method: "GET", path: "/api/v1/meters", token: an}), 200, &meters)
	if len(meters.Items) != 4 || meters.NextCursor != "" {
		t.Fatalf("meters %+v", meters)
	}
	m := meters.Items[0]
	if m.MeterID != "M-1" || m.ParticipantID != "QSE-A" || m.LossFactor != "1.031200" ||
		m.EffectiveFrom.Format("2006-01-02T15:04:05Z07:00") != "2026-10-01T05:00:00Z" ||
		m.EffectiveTo == nil || m.EffectiveTo.Format("2006-01-02T15:04:05Z07:00") != "2026-11-01T18:00:00Z" {
		t.Errorf("first assignment %+v", m)
	}
	if meters.Items[1].EffectiveTo != nil || meters.Items[1].ParticipantID != "QSE-B" {
		t.Errorf("retailer switch %+v", meters.Items[1])
	}

	// Filters.
	var at Page[MeterAssignment]
	ok(t, s.do(req{method: "GET", path: "/api/v1/meters?meter_id=M-1&at=2026-11-02T00:00:00Z", token: an}), 200, &at)
	if len(at.Items) != 1 || at.Items[0].ParticipantID != "QSE-B" {
		t.Errorf("meter M-1 at 2026-11-02: %+v", at.Items)
	}

	var accounts Page[map[string]any]
	ok(t, s.do(req{method: "GET", path: "/api/v1/accounts", token: an}), 200, &accounts)
	want := []map[string]any{
		{"account_id": "ACC-1", "name": "Ann", "daily_kwh_threshold": "30", "monthly_budget": "150", "price_alerts": true},
		{"account_id": "ACC-2", "name": "Bob", "daily_kwh_threshold": nil, "monthly_budget": nil, "price_alerts": false},
		{"account_id": "ACC-3", "name": "Cat", "daily_kwh_threshold": "12.5", "monthly_budget": nil, "price_alerts": false},
	}
	if !reflect.DeepEqual(accounts.Items, want) {
		t.Errorf("accounts\n got %v\nwant %v", accounts.Items, want)
	}

	// Re-posting the same files changes nothing (a second demo run).
	for _, c := range []struct{ path, body string }{{"/api/v1/participants", participantsCSV}, {"/api/v1/meters", metersCSV}} {
		var res RegistryResult
		ok(t, s.do(req{method: "POST", path: c.path, token: op, body: c.body, contentType: "text/csv"}), 200, &res)
		if res.Unchanged != res.Rows || res.Inserted != 0 || res.Updated != 0 {
			t.Errorf("re-post %s: %+v", c.path, res)
		}
	}
}

func TestRegistryCSVAndJSONListsAgree(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	loadRegistry(t, s, s.token(Operator))
	an := s.token(Analyst)
	for _, path := range []string{"/api/v1/meters", "/api/v1/accounts", "/api/v1/participants", "/api/v1/settlement-points"} {
		var page Page[map[string]any]
		ok(t, s.do(req{method: "GET", path: path, token: an}), 200, &page)
		w := s.do(req{method: "GET", path: path, token: an, accept: "text/csv"})
		mustStatus(t, w, 200)
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("%s: content type %q", path, ct)
		}
		rows, err := csv.NewReader(w.Body).ReadAll()
		if err != nil {
			t.Fatalf("%s: csv: %v", path, err)
		}
		if len(rows) != len(page.Items)+1 {
			t.Fatalf("%s: %d csv rows for %d items", path, len(rows), len(page.Items))
		}
		header := rows[0]
		if len(header) != len(page.Items[0]) {
			t.Errorf("%s: header %v vs fields %v", path, header, page.Items[0])
		}
		for i, item := range page.Items {
			for j, col := range header {
				want := ""
				switch v := item[col].(type) {
				case string:
					want = v
				case bool:
					want = map[bool]string{true: "true", false: "false"}[v]
				case nil:
				default:
					t.Fatalf("%s: unexpected JSON value %v", path, v)
				}
				if rows[i+1][j] != want {
					t.Errorf("%s row %d %s: csv %q, json %q", path, i+1, col, rows[i+1][j], want)
				}
			}
		}
	}
}

func TestCursorWalk(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	loadRegistry(t, s, s.token(Operator))
	an := s.token(Analyst)
	for _, c := range []struct {
		path string
		n    int
	}{{"/api/v1/participants", 3}, {"/api/v1/meters", 4}, {"/api/v1/accounts", 3}} {
		var all []json.RawMessage
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > c.n {
				t.Fatalf("%s: cursor does not end", c.path)
			}
			path := c.path + "?limit=1"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var page Page[json.RawMessage]
			ok(t, s.do(req{method: "GET", path: path, token: an}), 200, &page)
			if len(page.Items) != 1 {
				t.Fatalf("%s: page of %d", path, len(page.Items))
			}
			all = append(all, page.Items...)
			// The CSV page carries the same cursor in a header.
			w := s.do(req{method: "GET", path: path, token: an, accept: "text/csv"})
			if w.Header().Get(HeaderNextCursor) != page.NextCursor {
				t.Errorf("%s: csv cursor %q, json %q", path, w.Header().Get(HeaderNextCursor), page.NextCursor)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		var full Page[json.RawMessage]
		ok(t, s.do(req{method: "GET", path: c.path, token: an}), 200, &full)
		if len(all) != c.n || !reflect.DeepEqual(all, full.Items) {
			t.Errorf("%s: walked %d items, list has %d", c.path, len(all), len(full.Items))
		}
	}
}

func TestRegistryBadRowsNameRowAndColumn(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op := s.token(Operator)
	loadRegistry(t, s, op)
	cases := []struct {
		name, path, ct, body string
		row, line            int
		column               string
	}{
		{"loss factor above 2", "/api/v1/meters", "text/csv",
			"meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
				"M-9,ACC-1,QSE-A,HB_NORTH,1.0,2026-12-01T00:00:00Z,\nM-10,ACC-1,QSE-A,HB_NORTH,2.5,2026-12-01T00:00:00Z,\n",
			2, 3, "loss_factor"},
		{"seven decimals", "/api/v1/meters", "text/csv",
			"meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from\nM-9,ACC-1,QSE-A,HB_NORTH,1.0000001,2026-12-01T00:00:00Z\n",
			1, 2, "loss_factor"},
		{"float-looking exponent", "/api/v1/meters", "application/json",
			`[{"meter_id":"M-9","account_id":"ACC-1","participant_id":"QSE-A","settlement_point":"HB_NORTH","loss_factor":1e0,"effective_from":"2026-12-01T00:00:00Z"}]`,
			1, 0, "loss_factor"},
		{"bad instant", "/api/v1/meters", "application/json",
			`[{"meter_id":"M-9","account_id":"ACC-1","participant_id":"QSE-A","settlement_point":"HB_NORTH","loss_factor":"1","effective_from":"2026-12-01"}]`,
			1, 0, "effective_from"},
		{"unknown account", "/api/v1/meters", "application/json",
			`[{"meter_id":"M-9","account_id":"ACC-1","participant_id":"QSE-A","settlement_point":"HB_NORTH","loss_factor":1.01,"effective_from":"2026-12-01T00:00:00Z"},
			  {"meter_id":"M-10","account_id":"NOPE","participant_id":"QSE-A","settlement_point":"HB_NORTH","loss_factor":1.01,"effective_from":"2026-12-01T00:00:00Z"}]`,
			2, 0, "account_id"},
		{"end before start", "/api/v1/meters", "text/csv",
			"meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\nM-9,ACC-1,QSE-A,HB_NORTH,1,2026-12-01T00:00:00Z,2026-11-01T00:00:00Z\n",
			1, 2, "effective_to"},
		{"bad kind", "/api/v1/settlement-points", "text/csv", "settlement_point,name,kind\nX,Y,node\nZ,W,region\n", 2, 3, "kind"},
		{"bad identifier", "/api/v1/participants", "text/csv", "participant_id,name\nQSE D,Delta\n", 1, 2, "participant_id"},
		{"unknown field", "/api/v1/participants", "application/json", `[{"participant_id":"P","name":"N","colour":"red"}]`, 1, 0, "colour"},
		{"negative threshold", "/api/v1/accounts", "text/csv",
			"account_id,name,daily_kwh_threshold\nA,B,-5\n", 1, 2, "daily_kwh_threshold"},
		{"bad boolean", "/api/v1/accounts", "text/csv", "account_id,name,price_alerts\nA,B,yes\n", 1, 2, "price_alerts"},
		{"duplicate id", "/api/v1/participants", "text/csv", "participant_id,name\nP1,a\nP2,b\nP1,c\n", 3, 4, "participant_id"},
		{"missing name", "/api/v1/participants", "text/csv", "participant_id,name\nP1,\n", 1, 2, "name"},
		{"unknown column", "/api/v1/participants", "text/csv", "participant_id,name,colour\nP1,a,red\n", 0, 1, "colour"},
		{"missing column", "/api/v1/settlement-points", "text/csv", "settlement_point,name\nX,Y\n", 0, 1, "kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := problem(t, s.do(req{method: "POST", path: c.path, token: op, body: c.body, contentType: c.ct}), 400)
			if p.Row != c.row || p.Line != c.line || p.Column != c.column {
				t.Errorf("problem %+v, want row %d line %d column %s", p, c.row, c.line, c.column)
			}
			if !strings.Contains(p.Detail, "column "+c.column) {
				t.Errorf("detail %q does not name column %s", p.Detail, c.column)
			}
		})
	}
	// Wrong field count is a CSV error on its line.
	p := problem(t, s.do(req{method: "POST", path: "/api/v1/participants", token: op,
		body: "participant_id,name\nP1,a\nP2,b,c\n", contentType: "text/csv"}), 400)
	if p.Line != 3 || p.Row != 2 {
		t.Errorf("field count problem %+v", p)
	}
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants", token: op, body: "<xml/>", contentType: "application/xml"}), 415)
	problem(t, s.do(req{method: "POST", path: "/api/v1/participants", token: op, body: `{"participant_id":"P"}`}), 400)

	// Nothing of the refused batches was written.
	var parts Page[map[string]any]
	ok(t, s.do(req{method: "GET", path: "/api/v1/participants", token: op}), 200, &parts)
	if len(parts.Items) != 3 {
		t.Errorf("participants after refused batches: %v", parts.Items)
	}
	var ms Page[MeterAssignment]
	ok(t, s.do(req{method: "GET", path: "/api/v1/meters", token: op}), 200, &ms)
	if len(ms.Items) != 4 {
		t.Errorf("meters after refused batches: %d", len(ms.Items))
	}
}

func TestRegistryOverlapsAreRefused(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	op := s.token(Operator)
	loadRegistry(t, s, op)
	const header = "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n"
	cases := []struct {
		name, body string
		row        int
	}{
		// M-2 is open from 2026-10-01: a later start overlaps it.
		{"overlaps stored", header + "M-9,ACC-1,QSE-A,HB_NORTH,1,2026-10-01T00:00:00Z,\nM-2,ACC-2,QSE-A,LZ_WEST,1,2026-12-01T00:00:00Z,\n", 2},
		{"overlaps within batch", header + "M-9,ACC-1,QSE-A,HB_NORTH,1,2026-10-01T00:00:00Z,2026-10-10T00:00:00Z\nM-9,ACC-1,QSE-B,HB_NORTH,1,2026-10-09T00:00:00Z,\n", 2},
		{"changes in place", header + "M-3,ACC-3,QSE-C,LZ_WEST,0.99,2026-10-01T05:00:00Z,\n", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := problem(t, s.do(req{method: "POST", path: "/api/v1/meters", token: op, body: c.body, contentType: "text/csv"}), 409)
			if p.Row != c.row || p.Column != "effective_from" || !strings.Contains(p.Detail, "row") {
				t.Errorf("problem %+v, want row %d", p, c.row)
			}
		})
	}
	// The database itself refuses an overlap, whatever the application does.
	_, err := s.pool.Exec(t.Context(), `INSERT INTO meter_assignments
		(meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M-2', 'ACC-2', 'QSE-A', 'LZ_WEST', 1, '2027-01-01T00:00:00Z')`)
	if e := classify(err); e.Kind != Conflict {
		t.Errorf("direct overlapping insert: %v classified as %v", err, e.Kind)
	}

	// Closing M-2 and opening its successor in one batch is a change, not an overlap.
	var res RegistryResult
	ok(t, s.do(req{method: "POST", path: "/api/v1/meters", token: op, contentType: "text/csv",
		body: header + "M-2,ACC-2,QSE-B,LZ_WEST,1,2026-12-01T00:00:00Z,\nM-2,ACC-2,QSE-A,LZ_WEST,1,2026-10-01T05:00:00Z,2026-12-01T00:00:00Z\n"}), 200, &res)
	if res.Inserted != 1 || res.Updated != 1 {
		t.Errorf("close and open: %+v", res)
	}
}

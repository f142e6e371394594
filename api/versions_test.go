package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// seedReadVersions stores, straight into read_blocks, meter's import reads at
// 2026-11-01T05:00 and 05:15: version 1 (offset 20), version 2 (21)
// correcting both, then a stale resend of version 1 (22) that only adds
// 05:30; and an export read (23) at 05:00.
func seedReadVersions(t *testing.T, pool *pgxpool.Pool, meter string) {
	t.Helper()
	start := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC).Unix()
	org := func(off int64) readstore.Origin {
		return readstore.Origin{Topic: "ami.interval-reads", Partition: 2, Offset: off}
	}
	blocks := []readstore.StoredBlock{
		{MeterID: meter, Channel: meters.Import, Start: start, IntervalSeconds: 900, Version: 1,
			Values: []int64{1_000_000, 2_000_000}, Quality: "EE", Source: "he", Origin: org(20)},
		{MeterID: meter, Channel: meters.Import, Start: start, IntervalSeconds: 900, Version: 2,
			Values: []int64{1_100_000, 2_200_000}, Origin: org(21)},
		{MeterID: meter, Channel: meters.Import, Start: start, IntervalSeconds: 900, Version: 1,
			Values: []int64{readstore.NoRead, readstore.NoRead, 3_000_000}, Source: "he", Origin: org(22)},
		{MeterID: meter, Channel: meters.Export, Start: start, IntervalSeconds: 900, Version: 1,
			Values: []int64{500_000}, Origin: org(23)},
	}
	if err := readstore.EnsurePartitions(t.Context(), pool, []int64{start}); err != nil {
		t.Fatal(err)
	}
	if err := readstore.AppendBlocks(t.Context(), pool, blocks); err != nil {
		t.Fatal(err)
	}
}

// seedPriceVersions applies, as ingest does, RT HB_NORTH 05:00 in versions
// 1, 2 and 3 (offsets 0-2) and DA HB_NORTH 05:00 version 1 (3).
func seedPriceVersions(t *testing.T, s *testServer) {
	t.Helper()
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/settlement-points", token: s.token(Operator),
		body: `[{"settlement_point":"HB_NORTH","name":"N","kind":"hub"}]`}), 200, nil)
	p := func(market string, seconds, version int, price string) string {
		return fmt.Sprintf(`{"market":%q,"settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":%d,"price":%q,"version":%d}`,
			market, seconds, price, version)
	}
	ingestData(t, s.pool, nil, []string{p("RT", 900, 1, "10"), p("RT", 900, 2, "11"), p("RT", 900, 3, "12.5"), p("DA", 3600, 1, "30")})
}

func readLine(r Read) string {
	return fmt.Sprintf("%s %s %s v%d %s %q %s/%d@%d", r.Start.Format("15:04"), r.Channel, r.Value, r.Version, r.Quality, r.Source,
		r.Topic, r.Partition, r.Offset)
}

func supersededLine(o *InputOffset) string {
	if o == nil {
		return "null"
	}
	return fmt.Sprintf("%s/%d@%d", o.Topic, o.Partition, o.Offset)
}

// pages follows next_cursor from path and returns every item.
func pages[T any](t *testing.T, s *testServer, tok, path string) []T {
	t.Helper()
	var out []T
	for range 20 {
		var page Page[T]
		ok(t, s.do(req{method: http.MethodGet, path: path, token: tok}), 200, &page)
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		base, _, _ := strings.Cut(path, "&cursor=")
		path = base + "&cursor=" + url.QueryEscape(page.NextCursor)
	}
	t.Fatalf("%s: more than 20 pages", path)
	return nil
}

// TestReadVersionsAPI: versions=all lists every stored version of M1's
// reads, each with the record that replaced it (null for the current one),
// in pages; the default and versions=current answer the current reads
// alone, without superseded_by; another value is a 400 naming versions.
func TestReadVersionsAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	seedReadVersions(t, s.pool, "M1")

	current := []string{
		`05:00 export 0.500000 v1 A "" ami.interval-reads/2@23`,
		`05:00 import 1.100000 v2 A "" ami.interval-reads/2@21`,
		`05:15 import 2.200000 v2 A "" ami.interval-reads/2@21`,
		`05:30 import 3.000000 v1 A "he" ami.interval-reads/2@22`,
	}
	all := []string{
		`05:00 export 0.500000 v1 A "" ami.interval-reads/2@23 by null`,
		`05:00 import 1.000000 v1 E "he" ami.interval-reads/2@20 by ami.interval-reads/2@21`,
		`05:00 import 1.100000 v2 A "" ami.interval-reads/2@21 by null`,
		`05:15 import 2.000000 v1 E "he" ami.interval-reads/2@20 by ami.interval-reads/2@21`,
		`05:15 import 2.200000 v2 A "" ami.interval-reads/2@21 by null`,
		`05:30 import 3.000000 v1 A "he" ami.interval-reads/2@22 by null`,
	}
	w := s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads", token: tok})
	mustStatus(t, w, 200)
	if strings.Contains(w.Body.String(), "superseded_by") {
		t.Errorf("the default answer names superseded_by: %s", w.Body)
	}
	if wc := s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=current", token: tok}); wc.Body.String() != w.Body.String() {
		t.Errorf("versions=current answers\n%s\nthe default answers\n%s", wc.Body, w.Body)
	}
	for _, limit := range []int{1, 2, 100} {
		var got []string
		for _, r := range pages[Read](t, s, tok, fmt.Sprintf("/api/v1/meters/M1/reads?limit=%d", limit)) {
			got = append(got, readLine(r))
		}
		equalLines(t, fmt.Sprintf("current reads, limit %d", limit), got, current)

		got = nil
		for _, r := range pages[ReadVersion](t, s, tok, fmt.Sprintf("/api/v1/meters/M1/reads?versions=all&limit=%d", limit)) {
			got = append(got, readLine(r.Read)+" by "+supersededLine(r.SupersededBy))
		}
		equalLines(t, fmt.Sprintf("every read version, limit %d", limit), got, all)
	}
	var page Page[ReadVersion]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=all&channel=import&from=2026-11-01T05:15:00Z", token: tok}), 200, &page)
	var got []string
	for _, r := range page.Items {
		got = append(got, readLine(r.Read)+" by "+supersededLine(r.SupersededBy))
	}
	equalLines(t, "import versions from 05:15", got, all[3:])

	// The current one says null, not nothing.
	w = s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=all&channel=export", token: tok})
	if !strings.Contains(w.Body.String(), `"superseded_by":null`) {
		t.Errorf("the current version has no superseded_by null: %s", w.Body)
	}
	// CSV: the default's columns unchanged; every version adds superseded_by's.
	w = s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=all", token: tok, accept: "text/csv"})
	mustStatus(t, w, 200)
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if len(lines) != 7 || lines[0] != "meter_id,channel,start,interval_seconds,value,quality,version,source,topic,partition,offset,"+
		"superseded_by.topic,superseded_by.partition,superseded_by.offset" ||
		lines[2] != "M1,import,2026-11-01T05:00:00Z,900,1.000000,E,1,he,ami.interval-reads,2,20,ami.interval-reads,2,21" ||
		lines[3] != "M1,import,2026-11-01T05:00:00Z,900,1.100000,A,2,,ami.interval-reads,2,21,,," {
		t.Errorf("csv of every version %q", lines)
	}
	w = s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads", token: tok, accept: "text/csv"})
	if header, _, _ := strings.Cut(w.Body.String(), "\n"); header != "meter_id,channel,start,interval_seconds,value,quality,version,source,topic,partition,offset" {
		t.Errorf("csv header of current reads %q", header)
	}

	for _, bad := range []string{"ALL", "none", "1"} {
		p := problem(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=" + bad, token: tok}), http.StatusBadRequest)
		if p.Parameter != "versions" {
			t.Errorf("versions=%s: %+v", bad, p)
		}
	}
	// The widest range the contract allows, and a year-9999 one, answer
	// what is stored (nothing in year 9999) without walking the empty years.
	var wide Page[ReadVersion]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=all&from=2000-01-01T00:00:00Z&to=9999-12-31T00:00:00Z",
		token: tok}), 200, &wide)
	if len(wide.Items) != len(all) {
		t.Errorf("2000 to 9999: %d versions, want %d", len(wide.Items), len(all))
	}
	var far Page[ReadVersion]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=all&from=9999-01-01T00:00:00Z", token: tok}), 200, &far)
	if len(far.Items) != 0 || far.NextCursor != "" {
		t.Errorf("from 9999: %+v", far)
	}
	// Every version is an analyst's answer: without a token, 401.
	mustStatus(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?versions=all"}), http.StatusUnauthorized)
}

// TestPriceVersionsAPI: as TestReadVersionsAPI for prices.
func TestPriceVersionsAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	seedPriceVersions(t, s)

	line := func(p Price) string {
		return fmt.Sprintf("%s %s %s v%d %s %s/%d@%d", p.Market, p.Start.Format("15:04"), p.Price, p.Version, p.Currency, p.Topic, p.Partition, p.Offset)
	}
	all := []string{
		"DA 05:00 30.000000 v1 USD market.prices/0@3 by null",
		"RT 05:00 10.000000 v1 USD market.prices/0@0 by market.prices/0@1",
		"RT 05:00 11.000000 v2 USD market.prices/0@1 by market.prices/0@2",
		"RT 05:00 12.500000 v3 USD market.prices/0@2 by null",
	}
	w := s.do(req{method: http.MethodGet, path: "/api/v1/prices?settlement_point=HB_NORTH", token: tok})
	mustStatus(t, w, 200)
	if strings.Contains(w.Body.String(), "superseded_by") {
		t.Errorf("the default answer names superseded_by: %s", w.Body)
	}
	if wc := s.do(req{method: http.MethodGet, path: "/api/v1/prices?settlement_point=HB_NORTH&versions=current", token: tok}); wc.Body.String() != w.Body.String() {
		t.Errorf("versions=current answers\n%s\nthe default answers\n%s", wc.Body, w.Body)
	}
	for _, limit := range []int{1, 3, 100} {
		var got []string
		for _, p := range pages[Price](t, s, tok, fmt.Sprintf("/api/v1/prices?settlement_point=HB_NORTH&limit=%d", limit)) {
			got = append(got, line(p))
		}
		equalLines(t, fmt.Sprintf("current prices, limit %d", limit), got, []string{
			"DA 05:00 30.000000 v1 USD market.prices/0@3", "RT 05:00 12.500000 v3 USD market.prices/0@2"})

		got = nil
		for _, p := range pages[PriceVersion](t, s, tok, fmt.Sprintf("/api/v1/prices?settlement_point=HB_NORTH&versions=all&limit=%d", limit)) {
			got = append(got, line(p.Price)+" by "+supersededLine(p.SupersededBy))
		}
		equalLines(t, fmt.Sprintf("every price version, limit %d", limit), got, all)
	}
	var page Page[PriceVersion]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/prices?versions=all&market=RT", token: tok}), 200, &page)
	var got []string
	for _, p := range page.Items {
		got = append(got, line(p.Price)+" by "+supersededLine(p.SupersededBy))
	}
	equalLines(t, "every RT version", got, all[1:])
	if w := s.do(req{method: http.MethodGet, path: "/api/v1/prices?versions=all&market=DA", token: tok}); !strings.Contains(w.Body.String(), `"superseded_by":null`) {
		t.Errorf("the current version has no superseded_by null: %s", w.Body)
	}

	for _, bad := range []string{"All", "superseded"} {
		p := problem(t, s.do(req{method: http.MethodGet, path: "/api/v1/prices?versions=" + bad, token: tok}), http.StatusBadRequest)
		if p.Parameter != "versions" {
			t.Errorf("versions=%s: %+v", bad, p)
		}
	}
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

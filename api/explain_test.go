package api

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

func init() {
	testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes {
		return ExplainRoutes{Runs: testRuns(t, pool)}
	})
}

// explainOffsets is where the next record of each input topic goes:
// records are applied as ingest applies them, at increasing offsets of
// partition 0, and ingest_offsets moves past them, so each run's snapshot
// includes exactly what was applied before it.
type explainOffsets struct{ reads, prices int64 }

// apply ingests reads and prices (JSON input records) at the next offsets.
func (o *explainOffsets) apply(t *testing.T, pool *pgxpool.Pool, reads, prices []string) {
	t.Helper()
	var rr []readstore.ReadRecord
	for _, v := range reads {
		r := readstore.ReadRecord{Source: readstore.Source{Origin: readstore.Origin{Topic: "ami.interval-reads", Offset: o.reads}, Value: []byte(v)}}
		r.Block, r.Rejection = meters.DecodeReadBlock([]byte(v))
		if r.Rejection != nil {
			t.Fatalf("%s: %v", v, r.Rejection)
		}
		rr = append(rr, r)
		o.reads++
	}
	var pr []readstore.PriceRecord
	for _, v := range prices {
		p := readstore.PriceRecord{Source: readstore.Source{Origin: readstore.Origin{Topic: "market.prices", Offset: o.prices}, Key: []byte("HB_NORTH"), Value: []byte(v)}}
		p.Price, p.Rejection = meters.DecodePrice([]byte(v), "USD")
		if p.Rejection != nil {
			t.Fatalf("%s: %v", v, p.Rejection)
		}
		pr = append(pr, p)
		o.prices++
	}
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		if _, err := readstore.ApplyReads(t.Context(), tx, readstore.ReadOptions{SettlementSeconds: 900}, rr); err != nil {
			return err
		}
		if _, err := readstore.ApplyPrices(t.Context(), tx, "USD", pr); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), `INSERT INTO ingest_offsets (topic, partition, next_offset)
			VALUES ('ami.interval-reads', 0, $1), ('market.prices', 0, $2)
			ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset`, o.reads, o.prices)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// seedExplainDays settles 2026-11-01 (the fall-back day: 100 settlement
// intervals) twice: version 1 on the first reads and prices, version 2
// after every read of M1 was resent as version 2 with a third of them
// corrected, M2's 06:00 read corrected with quality E, and the 07:00 price
// corrected. It answers M1's line of version 2.
func seedExplainDays(t *testing.T, s *testServer, toks map[Role]string) string {
	t.Helper()
	op := toks[Operator]
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/participants", token: op,
		body: `[{"participant_id":"RET-A","name":"A"},{"participant_id":"RET-B","name":"B"}]`}), 200, nil)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/settlement-points", token: op, body: `[{"settlement_point":"HB_NORTH","name":"N","kind":"hub"}]`}), 200, nil)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/accounts", token: op, body: `[{"account_id":"ACC-1","name":"one"},{"account_id":"ACC-2","name":"two"}]`}), 200, nil)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/meters", token: op, body: `[
		{"meter_id":"M1","account_id":"ACC-1","participant_id":"RET-A","settlement_point":"HB_NORTH","loss_factor":"1.0125","effective_from":"2026-01-01T00:00:00Z"},
		{"meter_id":"M2","account_id":"ACC-2","participant_id":"RET-B","settlement_point":"HB_NORTH","loss_factor":"1","effective_from":"2026-01-01T00:00:00Z"}]`}), 200, nil)
	start := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	block := func(meter string, version int, value func(i int) string) string {
		vals := make([]string, 100)
		for i := range vals {
			vals[i] = fmt.Sprintf("%q", value(i))
		}
		return fmt.Sprintf(`{"meter_id":%q,"start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":[%s],"version":%d}`,
			meter, strings.Join(vals, ","), version)
	}
	price := func(at time.Time, p string, version int) string {
		return fmt.Sprintf(`{"market":"RT","settlement_point":"HB_NORTH","start":%q,"interval_seconds":900,"price":%q,"version":%d}`,
			at.Format(time.RFC3339), p, version)
	}
	var prices []string
	for i := range 100 {
		prices = append(prices, price(start.Add(time.Duration(i)*15*time.Minute), fmt.Sprintf("%d.125", i%41-7), 1))
	}
	var o explainOffsets
	o.apply(t, s.pool, []string{
		block("M1", 1, func(i int) string { return fmt.Sprintf("%d.333", i%17) }),
		block("M2", 1, func(i int) string { return "2.5" }),
	}, prices)
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: op, body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, nil)
	o.apply(t, s.pool, []string{
		block("M1", 2, func(i int) string {
			if i%3 == 0 {
				return fmt.Sprintf("%d.777", i%13)
			}
			return fmt.Sprintf("%d.333", i%17)
		}),
		`{"meter_id":"M2","start":"2026-11-01T06:00:00Z","interval_seconds":900,"values":["7.25"],"quality":["E"],"version":2}`,
	}, []string{price(start.Add(2*time.Hour), "171.5", 2)})
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: op, body: `{"operating_day":"2026-11-01","run_type":"final"}`}), http.StatusCreated, nil)
	return "HB_NORTH/RET-A/2026-11-01/2"
}

// explanationJSON is the answer of settlement/README.md "Explain a statement
// line" as a client reads it.
type explanationJSON struct {
	StatementID         string            `json:"statement_id"`
	Against             string            `json:"against"`
	DeltaEnergyMWh      decimal.Decimal   `json:"delta_energy_mwh"`
	DeltaAmount         decimal.Decimal   `json:"delta_amount"`
	ExactDeltaEnergyMWh decimal.Decimal   `json:"exact_delta_energy_mwh"`
	ExactDeltaAmount    decimal.Decimal   `json:"exact_delta_amount"`
	Rounding            decimal.Decimal   `json:"rounding"`
	Changes             []json.RawMessage `json:"changes"`
	Summary             map[string]struct {
		Changes         int             `json:"changes"`
		EnergyMWhEffect decimal.Decimal `json:"energy_mwh_effect"`
		AmountEffect    decimal.Decimal `json:"amount_effect"`
	} `json:"summary"`
	NextCursor *string `json:"next_cursor"`
}

type changeJSON struct {
	Kind            string          `json:"kind"`
	EnergyMWhEffect decimal.Decimal `json:"energy_mwh_effect"`
	AmountEffect    decimal.Decimal `json:"amount_effect"`
}

func explainPath(id, query string) string {
	p := "/api/v1/statements/" + url.PathEscape(id) + "/explain"
	if query != "" {
		p += "?" + query
	}
	return p
}

// explainAll reads every page of an explanation with limit, checking that
// each page carries the same totals, and returns the first page with the
// changes of all pages.
func explainAll(t *testing.T, s *testServer, tok, id, query string, limit int) explanationJSON {
	t.Helper()
	var whole explanationJSON
	cursor := ""
	for pages := 0; ; pages++ {
		q := fmt.Sprintf("limit=%d", limit)
		if query != "" {
			q = query + "&" + q
		}
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page explanationJSON
		ok(t, s.do(req{method: "GET", path: explainPath(id, q), token: tok}), http.StatusOK, &page)
		if len(page.Changes) > limit || (page.NextCursor != nil && len(page.Changes) != limit) {
			t.Fatalf("page %d: %d changes with limit %d, next_cursor %v", pages, len(page.Changes), limit, page.NextCursor)
		}
		if pages == 0 {
			whole = page
			whole.Changes = nil
		} else if !page.ExactDeltaAmount.Equal(whole.ExactDeltaAmount) || page.Summary["read"].Changes != whole.Summary["read"].Changes ||
			page.Against != whole.Against || !page.Rounding.Equal(whole.Rounding) {
			t.Fatalf("page %d differs from the first outside its changes: %+v, first %+v", pages, page, whole)
		}
		whole.Changes = append(whole.Changes, page.Changes...)
		if page.NextCursor == nil {
			return whole
		}
		cursor = *page.NextCursor
	}
}

// checkSums: the changes add up exactly to the exact deltas, the summary
// to the changes, and rounding is delta_amount − exact_delta_amount.
func checkSums(t *testing.T, e explanationJSON) {
	t.Helper()
	var energy, amount decimal.Decimal
	counts := map[string]int{}
	for _, raw := range e.Changes {
		var c changeJSON
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		energy, amount = energy.Add(c.EnergyMWhEffect), amount.Add(c.AmountEffect)
		counts[c.Kind]++
	}
	if !energy.Equal(e.ExactDeltaEnergyMWh) || !amount.Equal(e.ExactDeltaAmount) {
		t.Errorf("changes add up to %s MWh and %s; exact deltas %s MWh and %s", energy, amount, e.ExactDeltaEnergyMWh, e.ExactDeltaAmount)
	}
	if !e.Rounding.Equal(e.DeltaAmount.Sub(e.ExactDeltaAmount)) {
		t.Errorf("rounding %s, delta %s, exact %s", e.Rounding, e.DeltaAmount, e.ExactDeltaAmount)
	}
	for _, k := range []string{"read", "price"} {
		if e.Summary[k].Changes != counts[k] {
			t.Errorf("summary %s: %d changes, the list has %d", k, e.Summary[k].Changes, counts[k])
		}
	}
	if !e.Summary["read"].AmountEffect.Add(e.Summary["price"].AmountEffect).Equal(e.ExactDeltaAmount) {
		t.Errorf("summary amounts %+v do not add up to %s", e.Summary, e.ExactDeltaAmount)
	}
}

// TestExplainAPI: a day of two runs with corrected reads and a corrected
// price between them, explained page by page and whole, against the
// default version, version 1 and nothing (0).
func TestExplainAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	id := seedExplainDays(t, s, toks)
	an := toks[Analyst]

	var whole explanationJSON
	ok(t, s.do(req{method: "GET", path: explainPath(id, "limit=1000"), token: an}), http.StatusOK, &whole)
	if whole.StatementID != id || whole.Against != "HB_NORTH/RET-A/2026-11-01/1" || whole.NextCursor != nil {
		t.Fatalf("explanation of %s against %s, next_cursor %v", whole.StatementID, whole.Against, whole.NextCursor)
	}
	// Every M1 read changed (version 1 → 2), a price changed, M2 is not
	// RET-A's.
	if whole.Summary["read"].Changes != 100 || whole.Summary["price"].Changes != 1 || len(whole.Changes) != 101 {
		t.Fatalf("summary %+v, %d changes; want 100 reads and 1 price", whole.Summary, len(whole.Changes))
	}
	if whole.ExactDeltaAmount.IsZero() || whole.ExactDeltaEnergyMWh.IsZero() {
		t.Fatalf("nothing changed: %+v", whole)
	}
	checkSums(t, whole)
	for _, c := range whole.Changes {
		if strings.Contains(string(c), `"meter_id":"M2"`) {
			t.Errorf("RET-A's line explains M2's read: %s", c)
		}
	}

	// Pages of 7, concatenated, are the whole; so is the default page size.
	paged := explainAll(t, s, an, id, "", 7)
	if len(paged.Changes) != len(whole.Changes) {
		t.Fatalf("%d changes in pages of 7, %d whole", len(paged.Changes), len(whole.Changes))
	}
	for i := range paged.Changes {
		if string(paged.Changes[i]) != string(whole.Changes[i]) {
			t.Fatalf("change %d: paged %s, whole %s", i, paged.Changes[i], whole.Changes[i])
		}
	}
	if def := explainAll(t, s, an, id, "", DefaultLimit); len(def.Changes) != 101 {
		t.Errorf("default page size: %d changes", len(def.Changes))
	}

	// CSV: one row per change, the same figures; the next cursor in a header.
	w := s.do(req{method: "GET", path: explainPath(id, "limit=1000"), token: an, accept: "text/csv"})
	mustStatus(t, w, http.StatusOK)
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 102 || strings.Join(rows[0], ",") != strings.Join(explainColumnNames(), ",") {
		t.Fatalf("%d CSV rows, header %v", len(rows), rows[0])
	}
	var csvAmount decimal.Decimal
	for _, r := range rows[1:] {
		csvAmount = csvAmount.Add(decimal.RequireFromString(r[len(r)-1]))
	}
	if !csvAmount.Equal(whole.ExactDeltaAmount) {
		t.Errorf("CSV amounts add up to %s, exact delta %s", csvAmount, whole.ExactDeltaAmount)
	}
	if w := s.do(req{method: "GET", path: explainPath(id, "limit=7"), token: an, accept: "text/csv"}); w.Header().Get(HeaderNextCursor) == "" {
		t.Errorf("CSV page of 7: no %s", HeaderNextCursor)
	}

	// Against 1 explicitly is the default; the unencoded id is the same line.
	var v1, plain explanationJSON
	ok(t, s.do(req{method: "GET", path: explainPath(id, "against=1&limit=1000"), token: an}), http.StatusOK, &v1)
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements/" + id + "/explain?limit=1000", token: an}), http.StatusOK, &plain)
	for _, e := range []explanationJSON{v1, plain} {
		if e.Against != whole.Against || len(e.Changes) != 101 || !e.ExactDeltaAmount.Equal(whole.ExactDeltaAmount) {
			t.Errorf("against=1 / unencoded: %+v", e)
		}
	}

	// Against nothing: every contribution of version 2 is a change, and the
	// deltas are the line's whole figures.
	zero := explainAll(t, s, an, id, "against=0", 1000)
	if zero.Summary["read"].Changes != 100 || zero.ExactDeltaAmount.Equal(whole.ExactDeltaAmount) {
		t.Errorf("against 0: %+v", zero.Summary)
	}
	checkSums(t, zero)
	// Version 1 against nothing.
	checkSums(t, explainAll(t, s, an, "HB_NORTH/RET-A/2026-11-01/1", "", 50))
	// RET-B's line: one read corrected.
	b := explainAll(t, s, an, "HB_NORTH/RET-B/2026-11-01/2", "", 1)
	if b.Summary["read"].Changes != 1 || b.Summary["price"].Changes != 1 {
		t.Errorf("RET-B: %+v", b.Summary)
	}
	checkSums(t, b)

	// Computing explanations is bounded: with every slot taken, a request
	// waits for one until its deadline, then gives up.
	busy := newExplainHandler(testRuns(t, s.pool), newExplainCache(maxCachedExplanations, maxCachedExplanationBytes))
	for range explainSlots {
		busy.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := busy.page(ctx, id, nil, nil, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("explain with every slot taken: %v, want the deadline", err)
	}
	<-busy.slots
	if _, _, err := busy.page(t.Context(), id, nil, nil, 10); err != nil {
		t.Errorf("explain with a slot free: %v", err)
	}

	// An explanation too large for the cache is paged by the engine
	// (Runs.ExplainPage), each page streaming the inputs again: the same
	// pages.
	h := newExplainHandler(testRuns(t, s.pool), newExplainCache(maxCachedExplanations, 1000))
	var after *settlement.ChangeKey
	var streamed []json.RawMessage
	for pages := 0; ; pages++ {
		page, more, err := h.page(t.Context(), id, nil, after, 30)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := h.cache.lookup(explainKey{statement: id, against: -1}); !ok || e != nil {
			t.Fatalf("page %d: the cache holds %v, %v; want the mark of an explanation too large", pages, e, ok)
		}
		if !page.ExactDeltaAmount.Equal(whole.ExactDeltaAmount) || page.Summary["read"].Changes != 100 {
			t.Fatalf("page %d: totals %s, %+v", pages, page.ExactDeltaAmount, page.Summary)
		}
		for _, c := range page.Changes {
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			streamed = append(streamed, b)
		}
		if !more {
			break
		}
		k := page.Changes[len(page.Changes)-1].Key()
		after = &k
	}
	if len(streamed) != len(whole.Changes) {
		t.Fatalf("%d changes streamed in pages, %d whole", len(streamed), len(whole.Changes))
	}
	for i := range streamed {
		if string(streamed[i]) != string(whole.Changes[i]) {
			t.Fatalf("change %d: streamed %s, whole %s", i, streamed[i], whole.Changes[i])
		}
	}
}

// TestExplainHostileInput: bad parameters are 400s naming them, unknown
// lines and versions 404s, roles as for every statement endpoint.
func TestExplainHostileInput(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	id := seedExplainDays(t, s, toks)
	an := toks[Analyst]

	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	bad := func(cases []struct{ query, param string }) {
		t.Helper()
		for _, c := range cases {
			p := problem(t, s.do(req{method: "GET", path: explainPath(id, c.query), token: an}), http.StatusBadRequest)
			if p.Parameter != c.param {
				t.Errorf("%s: parameter %q, want %q (%s)", c.query, p.Parameter, c.param, p.Detail)
			}
		}
	}
	bad([]struct{ query, param string }{
		{"against=-1", "against"},
		{"against=1.5", "against"},
		{"against=abc", "against"},
		{"against=99999999999999999999", "against"},
		{"against=2147483648", "against"},
		{"against=1&against=1", "against"},
		{"against=%00", "against"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=abc", "limit"},
		{"version=1", "version"},
		{"cursor=not-a-cursor!", "cursor"},
		{"cursor=" + enc(`{"s":"`+id+`","a":null,"n":0}`), "cursor"},
		{"cursor=" + enc(`{"s":"`+id+`","a":null,"n":2,"x":1}`), "cursor"},
		// a cursor of another line
		{"cursor=" + enc(`{"s":"HB_NORTH/RET-B/2026-11-01/2","a":null,"k":{}}`), "cursor"},
		{"cursor=" + enc(`{"s":"`+id+`","a":null,"k":{"SettlementInterval":"yesterday"}}`), "cursor"},
		{"cursor=" + enc("{\"s\":\"\xe2\x82"), "cursor"}, // JSON cut mid-character
		{"cursor=" + strings.Repeat("A", 100000), "cursor"},
		{"against=%D9%A3", "against"}, // an Arabic-Indic digit three
	})

	var first explanationJSON
	ok(t, s.do(req{method: "GET", path: explainPath(id, "limit=2"), token: an}), http.StatusOK, &first)
	if first.NextCursor == nil {
		t.Fatal("no next_cursor on a page of 2 of 101 changes")
	}
	cursor := url.QueryEscape(*first.NextCursor)
	bad([]struct{ query, param string }{
		// of this line against another version
		{"against=0&cursor=" + cursor, "cursor"},
		{"against=1&cursor=" + cursor, "cursor"},
	})
	// The cursor of the default explanation pages it.
	var second explanationJSON
	ok(t, s.do(req{method: "GET", path: explainPath(id, "limit=2&cursor="+cursor), token: an}), http.StatusOK, &second)
	if len(second.Changes) != 2 || string(second.Changes[0]) == string(first.Changes[0]) {
		t.Errorf("second page: %d changes", len(second.Changes))
	}

	for _, path := range []string{
		explainPath("HB_NORTH/RET-A/2026-11-01/9", ""),
		explainPath("HB_NORTH/NOBODY/2026-11-01/2", ""),
		explainPath("not a statement", ""),
		explainPath(id, "against=2"), // not lower than the line's version
		explainPath(id, "against=3"),
		explainPath("HB_NORTH/RET-A/2026-11-01/1", "against=1"),
		explainPath("HB_NORTH/RET-A/9999-12-31/1", ""),
		explainPath("HB_NORTH/RET-A/2026-11-01/"+strings.Repeat("9", 40), ""),
	} {
		problem(t, s.do(req{method: "GET", path: path, token: an}), http.StatusNotFound)
	}
	problem(t, s.do(req{method: "GET", path: "/api/v1/statements/a%FF%00/explain", token: an}), http.StatusBadRequest)

	problem(t, s.do(req{method: "GET", path: explainPath(id, ""), token: toks[Regulator]}), http.StatusForbidden)
	problem(t, s.do(req{method: "GET", path: explainPath(id, "")}), http.StatusUnauthorized)
	problem(t, s.do(req{method: "GET", path: explainPath(id, ""), token: "not-a-token"}), http.StatusUnauthorized)
	for _, role := range []Role{Operator, Admin} {
		ok(t, s.do(req{method: "GET", path: explainPath(id, "limit=1"), token: toks[role]}), http.StatusOK, nil)
	}

	// A run made before runs recorded their replays cannot be explained: 409.
	if _, err := s.pool.Exec(t.Context(), `UPDATE runs SET lineage = lineage - 'replays_through' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if p := problem(t, s.do(req{method: "GET", path: explainPath(id, "against=1"), token: an}), http.StatusConflict); !strings.Contains(p.Detail, "recorded") {
		t.Errorf("409 detail %q", p.Detail)
	}
}

// TestExplainCacheBounds: the cache keeps at most maxCachedExplanations,
// dropping the oldest, and never more than its bytes.
func TestExplainCacheBounds(t *testing.T) {
	t.Parallel()
	c := newExplainCache(maxCachedExplanations, maxCachedExplanationBytes)
	for i := range maxCachedExplanations + 5 {
		c.add(explainKey{statement: fmt.Sprint(i)}, nil, 1000)
	}
	if len(c.entries) != maxCachedExplanations || c.bytes != maxCachedExplanations*1000 {
		t.Fatalf("%d entries, %d bytes", len(c.entries), c.bytes)
	}
	if _, ok := c.lookup(explainKey{statement: "0"}); ok {
		t.Error("the oldest entry was kept")
	}
	if _, ok := c.lookup(explainKey{statement: fmt.Sprint(maxCachedExplanations + 4)}); !ok {
		t.Error("the newest entry was dropped")
	}
	c.add(explainKey{statement: "big"}, nil, maxCachedExplanationBytes-1000)
	if c.bytes > maxCachedExplanationBytes || len(c.entries) != 2 {
		t.Errorf("%d entries, %d bytes after a large one", len(c.entries), c.bytes)
	}
	c.add(explainKey{statement: "huge"}, nil, maxCachedExplanationBytes+1)
	if _, ok := c.lookup(explainKey{statement: "huge"}); ok {
		t.Error("an explanation larger than the cache was kept")
	}
}

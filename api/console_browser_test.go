package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/gridsettle/gridsettle/api/console"
	"github.com/gridsettle/gridsettle/api/console/consoletest"
	"github.com/gridsettle/gridsettle/settlement"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// hostile is a quarantined record that would run script if the console
// put API text into the page as markup.
const hostile = `<img src="/x" onerror="window.pwned = 1"><script>window.pwned = 1</script>`

// explainStrings is an explanation's JSON with its figures as the strings
// the API wrote, which the console must show unchanged.
type explainStrings struct {
	Against             string `json:"against"`
	DeltaAmount         string `json:"delta_amount"`
	ExactDeltaEnergyMWh string `json:"exact_delta_energy_mwh"`
	ExactDeltaAmount    string `json:"exact_delta_amount"`
	Rounding            string `json:"rounding"`
	Changes             []struct {
		EnergyMWhEffect string `json:"energy_mwh_effect"`
		AmountEffect    string `json:"amount_effect"`
	} `json:"changes"`
	Summary map[string]struct {
		Changes int `json:"changes"`
	} `json:"summary"`
	NextCursor string `json:"next_cursor"`
}

// TestConsoleInBrowser drives the console in a real headless Chromium
// over a settled fall-back day (2026-11-01 in America/Chicago: 100
// settlement intervals, negative prices, a spike and an unpriced interval):
// sign-in, the Day page's figures against the API's, the chart's points
// against the line's intervals, a restatement's explanation against the
// API's (effects, summary, paging), a meter's read versions and estimates,
// deep links, a 390-pixel-wide screen, the regulator's Exports-only view
// with completeness, an operator's replay, the CSP, and no console errors
// along the way.
func TestConsoleInBrowser(t *testing.T) {
	s := newTestServer(t, nil)
	s.Mount(console.Prefix, console.Handler())
	toks := s.tokens()
	spike := func() {
		if _, err := s.pool.Exec(t.Context(), `UPDATE prices SET price = 2500 WHERE interval_start = '2026-11-01T23:00:00Z'`); err != nil {
			t.Fatal(err)
		}
	}
	seedVariedDay(t, s, "0.125")
	spike()
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, nil)
	seedVariedDay(t, s, "0.375")
	spike()
	// A gap of M1 (every version of its reads of 14:00 – 14:30; its channel
	// length known, as ingest would have recorded it) that the final run
	// settles on estimates, which the chart marks.
	for _, q := range []string{
		`INSERT INTO channel_lengths (meter_id, channel, interval_seconds) VALUES ('M1', 'import', 900) ON CONFLICT DO NOTHING`,
		`DELETE FROM read_blocks WHERE meter_id = 'M1' AND start >= '2026-11-01T14:00:00Z' AND start < '2026-11-01T14:45:00Z'`,
	} {
		if _, err := s.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"final"}`}), http.StatusCreated, nil)
	ok(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Operator],
		body: `{"operating_day":"2026-11-01","run_type":"final","version":2}`}), http.StatusCreated, nil)
	// A read of a meter the registry does not know yet, then the registry
	// fix that lets an operator replay it.
	// And a record that is markup: the console must show it as text.
	ingestData(t, s.pool, []string{`{"meter_id":"M9","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"]}`, hostile}, nil)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M9', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01Z')`); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	base := srv.URL
	// A second day whose inputs went through ingest with their offsets
	// and counts (explain_test.go's), so its runs can be explained and its
	// export's manifest has completeness; the day above writes its reads
	// straight into the store, which the explanation engine cannot rebuild.
	xs := newTestServer(t, nil)
	xs.Mount(console.Prefix, console.Handler())
	xtoks := xs.tokens()
	restated := seedExplainDays(t, xs, xtoks)
	ok(t, xs.do(req{method: "POST", path: "/api/v1/exports", token: xtoks[Operator],
		body: `{"operating_day":"2026-11-01","run_type":"final","version":2}`}), http.StatusCreated, nil)
	xsrv := httptest.NewServer(xs.Handler())
	t.Cleanup(xsrv.Close)
	chrome := consoletest.NewBrowser(t)
	started := time.Now()

	var lines Page[settlement.StatementMessage]
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01", token: toks[Analyst]}), http.StatusOK, &lines)
	if len(lines.Items) != 2 || lines.Items[0].Version != 2 {
		t.Fatalf("statements %+v", lines.Items)
	}

	t.Run("day", func(t *testing.T) {
		tb := consoletest.NewTab(t, chrome, "day")
		tb.SignInAtConsole(base, toks[Analyst], "2026-11-01")
		want := consoletest.StatementRowsOf(lines.Items)
		if rows := consoletest.StatementRows(tb); !slices.Equal(rows, want) {
			t.Errorf("statement table %v, the API answers %v", rows, want)
		}
		if slices.ContainsFunc(want, func(c consoletest.StatementRow) bool { return c.Delta == "0.00" }) {
			t.Errorf("the fixture should move every line between versions: %v", want)
		}

		// A line: its chart, one point per settlement interval with the
		// API's strings, reached by a click and then loaded directly.
		line := lines.Items[0].StatementID
		linePath := "/console/day/2026-11-01/line/" + url.PathEscape(line)
		tb.Do("open a line", chromedp.Click(chromedp.CSS(`tr[data-statement-id="`+line+`"] a`)),
			chromedp.WaitVisible(chromedp.CSS(`svg[data-kind=interval-chart] [data-interval]`)))
		if p := consoletest.Eval[string](tb, "path", `location.pathname`); p != linePath {
			t.Errorf("the line's address is %s", p)
		}
		var ivs Page[StatementInterval]
		ok(t, s.do(req{method: "GET", path: "/api/v1/statements/" + url.PathEscape(line) + "/intervals?limit=1000", token: toks[Analyst]}), http.StatusOK, &ivs)
		wantPoints := make([][4]string, len(ivs.Items))
		estimated := 0
		for i, x := range ivs.Items {
			p := ""
			if x.Price != nil {
				p = *x.Price
			}
			wantPoints[i] = [4]string{x.SettlementInterval.Format(time.RFC3339), x.EnergyMWh, p, x.EstimatedEnergyMWh}
			if x.GridsettleEstimatedReads > 0 {
				estimated++
			}
		}
		points := func() [][4]string {
			return consoletest.Eval[[][4]string](tb, "chart points", `[...document.querySelectorAll('svg[data-kind=interval-chart] [data-interval]')].map(g =>
				[g.dataset.interval, g.dataset.energyMwh, g.dataset.price, g.dataset.estimatedMwh])`)
		}
		got := points()
		if len(got) != 100 || !slices.Equal(got, wantPoints) {
			t.Fatalf("chart: %d points, the API %d intervals; first %v, want %v", len(got), len(wantPoints), got[:min(2, len(got))], wantPoints[:min(2, len(wantPoints))])
		}
		// The estimated share is marked where, and only where, the API
		// says gridsettle estimated.
		if marks := consoletest.Eval[int](tb, "estimate marks", `document.querySelectorAll('svg[data-kind=interval-chart] rect.bar.est').length`); estimated == 0 || marks != estimated {
			t.Errorf("chart: %d estimate marks, the API has %d intervals with estimates (want some)", marks, estimated)
		}
		var negative, spikes, unpriced int
		for _, p := range got {
			switch {
			case p[2] == "":
				unpriced++
			case strings.HasPrefix(p[2], "-"):
				negative++
			case p[2] == "2500.000000":
				spikes++
			}
		}
		if negative == 0 || spikes != 1 || unpriced != 1 {
			t.Errorf("chart: %d negative prices, %d spikes, %d unpriced; want some, 1, 1", negative, spikes, unpriced)
		}
		tb.Do("load the line's address directly", chromedp.Navigate(base+linePath),
			chromedp.WaitVisible(chromedp.CSS(`svg[data-kind=interval-chart] [data-interval]`)))
		if got := points(); !slices.Equal(got, wantPoints) {
			t.Errorf("deep link: %d points differ from the API's", len(got))
		}

		// Inputs: a meter's reads as the API gives them, every version
		// (the fixture corrected each read twice), and the estimates the
		// final run made for M1's gap, flagged.
		tb.Do("a meter's reads", chromedp.Navigate(base+"/console/inputs?meter_id=M1&from=2026-11-01T05:00:00Z"),
			chromedp.WaitVisible(chromedp.CSS(`table[data-kind=reads] td[data-field=value]`)))
		var reads Page[ReadVersion]
		ok(t, s.do(req{method: "GET", path: "/api/v1/meters/M1/reads?from=2026-11-01T05:00:00Z&versions=all&limit=1000", token: toks[Analyst]}), http.StatusOK, &reads)
		type readRow struct{ Start, Value, Version, Superseded string }
		shown := consoletest.Eval[[]readRow](tb, "read rows", `[...document.querySelectorAll('table[data-kind=reads] tbody tr:not([data-estimate])')].map(tr => ({
			Start: tr.querySelector('td[data-field=start]').textContent,
			Value: tr.querySelector('td[data-field=value]').textContent,
			Version: tr.querySelector('td[data-field=version]').textContent,
			Superseded: tr.dataset.superseded || ''}))`)
		var wantReads []readRow
		superseded := 0
		for _, r := range reads.Items {
			row := readRow{r.Start.Format(time.RFC3339), r.Value, strconv.FormatInt(r.Version, 10), ""}
			if b := r.SupersededBy; b != nil {
				row.Superseded = fmt.Sprintf("%s/%d@%d", b.Topic, b.Partition, b.Offset)
				superseded++
			}
			wantReads = append(wantReads, row)
		}
		slices.SortStableFunc(wantReads, func(a, b readRow) int {
			return cmp.Or(strings.Compare(a.Start, b.Start), cmp.Compare(len(a.Version), len(b.Version)), strings.Compare(a.Version, b.Version))
		})
		if superseded == 0 || !slices.Equal(shown, wantReads) {
			t.Errorf("inputs page: %d read versions, the API %d (%d superseded); first %v, want %v",
				len(shown), len(wantReads), superseded, shown[:min(3, len(shown))], wantReads[:min(3, len(wantReads))])
		}
		var runs Page[settlementpg.Run]
		ok(t, s.do(req{method: "GET", path: "/api/v1/runs?operating_day=2026-11-01", token: toks[Analyst]}), http.StatusOK, &runs)
		var final settlementpg.Run
		for _, r := range runs.Items {
			if r.Status == "completed" && r.Version > final.Version {
				final = r
			}
		}
		var ests Page[Estimate]
		ok(t, s.do(req{method: "GET", path: "/api/v1/runs/" + final.RunID + "/estimates?meter_id=M1", token: toks[Analyst]}), http.StatusOK, &ests)
		type estRow struct{ Start, Value, Method, Run string }
		var wantEsts []estRow
		for _, e := range ests.Items {
			wantEsts = append(wantEsts, estRow{e.IntervalStart.Format(time.RFC3339), e.ValueKWh, e.Method, final.RunID})
		}
		gotEsts := consoletest.Eval[[]estRow](tb, "estimate rows", `[...document.querySelectorAll('table[data-kind=reads] tr[data-estimate]')].map(tr => ({
			Start: tr.querySelector('td[data-field=start]').textContent,
			Value: tr.querySelector('td[data-field=value]').textContent,
			Method: tr.dataset.estimate, Run: tr.dataset.run}))`)
		if final.Version != 2 || len(wantEsts) != 3 || !slices.Equal(gotEsts, wantEsts) {
			t.Errorf("inputs page: estimates %v, the final run (%s) made %v (want M1's gap of 3)", gotEsts, final.RunID, wantEsts)
		}

		// Read-only roles are offered no replay; the status page loads.
		tb.Do("quarantine as an analyst", chromedp.Navigate(base+"/console/quarantine"),
			chromedp.WaitVisible(chromedp.CSS(`table[data-kind=quarantine]`)))
		if n := consoletest.Eval[int](tb, "replay buttons", `document.querySelectorAll('button[data-action=replay]').length`); n != 0 {
			t.Errorf("an analyst is offered %d replay buttons", n)
		}
		tb.Do("status", chromedp.Navigate(base+"/console/status"), chromedp.WaitVisible(chromedp.CSS(`table[data-kind=inputs]`)))
		tb.NoErrors()
	})

	t.Run("restatement", func(t *testing.T) {
		tb := consoletest.NewTab(t, chrome, "restatement")
		line := restated
		explainPath := "/console/day/2026-11-01/line/" + url.PathEscape(line) + "/explain"
		tb.SignIn(xsrv.URL, "/console/day/2026-11-01", xtoks[Analyst], "analyst")
		// Reached from the Day table's link of a restated line.
		tb.Do("the day's link to a restatement",
			chromedp.Click(chromedp.CSS(`tr[data-statement-id="`+line+`"] a[data-kind=explain-link]`)),
			chromedp.WaitVisible(chromedp.CSS(`table[data-kind=changes] tr[data-change]`)))
		if p := consoletest.Eval[string](tb, "path", `location.pathname`); p != explainPath {
			t.Errorf("the restatement's address is %s, want %s", p, explainPath)
		}

		// Loaded directly, 40 changes a page.
		const limit = 40
		page := func(cursor string) explainStrings {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			var e explainStrings
			ok(t, xs.do(req{method: "GET", path: "/api/v1/statements/" + url.PathEscape(line) + "/explain?" + q.Encode(), token: xtoks[Analyst]}), http.StatusOK, &e)
			return e
		}
		first := page("")
		if first.NextCursor == "" || first.Summary["read"].Changes+first.Summary["price"].Changes <= limit || !strings.HasSuffix(first.Against, "/1") {
			t.Fatalf("the fixture's explanation should take more than one page of %d against version 1: %+v", limit, first.Summary)
		}
		second := page(first.NextCursor)
		tb.Do("load the restatement directly", chromedp.Navigate(xsrv.URL+explainPath+"?limit="+strconv.Itoa(limit)),
			chromedp.WaitVisible(chromedp.CSS(`table[data-kind=changes] tr[data-change]`)))
		effects := func() [][2]string {
			return consoletest.Eval[[][2]string](tb, "change effects", `[...document.querySelectorAll('table[data-kind=changes] tr[data-change]')].map(tr =>
				[tr.querySelector('td[data-field=energy_mwh_effect]').textContent, tr.querySelector('td[data-field=amount_effect]').textContent])`)
		}
		want := func(pages ...explainStrings) [][2]string {
			var out [][2]string
			for _, p := range pages {
				for _, c := range p.Changes {
					out = append(out, [2]string{c.EnergyMWhEffect, c.AmountEffect})
				}
			}
			return out
		}
		if got := effects(); len(got) != limit || !slices.Equal(got, want(first)) {
			t.Errorf("changes table: %d rows %v, the API's first page %v", len(got), got[:min(2, len(got))], want(first)[:2])
		}
		summary := consoletest.Eval[map[string]string](tb, "summary", `(() => {
			const total = document.querySelector('table[data-kind=explain-summary] tr[data-kind=total]');
			const delta = (row) => document.querySelector('table[data-kind=explain-delta] tr[data-row=' + row + '] td[data-field=amount]').textContent;
			return {amount: total.querySelector('td[data-field=amount_effect]').textContent,
				energy: total.querySelector('td[data-field=energy_mwh_effect]').textContent,
				delta: delta('rounded'), rounding: delta('rounding'),
				against: document.querySelector('form[data-kind=pick-against] select[name=against]').value};
		})()`)
		if summary["amount"] != first.ExactDeltaAmount || summary["energy"] != first.ExactDeltaEnergyMWh ||
			summary["delta"] != first.DeltaAmount || summary["rounding"] != first.Rounding || summary["against"] != "1" {
			t.Errorf("summary %v; the API: exact delta %s (%s MWh), delta %s, rounding %s, against %s",
				summary, first.ExactDeltaAmount, first.ExactDeltaEnergyMWh, first.DeltaAmount, first.Rounding, first.Against)
		}
		tb.Do("the next page of changes", chromedp.Click(chromedp.CSS(`button[data-action=more-changes]`)),
			chromedp.WaitVisible(chromedp.CSS(`table[data-kind=changes] tbody tr:nth-child(`+strconv.Itoa(limit+1)+`)`)))
		if got := effects(); !slices.Equal(got, want(first, second)) {
			t.Errorf("after More: %d rows, the API's first two pages %d", len(got), len(want(first, second)))
		}
		tb.NoErrors()
	})

	t.Run("phone", func(t *testing.T) {
		tb := consoletest.NewTab(t, chrome, "phone")
		tb.Do("a 390-pixel-wide screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		tb.SignIn(base, "/console/day/2026-11-01", toks[Analyst], "analyst")
		tb.Do("the statement table", chromedp.WaitVisible(chromedp.CSS(`table[data-kind=statements] tr[data-statement-id] td[data-field=amount]`)))
		fits := consoletest.Eval[map[string]float64](tb, "layout", `(() => {
			const r = document.querySelector('table[data-kind=statements]').getBoundingClientRect();
			return {left: r.left, width: r.width, inner: window.innerWidth, page: document.documentElement.scrollWidth};
		})()`)
		if fits["inner"] != 390 || fits["left"] < 0 || fits["left"] > 40 || fits["width"] <= 0 || fits["page"] > fits["inner"] {
			t.Errorf("on a 390-pixel screen: %v (the page must not scroll sideways; the table scrolls in its box)", fits)
		}
		tb.NoErrors()
	})

	t.Run("regulator", func(t *testing.T) {
		tb := consoletest.NewTab(t, chrome, "regulator")
		tb.SignIn(base, "/console/", toks[Regulator], "regulator")
		tb.Do("exports", chromedp.WaitVisible(chromedp.CSS(`section[data-export-id] button[data-action=verify]`)))
		if p := consoletest.Eval[string](tb, "path", `location.pathname`); p != "/console/exports" {
			t.Errorf("a regulator lands on %s, want /console/exports", p)
		}
		if pages := consoletest.Eval[[]string](tb, "pages offered", `[...document.querySelectorAll('nav a[data-page]')].filter(a => a.offsetParent !== null).map(a => a.dataset.page)`); !slices.Equal(pages, []string{"exports"}) {
			t.Errorf("a regulator is offered %v, want only exports", pages)
		}
		tb.Do("verify", chromedp.Click(chromedp.CSS(`button[data-action=verify]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-kind=verify-result][data-ok=true]`)))
		// A file, downloaded with the token in its header: the API's bytes.
		dir := t.TempDir()
		wait, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
		defer cancel()
		progress := chromedp.Events(wait, browser.DownloadProgress)
		tb.Do("download manifest.json",
			func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
				_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
					Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)})
				return chromedp.Void{}, err
			},
			chromedp.Click(chromedp.CSS(`section[data-export-id] button[data-file="manifest.json"]`)))
		for ev, err := range progress {
			if err != nil {
				tb.Fail("the download", err)
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				got, err := os.ReadFile(filepath.Join(dir, ev.GUID))
				want := s.do(req{method: "GET", path: "/api/v1/exports/export-2026-11-01-final-v2/files/manifest.json", token: toks[Regulator]}).Body.String()
				if err != nil || string(got) != want || len(want) == 0 {
					t.Errorf("downloaded manifest.json: %d bytes (%v), the API's %d", len(got), err, len(want))
				}
				break
			}
			if ev.State == browser.DownloadProgressStateCanceled {
				tb.Fail("the download", errors.New("canceled"))
			}
		}

		tb.Do("a restatement's address", chromedp.Navigate(base+"/console/day/2026-11-01/line/"+url.PathEscape(lines.Items[0].StatementID)+"/explain"),
			chromedp.WaitVisible(chromedp.CSS(`section[data-export-id]`)))
		if p := consoletest.Eval[string](tb, "path", `location.pathname`); p != "/console/exports" {
			t.Errorf("a regulator at a restatement's address is at %s, want /console/exports", p)
		}
		if n := consoletest.Eval[int](tb, "changes tables", `document.querySelectorAll('table[data-kind=changes]').length`); n != 0 {
			t.Error("a regulator sees a restatement")
		}

		tb.Do("a day's address", chromedp.Navigate(base+"/console/day/2026-11-01"),
			chromedp.WaitVisible(chromedp.CSS(`section[data-export-id]`)))
		if p := consoletest.Eval[string](tb, "path", `location.pathname`); p != "/console/exports" {
			t.Errorf("a regulator at a day's address is at %s, want /console/exports", p)
		}
		if n := consoletest.Eval[int](tb, "statement tables", `document.querySelectorAll('table[data-kind=statements]').length`); n != 0 {
			t.Error("a regulator sees statement lines")
		}
		tb.NoErrors()
	})

	t.Run("completeness", func(t *testing.T) {
		tb := consoletest.NewTab(t, chrome, "completeness")
		tb.SignIn(xsrv.URL, "/console/exports", xtoks[Regulator], "regulator")
		tb.Do("exports", chromedp.WaitVisible(chromedp.CSS(`section[data-export-id] table[data-kind=completeness]`)))
		// Each export's completeness, as its manifest says.
		var x ExportAnswer
		ok(t, xs.do(req{method: "GET", path: "/api/v1/exports/export-2026-11-01-final-v2", token: xtoks[Regulator]}), http.StatusOK, &x)
		type inputRow struct{ Input, Records, Applied string }
		var wantInputs []inputRow
		if x.Manifest.Completeness != nil {
			for _, in := range x.Manifest.Completeness.Inputs {
				wantInputs = append(wantInputs, inputRow{fmt.Sprintf("%s/%d", in.Topic, in.Partition), strconv.FormatInt(in.Records, 10), strconv.FormatInt(in.Applied, 10)})
			}
		}
		gotInputs := consoletest.Eval[[]inputRow](tb, "completeness", `[...document.querySelectorAll('section[data-export-id="export-2026-11-01-final-v2"] table[data-kind=completeness] tr[data-input]')].map(tr => ({
			Input: tr.dataset.input, Records: tr.querySelector('td[data-field=records]').textContent,
			Applied: tr.querySelector('td[data-field=applied]').textContent}))`)
		if len(wantInputs) == 0 || !slices.Equal(gotInputs, wantInputs) {
			t.Errorf("completeness shown %v, the manifest's %v", gotInputs, wantInputs)
		}

		tb.NoErrors()
	})

	t.Run("operator replays", func(t *testing.T) {
		tb := consoletest.NewTab(t, chrome, "operator")
		tb.SignIn(base, "/console/quarantine", toks[Operator], "operator")
		tb.Do("replay unknown_meter",
			chromedp.WaitVisible(chromedp.CSS(`button[data-action=replay][data-reason=unknown_meter]`)),
			chromedp.Click(chromedp.CSS(`button[data-action=replay][data-reason=unknown_meter]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-kind=replay-result][data-replayed]`)))
		shown := consoletest.Eval[[]string](tb, "quarantined values", `[...document.querySelectorAll('table[data-kind=quarantine] td[data-field=value]')].map(td => td.textContent)`)
		if !slices.Contains(shown, hostile) || consoletest.Eval[bool](tb, "pwned", `'pwned' in window`) {
			t.Errorf("a quarantined record of markup: shown as %q, or it ran", shown)
		}
		if n := consoletest.Eval[string](tb, "replayed", `document.querySelector('[data-kind=replay-result]').dataset.replayed`); n != "1" {
			t.Errorf("replayed %s items, want 1", n)
		}
		var items Page[QuarantineItem]
		ok(t, s.do(req{method: "GET", path: "/api/v1/quarantine?reason=unknown_meter", token: toks[Analyst]}), http.StatusOK, &items)
		if len(items.Items) != 1 || items.Items[0].ReplayedAt == nil {
			t.Errorf("after the console's replay the API has %+v", items.Items)
		}
		tb.NoErrors()
	})

	t.Run("csp", func(t *testing.T) {
		res, err := http.Get(base + "/console/day/2026-11-01")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != http.StatusOK || csp != console.CSP || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Fatalf("page without a token: %d, CSP %q", res.StatusCode, csp)
		}
		if res, err := http.Get(base + "/console"); err != nil || res.Request.URL.Path != "/console/" {
			t.Errorf("/console: %v, %v", res, err)
		} else {
			res.Body.Close()
		}
		tb := consoletest.NewTab(t, chrome, "csp")
		tb.Do("the page", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`form#sign-in`)))
		// The page's own script waits for the browser's report of the
		// refusal, so the verdict is the CSP's, not an accident of timing.
		type verdict struct {
			Ran       bool   `json:"ran"`
			Directive string `json:"directive"`
		}
		v := consoletest.Eval[verdict](tb, "an injected inline script", `new Promise(resolve => {
			document.addEventListener('securitypolicyviolation',
				e => resolve({ran: window.injected, directive: e.effectiveDirective}), {once: true});
			window.injected = false;
			const s = document.createElement('script');
			s.textContent = 'window.injected = true';
			document.body.append(s);
		})`, chromedp.EvalAwaitPromise)
		if v.Ran || !strings.HasPrefix(v.Directive, "script-src") {
			t.Errorf("an injected inline script: %+v, want refused by script-src", v)
		}
	})
	t.Logf("browser tests took %v", time.Since(started).Round(time.Millisecond))
}

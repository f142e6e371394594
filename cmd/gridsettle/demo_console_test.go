package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/api/console/consoletest"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
)

// demoSpikeThreshold is the price at or above which the demo's prices are a
// spike: --price-spike-threshold's default, which the demo streams a spike
// above.
var demoSpikeThreshold = decimal.NewFromInt(1000)

// TestDemoConsole drives the console in a headless Chromium on the data the
// demo really produces: `demo` (serving, without --exit) is started as a
// user starts it, and the console is signed in with the analyst token its
// summary prints. The Day table, a line's chart (100 points on the fall-back
// day, the hub's spike and another point's negative prices), the Restatement
// page of the restatement the summary explains, the Quarantine reasons and
// the Exports with their completeness must show the API's figures, with no
// console errors; then Ctrl-C (SIGINT) stops the demo cleanly.
var updateScreenshot = flag.Bool("update-screenshot", false,
	"rewrite api/console/testdata/day.png (the READMEs' picture) with the Day page and chart of the demo's largest restatement, as TestDemoConsole sees it")

func TestDemoConsole(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, dbURL := pgtest.New(t)
	kafkaAddr := freeAddr(t)
	d := startDemo(t, bin, "--data-dir", t.TempDir(), "--database-url", dbURL, "--kafka-addr", kafkaAddr,
		"--http-addr", freeAddr(t), "--meters", "100")
	out := d.summary
	match := func(what, re string) []string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("the demo's summary has no %s (%s):\n%s", what, re, out)
		}
		return m
	}
	base := "http://" + match("API address", `(?m)^API: http://(\S+)/api/v1 `)[1]
	token := match("analyst token", `(?m)^  analyst token \(stored; [^)]*\): (gs_\S+)$`)[1]
	if want := "Bearer " + token; !strings.Contains(out, want) {
		t.Errorf("the summary never shows %q", want)
	}
	if c := match("console address", `(?m)^Console: (\S+) `)[1]; c != base+"/console/day/2026-11-01" {
		t.Errorf("console address %s, want the demo day's under %s", c, base)
	}
	explained := match("explained restatement", `all changes: gridsettle explain (\S+)\):`)[1]
	exactDelta := match("exact delta", `(?m)^exact delta amount +(\S+)$`)[1]
	apiGet := func(path string, v any) {
		t.Helper()
		demoAPI(t, base, token, path, v)
	}

	chrome := consoletest.NewBrowser(t)
	started := time.Now()
	tb := consoletest.NewTab(t, chrome, "demo")

	// Day: the statement table is the API's lines, string for string.
	var lines api.Page[settlement.StatementMessage]
	apiGet("/statements?operating_day=2026-11-01", &lines)
	if len(lines.Items) == 0 || lines.NextCursor != "" {
		t.Fatalf("the API's statements of the demo day: %d lines, next cursor %q", len(lines.Items), lines.NextCursor)
	}
	tb.SignInAtConsole(base, token, "2026-11-01")
	if got, want := consoletest.StatementRows(tb), consoletest.StatementRowsOf(lines.Items); !slices.Equal(got, want) {
		t.Errorf("statement table %v, the API answers %v", got, want)
	}

	// Charts: the explained line's (reached by a click, a hub line with the
	// spike) and the first line with negative prices (loaded directly).
	// Each has one point per settlement interval with the API's strings.
	var negative, spikes int
	chart := func(id string, click bool) {
		t.Helper()
		var ivs api.Page[api.StatementInterval]
		apiGet("/statements/"+url.PathEscape(id)+"/intervals?limit=1000", &ivs)
		want := make([][3]string, len(ivs.Items))
		for i, x := range ivs.Items {
			want[i] = [3]string{x.SettlementInterval.Format(time.RFC3339), x.EnergyMWh, ""}
			if x.Price != nil {
				want[i][2] = *x.Price
			}
		}
		path := "/console/day/2026-11-01/line/" + url.PathEscape(id)
		load := chromedp.Navigate(base + path)
		if click {
			load = chromedp.Click(chromedp.CSS(`tr[data-statement-id="` + id + `"] a`))
		}
		tb.Do("the chart of "+id, load, chromedp.WaitVisible(chromedp.CSS(`svg[data-kind=interval-chart] [data-interval]`)))
		if p := consoletest.Eval[string](tb, "path", `location.pathname`); p != path {
			t.Errorf("the line's address is %s, want %s", p, path)
		}
		got := consoletest.Eval[[][3]string](tb, "chart points", `[...document.querySelectorAll('svg[data-kind=interval-chart] [data-interval]')].map(g =>
			[g.dataset.interval, g.dataset.energyMwh, g.dataset.price])`)
		if len(got) != 100 || !slices.Equal(got, want) {
			t.Fatalf("chart of %s: %d points, the API %d intervals (want 100); first %v, want %v",
				id, len(got), len(want), got[:min(2, len(got))], want[:min(2, len(want))])
		}
		if click && *updateScreenshot {
			png, err := os.ReadFile(tb.Screenshot("day"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "..", "api", "console", "testdata", "day.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range got {
			if p[2] == "" {
				continue
			}
			price, err := decimal.NewFromString(p[2])
			if err != nil {
				t.Fatalf("chart of %s: price %q: %v", id, p[2], err)
			}
			if price.IsNegative() {
				negative++
			}
			if price.GreaterThanOrEqual(demoSpikeThreshold) {
				spikes++
			}
		}
	}
	chart(explained, true)
	withNegative := ""
	for _, l := range lines.Items {
		var ivs api.Page[api.StatementInterval]
		apiGet("/statements/"+url.PathEscape(l.StatementID)+"/intervals?limit=1000", &ivs)
		if slices.ContainsFunc(ivs.Items, func(x api.StatementInterval) bool { return x.Price != nil && strings.HasPrefix(*x.Price, "-") }) {
			withNegative = l.StatementID
			break
		}
	}
	if withNegative == "" {
		t.Fatal("no line of the demo day has a negative price, which the demo promises")
	}
	chart(withNegative, false)
	if negative == 0 || spikes == 0 {
		t.Errorf("the charts show %d negative prices and %d spikes (≥ %s); the demo streams both", negative, spikes, demoSpikeThreshold)
	}
	tb.Screenshot("demo-day-line")

	// Restatement: the line the summary explains, as the API explains it.
	var x struct {
		ExactDeltaAmount string `json:"exact_delta_amount"`
		Changes          []struct {
			EnergyMWhEffect string `json:"energy_mwh_effect"`
			AmountEffect    string `json:"amount_effect"`
		} `json:"changes"`
	}
	apiGet("/statements/"+url.PathEscape(explained)+"/explain", &x)
	if len(x.Changes) == 0 || x.ExactDeltaAmount != exactDelta {
		t.Fatalf("the API explains %s with %d changes and exact delta %s; the summary printed %s", explained, len(x.Changes), x.ExactDeltaAmount, exactDelta)
	}
	tb.Do("the restatement page", chromedp.Navigate(base+"/console/day/2026-11-01/line/"+url.PathEscape(explained)+"/explain"),
		chromedp.WaitVisible(chromedp.CSS(`table[data-kind=changes] tr[data-change]`)))
	effects := consoletest.Eval[[][2]string](tb, "change effects", `[...document.querySelectorAll('table[data-kind=changes] tr[data-change]')].map(tr =>
		[tr.querySelector('td[data-field=energy_mwh_effect]').textContent, tr.querySelector('td[data-field=amount_effect]').textContent])`)
	var wantEffects [][2]string
	for _, c := range x.Changes {
		wantEffects = append(wantEffects, [2]string{c.EnergyMWhEffect, c.AmountEffect})
	}
	if !slices.Equal(effects, wantEffects) {
		t.Errorf("changes table: %d rows %v, the API's first page %d %v", len(effects), effects[:min(2, len(effects))], len(wantEffects), wantEffects[:min(2, len(wantEffects))])
	}
	if total := consoletest.Eval[string](tb, "summary total", `document.querySelector('table[data-kind=explain-summary] tr[data-kind=total] td[data-field=amount_effect]').textContent`); total != x.ExactDeltaAmount {
		t.Errorf("the summary's total %s, the API's exact delta %s", total, x.ExactDeltaAmount)
	}

	// Quarantine: the demo's bad records by reason, counted as the API and
	// the summary count them.
	var items api.Page[api.QuarantineItem]
	apiGet("/quarantine?limit=1000", &items)
	wantReasons := map[string]string{}
	for _, q := range items.Items {
		n, _ := strconv.Atoi(wantReasons[string(q.Reason)])
		wantReasons[string(q.Reason)] = strconv.Itoa(n + 1)
	}
	printed := map[string]string{}
	for _, m := range regexp.MustCompile(`([a-z_]+) (\d+)(?:,|\n)`).FindAllStringSubmatch(match("quarantine summary", `(?m)^Quarantine: \d+ bad records[^\n]*\n((?:  [^\n]*\n)+)`)[1], -1) {
		printed[m[1]] = m[2]
	}
	if len(items.Items) == 0 || items.NextCursor != "" || !maps.Equal(printed, wantReasons) {
		t.Errorf("quarantine: the API has %d items %v, the summary printed %v", len(items.Items), wantReasons, printed)
	}
	tb.Do("the quarantine page", chromedp.Navigate(base+"/console/quarantine"),
		chromedp.WaitVisible(chromedp.CSS(`table[data-kind=reasons] td[data-field=count]`)))
	shown := consoletest.Eval[map[string]string](tb, "reasons", `Object.fromEntries([...document.querySelectorAll('table[data-kind=reasons] tbody tr')].map(tr =>
		[tr.querySelector('td[data-field=reason]').textContent, tr.querySelector('td[data-field=count]').textContent]))`)
	if !maps.Equal(shown, wantReasons) {
		t.Errorf("quarantine page: reasons %v, the API's %v", shown, wantReasons)
	}
	if n := consoletest.Eval[int](tb, "items", `document.querySelectorAll('table[data-kind=quarantine] tbody tr').length`); n != len(items.Items) {
		t.Errorf("quarantine page: %d items, the API %d", n, len(items.Items))
	}

	// Exports: the demo's two, each with its manifest's completeness.
	var exports api.Page[api.ExportAnswer]
	apiGet("/exports?operating_day=2026-11-01", &exports)
	type inputRow struct{ Export, Input, Records, Applied string }
	var wantInputs []inputRow
	var ids []string
	for _, e := range exports.Items {
		ids = append(ids, e.ExportID)
		if e.Manifest.Completeness == nil {
			t.Errorf("export %s has no completeness", e.ExportID)
			continue
		}
		for _, in := range e.Manifest.Completeness.Inputs {
			wantInputs = append(wantInputs, inputRow{e.ExportID, fmt.Sprintf("%s/%d", in.Topic, in.Partition),
				strconv.FormatInt(in.Records, 10), strconv.FormatInt(in.Applied, 10)})
		}
	}
	if want := []string{"export-2026-11-01-initial-v1", "export-2026-11-01-final-v2"}; !slices.Equal(ids, want) {
		t.Errorf("the API's exports %v, want the demo's %v", ids, want)
	}
	tb.Do("the exports page", chromedp.Navigate(base+"/console/exports"),
		chromedp.WaitVisible(chromedp.CSS(`section[data-export-id] table[data-kind=completeness] tr[data-input]`)))
	if got := consoletest.Eval[[]string](tb, "exports shown", `[...document.querySelectorAll('section[data-export-id]')].map(s => s.dataset.exportId)`); !slices.Equal(got, ids) {
		t.Errorf("exports page: %v, the API's %v", got, ids)
	}
	gotInputs := consoletest.Eval[[]inputRow](tb, "completeness", `[...document.querySelectorAll('section[data-export-id] table[data-kind=completeness] tr[data-input]')].map(tr => ({
		Export: tr.closest('section').dataset.exportId, Input: tr.dataset.input,
		Records: tr.querySelector('td[data-field=records]').textContent, Applied: tr.querySelector('td[data-field=applied]').textContent}))`)
	if len(wantInputs) == 0 || !slices.Equal(gotInputs, wantInputs) {
		t.Errorf("completeness shown %v, the manifests' %v", gotInputs, wantInputs)
	}
	tb.NoErrors()
	t.Logf("browser checks took %v", time.Since(started).Round(time.Millisecond))

	d.interrupt(t)
	// The broker child stopped with it: its port is free again.
	ln, err := net.Listen("tcp", kafkaAddr)
	if err != nil {
		t.Fatalf("the demo's broker child still holds %s after SIGINT: %v", kafkaAddr, err)
	}
	ln.Close()
}

// runningDemo is a `demo` process serving after its summary.
type runningDemo struct {
	cmd     *exec.Cmd
	summary string // stdout through the `demo ok:` line
	stderr  *syncBuffer
	exited  chan struct{} // closed when the process has exited, with err
	err     error
}

// startDemo starts `bin demo args…` without --exit and returns once its
// summary's last line (`demo ok:`) is out; the test kills it if it is
// still running at the end.
func startDemo(t *testing.T, bin string, args ...string) *runningDemo {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"demo"}, args...)...)
	d := &runningDemo{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	summary := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "demo ok:") {
				summary <- b.String()
				b.Reset()
			}
		}
		// Kept for a demo that exits before its summary.
		summary <- b.String()
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = cmd.Process.Kill()
			<-d.exited
		}
	})
	select {
	case d.summary = <-summary:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no `demo ok:` within 2 minutes; stderr:\n%s", d.stderr)
	}
	if !strings.Contains(d.summary, "demo ok:") || !strings.HasSuffix(d.summary, "serving until Ctrl-C\n") {
		t.Fatalf("demo: no summary ending in `demo ok: … serving until Ctrl-C`:\n%s\nstderr:\n%s", d.summary, d.stderr)
	}
	return d
}

// interrupt stops the demo as Ctrl-C does; it must exit 0, having logged
// no error.
func (d *runningDemo) interrupt(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	select {
	case <-d.exited:
		if d.err != nil {
			t.Errorf("demo after SIGINT: %v\nstderr:\n%s", d.err, d.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("demo still running 30 s after SIGINT; stderr:\n%s", d.stderr)
	}
	if s := d.stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "level=ERROR") {
		t.Errorf("demo logged errors:\n%s", s)
	}
}

// demoAPI GETs base/api/v1+path with token and decodes the JSON answer
// into v; anything but 200 fails the test.
func demoAPI(t *testing.T, base, token, path string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

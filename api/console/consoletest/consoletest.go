// Package consoletest drives the analyst console (package console) in a real
// headless Chromium for tests: the browser, a tab that records what its
// console said, steps and evaluations that keep a screenshot of the page
// when they fail, and sign-in with a token. It is shared by the API's
// browser tests (fixtures) and the demo's (the data the demo produces), so
// both drive the console the same way. Only tests import it.
package consoletest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gridsettle/gridsettle/settlement"
)

// stepTimeout bounds one step or evaluation, so a page that never shows
// what a test waits for fails with a screenshot instead of hanging.
const stepTimeout = 20 * time.Second

// Chromium is the browser the console's tests drive: Debian's chromium
// package (.ci/run installs it). The tests never skip without it.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: the console's browser tests need a headless Chromium; " +
		"install Debian's package with `apt-get install -y chromium` (.ci/run does)")
	return ""
}

// NewBrowser starts a headless Chromium with a fresh profile for the test;
// it ends with the test.
func NewBrowser(t *testing.T) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()),
		chromedp.ExecPath(Chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	t.Cleanup(cancelAlloc)
	chrome, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(chrome); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return chrome
}

// Tab is one browser tab (its own sessionStorage) with what its console
// said.
type Tab struct {
	t    *testing.T
	ctx  context.Context
	name string
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// NewTab opens a tab in chrome (NewBrowser's) for t; name labels its
// failures and screenshots.
func NewTab(t *testing.T, chrome context.Context, name string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(chrome)
	t.Cleanup(cancel)
	tb := &Tab{t: t, ctx: ctx, name: name}
	msgs := chromedp.Console(ctx) // opens the tab and subscribes now
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.msgs = append(tb.msgs, m)
			tb.mu.Unlock()
		}
	}()
	return tb
}

// Context is the tab's chromedp context, for steps the helpers do not
// cover (events, downloads).
func (tb *Tab) Context() context.Context { return tb.ctx }

// Do runs the steps within 20 seconds; on failure it keeps a screenshot in
// the test's artifact directory and fails the test.
func (tb *Tab) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fail(what, err)
	}
}

// Eval evaluates a JavaScript expression in the tab into T's type; on
// failure it keeps a screenshot and fails the test.
func Eval[T any](tb *Tab, what, js string, opts ...chromedp.EvaluateOption) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		tb.Fail(what, err)
	}
	return v
}

// Fail keeps a screenshot of the page and fails the test with what the
// tab's console said.
func (tb *Tab) Fail(what string, err error) {
	tb.t.Helper()
	shot := tb.Screenshot("failure-" + tb.name)
	tb.t.Fatalf("%s: %s: %v (screenshot %s; console %v)", tb.name, what, err, shot, tb.Console())
}

// Screenshot saves the whole page as PNG in the test's artifact directory
// and returns its path (or why it was not taken).
func (tb *Tab) Screenshot(name string) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "not taken: " + err.Error()
	}
	path := filepath.Join(tb.t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "not written: " + err.Error()
	}
	return path
}

// Console is what the tab's console said so far, one message a line.
func (tb *Tab) Console() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]string, len(tb.msgs))
	for i, m := range tb.msgs {
		out[i] = m.String() + " (" + m.URL + ")"
	}
	return out
}

// NoErrors fails the test if the page logged an error or threw.
func (tb *Tab) NoErrors() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			tb.t.Errorf("%s: console: %s (%s)", tb.name, m, m.URL)
		}
	}
}

// SignIn opens base+path, signs in with token and waits until the console
// shows role; the token must then be in the tab's sessionStorage.
func (tb *Tab) SignIn(base, path, token, role string) {
	tb.t.Helper()
	tb.Do("sign in at "+path,
		chromedp.Navigate(base+path),
		chromedp.WaitVisible(chromedp.CSS(`form#sign-in input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`form#sign-in input[name=token]`), token),
		chromedp.Click(chromedp.CSS(`form#sign-in button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-role="`+role+`"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`form#sign-in`)),
	)
	if got := Eval[string](tb, "the stored token", `sessionStorage.getItem('gridsettle.token')`); got != token {
		tb.t.Errorf("%s: sessionStorage holds %q, want the token", tb.name, got)
	}
}

// StatementRow is a line of the Day page's statement table as shown: its
// statement id and the energy_mwh, amount and delta_amount cells, which
// must be the API's strings.
type StatementRow struct{ ID, Energy, Amount, Delta string }

// StatementRows reads the Day page's statement table, in its order.
func StatementRows(tb *Tab) []StatementRow {
	tb.t.Helper()
	return Eval[[]StatementRow](tb, "statement rows", `[...document.querySelectorAll('table[data-kind=statements] tr[data-statement-id]')].map(tr => ({
		ID: tr.dataset.statementId,
		Energy: tr.querySelector('td[data-field=energy_mwh]').textContent,
		Amount: tr.querySelector('td[data-field=amount]').textContent,
		Delta: tr.querySelector('td[data-field=delta_amount]').textContent}))`)
}

// StatementRowsOf is how the Day table must show the API's lines.
func StatementRowsOf(lines []settlement.StatementMessage) []StatementRow {
	rows := make([]StatementRow, len(lines))
	for i, l := range lines {
		rows[i] = StatementRow{ID: l.StatementID, Energy: l.EnergyMWh, Amount: l.Amount, Delta: l.DeltaAmount}
	}
	return rows
}

// SignInAtConsole signs an analyst in at /console/, which must land on the
// Day page of the latest operating day, day, and waits for its statement
// table.
func (tb *Tab) SignInAtConsole(base, token, day string) {
	tb.t.Helper()
	tb.SignIn(base, "/console/", token, "analyst")
	tb.Do("the latest day's statement table", chromedp.WaitVisible(chromedp.CSS(`table[data-kind=statements] tr[data-statement-id]`)))
	if p := Eval[string](tb, "path", `location.pathname`); p != "/console/day/"+day {
		tb.t.Errorf("%s: /console/ went to %s, want the latest day's page /console/day/%s", tb.name, p, day)
	}
}

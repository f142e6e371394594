// Package console is the analyst console (api/README.md "The analyst console")
// served by the api component at /console/: one page and its script and style,
// embedded in the binary (go:embed), so it works with no network, no CDN and no
// build step. The page holds no data and needs no token; the script signs
// in with an API token kept in the tab's sessionStorage, sends it only in
// the Authorization header, and takes every figure from /api/v1.
//
// Pages: Day (a day's runs and statement lines, and for a line its settled
// figures per settlement interval as an SVG chart, estimated shares
// marked), Restatement (/console/day/{day}/line/{statement_id}/explain
// ?against=: a line's explanation against an earlier version, its summary
// adding up to the exact delta and its changes page by page), Inputs (a
// meter's reads in every version and the latest runs' estimates of it, a
// point's prices), Quarantine (operators replay a reason), Exports (verify,
// download, public key, completeness) and Status.
//
// Invariants:
//   - Every answer of Handler carries a Content-Security-Policy that allows
//     scripts, styles and connections from this origin only and no inline
//     script, so markup injected into a page cannot run code; the script
//     puts text from the API into the page as text (textContent), never as
//     markup.
//   - Every figure shown is the API's decimal string as answered; floats
//     are used only to place chart marks and to order rows (sums are exact,
//     on BigInt).
//   - The console shows a role only what it may read and offers actions only
//     to roles that may take them; the API enforces both regardless.
//   - Every address under /console/ that is not an asset answers the page,
//     so deep links (/console/day/2026-11-01/line/...) load directly.
package console

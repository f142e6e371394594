package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// summary prints what the demo did: statements, alerts, quarantine,
// exports, the API with a token, and commands to try next.
func (d *demo) summary(ctx context.Context, s *story) error {
	w := d.out
	day := demoDay
	initial, err := d.svc.runs.Statements(ctx, settlementpg.StatementQuery{Day: &day, Version: s.initial.Version, Limit: 10000})
	if err != nil {
		return err
	}
	final, err := d.svc.runs.Statements(ctx, settlementpg.StatementQuery{Day: &day, Version: s.final.Version, Limit: 10000})
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	statementTable(w, s, initial, final)
	fmt.Fprintln(w)
	if err := d.estimateSummary(ctx, w, s, initial, final); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := d.explainLargest(ctx, w, final); err != nil {
		return err
	}

	alerts, err := d.alerts(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	alertSummary(w, alerts, s.alertsBefore)

	var items []readstore.QuarantineItem
	for after := s.quarantinedID; ; {
		page, err := readstore.QuarantineItems(ctx, d.p.DB, readstore.QuarantineFilter{AfterID: after}, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		items = append(items, page...)
		after = page[len(page)-1].ID
	}
	fmt.Fprintln(w)
	quarantineSummary(w, items)

	fmt.Fprintln(w)
	last := s.exports[len(s.exports)-1]
	fmt.Fprintf(w, "Exports (signed Parquet for the regulator), verified offline against the platform's key %s:\n", last.report.KeyID)
	for _, e := range s.exports {
		m := e.report.Manifest
		var rows []string
		for _, f := range m.Files {
			rows = append(rows, fmt.Sprintf("%s %d rows", strings.TrimSuffix(f.Name, ".parquet"), f.Rows))
		}
		fmt.Fprintf(w, "  %s  (%s)\n", e.dir, strings.Join(rows, ", "))
	}

	fmt.Fprintln(w)
	p := d.p.Config
	fmt.Fprintf(w, "API: http://%s/api/v1  (OpenAPI at /api/v1/openapi.json, metrics at /metrics)\n", p.HTTPAddr)
	fmt.Fprintf(w, "  analyst token (stored; revoke with DELETE /api/v1/tokens/%s): %s\n", s.token.ID, s.token.Token)
	if d.adminGenerated {
		fmt.Fprintf(w, "  admin token (valid while this demo runs; set --admin-token to choose one): %s\n", p.AdminToken)
	}
	fmt.Fprintf(w, "Console: http://%s/console/day/%s  (in a browser; sign in with the analyst token above)\n", p.HTTPAddr, day)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Try next:")
	fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' 'http://%s/api/v1/statements?operating_day=%s'\n",
		s.token.Token, p.HTTPAddr, day)
	fmt.Fprintf(w, "  kcat -b %s -C -t %s -X isolation.level=read_committed -e\n", p.KafkaAddr, d.p.Topics.Statements)
	fmt.Fprintf(w, "  go run ./cmd/gridsettle export verify %s --public-key %s\n", shellQuote(last.dir), shellQuote(s.publicKeyFile))
	fmt.Fprintln(w)
	return nil
}

// statementTable prints the final run's statement lines with the initial
// run's amounts beside them and the deltas the final run published.
func statementTable(w io.Writer, s *story, initial, final []settlement.StatementLine) {
	type key struct{ participant, point string }
	before := map[key]settlement.StatementLine{}
	for _, l := range initial {
		before[key{l.ParticipantID, l.SettlementPoint}] = l
	}
	currency := ""
	if len(final) > 0 {
		currency = final[0].Run.Currency
	}
	iv, fv := s.initial.Version, s.final.Version
	fmt.Fprintf(w, "Statements of %s (%s): %d lines, initial v%d then final v%d; Δ is what final v%d changed\n",
		demoDay, currency, len(final), iv, fv, fv)
	rows := [][]string{{"participant", "settlement point", "MWh", fmt.Sprintf("initial v%d", iv), fmt.Sprintf("final v%d", fv), "Δ amount", "Δ MWh"}}
	var totInitial, totFinal, totDelta, totEnergy, totDeltaEnergy decimal.Decimal
	unchanged := true
	for _, l := range final {
		init := "-"
		if b, ok := before[key{l.ParticipantID, l.SettlementPoint}]; ok {
			init = b.Amount.StringFixed(2)
			totInitial = totInitial.Add(b.Amount)
		}
		rows = append(rows, []string{l.ParticipantID, l.SettlementPoint, l.EnergyMWh.StringFixed(6), init,
			l.Amount.StringFixed(2), signed(l.DeltaAmount, 2), signed(l.DeltaEnergyMWh, 6)})
		totFinal = totFinal.Add(l.Amount)
		totDelta = totDelta.Add(l.DeltaAmount)
		totEnergy = totEnergy.Add(l.EnergyMWh)
		totDeltaEnergy = totDeltaEnergy.Add(l.DeltaEnergyMWh)
		unchanged = unchanged && l.DeltaAmount.IsZero() && l.DeltaEnergyMWh.IsZero()
	}
	rows = append(rows, []string{"total", "", totEnergy.StringFixed(6), totInitial.StringFixed(2), totFinal.StringFixed(2),
		signed(totDelta, 2), signed(totDeltaEnergy, 6)})
	printTable(w, rows, []bool{false, false, true, true, true, true, true})
	if len(s.reused) > 0 && unchanged {
		fmt.Fprintf(w, "  (the day was already settled in this data dir; the same input gives the same figures, so every Δ is zero)\n")
	}
}

// signed formats d with an explicit sign, so deltas read as changes.
func signed(d decimal.Decimal, places int32) string {
	if d.Sign() > 0 {
		return "+" + d.StringFixed(places)
	}
	return d.StringFixed(places)
}

// printTable prints rows with aligned columns (right-aligned where
// right[i]), the first row as the header, the last as a total.
func printTable(w io.Writer, rows [][]string, right []bool) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	rule := make([]string, len(widths))
	for i, n := range widths {
		rule[i] = strings.Repeat("-", n)
	}
	line(rows[0])
	line(rule)
	for _, r := range rows[1 : len(rows)-1] {
		line(r)
	}
	line(rule)
	line(rows[len(rows)-1])
}

// alertSummary prints the stored alerts by type, with one message each.
func alertSummary(w io.Writer, alerts []alertsRow, before int) {
	byType := map[string][]alertsRow{}
	for _, a := range alerts {
		byType[a.Type] = append(byType[a.Type], a)
	}
	news := len(alerts) - before
	fmt.Fprintf(w, "Customer alerts (alerts.customer): %d, %d new in this demo", len(alerts), news)
	if news == 0 && len(alerts) > 0 {
		fmt.Fprint(w, " (each alert fires once: the same data again fires nothing)")
	}
	fmt.Fprintln(w)
	for _, t := range slices.Sorted(maps.Keys(byType)) {
		as := byType[t]
		fmt.Fprintf(w, "  %-15s %4d  e.g. %q\n", t, len(as), as[0].Message)
	}
}

// quarantineSummary prints the records of this demo's stream that were
// quarantined, by reason.
func quarantineSummary(w io.Writer, items []readstore.QuarantineItem) {
	byReason := map[string]int{}
	for _, q := range items {
		byReason[string(q.Reason)]++
	}
	reasons := slices.SortedFunc(maps.Keys(byReason), func(a, b string) int {
		return cmp.Or(cmp.Compare(byReason[b], byReason[a]), cmp.Compare(a, b))
	})
	fmt.Fprintf(w, "Quarantine: %d bad records set aside with their reason (and sent to gridsettle.dead-letter); ingest never stopped\n", len(items))
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", r, byReason[r]))
	}
	for len(parts) > 0 {
		n := min(4, len(parts))
		fmt.Fprintf(w, "  %s\n", strings.Join(parts[:n], ", "))
		parts = parts[n:]
	}
}

// shellQuote quotes path for a POSIX shell when it needs it.
func shellQuote(path string) string {
	if strings.IndexFunc(path, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}

// exportDir is the folder of a run's export under root.
func exportDir(root string, r settlementpg.Run) string {
	return filepath.Join(root, filepath.FromSlash(reporting.Dir(demoDay, string(r.RunType), r.Version)))
}

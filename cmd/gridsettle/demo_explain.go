package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
)

// The demo's explain story (explain.md): the final run's largest
// restatement, taken apart into the inputs that changed and what each
// cost, adding up exactly to the delta.

// demoExplainRows is how many changes the demo lists, the largest first.
const demoExplainRows = 10

// explainLargest prints the explanation of the line of final with the
// largest |delta_amount| (ties: the first statement id) against the
// version before it.
func (d *demo) explainLargest(ctx context.Context, w io.Writer, final []settlement.StatementLine) error {
	if len(final) == 0 {
		return nil
	}
	largest := slices.MinFunc(final, func(a, b settlement.StatementLine) int {
		return cmp.Or(b.DeltaAmount.Abs().Cmp(a.DeltaAmount.Abs()), cmp.Compare(a.StatementID, b.StatementID))
	})
	x, err := d.svc.runs.Explain(ctx, largest.StatementID, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "Largest restatement, explained (explain.md: every input that changed and what it cost, exactly):")
	printExplanation(w, x, demoExplainRows)
	return nil
}

// printExplanation prints x with its limit largest changes by
// |amount_effect| (ties: the contract's order), the rest summed in one
// row, and a TOTAL that is the sum of every change: the exact delta.
func printExplanation(w io.Writer, x *settlement.Explanation, limit int) {
	fmt.Fprintf(w, "  %s against %s\n", x.StatementID, x.Against)
	fmt.Fprintf(w, "  Δ amount %s: exact Δ amount %s, rounding %s\n", signed(x.DeltaAmount, 2), exact(x.ExactDeltaAmount), exact(x.Rounding))
	fmt.Fprintf(w, "  Δ MWh %s: exact Δ MWh %s\n", signed(x.DeltaEnergyMWh, 6), exact(x.ExactDeltaEnergyMWh))
	byEffect := slices.Clone(x.Changes)
	slices.SortStableFunc(byEffect, func(a, b settlement.Change) int { return b.AmountEffect.Abs().Cmp(a.AmountEffect.Abs()) })
	shown := byEffect[:min(limit, len(byEffect))]
	rows := [][]string{{"settlement interval", "change", "before", "after", "Δ MWh", "Δ amount"}}
	var energy, amount decimal.Decimal
	for _, c := range shown {
		rows = append(rows, changeRow(c))
	}
	for _, c := range x.Changes {
		energy, amount = energy.Add(c.EnergyMWhEffect), amount.Add(c.AmountEffect)
	}
	if rest := byEffect[len(shown):]; len(rest) > 0 {
		var e, a decimal.Decimal
		for _, c := range rest {
			e, a = e.Add(c.EnergyMWhEffect), a.Add(c.AmountEffect)
		}
		rows = append(rows, []string{fmt.Sprintf("… and %d more changes", len(rest)), "", "", "", exact(e), exact(a)})
	}
	rows = append(rows, []string{fmt.Sprintf("TOTAL (%d changes)", len(x.Changes)), "", "", "", exact(energy), exact(amount)})
	printTable(w, rows, []bool{false, false, false, false, true, true})
}

// changeRow is one change as a row of printExplanation's table.
func changeRow(c settlement.Change) []string {
	t := c.SettlementInterval.UTC().Format(time.RFC3339)
	if c.Kind == settlement.ChangePrice {
		return []string{t, "price " + c.SettlementPoint, priceText(c.PriceBefore), priceText(c.PriceAfter),
			exact(c.EnergyMWhEffect), exact(c.AmountEffect)}
	}
	lf := c.Before != nil && c.After != nil && !c.Before.LossFactor.Equal(c.After.LossFactor)
	what := fmt.Sprintf("read %s %s %s", c.MeterID, c.Channel, c.Start.UTC().Format("15:04Z"))
	return []string{t, what, sideText(c.Before, lf), sideText(c.After, lf), exact(c.EnergyMWhEffect), exact(c.AmountEffect)}
}

// sideText is how a read contributed in one version: its value with its
// quality and version, or the estimate's method; the loss factor when it
// changed; "-" where it did not contribute.
func sideText(s *settlement.ReadState, lossFactor bool) string {
	if s == nil {
		return "-"
	}
	parts := []string{s.Value.StringFixedBank(6)}
	switch {
	case s.Estimate != nil:
		parts = append(parts, "estimate "+*s.Estimate)
	case s.Quality != nil && s.Version != nil:
		parts = append(parts, fmt.Sprintf("%s v%d", *s.Quality, *s.Version))
	}
	if lossFactor {
		parts = append(parts, "lf "+s.LossFactor.StringFixedBank(6))
	}
	return strings.Join(parts, " ")
}

func priceText(p decimal.NullDecimal) string {
	if !p.Valid {
		return "unpriced"
	}
	return p.Decimal.StringFixedBank(6)
}

// exact writes an exact figure signed, with no digit lost or added.
func exact(d decimal.Decimal) string {
	if d.Sign() > 0 {
		return "+" + d.String()
	}
	return d.String()
}

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"github.com/gridsettle/gridsettle/settlement"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// gridsettle explain STATEMENT_ID [--against V]: the explanation of
// settlement/README.md "Explain a statement line" of a statement line, read
// from the database as the API computes it, as a table with the changes that
// cost most first.

func newExplainCmd(m *Main) *cobra.Command {
	c := &cobra.Command{
		Use:   "explain STATEMENT_ID [--against V]",
		Short: "Explain a statement line: which reads and prices changed since an earlier version, and what each cost",
		Args:  cobra.ExactArgs(1),
	}
	c.Flags().Int("against", 0, "the `version` explained against (default: the one before the line's; 0: nothing) (env GRIDSETTLE_EXPLAIN_AGAINST)")
	return m.commandArgs(c, dbGroups|groupMarket, []string{"against"}, func(ctx context.Context, cfg Config, log *slog.Logger, args []string) error {
		var against *int
		if c.Flags().Changed("against") {
			v, _ := c.Flags().GetInt("against")
			if v < 0 {
				return flagError("against", "", fmt.Errorf("%d is negative", v))
			}
			against = &v
		}
		db, closeDB, err := openDatabase(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer closeDB()
		e, err := settlementpg.NewRuns(db, settlementpg.Config{Market: cfg.Market}, log).Explain(ctx, args[0], against)
		switch {
		case errors.Is(err, settlementpg.ErrNotFound):
			return fmt.Errorf("statement line %q has no explanation against %s: the line does not exist, its day has no "+
				"completed run of that version, or it is not lower than the line's: %w", args[0], againstName(against), err)
		case errors.Is(err, settlementpg.ErrTooLarge):
			// The table sorts every change by its effect, so it needs them
			// all at once; the API pages such an explanation.
			return fmt.Errorf("statement line %q against %s has more than %d changes: read it in pages from the API "+
				"(GET /api/v1/statements/{statement_id}/explain): %w", args[0], againstName(against), settlementpg.MaxExplainChanges, err)
		case errors.Is(err, settlementpg.ErrNotExplainable):
			return fmt.Errorf("statement line %q cannot be explained against %s: %w", args[0], againstName(against), err)
		case err != nil:
			return fmt.Errorf("explain %s: %w", args[0], err)
		}
		return writeExplanation(m.Stdout, e, 0)
	})
}

func againstName(against *int) string {
	if against == nil {
		return "the version before it"
	}
	return fmt.Sprintf("version %d", *against)
}

// writeExplanation prints e: its figures, its changes largest effect first
// (by |amount|, then |energy|, then the contract's order) and a summary per
// kind whose TOTAL row is the exact deltas. limit > 0 lists only that many
// changes and says how many more there are (the demo's short table); the
// summary still counts them all.
func writeExplanation(w io.Writer, e *settlement.Explanation, limit int) error {
	energy := func(d decimal.Decimal) string { return d.StringFixedBank(settlement.ExactEnergyScale) }
	amount := func(d decimal.Decimal) string { return d.StringFixedBank(settlement.ExactAmountScale) }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "statement\t%s\n", e.StatementID)
	fmt.Fprintf(tw, "against\t%s\n", cmp.Or(e.Against, "(nothing)"))
	fmt.Fprintf(tw, "delta energy MWh\t%s\n", e.DeltaEnergyMWh.StringFixedBank(settlement.EnergyScale))
	fmt.Fprintf(tw, "delta amount\t%s\n", e.DeltaAmount.StringFixedBank(settlement.MoneyScale))
	fmt.Fprintf(tw, "exact delta energy MWh\t%s\n", energy(e.ExactDeltaEnergyMWh))
	fmt.Fprintf(tw, "exact delta amount\t%s\n", amount(e.ExactDeltaAmount))
	fmt.Fprintf(tw, "rounding\t%s\n", amount(e.Rounding))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write explanation: %w", err)
	}

	changes := slices.Clone(e.Changes)
	// Stable: equal effects keep the contract's order the engine answers in.
	slices.SortStableFunc(changes, largestFirst)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nKIND\tSETTLEMENT INTERVAL\tINPUT\tBEFORE → AFTER\tENERGY MWH EFFECT\tAMOUNT EFFECT")
	more := 0
	if limit > 0 && len(changes) > limit {
		changes, more = changes[:limit], len(changes)-limit
	}
	for _, c := range changes {
		input, before, after := c.SettlementPoint, priceText(c.PriceBefore), priceText(c.PriceAfter)
		if c.Kind == settlement.ChangeRead {
			input = c.MeterID + " " + c.Channel + " " + instant(c.Start)
			before, after = readText(c.Before, c.After), readText(c.After, c.Before)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\t%s\t%s\n", c.Kind, instant(c.SettlementInterval), input, before, after,
			energy(c.EnergyMWhEffect), amount(c.AmountEffect))
	}
	if more > 0 {
		fmt.Fprintf(tw, "… and %d more changes\n", more)
	}
	fmt.Fprintln(tw, "\nKIND\tCHANGES\tENERGY MWH EFFECT\tAMOUNT EFFECT")
	var total settlement.KindSummary
	for _, k := range []string{settlement.ChangeRead, settlement.ChangePrice} {
		s := e.Summary[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", k, s.Changes, energy(s.EnergyMWhEffect), amount(s.AmountEffect))
		total.Changes += s.Changes
		total.EnergyMWhEffect = total.EnergyMWhEffect.Add(s.EnergyMWhEffect)
		total.AmountEffect = total.AmountEffect.Add(s.AmountEffect)
	}
	fmt.Fprintf(tw, "TOTAL\t%d\t%s\t%s\n", total.Changes, energy(total.EnergyMWhEffect), amount(total.AmountEffect))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write explanation: %w", err)
	}
	return nil
}

// largestFirst orders changes by |amount effect|, then |energy effect|,
// largest first.
func largestFirst(a, b settlement.Change) int {
	if c := b.AmountEffect.Abs().Cmp(a.AmountEffect.Abs()); c != 0 {
		return c
	}
	return b.EnergyMWhEffect.Abs().Cmp(a.EnergyMWhEffect.Abs())
}

func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func priceText(p decimal.NullDecimal) string {
	if !p.Valid {
		return "unpriced"
	}
	return p.Decimal.StringFixedBank(6)
}

// readText is how a read contributed: value (kWh), version and quality, or
// the estimate's method; its loss factor too when the other side's differs.
// "none" where it did not contribute.
func readText(s, other *settlement.ReadState) string {
	if s == nil {
		return "none"
	}
	t := s.Value.StringFixedBank(6) + " kWh"
	if s.Estimate != nil {
		t += " estimate " + *s.Estimate
	}
	if s.Version != nil {
		t += fmt.Sprintf(" v%d", *s.Version)
	}
	if s.Quality != nil && *s.Quality != "" {
		t += " " + *s.Quality
	}
	if other != nil && !other.LossFactor.Equal(s.LossFactor) {
		t += " lf " + s.LossFactor.StringFixedBank(6)
	}
	return t
}

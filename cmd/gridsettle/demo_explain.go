package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/gridsettle/gridsettle/settlement"
)

// The demo's explain story (settlement/README.md "Explaining every figure"):
// the final run's largest restatement, taken apart into the inputs that changed
// and what each cost, adding up exactly to the delta.

// demoExplainRows is how many changes the demo lists, the largest first.
const demoExplainRows = 10

// explainLargest prints, as `gridsettle explain` does but with the largest
// demoExplainRows changes only, the explanation of the line of final with
// the largest |delta_amount| (ties: the first statement id) against the
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
	fmt.Fprintf(w, "Largest restatement, explained (every input that changed and what it cost; the TOTAL is the exact delta; "+
		"all changes: gridsettle explain %s):\n", largest.StatementID)
	return writeExplanation(w, x, demoExplainRows)
}

package postgres

import (
	"context"
	"errors"

	"github.com/gridsettle/gridsettle/settlement"
)

// ErrNotExplainable means a run of the explanation was made before runs
// recorded the replays and registry version they included
// (migrations/00903_explain.sql), so its inputs cannot be rebuilt exactly.
var ErrNotExplainable = errors.New("run made before runs recorded what explain needs")

// Explain explains statement line statementID against version against of
// its day (nil: the latest completed version before the line's own; 0:
// nothing), with every change (explain.md). ErrNotFound when the statement
// does not exist, the day has no completed run of version against, or
// against is not lower than the statement's version.
func (r *Runs) Explain(ctx context.Context, statementID string, against *int) (*settlement.Explanation, error) {
	return nil, errors.New("explain: not built yet")
}

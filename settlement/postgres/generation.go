package postgres

import (
	"context"
	"fmt"
	"time"
)

// CompletedGeneration identifies the set of completed runs: it changes
// whenever a run completes. What a completed run wrote never changes, so
// anything derived only from completed runs (a page of statements, the
// latest version of a day) stays valid while the generation does.
func (r *Runs) CompletedGeneration(ctx context.Context) (string, error) {
	var n, versions int64
	var last *time.Time
	if err := r.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(version), 0), max(finished_at) FROM runs WHERE status = 'completed'`).
		Scan(&n, &versions, &last); err != nil {
		return "", fmt.Errorf("read completed runs: %w", err)
	}
	g := fmt.Sprintf("%d/%d", n, versions)
	if last != nil {
		g += "/" + last.UTC().Format(time.RFC3339Nano)
	}
	return g, nil
}

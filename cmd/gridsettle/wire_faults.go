package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// failpointsEnv arms the failpoints of settlement/failpoint (api/README.md:
// fault injection for tests only, inert when unset).
const failpointsEnv = "GRIDSETTLE_FAILPOINTS"

// enableFailpoints arms the failpoints listed in GRIDSETTLE_FAILPOINTS, read
// once per command; without the variable every point stays inert. A point
// that fires logs one line to stderr right before the process kills or
// stops itself.
func enableFailpoints(lookupEnv func(string) (string, bool), stderr io.Writer) error {
	list, _ := lookupEnv(failpointsEnv)
	if err := failpoint.Enable(list, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
		return fmt.Errorf("%s: %w", failpointsEnv, err)
	}
	return nil
}

// publishFailpoints are the relay steps and the failpoints they pass.
var publishFailpoints = map[publish.Step]string{
	publish.StepBeforeProduce: failpoint.PublishBeforeProduce,
	publish.StepAfterFlush:    failpoint.PublishAfterFlush,
	publish.StepAfterCommit:   failpoint.PublishAfterCommit,
}

// failpointStep is the relay's step hook: each step passes its failpoint.
func failpointStep(_ context.Context, _ publish.Stream, step publish.Step) error {
	failpoint.Hit(publishFailpoints[step])
	return nil
}

// ingestGroupOpts set how long the group waits for a silent member (a
// killed or frozen instance) before it hands the member's partitions to the
// others: its session timeout, and the rebalance timeout too, since a
// member that died while a rebalance starts is otherwise waited for until
// the rebalance times out. Heartbeats go at most every 3 s and at least
// three times per session, so a live member is never taken for a dead one.
// Zero keeps franz-go's defaults.
func ingestGroupOpts(session time.Duration) []kgo.Opt {
	if session <= 0 {
		return nil
	}
	return []kgo.Opt{kgo.SessionTimeout(session), kgo.RebalanceTimeout(session),
		kgo.HeartbeatInterval(min(3*time.Second, session/3))}
}

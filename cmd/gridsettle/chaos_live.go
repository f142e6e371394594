//go:build linux

package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// livenessBound is the liveness half of the suite (meters/README.md
// "Nothing a producer sends can stop ingest", "Liveness"): once a
// fault's cause has gone away (the killed worker restarted, the frozen one
// continued, the connections cut, the broker back), every input partition
// — also one that gets no further record — must be at lag 0 and the outbox
// empty within this, without new input.
const livenessBound = 30 * time.Second

// statusTimeout bounds one status read of the liveness bound, so that a
// hung API cannot stretch the bound by much.
const statusTimeout = 5 * time.Second

// An end-of-input cut sends endCutChunks chunks, so that the workers are
// busy, and right after the producer's last commit cuts every worker's
// database sessions endCutRepeats times, endCutEvery apart: a pooled
// connection used within the last second is handed out without a ping, so
// the cuts fail the last batches and, with luck, the offset reloads after
// them (a partition was seen to stay at lag 42 for five minutes after
// that). The short plan tries up to endCutTries times until a cut has hit
// ingest at work.
const (
	endCutChunks  = 4
	endCutRepeats = 8
	endCutEvery   = 250 * time.Millisecond
	endCutTries   = 3
)

// What ingest logs when a batch fails and (a prefix) when the stored offset
// cannot be read after that: an end-of-input cut that hit ingest at work
// shows as one of them.
const (
	batchFailedLog  = `msg="ingest: batch failed, retrying from the stored offset"`
	reloadFailedLog = `msg="ingest: cannot reload stored offset`
)

// episode is a fault whose liveness the next bound checks.
type episode struct {
	kind    string    // the summary reports the worst time per kind
	fault   int       // the fault's number in the progress lines
	cleared time.Time // when the fault's cause went away
}

// causeGone marks the moment the current fault's cause went away: from
// now on the bound runs.
func (c *chaos) causeGone(kind string) {
	c.ep = &episode{kind: kind, fault: c.st.Faults, cleared: time.Now()}
}

// live starts again whatever died and applies the liveness bound to the
// last fault whose cause went away: without new input, every input
// partition must reach lag 0 and the outbox must empty within
// livenessBound, or the run fails naming the partitions behind. A worker
// that kills itself at a failpoint meanwhile is a fault of its own: the
// bound then runs from its restart.
func (c *chaos) live(ctx context.Context) error {
	var behind, read string // what is behind now, and at the last status read
	for {
		n, err := c.restartDead()
		if err != nil {
			return err
		}
		if n > 0 {
			c.causeGone("failpoint kill (armed at random)")
		}
		ep := c.ep
		if ep == nil {
			return nil
		}
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := c.status(sctx)
		cancel()
		// Taken after the answer: the time to lag 0 is never understated.
		d := time.Since(ep.cleared)
		switch {
		case err == nil:
			read = lagging(st)
			behind = read
		case read != "":
			behind = fmt.Sprintf("the status cannot be read (%v); last read %s", err, read)
		default:
			behind = fmt.Sprintf("the status cannot be read (%v)", err)
		}
		if behind == "" && d <= livenessBound {
			c.st.Liveness[ep.kind] = max(c.st.Liveness[ep.kind], d)
			c.st.Bounded[ep.kind]++
			c.ep = nil
			c.progress("  lag 0 and outbox empty %v after the cause went away", d.Round(100*time.Millisecond))
			return nil
		}
		if d > livenessBound {
			c.ep = nil
			return fmt.Errorf("liveness bound broken: %v after the cause of fault %d (%s) went away, %s; %s",
				d.Round(100*time.Millisecond), ep.fault, ep.kind, cmp.Or(behind, "lag 0 and outbox empty only now"), c.ingestGroup(ctx))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lagging names the input partitions not at lag 0 and the outbox backlog;
// "" when there is neither.
func lagging(st api.Status) string {
	var parts []string
	for _, p := range st.Inputs {
		if p.Lag != 0 {
			parts = append(parts, fmt.Sprintf("%s/%d lag %d (stored offset %d, last stable offset %d)",
				p.Topic, p.Partition, p.Lag, p.NextOffset, p.EndOffset))
		}
	}
	if st.Outbox.Pending != 0 {
		parts = append(parts, fmt.Sprintf("outbox pending %d", st.Outbox.Pending))
	}
	if len(parts) == 0 {
		return ""
	}
	return "still behind: " + strings.Join(parts, "; ")
}

// burst is the input an end-of-input cut follows: endCutChunks chunks and,
// with rest, whatever is left of the stream.
func (c *chaos) burst(rest bool) []simulate.Record {
	var recs []simulate.Record
	for i := 0; i < endCutChunks || rest && c.next < len(c.sc.Records); i++ {
		recs = append(recs, c.nextChunk(false)...)
	}
	return recs
}

// faultEndCut sends recs as the end of the input and cuts every worker's
// pooled database sessions right after the producer's last commit, again
// and again for a moment;
// then nothing is produced until the liveness bound holds. It reports
// whether ingest logged a failed batch or offset reload meanwhile: the
// cuts hit ingest at work.
func (c *chaos) faultEndCut(ctx context.Context, recs []simulate.Record) (bool, error) {
	c.st.Faults++
	failures := func() int { return c.countLogs(batchFailedLog) + c.countLogs(reloadFailedLog) }
	before := failures()
	if err := c.send(ctx, recs); err != nil {
		return false, err
	}
	n := 0
	for i := range endCutRepeats {
		if i > 0 {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(endCutEvery):
			}
		}
		m, err := c.terminate(ctx, c.workers()...)
		if err != nil {
			return false, err
		}
		n += m
	}
	c.st.EndCuts++
	c.progress("fault %d: end of the input (%d records), then %d cuts of every worker's database sessions, %v apart: %d sessions",
		c.st.Faults, len(recs), endCutRepeats, endCutEvery, n)
	c.causeGone("end-of-input cut")
	err := c.live(ctx)
	hit := failures() - before
	if hit > 0 {
		c.st.EndCutHits++
	}
	c.progress("  the cuts failed %d ingest batches or offset reloads", hit)
	return hit > 0, err
}

// livenessSummary is the worst time to lag 0 per fault kind.
func (st *chaosStats) livenessSummary() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(st.Liveness)) {
		parts = append(parts, fmt.Sprintf("%s %v (%d)", k, st.Liveness[k].Round(100*time.Millisecond), st.Bounded[k]))
	}
	return strings.Join(parts, ", ")
}

// ingestGroup describes who owns which input partition, for a broken
// bound: a partition behind may have no owner at all.
func (c *chaos) ingestGroup(ctx context.Context) string {
	adm, err := c.admin()
	if err != nil {
		return "ingest group not described: " + err.Error()
	}
	defer adm.Close()
	gs, err := adm.DescribeGroups(ctx, ingest.DefaultGroup)
	if err != nil {
		return "ingest group not described: " + err.Error()
	}
	g := gs[ingest.DefaultGroup]
	if g.Err != nil {
		return "ingest group not described: " + g.Err.Error()
	}
	var members []string
	for _, m := range g.Members {
		var owned []string
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					owned = append(owned, fmt.Sprintf("%s/%d", t.Topic, p))
				}
			}
		}
		members = append(members, fmt.Sprintf("%s (%s) %v", m.MemberID, m.ClientHost, owned))
	}
	return fmt.Sprintf("ingest group %s %s, %d members: %s", ingest.DefaultGroup, g.State, len(members), strings.Join(members, "; "))
}

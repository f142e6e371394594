//go:build linux

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	alertspg "github.com/gridsettle/gridsettle/settlement/alerts/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/postgres/pgcheck"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// Output schemas (meters/README.md) the checks expect in gridsettle-schema.
const (
	statementSchema = "settlement.statement/v1"
	chargeSchema    = "settlement.account-charge/v1"
)

type topicPart struct {
	topic     string
	partition int32
}

// outputReader is a read_committed consumer of every output topic that
// runs for the whole suite, across the broker restart: what a billing
// system reading our topics sees.
type outputReader struct {
	cl     *kgo.Client
	adm    *kadm.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	recs []*kgo.Record       // data records in the order read
	next map[topicPart]int64 // next offset to read, control records included
}

func startOutputReader(ctx context.Context, kc kafka.Config, log *slog.Logger) (*outputReader, error) {
	opts, err := kc.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(kafka.DefaultTopics().Outputs()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("output reader: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &outputReader{cl: cl, adm: kadm.NewClient(cl), cancel: cancel, done: make(chan struct{}), next: map[topicPart]int64{}}
	go func() {
		defer close(r.done)
		for {
			fs := cl.PollFetches(rctx)
			if rctx.Err() != nil {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				log.Warn("output reader: fetch error", "topic", t, "partition", p, "err", err)
			})
			r.mu.Lock()
			fs.EachRecord(func(rec *kgo.Record) {
				r.next[topicPart{rec.Topic, rec.Partition}] = rec.Offset + 1
				if !rec.Attrs.IsControl() {
					r.recs = append(r.recs, rec)
				}
			})
			r.mu.Unlock()
		}
	}()
	return r, nil
}

// caughtUp reports whether the reader has reached the last stable offset
// of every output partition.
func (r *outputReader) caughtUp(ctx context.Context) bool {
	ends, err := r.adm.ListCommittedOffsets(ctx, kafka.DefaultTopics().Outputs()...)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || r.next[topicPart{o.Topic, o.Partition}] < o.Offset {
			ok = false
		}
	})
	return ok
}

func (r *outputReader) records() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

func (r *outputReader) close() {
	r.cancel()
	<-r.done
	r.cl.Close()
}

// readTopics reads topics from the start to their end now: the last
// stable offset read_committed, the high watermark otherwise. It returns
// the data records, by topic, partition and offset.
func readTopics(ctx context.Context, kc kafka.Config, committed bool, topics ...string) ([]*kgo.Record, error) {
	opts, err := kc.ClientOpts()
	if err != nil {
		return nil, err
	}
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if committed {
		list = adm.ListCommittedOffsets
	}
	ends, err := list(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	left := map[topicPart]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[topicPart{o.Topic, o.Partition}] = o.Offset
		}
	})
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	rctx, cancel := context.WithTimeout(ctx, chaosWait)
	defer cancel()
	var out []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			return nil, fmt.Errorf("read %v to the end: %d partitions not reached within %v: %v", topics, len(left), chaosWait, left)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			tp := topicPart{rec.Topic, rec.Partition}
			if end, ok := left[tp]; ok && rec.Offset+1 >= end {
				delete(left, tp)
			}
			if !rec.Attrs.IsControl() {
				out = append(out, rec)
			}
		})
	}
	slices.SortFunc(out, func(a, b *kgo.Record) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	// Records past the end listed before reading are not ours to judge.
	return slices.DeleteFunc(out, func(r *kgo.Record) bool {
		o, _ := ends.Lookup(r.Topic, r.Partition)
		return r.Offset >= o.Offset
	}), nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// problems collects discrepancies, a bounded number per kind.
type problems struct {
	byKind map[string][]string
	counts map[string]int
}

func (p *problems) add(kind, format string, args ...any) {
	if p.byKind == nil {
		p.byKind, p.counts = map[string][]string{}, map[string]int{}
	}
	p.counts[kind]++
	if len(p.byKind[kind]) < 10 {
		p.byKind[kind] = append(p.byKind[kind], fmt.Sprintf(format, args...))
	}
}

func (p *problems) err() error {
	if len(p.counts) == 0 {
		return nil
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p.counts)) {
		fmt.Fprintf(&b, "\n%s: %d problem(s)", k, p.counts[k])
		for _, s := range p.byKind[k] {
			fmt.Fprintf(&b, "\n  %s", s)
		}
	}
	return fmt.Errorf("chaos check failed:%s", b.String())
}

// check compares everything gridsettle stored and published with the
// oracle, and fails unless the faults really fired.
func (c *chaos) check(ctx context.Context) error {
	var p problems
	if err := c.compare(ctx, &p); err != nil {
		return err
	}
	c.checkFaults(&p)
	return p.err()
}

// compare adds to p every difference between what gridsettle stored and
// published and the oracle's computation over the committed input.
func (c *chaos) compare(ctx context.Context, p *problems) error {
	topics := kafka.DefaultTopics()
	inRecs, err := readTopics(ctx, c.kcfg, true, topics.Inputs()...)
	if err != nil {
		return err
	}
	var log []oracle.Input
	for _, r := range inRecs {
		log = append(log, oracle.Input{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
	}
	o, err := c.oracle()
	if err != nil {
		return err
	}
	state, err := o.Ingest(log, nil)
	if err != nil {
		return err
	}
	ck := &c.st.Checked
	ck.InputRecords, ck.Quarantined, ck.AlertsMay = len(log), len(state.Quarantine), len(state.Alerts)
	for _, a := range state.Alerts {
		if a.Must {
			ck.AlertsMust++
		}
	}
	out, err := readTopics(ctx, c.kcfg, true, topics.Outputs()...)
	if err != nil {
		return err
	}
	all, err := readTopics(ctx, c.kcfg, false, topics.Outputs()...)
	if err != nil {
		return err
	}
	// The bridge's own dead letters (meters/README.md "Edge ingest: the MQTT
	// bridge") are no relay's records: they carry no gridsettle-seq and no
	// source offset, and are checked here only against their schema.
	c.checkBridgeLetters(p, out)
	out, all = withoutBridgeLetters(out), withoutBridgeLetters(all)
	c.st.AbortedRecords = len(all) - len(out)
	ck.OutputRecords = len(out)
	c.checkOutputLog(p, out, all, withoutBridgeLetters(c.reader.records()))
	byTopic := map[string][]*kgo.Record{}
	for _, r := range out {
		byTopic[r.Topic] = append(byTopic[r.Topic], r)
	}
	inputAt := map[oracle.Position]oracle.Input{}
	for _, in := range log {
		inputAt[oracle.Position{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}] = in
	}
	if err := c.checkOffsets(ctx, p, inRecs); err != nil {
		return err
	}
	if err := c.checkQuarantine(ctx, p, state, byTopic[topics.DeadLetter], inputAt); err != nil {
		return err
	}
	if err := c.checkAlerts(ctx, p, state, byTopic[topics.Alerts]); err != nil {
		return err
	}
	if err := c.checkRuns(ctx, p, o, log, byTopic[topics.Statements], byTopic[topics.AccountCharges]); err != nil {
		return err
	}
	return c.checkLedger(ctx, p)
}

// checkBridgeLetters: every dead letter the MQTT bridge wrote itself
// validates against the dead-letter schema, CloudEvents headers included.
func (c *chaos) checkBridgeLetters(p *problems, recs []*kgo.Record) {
	v, err := schemas.NewValidator()
	if err != nil {
		p.add("schemas", "%v", err)
		return
	}
	for _, r := range recs {
		if header(r, bridge.HeaderMQTTClient) == "" {
			continue
		}
		if err := v.Record(r); err != nil {
			p.add("schemas", "bridge dead letter: %v", err)
		}
	}
}

// withoutBridgeLetters is recs without the dead letters the MQTT bridge
// wrote itself.
func withoutBridgeLetters(recs []*kgo.Record) []*kgo.Record {
	return slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return header(r, bridge.HeaderMQTTClient) != "" })
}

// oracle is the oracle of the scenario's registry and market.
func (c *chaos) oracle() (*oracle.Oracle, error) {
	reg, err := oracle.ReadRegistry(os.DirFS(c.regDir))
	if err != nil {
		return nil, err
	}
	m := c.sc.Config.Market
	topics := kafka.DefaultTopics()
	// The instances consumed with the wall clock and the default future
	// bounds; the scenario's records do not depend on when (simulate's doc).
	return oracle.New(reg, oracle.Market{Location: m.Location, Currency: m.Currency, IntervalSeconds: int64(m.IntervalSeconds),
		PriceSpikeThreshold: m.PriceSpikeThreshold, Now: time.Now(),
		Estimation: oracle.Estimation{Off: m.Estimation.Off, MaxLinear: m.Estimation.MaxLinear}},
		oracle.Topics{Reads: topics.Reads, Prices: topics.Prices})
}

// checkOutputLog: every committed output record carries the headers and
// validates against the schema its gridsettle-schema names, CloudEvents
// headers included (package schemas), each gridsettle-id appears once per
// topic, each stream's gridsettle-seq runs
// 1, 2, … in offset order, and the reader that ran throughout saw exactly
// the records a reader from scratch sees now.
func (c *chaos) checkOutputLog(p *problems, out, all, streamed []*kgo.Record) {
	ids := map[string]map[string]int64{}
	seqs := map[topicPart]int64{}
	v, err := schemas.NewValidator()
	if err != nil {
		p.add("schemas", "%v", err)
	}
	for _, r := range out {
		id, schema := header(r, publish.HeaderID), header(r, publish.HeaderSchema)
		if id == "" || schema == "" {
			p.add("headers", "%s/%d@%d: gridsettle-id %q, gridsettle-schema %q", r.Topic, r.Partition, r.Offset, id, schema)
		}
		if v != nil {
			if err := v.Record(r); err != nil {
				p.add("schemas", "%v", err)
			}
		}
		if ids[r.Topic] == nil {
			ids[r.Topic] = map[string]int64{}
		}
		if first, dup := ids[r.Topic][id]; dup {
			p.add("duplicates", "%s: gridsettle-id %s at offsets %d and %d of partition %d", r.Topic, id, first, r.Offset, r.Partition)
		}
		ids[r.Topic][id] = r.Offset
		tp := topicPart{r.Topic, r.Partition}
		seq, err := strconv.ParseInt(header(r, publish.HeaderSeq), 10, 64)
		if err != nil || seq != seqs[tp]+1 {
			p.add("sequence", "%s/%d@%d: gridsettle-seq %q after %d", r.Topic, r.Partition, r.Offset, header(r, publish.HeaderSeq), seqs[tp])
		}
		seqs[tp] = seq
	}
	committed := map[topicPart]map[int64]bool{}
	for _, r := range out {
		tp := topicPart{r.Topic, r.Partition}
		if committed[tp] == nil {
			committed[tp] = map[int64]bool{}
		}
		committed[tp][r.Offset] = true
	}
	for _, r := range all {
		if committed[topicPart{r.Topic, r.Partition}][r.Offset] {
			continue
		}
		// An aborted record must never be a committed record's twin that
		// is missing: its id must be committed elsewhere (republished).
		if _, ok := ids[r.Topic][header(r, publish.HeaderID)]; !ok {
			p.add("missing", "%s: gridsettle-id %s only in an aborted transaction", r.Topic, header(r, publish.HeaderID))
		}
	}
	seen := map[topicPart]map[int64]bool{}
	for _, r := range streamed {
		tp := topicPart{r.Topic, r.Partition}
		if seen[tp] == nil {
			seen[tp] = map[int64]bool{}
		}
		if seen[tp][r.Offset] {
			p.add("streaming reader", "%s/%d@%d read twice", r.Topic, r.Partition, r.Offset)
		}
		seen[tp][r.Offset] = true
		if !committed[tp][r.Offset] {
			p.add("streaming reader", "%s/%d@%d (%s) read but not committed", r.Topic, r.Partition, r.Offset, header(r, publish.HeaderID))
		}
	}
	for _, r := range out {
		if !seen[topicPart{r.Topic, r.Partition}][r.Offset] {
			p.add("streaming reader", "%s/%d@%d (%s) committed but never read", r.Topic, r.Partition, r.Offset, header(r, publish.HeaderID))
		}
	}
}

// checkOffsets: every input partition's stored offset is its end.
func (c *chaos) checkOffsets(ctx context.Context, p *problems, in []*kgo.Record) error {
	var topics []string
	for _, r := range in {
		if !slices.Contains(topics, r.Topic) {
			topics = append(topics, r.Topic)
		}
	}
	offsets, err := readstore.StoredOffsets(ctx, c.pool, topics)
	if err != nil {
		return err
	}
	stored := map[topicPart]int64{}
	for _, o := range offsets {
		stored[topicPart{o.Topic, o.Partition}] = o.NextOffset
	}
	last := map[topicPart]int64{}
	for _, r := range in {
		last[topicPart{r.Topic, r.Partition}] = r.Offset
	}
	for tp, off := range last {
		if stored[tp] <= off {
			p.add("offsets", "%s/%d: stored next offset %d, but offset %d is committed", tp.topic, tp.partition, stored[tp], off)
		}
	}
	return nil
}

// checkQuarantine: the quarantine is the oracle's (position → reason), and
// gridsettle.dead-letter holds each quarantined record once, unchanged,
// with its reason and source in headers.
func (c *chaos) checkQuarantine(ctx context.Context, p *problems, s *oracle.State, dead []*kgo.Record, inputAt map[oracle.Position]oracle.Input) error {
	got := map[oracle.Position]string{}
	if err := readstore.EachQuarantined(ctx, c.pool, func(topic string, partition int32, offset int64, reason string) {
		got[oracle.Position{Topic: topic, Partition: partition, Offset: offset}] = reason
	}); err != nil {
		return err
	}
	for pos, q := range s.Quarantine {
		if r, ok := got[pos]; !ok || r != q.Reason {
			p.add("quarantine", "%v: stored %q, oracle %q (%s)", pos, r, q.Reason, q.Detail)
		}
	}
	for pos, r := range got {
		if _, ok := s.Quarantine[pos]; !ok {
			p.add("quarantine", "%v: stored %q, the oracle accepts the record", pos, r)
		}
	}
	published := map[string]bool{}
	for _, r := range dead {
		id := header(r, publish.HeaderID)
		published[id] = true
		part, _ := strconv.ParseInt(header(r, ingest.HeaderSourcePartition), 10, 32)
		off, _ := strconv.ParseInt(header(r, ingest.HeaderSourceOffset), 10, 64)
		pos := oracle.Position{Topic: header(r, ingest.HeaderSourceTopic), Partition: int32(part), Offset: off}
		q, ok := s.Quarantine[pos]
		in := inputAt[pos]
		switch {
		case !ok:
			p.add("dead letters", "%s: %v is not quarantined by the oracle", id, pos)
		case id != pos.Topic+"/"+strconv.Itoa(int(pos.Partition))+"/"+strconv.FormatInt(pos.Offset, 10):
			p.add("dead letters", "id %s for source %v", id, pos)
		case header(r, ingest.HeaderReason) != q.Reason:
			p.add("dead letters", "%s: reason %q, oracle %q", id, header(r, ingest.HeaderReason), q.Reason)
		case !bytes.Equal(r.Value, in.Value) || !bytes.Equal(r.Key, in.Key):
			p.add("dead letters", "%s: key or value differs from the input record", id)
		case header(r, publish.HeaderSchema) != ingest.DeadLetterSchema:
			p.add("dead letters", "%s: schema %q", id, header(r, publish.HeaderSchema))
		}
	}
	for pos := range s.Quarantine {
		id := pos.Topic + "/" + strconv.Itoa(int(pos.Partition)) + "/" + strconv.FormatInt(pos.Offset, 10)
		if !published[id] {
			p.add("dead letters", "%s: quarantined but never published", id)
		}
	}
	return nil
}

// checkAlerts: must ⊆ published ⊆ may, and the alerts table holds exactly
// what alerts.customer does, payload for payload.
func (c *chaos) checkAlerts(ctx context.Context, p *problems, s *oracle.State, recs []*kgo.Record) error {
	stored, err := alertspg.Payloads(ctx, c.pool)
	if err != nil {
		return err
	}
	published := map[string]bool{}
	c.st.Checked.AlertsPublished = len(recs)
	for _, r := range recs {
		id := header(r, publish.HeaderID)
		published[id] = true
		var a alerts.Alert
		if err := json.Unmarshal(r.Value, &a); err != nil || a.AlertID != id || string(r.Key) != a.AccountID {
			p.add("alerts", "%s: record key %q, value %s", id, r.Key, r.Value)
		}
		if header(r, publish.HeaderSchema) != alerts.Schema {
			p.add("alerts", "%s: schema %q", id, header(r, publish.HeaderSchema))
		}
		if _, ok := s.Alerts[id]; !ok {
			p.add("alerts", "%s published, but the oracle says it can never fire", id)
		}
		if payload, ok := stored[id]; !ok {
			p.add("alerts", "%s published but not in the alerts table", id)
		} else if !sameJSON(payload, r.Value) {
			p.add("alerts", "%s: published %s, stored %s", id, r.Value, payload)
		}
	}
	for id, a := range s.Alerts {
		if a.Must && !published[id] {
			p.add("alerts", "%s must fire (it holds in the final state) but was not published", id)
		}
	}
	for id := range stored {
		if !published[id] {
			p.add("alerts", "%s stored but never published", id)
		}
	}
	return nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

// runRow is a runs row.
type runRow struct {
	id, day, runType, status, errText string
	version                           int
	lineage                           settlementpg.Lineage
	completeness                      *settlementpg.Completeness
	computedAt                        *time.Time
}

// checkRuns: every completed run's statement lines, account charges and
// interval figures equal the oracle's for the input its lineage says it
// read, with the previous completed run as previous version, estimate
// figures included (compareEstimates); the topics hold every line and
// charge once, equal to the oracle's.
func (c *chaos) checkRuns(ctx context.Context, p *problems, o *oracle.Oracle, log []oracle.Input, stmts, charges []*kgo.Record) error {
	stored, err := pgcheck.Runs(ctx, c.pool)
	if err != nil {
		return err
	}
	runs := make([]runRow, len(stored))
	for i, r := range stored {
		runs[i] = runRow{id: r.ID, day: r.Day, runType: r.RunType, status: r.Status, errText: r.Error, version: r.Version,
			lineage: r.Lineage, completeness: r.Completeness, computedAt: r.ComputedAt}
	}
	var completed []string
	for _, r := range runs {
		if r.status != settlementpg.Completed {
			p.add("runs", "%s: status %s %s", r.id, r.status, r.errText)
			continue
		}
		completed = append(completed, r.id)
	}
	if !slices.Equal(slices.Sorted(slices.Values(completed)), slices.Sorted(slices.Values(c.st.Runs))) {
		p.add("runs", "completed runs %v, but the API completed %v", completed, c.st.Runs)
	}
	if err := c.checkCompleteness(p, o, log, runs); err != nil {
		return err
	}
	lines, err := pgcheck.StatementLines(ctx, c.pool)
	if err != nil {
		return err
	}
	chargeRows, err := pgcheck.AccountCharges(ctx, c.pool)
	if err != nil {
		return err
	}
	intervals, err := c.intervalRows(ctx)
	if err != nil {
		return err
	}
	estimates, err := c.storedEstimates(ctx)
	if err != nil {
		return err
	}
	if err := c.checkExplanations(ctx, p, o, log, runs, lines); err != nil {
		return err
	}
	wantLines := map[string]oracle.Line{}
	wantCharges := map[string]oracle.Charge{}
	computed := map[string]time.Time{}
	for _, day := range c.days() {
		var seq []oracle.Run
		var ids []string
		for _, r := range runs {
			if r.day != day || r.status != settlementpg.Completed {
				continue
			}
			seq = append(seq, oracle.Run{Type: r.runType, Version: r.version, Snapshot: lineageSnapshot(r.lineage)})
			ids = append(ids, r.id)
			if r.computedAt != nil {
				computed[r.id] = *r.computedAt
			}
		}
		sts, err := o.Runs(log, day, seq)
		if err != nil {
			return err
		}
		for i, st := range sts {
			if st.RunID != ids[i] {
				p.add("runs", "oracle run id %s for %s", st.RunID, ids[i])
			}
			for _, l := range st.Lines {
				wantLines[l.StatementID] = l
			}
			for _, ch := range st.Charges {
				wantCharges[ch.ChargeID] = ch
			}
			c.st.Checked.Intervals += len(st.Intervals)
			c.compareIntervals(p, st, intervals[ids[i]])
			c.compareEstimates(p, st, estimates[ids[i]])
		}
	}
	ck := &c.st.Checked
	ck.Runs, ck.StatementLines, ck.Charges = len(completed), len(wantLines), len(wantCharges)
	compareRows(p, "statement lines", wantLines, lines)
	compareRows(p, "account charges", wantCharges, chargeRows)
	compareTopic(p, "settlement.statements", statementSchema, wantLines, stmts,
		func(l oracle.Line) (string, *time.Time) {
			t, ok := computed[l.RunID]
			if !ok {
				return l.ParticipantID, &time.Time{}
			}
			return l.ParticipantID, &t
		})
	compareTopic(p, "settlement.account-charges", chargeSchema, wantCharges, charges,
		func(ch oracle.Charge) (string, *time.Time) { return ch.AccountID, nil })
	return nil
}

func (c *chaos) days() []string {
	out := make([]string, c.cfg.Days)
	for i := range out {
		out[i] = c.sc.Config.StartDay.AddDays(i).String()
	}
	return out
}

func compareRows[T any](p *problems, what string, want, got map[string]T) {
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			p.add(what, "%s: in the oracle, not stored", id)
		} else if !reflect.DeepEqual(w, g) {
			p.add(what, "%s:\n    stored %+v\n    oracle %+v", id, g, w)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			p.add(what, "%s: stored, not in the oracle", id)
		}
	}
}

// compareTopic: the topic holds each of want once (duplicates are found by
// checkOutputLog), as its message: exactly the fields of the oracle's, plus
// computed_at (the run's) when meta gives one; meta gives the record key.
func compareTopic[T any](p *problems, topic, schema string, want map[string]T, recs []*kgo.Record,
	meta func(T) (string, *time.Time)) {
	seen := map[string]bool{}
	for _, r := range recs {
		id := header(r, publish.HeaderID)
		seen[id] = true
		w, ok := want[id]
		if !ok {
			p.add(topic, "%s published, not in the oracle", id)
			continue
		}
		key, computedAt := meta(w)
		if header(r, publish.HeaderSchema) != schema || string(r.Key) != key {
			p.add(topic, "%s: schema %q, key %q; want %q, %q", id, header(r, publish.HeaderSchema), r.Key, schema, key)
		}
		b, err := json.Marshal(w)
		if err != nil {
			p.add(topic, "%s: %v", id, err)
			continue
		}
		var wm, gm map[string]any
		if err := json.Unmarshal(b, &wm); err != nil {
			p.add(topic, "%s: %v", id, err)
			continue
		}
		if err := json.Unmarshal(r.Value, &gm); err != nil {
			p.add(topic, "%s: value %s: %v", id, r.Value, err)
			continue
		}
		if computedAt != nil {
			s, _ := gm["computed_at"].(string)
			t, err := time.Parse(time.RFC3339, s)
			if err != nil || !t.Equal(*computedAt) {
				p.add(topic, "%s: computed_at %q, the run's is %v", id, s, *computedAt)
			}
			delete(gm, "computed_at")
		}
		if !reflect.DeepEqual(wm, gm) {
			p.add(topic, "%s:\n    published %s\n    oracle    %s", id, r.Value, b)
		}
	}
	for id := range want {
		if !seen[id] {
			p.add(topic, "%s: missing", id)
		}
	}
}

type intervalKey struct {
	participant, point string
	start              int64
}

// intervalRows are the stored run intervals by run.
func (c *chaos) intervalRows(ctx context.Context) (map[string]map[intervalKey]oracle.IntervalFigure, error) {
	out := map[string]map[intervalKey]oracle.IntervalFigure{}
	err := pgcheck.RunIntervals(ctx, c.pool, func(run string, f oracle.IntervalFigure) {
		if out[run] == nil {
			out[run] = map[intervalKey]oracle.IntervalFigure{}
		}
		out[run][intervalKey{f.ParticipantID, f.SettlementPoint, f.Start.Unix()}] = f
	})
	return out, err
}

// compareIntervals: the run's interval figures equal the oracle's, exactly.
func (c *chaos) compareIntervals(p *problems, st *oracle.Statement, got map[intervalKey]oracle.IntervalFigure) {
	eqDec := func(a, b *decimal.Decimal) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	for _, w := range st.Intervals {
		k := intervalKey{w.ParticipantID, w.SettlementPoint, w.Start.Unix()}
		g, ok := got[k]
		switch {
		case !ok:
			p.add("run intervals", "%s %v: in the oracle, not stored", st.RunID, k)
		case !g.EnergyMWh.Equal(w.EnergyMWh) || !eqDec(g.Price, w.Price) || !eqDec(g.Amount, w.Amount) ||
			g.ActualReads != w.ActualReads || g.EstimatedReads != w.EstimatedReads ||
			!g.EstimatedEnergyMWh.Equal(w.EstimatedEnergyMWh) || g.GridsettleEstimatedReads != w.GridsettleEstimatedReads:
			p.add("run intervals", "%s %v: stored %s, oracle %s", st.RunID, k, figure(g), figure(w))
		}
		delete(got, k)
	}
	for k := range got {
		p.add("run intervals", "%s %v: stored, not in the oracle", st.RunID, k)
	}
}

func figure(f oracle.IntervalFigure) string {
	s := func(d *decimal.Decimal) string {
		if d == nil {
			return "null"
		}
		return d.String()
	}
	return fmt.Sprintf("energy %s price %s amount %s reads A%d E%d, estimated %s over %d estimates", f.EnergyMWh, s(f.Price), s(f.Amount),
		f.ActualReads, f.EstimatedReads, f.EstimatedEnergyMWh, f.GridsettleEstimatedReads)
}

// checkLedger: the hash chain verifies (every entry balanced, linked and
// hashed), every line whose amount moved has one entry, and each
// receivable (clearing) account holds the sum (negated sum) of its latest
// statement amounts.
func (c *chaos) checkLedger(ctx context.Context, p *problems) error {
	rep, err := ledgerpg.Verify(ctx, c.pool)
	if err != nil {
		return err
	}
	if !rep.OK {
		p.add("ledger", "verify fails at %+v after %d entries", rep.FirstBadEntry, rep.EntriesChecked)
	}
	unbalanced, err := ledgerpg.CountUnbalancedEntries(ctx, c.pool)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	if unbalanced > 0 {
		p.add("ledger", "%d journal entries do not balance", unbalanced)
	}
	entries, err := ledgerpg.CountEntries(ctx, c.pool)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	moved, err := pgcheck.CountMovedLines(ctx, c.pool)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	c.st.Checked.JournalEntries = entries
	if entries != moved {
		p.add("ledger", "%d journal entries for %d statement lines with a delta amount", entries, moved)
	}
	want := map[string]decimal.Decimal{}
	if err := pgcheck.LatestAmounts(ctx, c.pool, func(participant, point string, amount decimal.Decimal) {
		r, cl := settlementpg.ReceivableAccount(participant), settlementpg.ClearingAccount(point)
		want[r], want[cl] = want[r].Add(amount), want[cl].Sub(amount)
	}); err != nil {
		return err
	}
	bals, err := ledgerpg.Balances(ctx, c.pool, ledgerpg.BalanceQuery{})
	if err != nil {
		return err
	}
	got := map[string]decimal.Decimal{}
	for _, b := range bals {
		got[b.Account] = got[b.Account].Add(b.Balance)
	}
	for _, acc := range slices.Sorted(maps.Keys(want)) {
		if !got[acc].Equal(want[acc]) {
			p.add("ledger", "%s: balance %s, latest statements sum to %s", acc, got[acc], want[acc])
		}
		delete(got, acc)
	}
	for acc, b := range got {
		if !b.IsZero() {
			p.add("ledger", "%s: balance %s without a statement line", acc, b)
		}
	}
	return nil
}

// checkFaults fails the run unless the faults it was meant to inject
// really fired, counted from exit statuses and the processes' own logs.
func (c *chaos) checkFaults(p *problems) {
	c.st.CASMisses = c.countLogs(casMissLog)
	c.st.BatchFailures = c.countLogs(batchFailedLog)
	c.st.ReloadFailures = c.countLogs(reloadFailedLog)
	for _, l := range c.lives {
		c.st.RelayRestarts += relayErrors(l.log())
		for line := range strings.SplitSeq(l.log(), "\n") {
			if relayErrors(line) > 0 && (fencedError(line) || strings.Contains(line, leaseLostLog)) {
				c.st.Fenced++
			}
		}
		if l.killedByUs && l.exited() && l.signaled() != syscall.SIGKILL {
			p.add("faults", "%s was sent SIGKILL but ended with %v", l, l.state)
		}
	}
	for _, name := range chaosPoints() {
		if c.st.FailpointKills[name]+c.st.FailpointStops[name] == 0 {
			p.add("faults", "failpoint %s never fired", name)
		}
	}
	checks := []struct {
		what string
		n    int
	}{
		{"harness SIGKILLs", c.st.Kills},
		{"zombies (frozen past the session timeout)", c.st.Zombies},
		{"compare-and-set misses of ingest", c.st.CASMisses},
		{"zombies holding outbox leases", c.st.LeaseHolderStops},
		{"fenced or lease-lost relay sessions", c.st.Fenced},
		{"aborted output records", c.st.AbortedRecords},
		{"terminated database sessions", c.st.PGTerminations},
		{"broker restarts", c.st.BrokerRestarts},
		{"end-of-input cuts", c.st.EndCuts},
		{"end-of-input cuts that failed an ingest batch or offset reload", c.st.EndCutHits},
	}
	for _, ch := range checks {
		if ch.n == 0 {
			p.add("faults", "no %s: the fault did not fire", ch.what)
		}
	}
	ck := c.st.Checked
	for _, n := range []struct {
		what string
		n    int
	}{{"quarantined records", ck.Quarantined}, {"published alerts", ck.AlertsPublished}, {"runs", ck.Runs},
		{"statement lines", ck.StatementLines}, {"account charges", ck.Charges}, {"run intervals", ck.Intervals},
		{"journal entries", ck.JournalEntries}, {"estimates", ck.Estimates},
		{"completeness partitions", ck.CompletenessInputs}, {"explained lines", ck.ExplainLines}} {
		if n.n == 0 {
			p.add("vacuous", "no %s were compared", n.what)
		}
	}
}

// relayFailedLog is what the relay logs when a stream session fails.
const relayFailedLog = `msg="stream session failed; restarting from the log"`

// relayErrors counts the lines of log where a relay stream session ended
// with an error: failed and restarting, or failed while its lease session
// was ending.
func relayErrors(log string) int {
	return strings.Count(log, relayFailedLog) + strings.Count(log, `msg="stream session ended with an error while stopping"`)
}

// leaseLostLog is in the error of a relay stream session that ended because
// its lease may have ended.
const leaseLostLog = "publish leases lost"

// fencedError reports whether a logged error says the producer was fenced
// (a newer instance took its transactional id).
func fencedError(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "fenced") || strings.Contains(l, "producer_epoch") || strings.Contains(l, "invalid_producer_epoch")
}

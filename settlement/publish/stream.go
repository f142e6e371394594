package publish

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// Record headers the relay writes.
const (
	HeaderSchema = "gridsettle-schema"
	HeaderID     = "gridsettle-id"
	HeaderSeq    = "gridsettle-seq"
)

const (
	// tailWindow is the first number of offsets read back from the last
	// stable offset; it grows tailGrowth-fold while only aborted records
	// and markers are found.
	tailWindow = 256
	tailGrowth = 16
	// tailTimeout bounds reading the tail: a read that cannot reach the
	// last stable offset restarts the session instead of hanging.
	tailTimeout = 30 * time.Second
)

// worker relays one stream while its lease is held.
type worker struct {
	r     *Relay
	s     Stream
	txnID string
	part  string // the partition label value
	log   *slog.Logger
	wake  chan struct{}
}

func newWorker(r *Relay, s Stream) *worker {
	return &worker{
		r:     r,
		s:     s,
		txnID: fmt.Sprintf("gridsettle-%s-%s-%d", r.cfg.Env, s.Topic, s.Partition),
		part:  strconv.Itoa(int(s.Partition)),
		log:   r.log.With("stream", s.String()),
		wake:  make(chan struct{}, 1),
	}
}

// poke tells the worker new rows may have committed; it never blocks.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run runs sessions until ctx ends, restarting failed ones with backoff.
func (w *worker) run(ctx context.Context) {
	lag := w.r.m.lag.WithLabelValues(w.s.Topic, w.part)
	defer w.r.m.lag.DeleteLabelValues(w.s.Topic, w.part)
	backoff := w.r.cfg.RestartBackoff
	for {
		committed, err := w.session(ctx, lag.Set)
		if ctx.Err() != nil {
			if !errors.Is(err, context.Canceled) {
				w.log.Warn("stream session ended with an error while stopping", "err", err)
			}
			return
		}
		w.r.m.restarts.WithLabelValues(w.s.Topic, w.part).Inc()
		if committed {
			backoff = w.r.cfg.RestartBackoff
		}
		w.log.Warn("stream session failed; restarting from the log", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		if !committed {
			backoff = min(2*backoff, w.r.cfg.MaxRestartBackoff)
		}
	}
}

// session is steps 2 to 5 of the package doc with one client. It returns
// whether it committed anything, and the error that ended it.
func (w *worker) session(ctx context.Context, setLag func(float64)) (committed bool, err error) {
	cl, err := kgo.NewClient(append(slices.Clone(w.r.kopts),
		kgo.TransactionalID(w.txnID),
		kgo.TransactionTimeout(w.r.cfg.TransactionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return false, fmt.Errorf("new transactional client: %w", err)
	}
	defer cl.Close()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return false, fmt.Errorf("init producer id of %s: %w", w.txnID, err)
	}
	last, err := w.tail(ctx, cl)
	if err != nil {
		return false, err
	}
	// Checked before anything is deleted: rows the log seems to confirm
	// may be new rows of a reset database.
	if _, err := w.head(ctx, last); err != nil {
		return false, err
	}
	if err := w.deleteThrough(ctx, 0, last); err != nil {
		return false, err
	}
	w.log.Debug("resuming after the log's last sequence", "seq", last)
	var next chan batch // the batch after the one being published, read meanwhile
	for {
		var b batch
		if next != nil {
			b, next = <-next, nil
		} else {
			b.head, b.rows, b.err = w.pending(ctx, last)
		}
		head, rows, err := b.head, b.rows, b.err
		if err != nil {
			return committed, err
		}
		setLag(float64(head - last))
		if len(rows) == 0 {
			select {
			case <-ctx.Done():
				return committed, ctx.Err()
			case <-w.wake:
				continue
			}
		}
		if rows[0].seq != last+1 {
			// Rows between were confirmed in a log that no longer holds
			// them (the broker's data was reset); what is left is
			// published from here on.
			w.log.Warn("outbox resumes past the log's last sequence", "log_seq", last, "outbox_seq", rows[0].seq)
		}
		if len(rows) == w.r.cfg.BatchSize {
			// A full batch: more rows are likely waiting. Reading them while
			// this batch is produced overlaps the two round trips that
			// otherwise alternate (issue 9). The rows are committed and
			// never change; if this batch fails, the session ends and they
			// are dropped unread.
			after := rows[len(rows)-1].seq
			next = make(chan batch, 1)
			go func() {
				var nb batch
				nb.head, nb.rows, nb.err = w.pending(ctx, after)
				next <- nb
			}()
		}
		if err := w.publish(ctx, cl, rows); err != nil {
			return committed, err
		}
		committed = true
		last = rows[len(rows)-1].seq
	}
}

// batch is one read of the outbox: the stream's head and the rows after a
// sequence.
type batch struct {
	head int64
	rows []row
	err  error
}

type row struct {
	seq     int64
	id      string
	schema  string
	key     []byte
	value   []byte
	headers []byte
}

// head returns the stream's highest handed-out sequence, refusing a log that
// confirms more (last) than the outbox ever handed out.
func (w *worker) head(ctx context.Context, last int64) (int64, error) {
	var head int64
	err := w.r.pool.QueryRow(ctx, `
		SELECT coalesce((SELECT next_seq - 1 FROM outbox_streams WHERE topic = $1 AND partition = $2), 0)`,
		w.s.Topic, w.s.Partition).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("read sequence of %s: %w", w.s, err)
	}
	if last > head {
		return 0, fmt.Errorf("the log of %s is at sequence %d but the outbox has handed out only %d: "+
			"the database was reset under a kept broker, or another deployment with env %q writes this topic; refusing to publish",
			w.s, last, head, w.r.cfg.Env)
	}
	return head, nil
}

// pending returns the stream's highest handed-out sequence and the next batch
// of rows after last.
func (w *worker) pending(ctx context.Context, last int64) (int64, []row, error) {
	head, err := w.head(ctx, last)
	if err != nil {
		return 0, nil, err
	}
	if last == head {
		return head, nil, nil
	}
	rows, err := w.r.pool.Query(ctx, `
		SELECT seq, record_id, schema, key, value, headers::text FROM outbox
		WHERE topic = $1 AND partition = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
		w.s.Topic, w.s.Partition, last, w.r.cfg.BatchSize)
	if err != nil {
		return 0, nil, fmt.Errorf("read outbox of %s: %w", w.s, err)
	}
	var out []row
	var rw row
	for rows.Next() {
		if err := rows.Scan(&rw.seq, &rw.id, &rw.schema, &rw.key, &rw.value, &rw.headers); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("read outbox of %s: %w", w.s, err)
		}
		out = append(out, rw)
		rw = row{}
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("read outbox of %s: %w", w.s, err)
	}
	return head, out, nil
}

func (w *worker) record(rw row) (*kgo.Record, error) {
	var extra []outbox.Header
	if err := json.Unmarshal(rw.headers, &extra); err != nil {
		return nil, fmt.Errorf("decode headers of %s seq %d: %w", w.s, rw.seq, err)
	}
	hs := make([]kgo.RecordHeader, 0, 3+len(extra))
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderSchema, Value: []byte(rw.schema)},
		kgo.RecordHeader{Key: HeaderID, Value: []byte(rw.id)},
		kgo.RecordHeader{Key: HeaderSeq, Value: strconv.AppendInt(nil, rw.seq, 10)},
	)
	for _, h := range extra {
		hs = append(hs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return &kgo.Record{Topic: w.s.Topic, Partition: w.s.Partition, Key: rw.key, Value: rw.value, Headers: hs}, nil
}

// publish writes rows in one transaction and, once it committed, deletes
// them. It runs to the end even if ctx is canceled meanwhile (bounded by the
// transaction timeout): stopping finishes the in-flight transaction.
func (w *worker) publish(ctx context.Context, cl *kgo.Client, rows []row) (err error) {
	recs := make([]*kgo.Record, len(rows))
	for i, rw := range rows {
		if recs[i], err = w.record(rw); err != nil {
			return err
		}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.r.cfg.TransactionTimeout)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			w.r.m.transactions.WithLabelValues("aborted").Inc()
		}
	}()
	if err := w.step(pctx, StepBeforeProduce); err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		first error
	)
	for _, rec := range recs {
		cl.Produce(pctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(pctx); err != nil {
		return w.abandon(ctx, cl, fmt.Errorf("flush: %w", err))
	}
	mu.Lock()
	perr := first
	mu.Unlock()
	if perr != nil {
		return w.abandon(ctx, cl, fmt.Errorf("produce: %w", perr))
	}
	if err := w.step(pctx, StepAfterFlush); err != nil {
		return err
	}
	if err := cl.EndTransaction(pctx, kgo.TryCommit); err != nil {
		return w.abandon(ctx, cl, fmt.Errorf("commit: %w", err))
	}
	committed = true
	w.r.m.transactions.WithLabelValues("committed").Inc()
	w.r.m.published.WithLabelValues(w.s.Topic).Add(float64(len(recs)))
	if err := w.step(pctx, StepAfterCommit); err != nil {
		return err
	}
	// Rows below this batch were deleted by the batches before it (or the
	// session's start): bounding the range keeps each delete from walking
	// the index entries of every row deleted before (issue 9).
	return w.deleteThrough(pctx, rows[0].seq, rows[len(rows)-1].seq)
}

// abandon returns err after, when the relay is stopping, aborting the open
// transaction so read_committed readers are not held back until it times
// out. Otherwise the next session's ProducerID aborts it.
func (w *worker) abandon(ctx context.Context, cl *kgo.Client, err error) error {
	if ctx.Err() == nil {
		return err
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	aerr := cl.AbortBufferedRecords(actx)
	if aerr == nil {
		aerr = cl.EndTransaction(actx, kgo.TryAbort)
	}
	if aerr != nil {
		w.log.Warn("cannot abort the transaction on stop; the broker aborts it at its timeout", "err", aerr)
	}
	return err
}

func (w *worker) step(ctx context.Context, s Step) error {
	if w.r.hook == nil {
		return nil
	}
	if err := w.r.hook(ctx, w.s, s); err != nil {
		return fmt.Errorf("step %s: %w", s, err)
	}
	return nil
}

// deleteThrough deletes the rows the log confirms: sequence seq and below,
// from sequence from on (0: all of them).
func (w *worker) deleteThrough(ctx context.Context, from, seq int64) error {
	_, err := w.r.pool.Exec(ctx, `DELETE FROM outbox WHERE topic = $1 AND partition = $2 AND seq >= $3 AND seq <= $4`,
		w.s.Topic, w.s.Partition, from, seq)
	if err != nil {
		return fmt.Errorf("delete published rows of %s: %w", w.s, err)
	}
	return nil
}

// tail returns the highest gridsettle-seq among the committed records of the
// stream's partition (0 if there is none), reading back from the last stable
// offset in widening windows.
func (w *worker) tail(ctx context.Context, cl *kgo.Client) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, tailTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, w.s.Topic)
	if err != nil {
		return 0, fmt.Errorf("list start offsets of %s: %w", w.s.Topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, w.s.Topic)
	if err != nil {
		return 0, fmt.Errorf("list last stable offsets of %s: %w", w.s.Topic, err)
	}
	lo, ok := starts.Lookup(w.s.Topic, w.s.Partition)
	if !ok || lo.Err != nil {
		return 0, fmt.Errorf("start offset of %s: %w", w.s, cmp.Or(lo.Err, errors.New("partition not listed")))
	}
	end, ok := ends.Lookup(w.s.Topic, w.s.Partition)
	if !ok || end.Err != nil {
		return 0, fmt.Errorf("last stable offset of %s: %w", w.s, cmp.Or(end.Err, errors.New("partition not listed")))
	}
	for window := int64(tailWindow); ; window *= tailGrowth {
		from := max(lo.Offset, end.Offset-window)
		seq, found, err := w.scan(ctx, from, end.Offset)
		if err != nil || found || from == lo.Offset {
			return seq, err
		}
	}
}

// scan reads offsets [from, end) read_committed and returns the last
// gridsettle-seq found. Control records are kept so that the read provably
// reaches end-1: below the last stable offset the last offset is a
// transaction marker or a committed record, never an aborted one.
func (w *worker) scan(ctx context.Context, from, end int64) (int64, bool, error) {
	if from >= end {
		return 0, false, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(w.r.kopts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.s.Topic: {w.s.Partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return 0, false, fmt.Errorf("new tail reader: %w", err)
	}
	defer cl.Close()
	var (
		seq   int64
		found bool
	)
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			return 0, false, fmt.Errorf("read tail of %s: %w", w.s, errs[0].Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			rec := it.Next()
			if rec.Offset >= end {
				done = true
				break
			}
			if v, ok := seqOf(rec); ok && !rec.Attrs.IsControl() {
				seq, found = v, true
			}
			if rec.Offset >= end-1 {
				done = true
				break
			}
		}
	}
	return seq, found, nil
}

// seqOf is the record's gridsettle-seq header, if it has a valid one.
func seqOf(rec *kgo.Record) (int64, bool) {
	for _, h := range rec.Headers {
		if h.Key == HeaderSeq {
			v, err := strconv.ParseInt(string(h.Value), 10, 64)
			return v, err == nil && v > 0
		}
	}
	return 0, false
}

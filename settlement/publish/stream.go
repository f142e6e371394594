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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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

// CloudEvents 1.0 attributes in the Kafka protocol binding's binary mode,
// on every record (meters/README.md "Schemas and CloudEvents"): ce_id is the
// gridsettle-id, ce_type the gridsettle-schema, ce_source
// gridsettle/{Config.Env}, ce_time when the outbox row was written (the
// transaction that computed the fact), and content-type application/json
// unless the row carries its own (outbox.HeaderContentType).
const (
	HeaderCESpecVersion = "ce_specversion"
	HeaderCEID          = "ce_id"
	HeaderCESource      = "ce_source"
	HeaderCEType        = "ce_type"
	HeaderCETime        = "ce_time"
	CESpecVersion       = "1.0"
	CESourcePrefix      = "gridsettle/"
	ContentTypeJSON     = "application/json"
)

// Header values shared by every record; the client never writes to them.
var (
	ceSpecVersion = []byte(CESpecVersion)
	contentJSON   = []byte(ContentTypeJSON)
)

const (
	// tailWindow is the first number of offsets read back from the last
	// stable offset; it grows tailGrowth-fold while only aborted records
	// and markers are found.
	tailWindow = 256
	tailGrowth = 16
	// tailTimeout bounds each wait of reading the tail (listing offsets,
	// each fetch): a read that makes no progress restarts the session
	// instead of hanging; one that does goes on.
	tailTimeout = 30 * time.Second
)

// worker relays one stream while its lease is held.
type worker struct {
	r     *Relay
	s     Stream
	lease *leaseConn
	txnID string
	part  string // the partition label value
	log   *slog.Logger
	wake  chan struct{}
	// limit is the most rows of the next transaction: BatchSize, halved
	// after a transaction that timed out or that the log refused as a
	// whole, doubled back after each commit. Only the worker's goroutine
	// uses it and parked.
	limit  int
	parked bool
	// rowBytes is a running average of a row's key and value bytes, from
	// which readLimit asks for about BatchBytes of rows.
	rowBytes int
}

func newWorker(r *Relay, s Stream, lease *leaseConn) *worker {
	return &worker{
		r:     r,
		s:     s,
		lease: lease,
		txnID: fmt.Sprintf("gridsettle-%s-%s-%d", r.cfg.Env, s.Topic, s.Partition),
		part:  strconv.Itoa(int(s.Partition)),
		log:   r.log.With("stream", s.String()),
		wake:  make(chan struct{}, 1),
		limit: r.cfg.BatchSize,
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
	defer w.r.m.parked.DeleteLabelValues(w.s.Topic, w.part)
	backoff := w.r.cfg.RestartBackoff
	for {
		committed, err := w.session(ctx, lag.Set)
		if ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(err, context.Canceled) || errors.Is(cause, errLeaseLost) {
				w.log.Warn("stream session ended with an error while stopping", "err", err, "cause", cause)
			}
			return
		}
		if pe := (*parkedError)(nil); errors.As(err, &pe) {
			// Retrying cannot help until an operator recreates the topic or
			// its partitions: check again slowly, without a log line each
			// time.
			if !w.parked {
				w.log.Error("stream parked: its topic or partition does not exist; its rows wait in the outbox",
					"reason", pe.reason, "err", err, "check_every", w.r.cfg.DiscoverInterval)
			}
			w.park(ctx, pe)
			if !sleep(ctx, w.r.cfg.DiscoverInterval) {
				return
			}
			continue
		}
		w.r.m.restarts.WithLabelValues(w.s.Topic, w.part).Inc()
		// A refused row moved aside, or a batch halved, is progress: the
		// next session starts at once instead of backing off further.
		if committed || errors.As(err, new(*refusedError)) || errors.As(err, new(*shrinkError)) {
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
	cl, err := w.sessionClient(ctx)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	last, err := w.resume(ctx, cl)
	if err != nil {
		return false, err
	}
	cur := &outboxCursor{last: last}
	defer func() {
		// Stopping or failing: what the log confirmed need not wait for
		// the next session's tail read to be deleted. A read still in
		// flight may delete the same rows: deleting twice is harmless.
		if left := cur.reading.then(cur.done); !left.empty() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.r.cfg.TransactionTimeout)
			defer cancel()
			if derr := w.confirm(dctx, left); derr != nil {
				w.log.Warn("published rows left for the next session to delete", "err", derr)
			}
		}
	}()
	for {
		b := cur.read(ctx, w)
		if b.err != nil {
			return committed, b.err
		}
		w.observe(b)
		setLag(float64(b.head - cur.last))
		if len(b.recs) == 0 {
			if !cur.done.empty() {
				// Read ahead before the last batch committed: read again,
				// which deletes that batch's rows, before going idle.
				continue
			}
			select {
			case <-ctx.Done():
				return committed, ctx.Err()
			case <-w.wake:
				continue
			}
		}
		if b.first != cur.last+1 {
			// Rows between were moved to the output quarantine, or
			// confirmed in a log that no longer holds them (the broker's
			// data was reset); what is left is published from here on.
			w.log.Info("outbox resumes past the log's last sequence", "log_seq", cur.last, "outbox_seq", b.first)
		}
		if b.last < b.head {
			cur.readAhead(ctx, w, b.last)
		}
		if !w.lease.held() {
			return committed, errLeaseLost
		}
		offset, err := w.publish(ctx, cl, b)
		if err != nil {
			var re *refusedError
			switch {
			case errors.As(err, &re) && re.seq != 0:
				if qerr := w.quarantine(ctx, re); qerr != nil {
					return committed, errors.Join(err, qerr)
				}
			case errors.As(err, &re), errors.As(err, new(*shrinkError)):
				w.limit = max(1, len(b.recs)/2)
			}
			return committed, err
		}
		committed = true
		w.limit = min(w.r.cfg.BatchSize, 2*w.limit)
		cur.published(b, offset)
	}
}

// sessionClient is a session's transactional client, with its producer id:
// step 2 of the package doc.
func (w *worker) sessionClient(ctx context.Context) (*kgo.Client, error) {
	// Past the lease's lifetime the stream may have a new holder, whom a
	// ProducerID, like a transaction, would fence; the lease session ends
	// (and stops the worker) at its next round trip.
	if !w.lease.held() {
		return nil, errLeaseLost
	}
	// Batches the client builds never exceed what the topic accepts, so
	// a record too large for it fails alone, before it is sent, instead of
	// taking its whole batch down at the broker.
	maxBytes, err := w.topicLimit(ctx)
	if err != nil {
		return nil, err
	}
	if err := w.unpark(ctx); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(slices.Clone(w.r.kopts),
		kgo.TransactionalID(w.txnID),
		kgo.TransactionTimeout(w.r.cfg.TransactionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(maxBytes),
	)...)
	if err != nil {
		return nil, fmt.Errorf("new transactional client: %w", err)
	}
	// The broker answers ProducerID only once a previous transaction of
	// the id has ended, which its timeout bounds; past that, something
	// else is wrong and the session restarts.
	pctx, cancel := context.WithTimeout(ctx, 3*w.r.cfg.TransactionTimeout)
	_, _, err = cl.ProducerID(pctx)
	cancel()
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("init producer id of %s: %w", w.txnID, err)
	}
	return cl, nil
}

// resume reads the log's tail and deletes the outbox rows it confirms: the
// session publishes from the sequence it returns on.
func (w *worker) resume(ctx context.Context, cl *kgo.Client) (last int64, err error) {
	confirmed, err := w.tail(ctx, cl)
	if err != nil {
		return 0, err
	}
	last = confirmed.to
	// Checked before anything is deleted: rows the log seems to confirm
	// may be new rows of a reset database.
	if _, err := w.head(ctx, last); err != nil {
		return 0, err
	}
	if err := w.confirm(ctx, confirmed); err != nil {
		return 0, err
	}
	w.log.Debug("resuming after the log's last sequence", "seq", last)
	return last, nil
}

// outboxCursor is where a session is in the outbox: the log's last
// sequence, the read running ahead of the batch being published, and the
// published rows not yet deleted.
type outboxCursor struct {
	last int64      // the log's last sequence: the tail's, then each commit's
	next chan batch // the batch after the one being published, read meanwhile
	// done holds the rows our own commits confirmed and no read has
	// been asked to delete yet; reading moves them to reading, which
	// the read deletes in its round trip if it succeeds.
	done, reading seqRange
}

// read is the next batch: the one read ahead, or else one read now, which
// deletes the rows done holds. On an error, reading keeps the rows its read
// was to delete.
func (c *outboxCursor) read(ctx context.Context, w *worker) batch {
	var b batch
	if c.next != nil {
		b, c.next = <-c.next, nil
	} else {
		c.reading, c.done = c.reading.then(c.done), seqRange{}
		b = w.fetch(ctx, c.last, c.reading, w.readLimit())
	}
	if b.err == nil {
		c.reading = seqRange{}
	}
	return b
}

// readAhead starts reading the rows after sequence after, deleting the
// rows done holds, while the batch up to it is produced. This overlaps the
// two round trips that otherwise alternate (measured). The rows are
// committed and never change; if the batch fails, the session ends and
// they are dropped unread.
func (c *outboxCursor) readAhead(ctx context.Context, w *worker, after int64) {
	c.reading, c.done = c.done, seqRange{}
	gone := c.reading
	next := make(chan batch, 1)
	c.next = next
	limit := w.readLimit() // the worker changes what it depends on while this read runs
	go func() { next <- w.fetch(ctx, after, gone, limit) }()
}

// published records b committed at offset: the log now ends at its last
// sequence, and its rows wait in done to be deleted by the next read.
func (c *outboxCursor) published(b batch, offset int64) {
	c.last = b.last
	c.done = c.done.then(seqRange{b.first, b.last, offset})
}

// readLimit is the row limit of the next read of the outbox: the
// transaction's row limit, or fewer when rows of the average size seen
// lately would exceed BatchBytes.
func (w *worker) readLimit() int {
	if w.rowBytes <= 0 {
		return w.limit
	}
	return max(1, min(w.limit, w.r.cfg.BatchBytes/w.rowBytes))
}

// observe adds a batch's rows to the average row size.
func (w *worker) observe(b batch) {
	if len(b.recs) == 0 {
		return
	}
	avg := max(1, b.bytes/len(b.recs))
	if w.rowBytes == 0 {
		w.rowBytes = avg
		return
	}
	w.rowBytes = (w.rowBytes + avg) / 2
}

// seqRange is the sequences from..to of a stream, confirmed in the log;
// to == 0: none. offset is where the log holds the record of seq to, or -1
// when unknown.
type seqRange struct{ from, to, offset int64 }

func (r seqRange) empty() bool { return r.to == 0 }

// then returns r extended by next, which follows it.
func (r seqRange) then(next seqRange) seqRange {
	switch {
	case r.empty():
		return next
	case next.empty():
		return r
	}
	return seqRange{r.from, next.to, next.offset}
}

// batch is one read of the outbox: the stream's head and the records of the
// rows after a sequence, first to last.
type batch struct {
	head        int64
	first, last int64
	recs        []*kgo.Record
	bytes       int // of the records' keys and values
	err         error
}

// SQL of the outbox reads, deletes and head.
const (
	headSQL = `
		SELECT coalesce((SELECT next_seq - 1 FROM outbox_streams WHERE topic = $1 AND partition = $2), 0)`
	// headers is NULL when it holds no extra header, as nearly every row:
	// nothing to decode. The byte cap is applied while the rows are read
	// (records): a running sum in SQL cost a fifth of the relay's
	// throughput (BenchmarkRelay), and the row limit the worker asks for
	// (readLimit) already keeps what is read past the cap small.
	pendingSQL = `
		SELECT seq, record_id, schema, key, value, nullif(headers, '[]')::text, created_at FROM outbox
		WHERE topic = $1 AND partition = $2 AND seq > $3 ORDER BY seq LIMIT $4`
	// The lower bound keeps each delete from walking the index entries of
	// every row deleted before it (measured).
	deleteSQL = `DELETE FROM outbox WHERE topic = $1 AND partition = $2 AND seq >= $3 AND seq <= $4`
	// The position only moves forward: a session's late delete must not
	// put back an older one.
	positionSQL = `
		INSERT INTO outbox_relay AS r (topic, partition, log_seq, log_offset) VALUES ($1, $2, $3, $4)
		ON CONFLICT (topic, partition) DO UPDATE SET log_seq = $3, log_offset = $4
		WHERE r.log_seq IS NULL OR r.log_seq < $3`
	// A delete that a crash loses is repeated by the next session, which
	// deletes every row the log confirms before it reads any: waiting for
	// its WAL flush would only hold a connection.
	asyncCommitSQL = `SELECT set_config('synchronous_commit', 'off', true)`
)

// head returns the stream's highest handed-out sequence, refusing a log that
// confirms more (last) than the outbox ever handed out.
func (w *worker) head(ctx context.Context, last int64) (int64, error) {
	var head int64
	if err := w.r.pool.QueryRow(ctx, headSQL, w.s.Topic, w.s.Partition).Scan(&head); err != nil {
		return 0, fmt.Errorf("read sequence of %s: %w", w.s, err)
	}
	return head, w.checkHead(head, last)
}

func (w *worker) checkHead(head, last int64) error {
	if last > head {
		return fmt.Errorf("the log of %s is at sequence %d but the outbox has handed out only %d: "+
			"the database was reset under a kept broker, or another deployment with env %q writes this topic; refusing to publish",
			w.s, last, head, w.r.cfg.Env)
	}
	return nil
}

// queueConfirm queues, for rows the log confirms (r), their delete and
// the record of their position in the log.
func (w *worker) queueConfirm(q *pgx.Batch, r seqRange) int {
	q.Queue(deleteSQL, w.s.Topic, w.s.Partition, r.from, r.to)
	if r.offset < 0 {
		return 1
	}
	q.Queue(positionSQL, w.s.Topic, w.s.Partition, r.to, r.offset)
	return 2
}

// fetch deletes the rows of gone (confirmed in the log), then reads the
// stream's head and the next batch of at most limit rows after last, all in
// one round trip.
func (w *worker) fetch(ctx context.Context, last int64, gone seqRange, limit int) (b batch) {
	var q pgx.Batch
	n := 0
	if !gone.empty() {
		q.Queue(asyncCommitSQL)
		n = 1 + w.queueConfirm(&q, gone)
	}
	q.Queue(headSQL, w.s.Topic, w.s.Partition)
	q.Queue(pendingSQL, w.s.Topic, w.s.Partition, last, limit)
	br := w.r.pool.SendBatch(ctx, &q)
	defer func() {
		if err := br.Close(); err != nil && b.err == nil {
			b = batch{err: fmt.Errorf("read outbox of %s: %w", w.s, err)}
		}
	}()
	for range n {
		if _, err := br.Exec(); err != nil {
			return batch{err: fmt.Errorf("delete published rows of %s: %w", w.s, err)}
		}
	}
	if err := br.QueryRow().Scan(&b.head); err != nil {
		return batch{err: fmt.Errorf("read sequence of %s: %w", w.s, err)}
	}
	if err := w.checkHead(b.head, last); err != nil {
		return batch{err: err}
	}
	rows, err := br.Query()
	if err != nil {
		return batch{err: fmt.Errorf("read outbox of %s: %w", w.s, err)}
	}
	// Sequences are gapless: head - last rows are waiting, or a few more if
	// some committed after the head was read.
	if err := w.records(rows, int(min(b.head-last, int64(limit))), &b); err != nil {
		return batch{err: fmt.Errorf("read outbox of %s: %w", w.s, err)}
	}
	return b
}

// records turns outbox rows into the records of b. A batch's bytes are
// copied into a few large chunks and its records and headers into two
// slices: allocating each field of each row cost more than reading it
// (measured). The CloudEvents headers repeat the id and schema slices and
// share the constant values, so they add only ce_time's bytes, once per
// producing transaction.
// size is the expected number of rows.
func (w *worker) records(rows pgx.Rows, size int, b *batch) error {
	defer rows.Close()
	const perRecord = 9 // headers of a row without extra ones
	var (
		recs    = make([]kgo.Record, 0, size)
		hdrs    = make([]kgo.RecordHeader, 0, perRecord*size)
		buf     arena
		seq     int64
		id      pgtype.DriverBytes
		sch     pgtype.DriverBytes
		key     pgtype.DriverBytes
		value   pgtype.DriverBytes
		extra   pgtype.DriverBytes
		created time.Time
		// Rows of one producing transaction share created_at: its text
		// is formatted once.
		lastCreated time.Time
		ceTime      []byte
	)
	source := buf.copy([]byte(CESourcePrefix + w.r.cfg.Env))
	dst := []any{&seq, &id, &sch, &key, &value, &extra, &created}
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return err
		}
		if len(recs) > 0 && b.bytes+len(key)+len(value) > w.r.cfg.BatchBytes {
			break // the rest is read again after this batch; Close drains it
		}
		b.bytes += len(key) + len(value)
		if len(recs) == 0 {
			b.first = seq
		}
		b.last = seq
		n := len(hdrs)
		schema, rid := buf.copy(sch), buf.copy(id)
		if ceTime == nil || !created.Equal(lastCreated) {
			ceTime, lastCreated = buf.appendTime(created), created
		}
		hdrs = append(hdrs,
			kgo.RecordHeader{Key: HeaderSchema, Value: schema},
			kgo.RecordHeader{Key: HeaderID, Value: rid},
			kgo.RecordHeader{Key: HeaderSeq, Value: buf.appendInt(seq)},
			kgo.RecordHeader{Key: HeaderCESpecVersion, Value: ceSpecVersion},
			kgo.RecordHeader{Key: HeaderCEID, Value: rid},
			kgo.RecordHeader{Key: HeaderCESource, Value: source},
			kgo.RecordHeader{Key: HeaderCEType, Value: schema},
			kgo.RecordHeader{Key: HeaderCETime, Value: ceTime},
		)
		typed := false
		if extra != nil {
			var hs []outbox.Header
			if err := json.Unmarshal(extra, &hs); err != nil {
				return fmt.Errorf("decode headers of seq %d: %w", seq, err)
			}
			for _, h := range hs {
				typed = typed || h.Key == outbox.HeaderContentType
				hdrs = append(hdrs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
		}
		if !typed {
			hdrs = append(hdrs, kgo.RecordHeader{Key: outbox.HeaderContentType, Value: contentJSON})
		}
		recs = append(recs, kgo.Record{Topic: w.s.Topic, Partition: w.s.Partition,
			Key: buf.copy(key), Value: buf.copy(value), Headers: hdrs[n:len(hdrs):len(hdrs)]})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	b.recs = make([]*kgo.Record, len(recs))
	for i := range recs {
		b.recs[i] = &recs[i]
	}
	return nil
}

// arenaChunk is the size of the chunks an arena allocates.
const arenaChunk = 64 << 10

// arena hands out copies of byte slices from large chunks. A chunk stays
// alive while any slice of it is referenced.
type arena struct{ chunk []byte }

func (a *arena) reserve(n int) {
	if a.chunk == nil || cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, max(arenaChunk, n))
	}
}

// copy returns a copy of b; nil stays nil (a NULL key is not an empty one).
func (a *arena) copy(b []byte) []byte {
	if b == nil {
		return nil
	}
	a.reserve(len(b))
	n := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[n:len(a.chunk):len(a.chunk)]
}

// appendInt returns the decimal digits of v.
func (a *arena) appendInt(v int64) []byte {
	a.reserve(20)
	n := len(a.chunk)
	a.chunk = strconv.AppendInt(a.chunk, v, 10)
	return a.chunk[n:len(a.chunk):len(a.chunk)]
}

// appendTime returns t in UTC as RFC 3339 with as many fraction digits as
// it needs.
func (a *arena) appendTime(t time.Time) []byte {
	a.reserve(len(time.RFC3339Nano))
	n := len(a.chunk)
	a.chunk = t.UTC().AppendFormat(a.chunk, time.RFC3339Nano)
	return a.chunk[n:len(a.chunk):len(a.chunk)]
}

// publish writes a batch in one transaction and returns the log offset of
// its last record. It runs to the end even if ctx is canceled meanwhile
// (bounded by the transaction timeout): stopping finishes the in-flight
// transaction; losing the lease does not. The caller deletes the batch's
// rows once it returned nil.
func (w *worker) publish(ctx context.Context, cl *kgo.Client, b batch) (offset int64, err error) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.r.cfg.TransactionTimeout)
	defer cancel()
	// A lost lease is no reason to finish: the stream's next holder may be
	// publishing already.
	defer context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), errLeaseLost) {
			cancel()
		}
	})()
	if err := cl.BeginTransaction(); err != nil {
		return 0, fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			w.r.m.transactions.WithLabelValues("aborted").Inc()
		}
	}()
	if err := w.step(pctx, StepBeforeProduce); err != nil {
		return 0, err
	}
	var (
		mu    sync.Mutex
		fails []*kgo.Record
		errs  []error
	)
	for _, rec := range b.recs {
		cl.Produce(pctx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				fails, errs = append(fails, r), append(errs, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(pctx); err != nil {
		return 0, w.abandon(ctx, cl, w.timedOut(ctx, pctx, fmt.Errorf("flush: %w", err)))
	}
	mu.Lock()
	perr := w.produceFailure(b, fails, errs)
	mu.Unlock()
	if perr != nil {
		return 0, w.abandon(ctx, cl, perr)
	}
	if err := w.step(pctx, StepAfterFlush); err != nil {
		return 0, err
	}
	if err := cl.EndTransaction(pctx, kgo.TryCommit); err != nil {
		return 0, w.abandon(ctx, cl, w.timedOut(ctx, pctx, fmt.Errorf("commit: %w", err)))
	}
	committed = true
	w.r.m.transactions.WithLabelValues("committed").Inc()
	w.r.m.published.WithLabelValues(w.s.Topic).Add(float64(len(b.recs)))
	return b.recs[len(b.recs)-1].Offset, w.step(pctx, StepAfterCommit)
}

// produceFailure is the error of a transaction whose records failed (fails
// with their errs), or nil. A failure the log gives for what a record is
// (refusal) is a refusedError, naming the row when it concerns exactly one,
// since retrying that row can never succeed.
func (w *worker) produceFailure(b batch, fails []*kgo.Record, errs []error) error {
	if len(fails) == 0 {
		return nil
	}
	var (
		refused *refusedError
		n       int
	)
	for i, r := range fails {
		reason, ok := refusal(errs[i])
		if !ok {
			continue
		}
		n++
		seq, _ := seqOf(r)
		if refused == nil || seq < refused.seq {
			refused = &refusedError{seq: seq, reason: reason, err: fmt.Errorf("produce: %w", errs[i])}
		}
	}
	switch {
	case refused == nil:
		return fmt.Errorf("produce: %w", errs[0])
	case n > 1 && len(b.recs) > 1:
		refused.seq = 0
	}
	return refused
}

// timedOut marks err as a transaction that ran out of time (rather than
// one stopped by ctx), so that the next session tries fewer rows.
func (w *worker) timedOut(ctx, pctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return &shrinkError{err}
	}
	return err
}

// abandon returns err after, when the relay is stopping, aborting the open
// transaction so read_committed readers are not held back until it times
// out. Otherwise the next session's ProducerID aborts it; so does the next
// holder's when the lease was lost, and an abort could then reach the
// broker after that ProducerID: the client's recovery of its failed
// producer id (KIP-360) may bump the epoch and fence the new holder.
func (w *worker) abandon(ctx context.Context, cl *kgo.Client, err error) error {
	if ctx.Err() == nil || errors.Is(context.Cause(ctx), errLeaseLost) {
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

// confirm deletes the rows of r, which the log confirms, and records where
// the log holds the last one, in one transaction.
func (w *worker) confirm(ctx context.Context, r seqRange) error {
	if r.empty() {
		return nil
	}
	var q pgx.Batch
	n := w.queueConfirm(&q, r)
	br := w.r.pool.SendBatch(ctx, &q)
	for range n {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("delete published rows of %s: %w", w.s, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("delete published rows of %s: %w", w.s, err)
	}
	return nil
}

// tail returns the last committed record of the stream's partition that
// carries a gridsettle-seq (seqRange{0, seq, offset}; empty if there is
// none). It reads forward from the position the last session recorded in
// outbox_relay when the log still holds that record there; otherwise
// (first session, a recreated topic, a position lost with an asynchronous
// commit) back from the last stable offset in widening windows.
func (w *worker) tail(ctx context.Context, cl *kgo.Client) (seqRange, error) {
	lctx, cancel := context.WithTimeout(ctx, tailTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(lctx, w.s.Topic)
	if err != nil {
		return seqRange{}, fmt.Errorf("list start offsets of %s: %w", w.s.Topic, err)
	}
	ends, err := adm.ListCommittedOffsets(lctx, w.s.Topic)
	if err != nil {
		return seqRange{}, fmt.Errorf("list last stable offsets of %s: %w", w.s.Topic, err)
	}
	lo, ok := starts.Lookup(w.s.Topic, w.s.Partition)
	if !ok || lo.Err != nil {
		return seqRange{}, fmt.Errorf("start offset of %s: %w", w.s, cmp.Or(lo.Err, errors.New("partition not listed")))
	}
	end, ok := ends.Lookup(w.s.Topic, w.s.Partition)
	if !ok || end.Err != nil {
		return seqRange{}, fmt.Errorf("last stable offset of %s: %w", w.s, cmp.Or(end.Err, errors.New("partition not listed")))
	}
	var logSeq, logOffset *int64
	err = w.r.pool.QueryRow(ctx, `SELECT log_seq, log_offset FROM outbox_relay WHERE topic = $1 AND partition = $2`,
		w.s.Topic, w.s.Partition).Scan(&logSeq, &logOffset)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return seqRange{}, fmt.Errorf("read log position of %s: %w", w.s, err)
	}
	if logOffset != nil && lo.Offset <= *logOffset && *logOffset < end.Offset {
		found, err := w.scan(ctx, *logOffset, end.Offset)
		if err != nil {
			return seqRange{}, err
		}
		if found.atFrom == *logSeq {
			return found.last, nil
		}
		w.log.Info("the log no longer holds the recorded position; searching its tail", "log_seq", *logSeq, "log_offset", *logOffset)
	}
	for window := int64(tailWindow); ; window *= tailGrowth {
		from := max(lo.Offset, end.Offset-window)
		found, err := w.scan(ctx, from, end.Offset)
		if err != nil || !found.last.empty() || from == lo.Offset {
			return found.last, err
		}
	}
}

// scanned is what a scan of the log found: the last committed record with a
// gridsettle-seq, and the seq of the record at the offset it started from
// (0 when that is not a committed record with one).
type scanned struct {
	last   seqRange
	atFrom int64
}

// scan reads offsets [from, end) read_committed. Control records are kept
// so that the read provably reaches end-1: below the last stable offset the
// last offset is a transaction marker or a committed record, never an
// aborted one.
func (w *worker) scan(ctx context.Context, from, end int64) (scanned, error) {
	var s scanned
	if from >= end {
		return s, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(w.r.kopts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.s.Topic: {w.s.Partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return s, fmt.Errorf("new tail reader: %w", err)
	}
	defer cl.Close()
	for done := false; !done; {
		pctx, cancel := context.WithTimeout(ctx, tailTimeout)
		fs := cl.PollFetches(pctx)
		cancel()
		if errs := fs.Errors(); len(errs) > 0 {
			return s, fmt.Errorf("read tail of %s: %w", w.s, errs[0].Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			rec := it.Next()
			if rec.Offset >= end {
				done = true
				break
			}
			if v, ok := seqOf(rec); ok && !rec.Attrs.IsControl() {
				s.last = seqRange{0, v, rec.Offset}
				if rec.Offset == from {
					s.atFrom = v
				}
			}
			if rec.Offset >= end-1 {
				done = true
				break
			}
		}
	}
	return s, nil
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

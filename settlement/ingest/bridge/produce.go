package bridge

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// producer is a new transactional client whose ProducerID has fenced every
// earlier bridge of the same id and aborted its open transaction.
func (b *Bridge) producer(ctx context.Context) (*kgo.Client, error) {
	id := TransactionalID(b.cfg.ClientID)
	cl, err := kgo.NewClient(append(slices.Clone(b.kopts),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(transactionTimeout),
		kgo.RecordDeliveryTimeout(transactionTimeout),
	)...)
	if err != nil {
		return nil, fmt.Errorf("new transactional client: %w", err)
	}
	// Bounded: commit calls this without cancellation.
	pctx, cancel := context.WithTimeout(ctx, endTimeout)
	defer cancel()
	if _, _, err := cl.ProducerID(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("init producer id of %s: %w", id, err)
	}
	return cl, nil
}

// commit produces batch in one transaction and commits it, retrying (with a
// new client after any failure; cl may be nil) until it commits, stop ends
// or the failure is fatal. It returns the client to go on with.
func (b *Bridge) commit(ctx, stop context.Context, cl *kgo.Client, batch []Delivery) (*kgo.Client, error) {
	tooLarge := make([]bool, len(batch))
	for attempt, backoff := 1, 100*time.Millisecond; ; attempt++ {
		var err error
		if cl == nil {
			cl, err = b.producer(ctx)
		}
		if err == nil {
			if err = b.transact(ctx, cl, batch, tooLarge); err == nil {
				b.setFailing(nil)
				return cl, nil
			}
		}
		b.setFailing(err)
		if fatal(err) {
			return cl, err
		}
		b.log.Warn("kafka transaction failed; retrying the batch", "attempt", attempt, "records", len(batch), "err", err)
		if cl != nil {
			cl.Close()
			cl = nil
		}
		select {
		case <-stop.Done():
			// Unacknowledged: the broker delivers the batch again.
			b.log.Warn("stopped with the batch unacknowledged", "records", len(batch), "err", err)
			return nil, stop.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// setFailing records err (nil: the last transaction committed) for Ready.
func (b *Bridge) setFailing(err error) {
	if err == nil {
		b.failing.Store(nil)
		return
	}
	b.failing.Store(&err)
}

// fatal errors end the bridge: another instance took its transactional id,
// or a step hook asked to stop.
func fatal(err error) bool {
	var hook hookError
	return errors.As(err, &hook) || errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

type hookError struct{ error }

func (e hookError) Unwrap() error { return e.error }

// transact is one attempt at batch's transaction. A record Kafka refuses as
// too large is marked in tooLarge, so the next attempt dead-letters it.
func (b *Bridge) transact(ctx context.Context, cl *kgo.Client, batch []Delivery, tooLarge []bool) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := b.step(ctx, StepBeforeProduce); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, transactionTimeout)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
	)
	recs := make([]*kgo.Record, len(batch))
	reasons := make([]string, len(batch))
	now := time.Now()
	for i, d := range batch {
		recs[i], reasons[i] = b.record(d, tooLarge[i], now)
		cl.Produce(pctx, recs[i], func(_ *kgo.Record, err error) {
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
				tooLarge[i] = true
			}
			first = cmp.Or(first, err)
		})
	}
	ferr := cl.Flush(pctx)
	mu.Lock()
	perr := first
	mu.Unlock()
	if err := cmp.Or(perr, ferr); err != nil {
		return b.abort(ctx, cl, fmt.Errorf("produce %d records: %w", len(batch), err))
	}
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer ecancel()
	if err := cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return b.abort(ctx, cl, fmt.Errorf("commit: %w", err))
	}
	b.m.transactions.WithLabelValues("committed").Inc()
	for i, r := range recs {
		b.m.committed.WithLabelValues(r.Topic).Inc()
		if reasons[i] != "" {
			b.m.deadLetters.WithLabelValues(reasons[i]).Inc()
		}
	}
	return nil
}

// abort ends the failed transaction so read_committed readers are not held
// back until it times out, and returns cause.
func (b *Bridge) abort(ctx context.Context, cl *kgo.Client, cause error) error {
	b.m.transactions.WithLabelValues("aborted").Inc()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	err := cl.AbortBufferedRecords(actx)
	if err == nil {
		err = cl.EndTransaction(actx, kgo.TryAbort)
	}
	if err != nil {
		b.log.Warn("cannot abort the transaction; the next producer id aborts it", "err", err)
	}
	return cause
}

func (b *Bridge) step(ctx context.Context, s Step) error {
	if b.hook == nil {
		return nil
	}
	if err := b.hook(ctx, s); err != nil {
		return hookError{fmt.Errorf("step %s: %w", s, err)}
	}
	return nil
}

// record is the Kafka record of d: its payload unchanged on its kind's
// topic, keyed by Key; or its dead letter, with the reason, when it does not
// fit the record size limit (or Kafka refused it as too large) or matched
// no filter.
func (b *Bridge) record(d Delivery, tooLarge bool, now time.Time) (*kgo.Record, string) {
	topic := b.cfg.Topics.Reads
	if d.Kind == Prices {
		topic = b.cfg.Topics.Prices
	}
	limit := b.cfg.MaxRecordBytes - recordReserve
	// A payload that cannot fit is not parsed for its key: it may be as
	// large as the broker allows.
	key := []byte(cut(d.Topic, maxTopicBytes))
	if len(d.Payload) <= limit {
		key, _ = Key(d.Kind, d.Topic, d.Payload)
	}
	headers := []kgo.RecordHeader{
		{Key: HeaderMQTTTopic, Value: []byte(cut(d.Topic, maxTopicBytes))},
		{Key: HeaderMQTTClient, Value: []byte(b.cfg.ClientID)},
	}
	size := len(key) + len(d.Payload) + headersSize(headers)
	if d.Kind != unrouted && !tooLarge && size <= limit {
		return &kgo.Record{Topic: topic, Key: key, Value: d.Payload, Headers: headers}, ""
	}
	reason := ReasonTooLarge
	if d.Kind == unrouted {
		reason, topic = ReasonUnsubscribed, ""
	}
	sum := sha256.Sum256(d.Payload)
	sumHex := hex.EncodeToString(sum[:])
	id := []byte("mqtt/" + sumHex)
	// A dead letter is an output record like the relay's, CloudEvents
	// headers included (meters/README.md "Schemas and CloudEvents"); its value
	// is the payload's bytes, not necessarily JSON.
	headers = append(headers,
		kgo.RecordHeader{Key: ingest.HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: ingest.HeaderSourceTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: publish.HeaderSchema, Value: []byte(ingest.DeadLetterSchema)},
		kgo.RecordHeader{Key: publish.HeaderID, Value: id},
		kgo.RecordHeader{Key: publish.HeaderCESpecVersion, Value: []byte(publish.CESpecVersion)},
		kgo.RecordHeader{Key: publish.HeaderCEID, Value: id},
		kgo.RecordHeader{Key: publish.HeaderCESource, Value: []byte("gridsettle/" + cmp.Or(b.cfg.Environment, "dev"))},
		kgo.RecordHeader{Key: publish.HeaderCEType, Value: []byte(ingest.DeadLetterSchema)},
		kgo.RecordHeader{Key: publish.HeaderCETime, Value: now.UTC().AppendFormat(nil, time.RFC3339Nano)},
		kgo.RecordHeader{Key: outbox.HeaderContentType, Value: []byte(ingest.DeadLetterContentType)},
	)
	value := d.Payload
	if len(key)+len(value)+headersSize(headers) > limit || tooLarge {
		headers = append(headers,
			kgo.RecordHeader{Key: ingest.HeaderTruncated, Value: []byte(strconv.Itoa(len(value)))},
			kgo.RecordHeader{Key: ingest.HeaderValueSHA256, Value: []byte(sumHex)})
		room := limit - len(key) - headersSize(headers)
		if tooLarge {
			// Kafka's own limit is lower than ours: keep only a sample.
			room = min(room, recordReserve)
		}
		value = value[:max(0, min(len(value), room))]
	}
	return &kgo.Record{Topic: b.cfg.Topics.DeadLetter, Key: key, Value: value, Headers: headers}, reason
}

func headersSize(hs []kgo.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

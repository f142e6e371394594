package publish

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Reasons a row is moved to the output quarantine (outbox_quarantine,
// migrations/00702_outbox_quarantine.sql).
const (
	// ReasonTooLarge: the record is larger than its topic accepts
	// (max.message.bytes), alone in its batch.
	ReasonTooLarge = "record_too_large"
	// ReasonInvalid: the broker refused the record itself as invalid or
	// corrupt (e.g. a null key on a compacted topic).
	ReasonInvalid = "record_invalid"
)

// Reasons a stream is parked.
const (
	ParkedTopicMissing     = "topic_missing"
	ParkedPartitionMissing = "partition_missing"
)

// defaultMaxMessageBytes is Kafka's default message.max.bytes, used when a
// topic's configuration does not say.
const defaultMaxMessageBytes = 1048588

// refusal is the quarantine reason of a produce error that concerns the
// record itself and would recur on every attempt, if err is one.
func refusal(err error) (string, bool) {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return ReasonTooLarge, true
	case errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage), errors.Is(err, kerr.InvalidTimestamp):
		return ReasonInvalid, true
	}
	return "", false
}

// refusedError ends a session whose batch the log refused for what its
// records are. With seq set, that one row is the cause; otherwise the
// batch is too large to tell, and the next session tries half of it.
type refusedError struct {
	seq    int64
	reason string
	err    error
}

func (e *refusedError) Error() string {
	if e.seq == 0 {
		return fmt.Sprintf("the log refused the batch (%s): %v", e.reason, e.err)
	}
	return fmt.Sprintf("the log refused seq %d (%s): %v", e.seq, e.reason, e.err)
}

func (e *refusedError) Unwrap() error { return e.err }

// shrinkError ends a session whose transaction ran out of time: the next
// session tries half as many rows.
type shrinkError struct{ err error }

func (e *shrinkError) Error() string {
	return "transaction timed out; halving the batch: " + e.err.Error()
}
func (e *shrinkError) Unwrap() error { return e.err }

// parkedError ends a session whose stream cannot exist in the log now.
type parkedError struct{ reason, detail string }

func (e *parkedError) Error() string { return e.detail }

// topicLimit returns the topic's max.message.bytes, or a parkedError when
// the stream's topic or partition does not exist. Other failures are
// errors to retry.
func (w *worker) topicLimit(ctx context.Context) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, tailTimeout)
	defer cancel()
	tds, err := w.r.adm.ListTopics(ctx, w.s.Topic)
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", w.s.Topic, err)
	}
	td, ok := tds[w.s.Topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return 0, &parkedError{ParkedTopicMissing, fmt.Sprintf("topic %s does not exist", w.s.Topic)}
	case td.Err != nil:
		return 0, fmt.Errorf("describe topic %s: %w", w.s.Topic, td.Err)
	}
	if _, ok := td.Partitions[w.s.Partition]; !ok {
		return 0, &parkedError{ParkedPartitionMissing,
			fmt.Sprintf("topic %s has %d partitions, not partition %d", w.s.Topic, len(td.Partitions), w.s.Partition)}
	}
	rcs, err := w.r.adm.DescribeTopicConfigs(ctx, w.s.Topic)
	if err != nil {
		return 0, fmt.Errorf("describe configuration of topic %s: %w", w.s.Topic, err)
	}
	rc, err := rcs.On(w.s.Topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return 0, fmt.Errorf("describe configuration of topic %s: %w", w.s.Topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			n, err := strconv.ParseInt(*c.Value, 10, 32)
			if err != nil || n < 512 {
				return 0, fmt.Errorf("topic %s: max.message.bytes %q is not a usable limit", w.s.Topic, *c.Value)
			}
			return int32(n), nil
		}
	}
	return defaultMaxMessageBytes, nil
}

const quarantineSQL = `
	WITH moved AS (
		DELETE FROM outbox WHERE topic = $1 AND partition = $2 AND seq = $3
		RETURNING topic, partition, seq, record_id, schema, key, value, headers, created_at)
	INSERT INTO outbox_quarantine (topic, partition, seq, record_id, schema, key, value, headers, created_at, reason, detail)
	SELECT topic, partition, seq, record_id, schema, key, value, headers, created_at, $4, $5 FROM moved`

// quarantine moves the row seq, which the log refused, to the output
// quarantine in one statement, so the stream goes on after it. Only the
// lease holder moves rows: a stale holder must not change what the current
// one reads.
func (w *worker) quarantine(ctx context.Context, e *refusedError) error {
	if !w.lease.held() {
		return errLeaseLost
	}
	// The detail is the client's or broker's error text (kerr's fixed
	// messages and sizes): ours, not the record's.
	tag, err := w.r.pool.Exec(ctx, quarantineSQL, w.s.Topic, w.s.Partition, e.seq, e.reason, e.err.Error())
	if err != nil {
		return fmt.Errorf("quarantine seq %d of %s: %w", e.seq, w.s, err)
	}
	if tag.RowsAffected() == 1 {
		w.r.m.quarantined.WithLabelValues(w.s.Topic, e.reason).Inc()
		w.log.Error("output record refused by the log; moved to the output quarantine", "seq", e.seq, "reason", e.reason, "err", e.err)
	}
	return nil
}

// park records that the stream's topic or partition is gone, where the
// status endpoint shows it, and counts it on this instance's gauge.
func (w *worker) park(ctx context.Context, e *parkedError) {
	w.r.m.parked.WithLabelValues(w.s.Topic, w.part).Set(1)
	if _, err := w.r.pool.Exec(ctx, `
		INSERT INTO outbox_relay AS r (topic, partition, parked_reason, parked_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (topic, partition) DO UPDATE SET parked_reason = $3, parked_at = coalesce(r.parked_at, now())`,
		w.s.Topic, w.s.Partition, e.reason); err != nil {
		w.log.Warn("cannot record the parked stream", "err", err)
	}
	w.parked = true
}

// unpark clears a parked state, this worker's or one an earlier holder
// left, once the stream's topic and partition exist.
func (w *worker) unpark(ctx context.Context) error {
	if _, err := w.r.pool.Exec(ctx, `
		UPDATE outbox_relay SET parked_reason = NULL, parked_at = NULL
		WHERE topic = $1 AND partition = $2 AND parked_reason IS NOT NULL`, w.s.Topic, w.s.Partition); err != nil {
		return fmt.Errorf("clear parked state of %s: %w", w.s, err)
	}
	if w.parked {
		w.log.Info("stream resumes: its topic and partition exist again")
	}
	w.r.m.parked.DeleteLabelValues(w.s.Topic, w.part)
	w.parked = false
	return nil
}

// Queryer is what the backlog readers need: a pool, a connection or a
// transaction.
type Queryer interface {
	Querier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ParkedStream is a stream the relay does not publish because its topic or
// partition does not exist (status: outbox.parked).
type ParkedStream struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Reason    string    `json:"reason"` // topic_missing or partition_missing
	Pending   int64     `json:"pending"`
	Since     time.Time `json:"since"`
}

// Backlog is what the relay has not published, and why.
type Backlog struct {
	Pending     int64          // outbox rows not yet confirmed in the log
	Quarantined int64          // rows the log refused, in the output quarantine
	Parked      []ParkedStream // streams waiting for their topic or partition
}

// ReadBacklog reads the backlog in one snapshot.
func ReadBacklog(ctx context.Context, db Queryer) (Backlog, error) {
	var b Backlog
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox_quarantine)`).
		Scan(&b.Pending, &b.Quarantined); err != nil {
		return Backlog{}, fmt.Errorf("count outbox rows: %w", err)
	}
	rows, err := db.Query(ctx, `
		SELECT s.topic, s.partition, s.parked_reason,
		       (SELECT count(*) FROM outbox o WHERE o.topic = s.topic AND o.partition = s.partition), s.parked_at
		FROM outbox_relay s WHERE s.parked_reason IS NOT NULL ORDER BY s.topic, s.partition`)
	if err != nil {
		return Backlog{}, fmt.Errorf("read parked streams: %w", err)
	}
	b.Parked, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ParkedStream])
	if err != nil {
		return Backlog{}, fmt.Errorf("read parked streams: %w", err)
	}
	return b, nil
}

// QuarantinedRecord is a row of the output quarantine.
type QuarantinedRecord struct {
	ID            int64
	Topic         string
	Partition     int32
	Seq           int64
	RecordID      string
	Schema        string
	Key           []byte
	Value         []byte
	Reason        string
	Detail        string
	CreatedAt     time.Time
	QuarantinedAt time.Time
}

// Quarantined lists the output quarantine in id order after afterID, only
// of topic when it is not empty, at most limit rows.
func Quarantined(ctx context.Context, db Queryer, topic string, afterID int64, limit int) ([]QuarantinedRecord, error) {
	rows, err := db.Query(ctx, `
		SELECT id, topic, partition, seq, record_id, schema, key, value, reason, detail, created_at, quarantined_at
		FROM outbox_quarantine WHERE id > $1 AND ($2 = '' OR topic = $2) ORDER BY id LIMIT $3`, afterID, topic, limit)
	if err != nil {
		return nil, fmt.Errorf("read output quarantine: %w", err)
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[QuarantinedRecord])
	if err != nil {
		return nil, fmt.Errorf("read output quarantine: %w", err)
	}
	return recs, nil
}

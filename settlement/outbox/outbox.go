// Package outbox is the transactional outbox every output of gridsettle goes
// through: statement lines, account charges, customer alerts and dead
// letters are written as outbox rows in the same Postgres transaction as the
// facts they report, and the relay (settlement/publish) moves them to Kafka
// inside Kafka transactions.
//
// Invariants:
//   - each output stream (topic, partition) has a gapless sequence starting
//     at 1, handed out under the stream row's lock, so sequence order is
//     commit order: a relay reading "seq > last published" never skips a row;
//   - a message's partition is chosen when it is written, with Kafka's
//     default keyed partitioner (murmur2), so a key always lands on the same
//     partition a plain producer would choose.
package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderContentType is the record header naming the media type of the
// value. The relay writes application/json unless a message sets its own
// in Headers (a dead letter, whose value is the input's bytes).
const HeaderContentType = "content-type"

// Header is an extra Kafka record header.
type Header struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Message is one record to publish.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	ID      string // gridsettle-id: unique per record, stable across replays
	Schema  string // gridsettle-schema, e.g. settlement.statement/v1
	Headers []Header
}

// Writer writes messages into the outbox. Partitions maps each output topic to
// its partition count; it is read once at startup from the cluster.
type Writer struct {
	partitions map[string]int32
	// keyed partitions keyed records: Kafka's murmur2 hash of the key, which
	// keeps no state, so one partitioner serves every call, concurrently. Making one per
	// call seeded a random source each time, which cost more than writing
	// the row (measured).
	keyed kgo.TopicPartitioner
}

// NewWriter returns a Writer for topics with the given partition counts.
func NewWriter(partitions map[string]int32) *Writer {
	return &Writer{partitions: partitions, keyed: kgo.StickyKeyPartitioner(nil).ForTopic("")}
}

// Partition is the partition Kafka's default partitioner chooses for key.
func (w *Writer) Partition(topic string, key []byte) (int32, error) {
	n, ok := w.partitions[topic]
	if !ok || n <= 0 {
		return 0, fmt.Errorf("outbox: topic %q has no known partition count", topic)
	}
	if key == nil {
		// Sticky: a random partition, as a fresh producer would pick.
		return int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{}, int(n))), nil
	}
	return int32(w.keyed.Partition(&kgo.Record{Key: key}, int(n))), nil
}

type stream struct {
	topic     string
	partition int32
}

// Enqueue writes msgs to the outbox inside tx. Call it last in the
// transaction: it locks the stream rows it touches until commit, which is what
// makes sequence order equal commit order.
func (w *Writer) Enqueue(ctx context.Context, tx pgx.Tx, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	by := map[stream][]Message{}
	for _, m := range msgs {
		p, err := w.Partition(m.Topic, m.Key)
		if err != nil {
			return err
		}
		s := stream{m.Topic, p}
		by[s] = append(by[s], m)
	}
	streams := make([]stream, 0, len(by))
	for s := range by {
		streams = append(streams, s)
	}
	// A fixed lock order keeps concurrent writers from deadlocking.
	slices.SortFunc(streams, func(a, b stream) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	var rows [][]any
	for _, s := range streams {
		ms := by[s]
		var first int64
		err := tx.QueryRow(ctx, `
			INSERT INTO outbox_streams AS o (topic, partition, next_seq) VALUES ($1, $2, 1 + $3)
			ON CONFLICT (topic, partition) DO UPDATE SET next_seq = o.next_seq + $3
			RETURNING next_seq - $3`, s.topic, s.partition, int64(len(ms))).Scan(&first)
		if err != nil {
			return fmt.Errorf("outbox: take sequence for %s/%d: %w", s.topic, s.partition, err)
		}
		for i, m := range ms {
			h, err := json.Marshal(m.Headers)
			if err != nil {
				return fmt.Errorf("outbox: encode headers: %w", err)
			}
			if m.Headers == nil {
				h = []byte("[]")
			}
			rows = append(rows, []any{s.topic, s.partition, first + int64(i), m.ID, m.Schema, m.Key, m.Value, string(h)})
		}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"},
		[]string{"topic", "partition", "seq", "record_id", "schema", "key", "value", "headers"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("outbox: write %d rows: %w", len(rows), err)
	}
	return nil
}

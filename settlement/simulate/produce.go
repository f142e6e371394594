package simulate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// ProduceOptions tune Produce.
type ProduceOptions struct {
	// TransactionalID of the producer; default "gridsettle-simulate". Two
	// producers with one id fence each other.
	TransactionalID string
	// TransactionRecords is how many records each transaction holds
	// (default 1000): a real upstream commits in batches, so consumers see
	// many transactions and their markers.
	TransactionRecords int
	// Partitions, when positive, creates the topics of the records that do
	// not exist yet with that many partitions.
	Partitions int32
}

// Produced is a record as the log holds it.
type Produced struct {
	Record
	Partition int32
	Offset    int64
}

// Partitioner is how Produce (and Assign) choose a record's partition: the
// murmur2 hash of the key, as Kafka's Java client does, so every record of
// one meter or settlement point lands in one partition.
func Partitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// Produce sends records in order with a transactional producer, committing
// every TransactionRecords records, and returns where each landed (same
// order as records). A transaction whose records fail is aborted and the
// error returned; records of earlier transactions stay committed.
func Produce(ctx context.Context, cfg kafka.Config, records []Record, opt ProduceOptions, log *slog.Logger) ([]Produced, error) {
	if opt.TransactionalID == "" {
		opt.TransactionalID = "gridsettle-simulate"
	}
	if opt.TransactionRecords <= 0 {
		opt.TransactionRecords = 1000
	}
	opts, err := cfg.ClientOpts()
	if err != nil {
		return nil, fmt.Errorf("simulate produce: %w", err)
	}
	opts = append(opts,
		kgo.TransactionalID(opt.TransactionalID),
		kgo.TransactionTimeout(time.Minute),
		kgo.RecordPartitioner(Partitioner()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("simulate produce: new client: %w", err)
	}
	defer cl.Close()
	if opt.Partitions > 0 {
		if err := kafka.EnsureTopics(ctx, cl, opt.Partitions, topicsOf(records)...); err != nil {
			return nil, fmt.Errorf("simulate produce: %w", err)
		}
	}
	out := make([]Produced, len(records))
	txns := 0
	for lo := 0; lo < len(records); lo += opt.TransactionRecords {
		hi := min(lo+opt.TransactionRecords, len(records))
		if err := produceTxn(ctx, cl, records[lo:hi], out[lo:hi]); err != nil {
			return nil, fmt.Errorf("simulate produce: transaction of records %d-%d: %w", lo, hi-1, err)
		}
		txns++
	}
	log.Info("simulated records produced", "records", len(records), "transactions", txns,
		"transactional_id", opt.TransactionalID)
	return out, nil
}

func produceTxn(ctx context.Context, cl *kgo.Client, recs []Record, out []Produced) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var (
		mu     sync.Mutex
		failed error
	)
	for i, r := range recs {
		kr := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
		cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = errors.Join(failed, err)
				return
			}
			out[i] = Produced{Record: r, Partition: kr.Partition, Offset: kr.Offset}
		})
	}
	flushErr := cl.Flush(ctx)
	mu.Lock()
	failed = errors.Join(failed, flushErr)
	mu.Unlock()
	commit := kgo.TryCommit
	if failed != nil {
		commit = kgo.TryAbort
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return errors.Join(failed, fmt.Errorf("end: %w", err))
	}
	if failed != nil {
		return fmt.Errorf("produce (aborted): %w", failed)
	}
	return nil
}

func topicsOf(records []Record) []string {
	var ts []string
	for _, r := range records {
		if !slices.Contains(ts, r.Topic) {
			ts = append(ts, r.Topic)
		}
	}
	return ts
}

// Assign places records as Produce would on topics of partitions partitions
// that start empty, without a broker: the same partitioner, offsets counted
// from 0 per partition. Real offsets differ (transaction markers take
// offsets too); use Produce's answer or a consumer for those.
func Assign(records []Record, partitions int32) []Produced {
	parts := map[string]kgo.TopicPartitioner{}
	next := map[string][]int64{}
	out := make([]Produced, len(records))
	for i, r := range records {
		tp, ok := parts[r.Topic]
		if !ok {
			tp = Partitioner().ForTopic(r.Topic)
			parts[r.Topic] = tp
			next[r.Topic] = make([]int64, partitions)
		}
		p := int32(tp.Partition(&kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}, int(partitions)))
		out[i] = Produced{Record: r, Partition: p, Offset: next[r.Topic][p]}
		next[r.Topic][p]++
	}
	return out
}

// WriteRecords writes records into dir as one file per topic, named
// "{topic}{suffix}.txt", one record per line as key TAB value, in order: the
// input of `kcat -P -t TOPIC -K '\t' -l FILE`.
func WriteRecords(dir, suffix string, records []Record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create records dir: %w", err)
	}
	for _, topic := range topicsOf(records) {
		path := filepath.Join(dir, topic+suffix+".txt")
		if err := writeLines(path, topic, records); err != nil {
			return err
		}
	}
	return nil
}

func writeLines(path, topic string, records []Record) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	for _, r := range records {
		if r.Topic != topic {
			continue
		}
		if bytes.ContainsAny(r.Key, "\t\n") || bytes.ContainsAny(r.Value, "\n") {
			f.Close()
			return fmt.Errorf("write %s: record with key %q cannot be written as one line", path, r.Key)
		}
		w.Write(r.Key)
		w.WriteByte('\t')
		w.Write(r.Value)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

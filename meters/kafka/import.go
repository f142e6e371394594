package kafka

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
)

// DefaultTransactionTimeout bounds one import's transaction. A crashed
// import leaves its transaction open, holding back every read_committed
// consumer of the partitions it touched, until the broker aborts it after
// this long.
const DefaultTransactionTimeout = time.Minute

// endTimeout bounds ending a transaction, which must not be cut short by
// the caller's cancellation: an interrupted EndTransaction leaves its outcome
// unknown.
const endTimeout = 30 * time.Second

// DefaultTopic is the contract's name of the reads topic.
const DefaultTopic = "ami.interval-reads"

// Config says where an Importer produces.
type Config struct {
	// Client reaches the cluster (seed brokers, TLS, SASL): the caller
	// builds it, e.g. from settlement/kafka's Config.ClientOpts, so that
	// meters does not import settlement.
	Client             []kgo.Opt
	Topic              string        // empty: DefaultTopic
	TransactionTimeout time.Duration // 0: DefaultTransactionTimeout
}

// Importer produces files' reads to the reads topic, one Kafka transaction
// per file.
type Importer struct {
	cfg Config
	log *slog.Logger
}

// NewImporter validates cfg; it connects only when Import is called.
func NewImporter(cfg Config, log *slog.Logger) (*Importer, error) {
	if len(cfg.Client) == 0 {
		return nil, errors.New("kafka import: no client options (at least kgo.SeedBrokers is required)")
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.TransactionTimeout <= 0 {
		cfg.TransactionTimeout = DefaultTransactionTimeout
	}
	return &Importer{cfg: cfg, log: log}, nil
}

// Receipt is what one committed import produced.
type Receipt struct {
	TransactionalID string // empty when there was nothing to produce
	Records         int
	Reads           int
}

// Import produces blocks (one file's) to the reads topic in one Kafka
// transaction, keyed by meter_id and spread by the client's default key
// partitioner, and commits it only when every record is acknowledged. On any
// error the transaction is aborted and nothing becomes visible to
// read_committed consumers. A block that breaks the meters/README.md rules
// fails the import before anything is produced.
func (im *Importer) Import(ctx context.Context, blocks []meters.ReadBlock) (Receipt, error) {
	var rc Receipt
	for i, b := range blocks {
		if rej := CheckReadBlock(b); rej != nil {
			return Receipt{}, fmt.Errorf("check record %d (%s %s from %s): %w",
				i+1, b.MeterID, b.Channel, b.Start.UTC().Format(time.RFC3339), rej)
		}
		rc.Reads += len(b.Values)
	}
	if len(blocks) == 0 {
		return Receipt{}, nil
	}
	rc.TransactionalID = newTransactionalID()
	opts := append(append([]kgo.Opt{}, im.cfg.Client...),
		kgo.TransactionalID(rc.TransactionalID),
		kgo.TransactionTimeout(im.cfg.TransactionTimeout),
		kgo.RecordDeliveryTimeout(im.cfg.TransactionTimeout),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Receipt{}, fmt.Errorf("create kafka client: %w", err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return Receipt{}, fmt.Errorf("begin transaction %s: %w", rc.TransactionalID, err)
	}
	promise := kgo.AbortingFirstErrPromise(cl)
	for _, b := range blocks {
		cl.Produce(ctx, &kgo.Record{
			Topic: im.cfg.Topic,
			Key:   []byte(b.MeterID),
			Value: EncodeReadBlock(b),
		}, promise.Promise())
	}
	flushErr := cl.Flush(ctx)
	if err := cmp.Or(promise.Err(), flushErr, ctx.Err()); err != nil {
		return Receipt{}, im.abort(ctx, cl, rc.TransactionalID, fmt.Errorf("produce %d records to %s: %w", len(blocks), im.cfg.Topic, err))
	}
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if err := cl.EndTransaction(endCtx, kgo.TryCommit); err != nil {
		// Per franz-go, a failed or unconfirmed commit is resolved by aborting,
		// which fences anything still open broker-side.
		return Receipt{}, im.abort(ctx, cl, rc.TransactionalID,
			fmt.Errorf("commit transaction %s (if its outcome was lost, importing the file again is safe: its reads are duplicates): %w",
				rc.TransactionalID, err))
	}
	rc.Records = len(blocks)
	im.log.Info("import committed", "transactional_id", rc.TransactionalID,
		"topic", im.cfg.Topic, "records", rc.Records, "reads", rc.Reads)
	return rc, nil
}

// abort drops whatever the transaction buffered or wrote and returns cause,
// joined with any failure to abort.
func (im *Importer) abort(ctx context.Context, cl *kgo.Client, id string, cause error) error {
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	err := cl.AbortBufferedRecords(endCtx)
	if err == nil {
		err = cl.EndTransaction(endCtx, kgo.TryAbort)
	}
	if err != nil {
		return errors.Join(cause, fmt.Errorf("abort transaction %s (the broker aborts it when it times out): %w", id, err))
	}
	im.log.Warn("import aborted", "transactional_id", id, "err", cause)
	return cause
}

// newTransactionalID is unique per import run, so concurrent imports never
// fence each other.
func newTransactionalID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "gridsettle-import-" + hex.EncodeToString(b[:])
}

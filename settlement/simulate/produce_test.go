package simulate_test

import (
	"bufio"
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// TestProduceTransactional produces a scenario in several transactions and
// reads it back read_committed: every record once, where Produce said, in
// order, on the partition Assign predicts.
func TestProduceTransactional(t *testing.T) {
	addrs := kafkatest.New(t)
	sc := generate(t, simulate.Config{Seed: 5, Meters: simulate.MinMeters, Days: 1})
	cfg := kafka.Config{Brokers: addrs}
	log := slog.New(slog.DiscardHandler)
	produced, err := simulate.Produce(t.Context(), cfg, sc.Records, simulate.ProduceOptions{TransactionRecords: 250}, log)
	if err != nil {
		t.Fatal(err)
	}
	predicted := simulate.Assign(sc.Records, kafkatest.Partitions)
	type pos struct {
		topic     string
		partition int32
		offset    int64
	}
	want := map[pos][]byte{}
	gaps := 0
	last := map[pos]int64{}
	for i, p := range produced {
		if p.Partition != predicted[i].Partition {
			t.Fatalf("record %d produced to partition %d, Assign says %d", i, p.Partition, predicted[i].Partition)
		}
		want[pos{p.Topic, p.Partition, p.Offset}] = p.Value
		tp := pos{p.Topic, p.Partition, 0}
		if prev, ok := last[tp]; ok && p.Offset != prev+1 {
			gaps++ // a transaction marker sits between
		}
		last[tp] = p.Offset
	}
	if len(want) != len(sc.Records) {
		t.Fatalf("%d distinct positions for %d records", len(want), len(sc.Records))
	}
	if gaps == 0 {
		t.Error("no transaction marker between produced records: one transaction only?")
	}

	opts, err := cfg.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(sc.Config.Topics.Reads, sc.Config.Topics.Prices),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := 0
	for seen < len(want) {
		fs := cl.PollFetches(t.Context())
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, ok := want[pos{r.Topic, r.Partition, r.Offset}]
			if !ok || !bytes.Equal(v, r.Value) {
				t.Errorf("%s/%d/%d: read %q, produced %q", r.Topic, r.Partition, r.Offset, r.Value, v)
			}
			delete(want, pos{r.Topic, r.Partition, r.Offset})
			seen++
		})
	}
}

func TestWriteRecords(t *testing.T) {
	sc := generate(t, simulate.Config{Seed: 5, Meters: simulate.MinMeters, Days: 1})
	dir := t.TempDir()
	if err := simulate.WriteRecords(dir, "", sc.Records); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{sc.Config.Topics.Reads, sc.Config.Topics.Prices} {
		f, err := os.Open(filepath.Join(dir, topic+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		var got []simulate.Record
		s := bufio.NewScanner(f)
		s.Buffer(nil, 1<<20)
		for s.Scan() {
			k, v, ok := bytes.Cut(s.Bytes(), []byte("\t"))
			if !ok {
				t.Fatalf("%s: line without a tab: %q", topic, s.Bytes())
			}
			got = append(got, simulate.Record{Topic: topic, Key: bytes.Clone(k), Value: bytes.Clone(v)})
		}
		f.Close()
		var want []simulate.Record
		for _, r := range sc.Records {
			if r.Topic == topic {
				r.Reason = ""
				want = append(want, r)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines, %d records", topic, len(got), len(want))
		}
		for i := range got {
			if !sameRecord(got[i], want[i]) {
				t.Errorf("%s line %d: %q, want %q", topic, i+1, got[i].Value, want[i].Value)
			}
		}
	}
}

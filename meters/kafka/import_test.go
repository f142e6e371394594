package kafka_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/meters/greenbutton"
	"github.com/gridsettle/gridsettle/meters/kafka"
	"github.com/gridsettle/gridsettle/meters/nem12"
)

const topic = "ami.interval-reads"

func nemBlocks(t *testing.T, file string) []meters.ReadBlock {
	t.Helper()
	f, err := os.Open("../nem12/testdata/unzipped/" + file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks, _, err := nem12.Parse(f, nem12.Options{Version: 1, Source: "import:nem12:" + file})
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

func importer(t *testing.T, addrs []string) *kafka.Importer {
	t.Helper()
	im, err := kafka.NewImporter(kafka.Config{Client: []kgo.Opt{kgo.SeedBrokers(addrs...)}},
		slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// readAll reads every record of the topic up to its current end with the
// given isolation level, keeping control records so that the end is
// reached even when the last records are transaction markers.
func readAll(t *testing.T, addrs []string, level kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not an assertion
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level),
		kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading to the end offsets %v: %v", want, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

// wireRead is one read as a consumer sees it, in the meters/README.md JSON.
type wireRead struct {
	meter, channel, start, value, quality, source string
	seconds                                       int
	version                                       int64
}

func decodeReads(t *testing.T, recs []*kgo.Record) []wireRead {
	t.Helper()
	var out []wireRead
	for _, r := range recs {
		var w struct {
			MeterID         string   `json:"meter_id"`
			Channel         string   `json:"channel"`
			Start           string   `json:"start"`
			IntervalSeconds int      `json:"interval_seconds"`
			Values          []string `json:"values"`
			Quality         []string `json:"quality"`
			Version         int64    `json:"version"`
			Source          string   `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != w.MeterID {
			t.Errorf("key %q, meter_id %q", r.Key, w.MeterID)
		}
		start, err := time.Parse(time.RFC3339, w.Start)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range w.Values {
			out = append(out, wireRead{meter: w.MeterID, channel: w.Channel,
				start: start.Add(time.Duration(i*w.IntervalSeconds) * time.Second).Format(time.RFC3339),
				value: v, quality: w.Quality[i], source: w.Source, seconds: w.IntervalSeconds, version: w.Version})
		}
	}
	return out
}

func fileReads(blocks []meters.ReadBlock) []wireRead {
	var out []wireRead
	for _, b := range blocks {
		for _, r := range b.Reads() {
			out = append(out, wireRead{meter: r.MeterID, channel: string(r.Channel), start: r.Start.Format(time.RFC3339),
				value: r.Value.String(), quality: string(r.Quality), source: r.Source, seconds: r.IntervalSeconds, version: r.Version})
		}
	}
	return out
}

func sorted(rs []wireRead) []wireRead {
	slices.SortFunc(rs, func(a, b wireRead) int {
		return cmp.Or(cmp.Compare(a.meter, b.meter), cmp.Compare(a.channel, b.channel), cmp.Compare(a.start, b.start))
	})
	return rs
}

// TestImportReadBack imports real files and reads them back read_committed:
// exactly the files' reads; a second import produces identical records.
func TestImportReadBack(t *testing.T) {
	addrs := testCluster(t)
	im := importer(t, addrs)
	blocks := nemBlocks(t, "Example_NEM12_month_solar.csv")
	f, err := os.Open("../greenbutton/testdata/openespi/test_usage_data.xml")
	if err != nil {
		t.Fatal(err)
	}
	gb, _, err := greenbutton.Parse(f, greenbutton.Options{MeterPrefix: "GB-", Version: 1, Source: "import:greenbutton:test_usage_data.xml"})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	rc, err := im.Import(t.Context(), blocks)
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := im.Import(t.Context(), gb)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Records != 2 || rc.Reads != 2*8928 || rc2.Reads != 1340 || rc.TransactionalID == rc2.TransactionalID {
		t.Fatalf("receipts %+v %+v", rc, rc2)
	}
	got := readAll(t, addrs, kgo.ReadCommitted())
	want := append(fileReads(blocks), fileReads(gb)...)
	if g, w := sorted(decodeReads(t, got)), sorted(want); !slices.Equal(g, w) {
		t.Fatalf("read back %d reads, the files hold %d", len(g), len(w))
	}

	// A re-import of the same file: the same records, on the same partitions.
	if _, err := im.Import(t.Context(), blocks); err != nil {
		t.Fatal(err)
	}
	again := readAll(t, addrs, kgo.ReadCommitted())
	if len(again) != len(got)+len(blocks) {
		t.Fatalf("%d records after the re-import, want %d", len(again), len(got)+len(blocks))
	}
	seen := map[string][]int32{}
	for _, r := range again {
		k := string(r.Key) + "\x00" + string(r.Value)
		seen[k] = append(seen[k], r.Partition)
	}
	for _, b := range blocks {
		p := seen[b.MeterID+"\x00"+string(kafka.EncodeReadBlock(b))]
		if len(p) != 2 || p[0] != p[1] {
			t.Errorf("%s %s: the two imports' records are on partitions %v; want two identical records on one", b.MeterID, b.Channel, p)
		}
	}
}

// TestImportFailsMidway: the broker refuses the big records of a file
// (message.max.bytes) after accepting its small ones; the import aborts and
// read_committed sees nothing of it. The limit applies to a compressed
// batch: the month-of-solar records compress (snappy, franz-go's default)
// to 12.7-15 KB each and the small ones to about 0.3 KB, so 8,000 bytes
// refuses a big record however the producer batches it (20,000 refused
// only two big ones batched together, and the test failed when they were
// not).
func TestImportFailsMidway(t *testing.T) {
	addrs := testCluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8000"}))
	im := importer(t, addrs)
	blocks := append(nemBlocks(t, "Example_NEM12_multiple_meters.csv"), nemBlocks(t, "Example_NEM12_month_solar.csv")...)
	_, err := im.Import(t.Context(), blocks)
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("import: got %v, want MESSAGE_TOO_LARGE", err)
	}
	if n := len(readAll(t, addrs, kgo.ReadUncommitted())); n == 0 {
		t.Fatal("no record reached the log: the failure was not mid-way")
	}
	if n := len(readAll(t, addrs, kgo.ReadCommitted())); n != 0 {
		t.Fatalf("read_committed sees %d records of an aborted import", n)
	}
}

// TestImportRejectsBadBlocks: a block that breaks the contract fails the
// import before anything is produced.
func TestImportRejectsBadBlocks(t *testing.T) {
	addrs := testCluster(t)
	blocks := nemBlocks(t, "Example_NEM12_multiple_meters.csv")
	blocks[2].Values[5] = blocks[2].Values[5].Neg().Sub(dec("1"))
	_, err := importer(t, addrs).Import(t.Context(), blocks)
	var rej *meters.Rejection
	if !errors.As(err, &rej) || rej.Reason != meters.ValueOutOfRange {
		t.Fatalf("got %v, want value_out_of_range", err)
	}
	if n := len(readAll(t, addrs, kgo.ReadUncommitted())); n != 0 {
		t.Fatalf("%d records produced", n)
	}
}

// TestImportCancelled: a cancelled import aborts; nothing is visible.
func TestImportCancelled(t *testing.T) {
	addrs := testCluster(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := importer(t, addrs).Import(ctx, nemBlocks(t, "Example_NEM12_multiple_meters.csv"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := len(readAll(t, addrs, kgo.ReadCommitted())); n != 0 {
		t.Fatalf("read_committed sees %d records of a cancelled import", n)
	}
}

func TestNewImporterValidates(t *testing.T) {
	_, err := kafka.NewImporter(kafka.Config{}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("an importer without brokers was accepted")
	}
}

// testCluster starts an in-process kfake broker (the real Kafka protocol on
// loopback) with the reads topic this package produces to, closed when t
// ends. Its own, not settlement's test cluster: meters imports nothing from
// settlement, tests included.
func testCluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, kafka.DefaultTopic)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

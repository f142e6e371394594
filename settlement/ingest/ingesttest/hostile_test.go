package ingesttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// The suite is the same for the same seed and now, and says something of
// every record.
func TestSuiteIsDeterministic(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 31, 0, 0, time.UTC)
	a, b := New(kafka.DefaultTopics(), now, 15), New(kafka.DefaultTopics(), now, 15)
	if len(a.Cases) != len(b.Cases) {
		t.Fatalf("%d cases, then %d", len(a.Cases), len(b.Cases))
	}
	for i := range a.Cases {
		x, y := a.Cases[i], b.Cases[i]
		if x.Name != y.Name || !bytes.Equal(x.Record.Value, y.Record.Value) || !bytes.Equal(x.Record.Key, y.Record.Key) {
			t.Errorf("case %d differs: %s / %s", i, x.Name, y.Name)
		}
		if x.Applied() && len(x.Reads)+len(x.Prices) == 0 {
			t.Errorf("%s: applied, but applies nothing", x.Name)
		}
		if x.Record.Partition >= Partitions {
			t.Errorf("%s: partition %d", x.Name, x.Record.Partition)
		}
	}
}

func TestCheckDetail(t *testing.T) {
	for _, c := range []struct {
		detail string
		ok     bool
	}{
		{"channel: \"ééé\" is not \"import\" or \"export\"", true},
		{strings.Repeat("é", 200), true},
		{strings.Repeat("é", 201), false},
		{"cut mid-character \xc3", false},
		{"raw \x00 NUL", false},
		{`escaped \u0000 NUL`, true},
		{"", false},
	} {
		if err := CheckDetail(c.detail); (err == nil) != c.ok {
			t.Errorf("CheckDetail(%.30q) = %v, want ok %v", c.detail, err, c.ok)
		}
	}
}

func TestCheckDeadLetter(t *testing.T) {
	headers := func(reason string, extra ...kgo.RecordHeader) []kgo.RecordHeader {
		return append([]kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(reason)}, {Key: HeaderSourceTopic, Value: []byte("ami.interval-reads")},
			{Key: HeaderSourcePartition, Value: []byte("1")}, {Key: HeaderSourceOffset, Value: []byte("7")},
		}, extra...)
	}
	small := Case{Name: "small", Reasons: []meters.Reason{meters.MalformedJSON},
		Record: &kgo.Record{Topic: "ami.interval-reads", Partition: 1, Offset: 7, Key: []byte("M1"), Value: []byte("{")}}
	big := small
	big.Record = &kgo.Record{Topic: "ami.interval-reads", Partition: 1, Offset: 7, Key: []byte("M1"),
		Value: bytes.Repeat([]byte("x"), 1_200_000)}
	sum := sha256.Sum256(big.Record.Value)
	cut := big.Record.Value[:MaxDeadLetterBytes-500]
	truncated := []kgo.RecordHeader{{Key: HeaderTruncated, Value: []byte(strconv.Itoa(1_200_000))},
		{Key: HeaderValueSHA256, Value: []byte(hex.EncodeToString(sum[:]))}}
	for _, c := range []struct {
		name    string
		c       Case
		key     string
		value   []byte
		headers []kgo.RecordHeader
		ok      bool
	}{
		{"copy", small, "M1", []byte("{"), headers("malformed_json"), true},
		{"other reason", small, "M1", []byte("{"), headers("schema_violation"), false},
		{"other value", small, "M1", []byte("}"), headers("malformed_json"), false},
		{"other key", small, "M2", []byte("{"), headers("malformed_json"), false},
		{"small, marked truncated", small, "M1", []byte("{"), headers("malformed_json", truncated...), false},
		{"cut", big, "M1", cut, headers("malformed_json", truncated...), true},
		{"big, copied whole", big, "M1", big.Record.Value, headers("malformed_json"), false},
		{"cut, unmarked", big, "M1", cut, headers("malformed_json"), false},
		{"cut, not a prefix", big, "M1", append([]byte("y"), cut[1:]...), headers("malformed_json", truncated...), false},
	} {
		err := c.c.CheckDeadLetter("malformed_json", []byte(c.key), c.value, c.headers)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
	}
}

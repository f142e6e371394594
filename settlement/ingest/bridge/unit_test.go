package bridge

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
)

func TestKey(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), 400))
	for _, tc := range []struct {
		kind    Kind
		topic   string
		payload string
		want    string
		fromKey bool
	}{
		{Reads, "t", `{"meter_id":"MTR-1","values":["1"]}`, "MTR-1", true},
		{Prices, "t", `{"settlement_point":"HB_NORTH"}`, "HB_NORTH", true},
		{Prices, "t", `{"meter_id":"MTR-1"}`, "t", false},
		{Reads, "t", `{"meter_id":1}`, "t", false},
		{Reads, "t", `{"meter_id":"a b"}`, "t", false},
		{Reads, "t", `{"Meter_Id":"M"}`, "t", false},
		{Reads, "t", "{\"meter_id\":\"M\xff\"}", "t", false},
		{Reads, "t", "{\"meter_id\":\"M\\u0000\"}", "t", false},
		{Reads, "t", `[1,2]`, "t", false},
		{Reads, "t", ``, "t", false},
		{Reads, long, `x`, long[:maxTopicBytes], false},
	} {
		got, ok := Key(tc.kind, tc.topic, []byte(tc.payload))
		if string(got) != tc.want || ok != tc.fromKey {
			t.Errorf("Key(%v, %q): %q %v, want %q %v", tc.kind, tc.payload, got, ok, tc.want, tc.fromKey)
		}
	}
}

// FuzzKey: whatever the payload, a key is a valid identifier read from it,
// or a prefix of the topic of at most maxTopicBytes.
func FuzzKey(f *testing.F) {
	f.Add("gridsettle/reads/x", []byte(`{"meter_id":"M1"}`))
	f.Add("é", []byte("{\"meter_id\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, k := range []Kind{Reads, Prices} {
			key, ok := Key(k, topic, payload)
			if ok && !meters.ValidIdentifier(string(key)) {
				t.Fatalf("key %q from the payload is no identifier", key)
			}
			if !ok && (len(key) > maxTopicBytes || !bytes.HasPrefix([]byte(topic), key)) {
				t.Fatalf("fallback key %q is not a short prefix of %q", key, topic)
			}
		}
	})
}

func TestCollect(t *testing.T) {
	ctx := t.Context()
	feed := func(n int, size int) chan Delivery {
		in := make(chan Delivery, n)
		for range n {
			in <- Delivery{Payload: make([]byte, size)}
		}
		return in
	}
	long := time.Hour
	if got, stop := collect(ctx, feed(10, 1), Limits{Records: 4, Bytes: 1 << 20, Interval: long, Idle: long}); len(got) != 4 || stop {
		t.Errorf("by records: %d %v", len(got), stop)
	}
	if got, _ := collect(ctx, feed(10, 100), Limits{Records: 100, Bytes: 250, Interval: long, Idle: long}); len(got) != 3 {
		t.Errorf("by bytes: %d, want 3 (the one crossing the bound included)", len(got))
	}
	// Idle long enough that buffered messages are never mistaken for a
	// pause, however loaded the machine.
	if got, _ := collect(ctx, feed(3, 1), Limits{Records: 100, Bytes: 1 << 20, Interval: long, Idle: 200 * time.Millisecond}); len(got) != 3 {
		t.Errorf("by idleness: %d", len(got))
	}
	trickle := make(chan Delivery)
	go func() {
		for i := 0; ; i++ {
			select {
			case trickle <- Delivery{}:
			case <-ctx.Done():
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if got, _ := collect(ctx, trickle, Limits{Records: 1 << 30, Bytes: 1 << 30, Interval: 50 * time.Millisecond, Idle: long}); len(got) == 0 {
		t.Error("by interval: empty")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got, stop := collect(cctx, make(chan Delivery), Limits{Records: 1, Bytes: 1, Interval: long, Idle: long}); got != nil || !stop {
		t.Errorf("cancelled: %v %v", got, stop)
	}
}

func TestValidFilter(t *testing.T) {
	for f, ok := range map[string]bool{
		"gridsettle/reads/#": true, "a/+/b": true, "#": true, "+": true, "a/b": true,
		"": false, "a/#/b": false, "a#": false, "a/b+": false, "a\x00": false, "\xff": false,
	} {
		if err := ValidFilter(f); (err == nil) != ok {
			t.Errorf("ValidFilter(%q): %v", f, err)
		}
	}
}

package bridge

import (
	"context"
	"time"
)

// Delivery is one MQTT message handed to the bridge, not yet acknowledged.
type Delivery struct {
	Kind    Kind
	Topic   string // the MQTT topic it was published to
	Payload []byte
	// Ack sends its PUBACK; called only after the Kafka transaction that
	// holds it committed.
	Ack func()
}

// Limits close a batch (meters/README.md "Edge ingest: the MQTT bridge"):
// whichever is reached first.
type Limits struct {
	Records  int           // records in a batch
	Bytes    int           // payload bytes in a batch (a memory bound; the first message always fits)
	Interval time.Duration // since the batch's first message
	Idle     time.Duration // since the last message
}

// collect waits for a first delivery on in and gathers more until lim closes
// the batch. It returns what it gathered and whether ctx ended meanwhile
// (the batch may then still hold deliveries, which the caller may commit).
func collect(ctx context.Context, in <-chan Delivery, lim Limits) ([]Delivery, bool) {
	var first Delivery
	select {
	case first = <-in:
	case <-ctx.Done():
		return nil, true
	}
	batch, size := []Delivery{first}, len(first.Payload)
	interval := time.NewTimer(lim.Interval)
	defer interval.Stop()
	idle := time.NewTimer(lim.Idle)
	defer idle.Stop()
	for len(batch) < lim.Records && size < lim.Bytes {
		select {
		case d := <-in:
			batch, size = append(batch, d), size+len(d.Payload)
			idle.Reset(lim.Idle)
		case <-idle.C:
			return batch, false
		case <-interval.C:
			return batch, false
		case <-ctx.Done():
			return batch, true
		}
	}
	return batch, false
}

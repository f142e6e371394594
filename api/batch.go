package api

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// batchTimeout bounds one batched look-up: callers share it, so a look-up
// stuck on a dead connection must not hold every later request.
const batchTimeout = 10 * time.Second

// batcher answers look-ups of concurrent requests with one database round
// trip, never with one that was already in flight when a caller asked: a
// caller joins the next batch, which starts as soon as the batch in flight
// (if any) has ended. What a caller gets is therefore as fresh as a query of
// its own (a token revoked, or a run completed, before a request arrived is
// seen by it), while under load one round trip serves every request that
// arrived during the previous one instead of one round trip each (measured:
// two per request, the token and the completed runs, were a third of the
// statements route's cost).
type batcher[K comparable, V any] struct {
	// fetch looks up keys (distinct, at least one); a key missing from the
	// answer has no value.
	fetch func(ctx context.Context, keys []K) (map[K]V, error)

	mu     sync.Mutex
	flying bool         // a batch is being fetched
	next   *batch[K, V] // the batch gathering callers; nil: none yet
}

type batch[K comparable, V any] struct {
	ctx  context.Context // its first caller's values, without its cancellation
	keys map[K]struct{}
	done chan struct{} // closed once vals and err are set
	vals map[K]V
	err  error
}

// get returns k's value (ok false when there is none) from a batch that
// started after the call. The caller that finds no batch in flight fetches
// on its own goroutine; the others wait, each until its context ends.
func (b *batcher[K, V]) get(ctx context.Context, k K) (v V, ok bool, err error) {
	b.mu.Lock()
	bt := b.next
	if bt == nil {
		bt = &batch[K, V]{ctx: context.WithoutCancel(ctx), keys: map[K]struct{}{}, done: make(chan struct{})}
		b.next = bt
	}
	bt.keys[k] = struct{}{}
	lead := !b.flying
	if lead {
		b.flying, b.next = true, nil
	}
	b.mu.Unlock()
	if lead {
		b.run(bt)
	} else {
		select {
		case <-bt.done:
		case <-ctx.Done():
			return v, false, fmt.Errorf("wait for a batched look-up: %w", ctx.Err())
		}
	}
	if bt.err != nil {
		return v, false, bt.err
	}
	v, ok = bt.vals[k]
	return v, ok, nil
}

// run fetches bt, then starts the batch that gathered meanwhile, if any, on
// a new goroutine so that bt's caller answers its own request at once.
func (b *batcher[K, V]) run(bt *batch[K, V]) {
	keys := make([]K, 0, len(bt.keys))
	for k := range bt.keys {
		keys = append(keys, k)
	}
	ctx, cancel := context.WithTimeout(bt.ctx, batchTimeout)
	bt.vals, bt.err = b.fetch(ctx, keys)
	cancel()
	close(bt.done)
	b.mu.Lock()
	next := b.next
	b.next, b.flying = nil, next != nil
	b.mu.Unlock()
	if next != nil {
		go b.run(next)
	}
}

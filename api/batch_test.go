package api

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeFetches is a batcher fetch that answers each key with the number of
// the fetch (1, 2, ...), records the keys of each, and holds every fetch
// until released.
type fakeFetches struct {
	mu      sync.Mutex
	keys    [][]string
	started chan int      // the number of each fetch as it starts
	release chan struct{} // one receive per fetch
	err     error
}

func newFakeFetches() *fakeFetches {
	return &fakeFetches{started: make(chan int, 10), release: make(chan struct{}, 10)}
}

func (f *fakeFetches) fetch(ctx context.Context, keys []string) (map[string]int, error) {
	f.mu.Lock()
	slices.Sort(keys)
	f.keys = append(f.keys, keys)
	n := len(f.keys)
	f.mu.Unlock()
	f.started <- n
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, k := range keys {
		if k != "missing" {
			out[k] = n
		}
	}
	return out, nil
}

type answer struct {
	v   int
	ok  bool
	err error
}

func asyncGet(ctx context.Context, b *batcher[string, int], k string) <-chan answer {
	c := make(chan answer, 1)
	go func() {
		v, ok, err := b.get(ctx, k)
		c <- answer{v, ok, err}
	}()
	return c
}

// waitQueued waits until n distinct keys wait for the next batch.
func waitQueued(t *testing.T, b *batcher[string, int], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b.mu.Lock()
		queued := 0
		if b.next != nil {
			queued = len(b.next.keys)
		}
		b.mu.Unlock()
		if queued == n {
			return
		}
	}
	t.Fatalf("%d keys never queued", n)
}

// A caller that asks while a fetch is in flight is answered by the next
// fetch, never by the one that started before it asked; the callers that
// gathered meanwhile share that next fetch, each key once.
func TestBatcherAnswersFromAFetchThatStartedAfterTheCall(t *testing.T) {
	t.Parallel()
	f := newFakeFetches()
	b := &batcher[string, int]{fetch: f.fetch}
	first := asyncGet(t.Context(), b, "a")
	if n := <-f.started; n != 1 {
		t.Fatalf("fetch %d started", n)
	}
	later := []<-chan answer{asyncGet(t.Context(), b, "a"), asyncGet(t.Context(), b, "b")}
	waitQueued(t, b, 2)
	later = append(later, asyncGet(t.Context(), b, "a"), asyncGet(t.Context(), b, "missing"))
	waitQueued(t, b, 3)
	f.release <- struct{}{}
	if a := <-first; a != (answer{1, true, nil}) {
		t.Fatalf("first caller got %+v, want fetch 1", a)
	}
	if n := <-f.started; n != 2 {
		t.Fatalf("fetch %d started", n)
	}
	f.release <- struct{}{}
	for i, want := range []answer{{2, true, nil}, {2, true, nil}, {2, true, nil}, {0, false, nil}} {
		if a := <-later[i]; a != want {
			t.Errorf("later caller %d got %+v, want %+v", i, a, want)
		}
	}
	if want := [][]string{{"a"}, {"a", "b", "missing"}}; !slices.EqualFunc(f.keys, want, slices.Equal) {
		t.Errorf("fetched keys %v, want %v", f.keys, want)
	}
	// Nothing in flight: the next caller fetches at once.
	f.release <- struct{}{}
	if v, ok, err := b.get(t.Context(), "c"); v != 3 || !ok || err != nil {
		t.Errorf("idle get: %d %v %v", v, ok, err)
	}
}

// A fetch's error reaches every caller of its batch; a caller whose context
// ends stops waiting without failing the others.
func TestBatcherErrorsAndCancellation(t *testing.T) {
	t.Parallel()
	f := newFakeFetches()
	b := &batcher[string, int]{fetch: f.fetch}
	first := asyncGet(t.Context(), b, "a")
	<-f.started
	ctx, cancel := context.WithCancel(t.Context())
	leaving := asyncGet(ctx, b, "b")
	staying := asyncGet(t.Context(), b, "c")
	waitQueued(t, b, 2)
	cancel()
	if a := <-leaving; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("cancelled caller got %+v", a)
	}
	f.mu.Lock()
	f.err = errors.New("database away")
	f.mu.Unlock()
	f.release <- struct{}{}
	<-f.started
	f.release <- struct{}{}
	for _, c := range []<-chan answer{first, staying} {
		if a := <-c; a.err == nil || a.err.Error() != "database away" {
			t.Errorf("got %+v, want the fetch's error", a)
		}
	}
}

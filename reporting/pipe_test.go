package reporting

import (
	"context"
	"errors"
	"testing"
)

// TestRowPipe: rows reach write in order, all of them by close; once write
// fails, put reports its error and no further row is written.
func TestRowPipe(t *testing.T) {
	for _, n := range []int{0, 1, pipeBatch, 10*pipeBatch + 7} {
		var got []int
		p := startPipe(func(r int) error { got = append(got, r); return nil })
		for r := range n {
			if err := p.put(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.close(t.Context()); err != nil || len(got) != n {
			t.Fatalf("%d rows: wrote %d, %v", n, len(got), err)
		}
		for i, r := range got {
			if r != i {
				t.Fatalf("row %d written as %d", i, r)
			}
		}
	}
	bad := errors.New("row 1500 does not fit")
	written := 0
	p := startPipe(func(r int) error {
		if r == 1500 {
			return bad
		}
		written++
		return nil
	})
	var putErr error
	for r := 0; r < 100*pipeBatch && putErr == nil; r++ {
		putErr = p.put(t.Context(), r)
	}
	if !errors.Is(putErr, bad) || !errors.Is(p.close(t.Context()), bad) || written != 1500 {
		t.Fatalf("put %v, %d rows written", putErr, written)
	}
}

// TestRowPipeWalksAwayFromAStuckWrite: a write that never returns (a hung
// export folder) holds neither put nor close once their context ends, and
// the writing goroutine ends by itself when the write returns.
func TestRowPipeWalksAwayFromAStuckWrite(t *testing.T) {
	release := make(chan struct{})
	p := startPipe(func(int) error { <-release; return nil })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var putErr error
	for r := 0; putErr == nil; r++ {
		if r == (pipeDepth+1)*pipeBatch {
			// The writer holds the first batch and the channel the next
			// pipeDepth: the next hand-over can only wait.
			cancel()
		}
		putErr = p.put(ctx, r)
	}
	if !errors.Is(putErr, context.Canceled) {
		t.Fatalf("put: %v, want the context's error", putErr)
	}
	if err := p.close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("close: %v, want the context's error", err)
	}
	close(release)
	<-p.done
}

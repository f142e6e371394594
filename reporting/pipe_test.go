package reporting

import (
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
			if err := p.put(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.close(); err != nil || len(got) != n {
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
		putErr = p.put(r)
	}
	if !errors.Is(putErr, bad) || !errors.Is(p.close(), bad) || written != 1500 {
		t.Fatalf("put %v, %d rows written", putErr, written)
	}
}

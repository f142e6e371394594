package reporting

import "context"

// Rows of a Parquet file are read from the Source and checked on one
// goroutine and encoded on another, so that decoding rows from Postgres and
// encoding and compressing them overlap (on 2 cores they took about the
// same time, one after the other, as measured). The writer sees the same rows
// in the same order, so the bytes are those of a single goroutine.
const (
	pipeBatch = 1024 // rows handed over at a time
	pipeDepth = 4    // batches in flight
)

// rowPipe hands rows to a goroutine that calls write with each, in order.
// put and close are called from one goroutine. Neither waits past its
// context: a write stuck in the file system (a hung export folder) cannot
// be interrupted, so once ctx ends the caller walks away from the writing
// goroutine, which ends by itself when its write returns (full is closed).
type rowPipe[R any] struct {
	full, empty chan []R
	batch       []R
	failed      chan struct{} // closed when write failed
	done        chan struct{} // closed when the writing goroutine ended
	err         error         // write's error; read after failed or done
}

func startPipe[R any](write func(R) error) *rowPipe[R] {
	p := &rowPipe[R]{
		full: make(chan []R, pipeDepth), empty: make(chan []R, pipeDepth+2),
		failed: make(chan struct{}), done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		for b := range p.full {
			for _, r := range b {
				if p.err != nil {
					break // drain: the reader stops at its next hand-over
				}
				if err := write(r); err != nil {
					p.err = err
					close(p.failed)
				}
			}
			clear(b) // drop references to the rows' values
			p.empty <- b[:0]
		}
	}()
	return p
}

// put queues r; it returns write's error once writing failed, or ctx's
// once it ended.
func (p *rowPipe[R]) put(ctx context.Context, r R) error {
	if p.batch == nil {
		select {
		case p.batch = <-p.empty:
		default:
			p.batch = make([]R, 0, pipeBatch)
		}
	}
	p.batch = append(p.batch, r)
	if len(p.batch) < pipeBatch {
		return nil
	}
	select {
	case p.full <- p.batch:
		p.batch = nil
		return nil
	case <-p.failed:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close hands over the last rows, waits until all are written and returns
// write's error, if any. Rows are written in order, so that error concerns
// an earlier row than anything that stopped the reading. Once ctx ends it
// returns ctx's error without waiting for the writing goroutine.
func (p *rowPipe[R]) close(ctx context.Context) error {
	if len(p.batch) > 0 {
		select {
		case p.full <- p.batch: // a failed writer drains, so this is taken then too
		case <-ctx.Done():
			close(p.full)
			return ctx.Err()
		}
	}
	close(p.full)
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

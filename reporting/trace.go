package reporting

import (
	"context"
	"time"
)

// Trace receives the timings of an export as it is built and published,
// for benchmarks and diagnostics, in the manner of net/http/httptrace: set
// it on the context with WithTrace. Its functions are called synchronously
// from the exporting goroutine; nil ones are skipped. Nothing it sees
// reaches the folder's bytes.
type Trace struct {
	// FileWritten follows each Parquet file: took runs from creating the
	// file to its fsync, and so includes streaming its rows from the
	// Source, checking, encoding and hashing them.
	FileWritten func(f File, took time.Duration)
	// Verified follows Publish's read-back verification of the folder.
	Verified func(took time.Duration)
}

type traceKey struct{}

// WithTrace returns ctx carrying t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// traceOf is ctx's Trace; an empty one when there is none.
func traceOf(ctx context.Context) *Trace {
	if t, ok := ctx.Value(traceKey{}).(*Trace); ok && t != nil {
		return t
	}
	return &Trace{}
}

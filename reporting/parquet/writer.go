package parquet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/xitongsys/parquet-go/source"
	"github.com/xitongsys/parquet-go/writer"

	pq "github.com/xitongsys/parquet-go/parquet"
)

const (
	// pageSize is the target uncompressed page size; 1 MiB pages compress
	// about 7% better than the library's 8 KiB default (package doc, "What
	// the writer library needs").
	pageSize = 1 << 20
	// rowGroupSize bounds what the library buffers before writing a row
	// group: rows stream through, only one row group's pages are in memory.
	rowGroupSize = 128 << 20
)

// Libraries are the modules the files' bytes depend on, with their versions
// (go.mod pins them; a test keeps this list in step). Files and manifests
// record them, since an upgrade can change the bytes.
const Libraries = "github.com/xitongsys/parquet-go v1.6.2, github.com/klauspost/compress v1.20.3, github.com/golang/snappy v0.0.3"

// createdBy is every file's footer created_by.
const createdBy = "gridsettle export (" + Libraries + ")"

// Writer streams the rows of one export file, in natural-key order, to an
// io.Writer. It is not safe for concurrent use.
type Writer[R any] struct {
	name    string
	pw      *writer.ParquetWriter
	encode  func(R) (any, error)
	compare func(a, b R) int
	prev    R
	rows    int64
	closed  bool
	err     error // sticky: once the library failed, the file is unusable
}

// NewStatementWriter starts statements.parquet of layout l on out.
func NewStatementWriter(out io.Writer, c Codec, l Layout) (*Writer[Statement], error) {
	return byLayout(l, StatementsFile,
		func() (*Writer[Statement], error) { return newWriter(out, c, statementsSpecV1) },
		func() (*Writer[Statement], error) { return newWriter(out, c, statementsSpec) })
}

// NewIntervalWriter starts intervals.parquet of layout l on out.
func NewIntervalWriter(out io.Writer, c Codec, l Layout) (*Writer[Interval], error) {
	return byLayout(l, IntervalsFile,
		func() (*Writer[Interval], error) { return newWriter(out, c, intervalsSpecV1) },
		func() (*Writer[Interval], error) { return newWriter(out, c, intervalsSpec) })
}

// NewEstimateWriter starts estimates.parquet (LayoutV2) on out.
func NewEstimateWriter(out io.Writer, c Codec) (*Writer[Estimate], error) {
	return newWriter(out, c, estimatesSpec)
}

// NewLedgerWriter starts ledger.parquet on out.
func NewLedgerWriter(out io.Writer, c Codec) (*Writer[LedgerLine], error) {
	return newWriter(out, c, ledgerSpec)
}

func newWriter[R, Rec any](out io.Writer, c Codec, s spec[R, Rec]) (*Writer[R], error) {
	var codec pq.CompressionCodec
	switch c {
	case ZSTD:
		codec = pq.CompressionCodec_ZSTD
	case Snappy:
		codec = pq.CompressionCodec_SNAPPY
	default:
		return nil, fmt.Errorf("%s: compression %q: want zstd or snappy", s.name, c)
	}
	// np = 1: with more writer goroutines, dictionary pages differ from run
	// to run.
	pw, err := writer.NewParquetWriter(&writeFile{w: out}, new(Rec), 1)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	pw.MarshalFunc = marshalColumns
	pw.CompressionType = codec
	pw.PageSize = pageSize
	pw.RowGroupSize = rowGroupSize
	by := createdBy
	pw.Footer.CreatedBy = &by
	return &Writer[R]{
		name:    s.name,
		pw:      pw,
		encode:  func(r R) (any, error) { return s.encode(r) },
		compare: s.compare,
	}, nil
}

// Write appends r, which must come strictly after the previous row in
// natural-key order. A value that does not fit its column is an error that
// names the row and the column; nothing is rounded or truncated.
func (w *Writer[R]) Write(r R) error {
	switch {
	case w.closed:
		return fmt.Errorf("%s: write after close", w.name)
	case w.err != nil:
		return w.err
	}
	if w.rows > 0 && w.compare(w.prev, r) >= 0 {
		return fmt.Errorf("%s row %d: not after the previous row in natural-key order: %+v after %+v", w.name, w.rows+1, r, w.prev)
	}
	rec, err := w.encode(r)
	if err != nil {
		return fmt.Errorf("%s row %d: %w", w.name, w.rows+1, err)
	}
	if err := w.pw.Write(rec); err != nil {
		w.err = fmt.Errorf("write %s row %d: %w", w.name, w.rows+1, err)
		return w.err
	}
	w.prev = r
	w.rows++
	return nil
}

// Rows is the number of rows written so far.
func (w *Writer[R]) Rows() int64 { return w.rows }

// Close writes the last row group and the footer. It must be called exactly
// once: the library's own WriteStop appends a second footer when called
// twice, so Close refuses that. The file has no page index (column and
// offset indexes are optional, and the library's lack null pages and null
// counts).
func (w *Writer[R]) Close(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("%s: already closed", w.name)
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.pw.Flush(true); err != nil {
		return fmt.Errorf("flush %s: %w", w.name, err)
	}
	w.pw.RenameSchema()
	tidySchema(w.pw.Footer.Schema)
	ts := thrift.NewTSerializer()
	ts.Protocol = thrift.NewTCompactProtocolFactory().GetProtocol(ts.Transport)
	footer, err := ts.Write(ctx, w.pw.Footer)
	if err != nil {
		return fmt.Errorf("encode %s footer: %w", w.name, err)
	}
	tail := binary.LittleEndian.AppendUint32(nil, uint32(len(footer)))
	tail = append(tail, "PAR1"...)
	for _, b := range [][]byte{footer, tail} {
		if _, err := w.pw.PFile.Write(b); err != nil {
			return fmt.Errorf("write %s footer: %w", w.name, err)
		}
	}
	return nil
}

// tidySchema drops what the library sets on every schema element whether it
// applies or not: a field id of 0 on every column (readers that match
// columns by field id would see them all as one), and a type length,
// precision and scale of 0 on columns that are not fixed-length or decimal.
func tidySchema(elements []*pq.SchemaElement) {
	for _, e := range elements {
		e.FieldID = nil
		if e.GetType() != pq.Type_FIXED_LEN_BYTE_ARRAY || e.Type == nil {
			e.TypeLength = nil
		}
		if e.GetConvertedType() != pq.ConvertedType_DECIMAL || e.ConvertedType == nil {
			e.Precision, e.Scale = nil, nil
		}
	}
}

// writeFile adapts an io.Writer to the library's file interface; the writer
// only ever writes sequentially.
type writeFile struct {
	w   io.Writer
	err error
}

func (f *writeFile) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(p)
	f.err = err
	return n, err
}

var errWriteOnly = errors.New("export file is write-only")

func (f *writeFile) Read([]byte) (int, error)                  { return 0, errWriteOnly }
func (f *writeFile) Seek(int64, int) (int64, error)            { return 0, errWriteOnly }
func (f *writeFile) Close() error                              { return nil }
func (f *writeFile) Open(string) (source.ParquetFile, error)   { return nil, errWriteOnly }
func (f *writeFile) Create(string) (source.ParquetFile, error) { return nil, errWriteOnly }

package parquet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	pgo "github.com/parquet-go/parquet-go"
	"github.com/xitongsys/parquet-go/reader"
	"github.com/xitongsys/parquet-go/schema"
	"github.com/xitongsys/parquet-go/source"

	pq "github.com/xitongsys/parquet-go/parquet"
)

// readBatch is how many rows are decoded at a time: reading streams, so a
// file is never held in memory as rows.
const readBatch = 1024

// ReadStatements reads statements.parquet of layout l from r (size bytes),
// checks its schema and row order, and calls fn with every row. It returns
// the number of rows read.
func ReadStatements(ctx context.Context, r io.ReaderAt, size int64, l Layout, fn func(Statement) error) (int64, error) {
	return byLayout(l, StatementsFile,
		func() (int64, error) { return read(ctx, r, size, statementsSpecV1, fn) },
		func() (int64, error) { return read(ctx, r, size, statementsSpec, fn) })
}

// ReadIntervals reads intervals.parquet of layout l like ReadStatements.
func ReadIntervals(ctx context.Context, r io.ReaderAt, size int64, l Layout, fn func(Interval) error) (int64, error) {
	return byLayout(l, IntervalsFile,
		func() (int64, error) { return read(ctx, r, size, intervalsSpecV1, fn) },
		func() (int64, error) { return read(ctx, r, size, intervalsSpec, fn) })
}

// ReadEstimates reads estimates.parquet (LayoutV2) like ReadStatements.
func ReadEstimates(ctx context.Context, r io.ReaderAt, size int64, fn func(Estimate) error) (int64, error) {
	return read(ctx, r, size, estimatesSpec, fn)
}

// ReadLedger reads ledger.parquet like ReadStatements. The rows' LineNo is
// zero: line numbers are not a column.
func ReadLedger(ctx context.Context, r io.ReaderAt, size int64, fn func(LedgerLine) error) (int64, error) {
	return read(ctx, r, size, ledgerSpec, fn)
}

// read checks the file's schema against the one this package writes, then
// decodes its rows with github.com/parquet-go/parquet-go: a second,
// independent implementation reads back what the writer wrote, and, with
// typed values instead of reflection and an interface value per cell, at a
// quarter of the cost of the writer library's own reader (measured).
func read[R, Rec any](ctx context.Context, ra io.ReaderAt, size int64, s spec[R, Rec], fn func(R) error) (rows int64, err error) {
	// The libraries may panic on some malformed input; callers parse only
	// files whose hash matched a signed manifest, but a bad file must still
	// be an error, not a crash.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: not a readable Parquet file: %v", s.name, p)
		}
	}()
	columns, err := checkSchema[Rec](&readFile{ra: ra, size: size}, s.name)
	if err != nil {
		return 0, err
	}
	f, err := pgo.OpenFile(ra, size, pgo.SkipPageIndex(true), pgo.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", s.name, err)
	}
	r := pgo.NewReader(f)
	defer r.Close()
	var prev R
	batch := make([]pgo.Row, readBatch)
	for {
		if err := ctx.Err(); err != nil {
			return rows, err
		}
		n, readErr := r.ReadRows(batch)
		for _, v := range batch[:n] {
			if len(v) != columns {
				return rows, fmt.Errorf("%s row %d: %d values, want %d", s.name, rows+1, len(v), columns)
			}
			row, err := s.decode(v, &prev)
			if err != nil {
				return rows, fmt.Errorf("%s row %d: %w", s.name, rows+1, err)
			}
			if rows > 0 {
				if c := s.compare(prev, row); c > 0 || (c == 0 && !s.readTies) {
					return rows, fmt.Errorf("%s row %d: not after the previous row in natural-key order", s.name, rows+1)
				}
			}
			if err := fn(row); err != nil {
				return rows, err
			}
			prev = row
			rows++
		}
		switch {
		case errors.Is(readErr, io.EOF):
			if rows != f.NumRows() {
				return rows, fmt.Errorf("%s: %d rows, the footer says %d", s.name, rows, f.NumRows())
			}
			return rows, nil
		case readErr != nil:
			return rows, fmt.Errorf("read %s at row %d: %w", s.name, rows+1, readErr)
		}
	}
}

// checkSchema compares the file's schema with the one this package writes,
// column by column, so a file that merely parses is not taken for an export
// file. It returns the number of columns (the schema is flat).
func checkSchema[Rec any](f source.ParquetFile, name string) (int, error) {
	pr := &reader.ParquetReader{PFile: f}
	if err := pr.ReadFooter(); err != nil {
		return 0, fmt.Errorf("read %s footer: %w", name, err)
	}
	want, err := schema.NewSchemaHandlerFromStruct(new(Rec))
	if err != nil {
		return 0, fmt.Errorf("%s schema: %w", name, err)
	}
	got := pr.Footer.Schema
	if len(got) != len(want.SchemaElements) {
		return 0, fmt.Errorf("%s has %d schema elements, want %d", name, len(got), len(want.SchemaElements))
	}
	for i, w := range want.SchemaElements {
		g, e := describeColumn(got[i], got[i].Name), describeColumn(w, want.Infos[i].ExName)
		if g != e {
			return 0, fmt.Errorf("%s column %d is %q, want %q", name, i, g, e)
		}
	}
	return len(got) - 1, nil // the root is no column
}

// describeColumn is the part of a schema element that readers interpret.
func describeColumn(e *pq.SchemaElement, name string) string {
	var b strings.Builder
	b.WriteString(name)
	if e.Type != nil {
		fmt.Fprintf(&b, " %s", e.GetType())
		if e.GetType() == pq.Type_FIXED_LEN_BYTE_ARRAY {
			fmt.Fprintf(&b, "(%d)", e.GetTypeLength())
		}
	}
	if e.ConvertedType != nil {
		fmt.Fprintf(&b, " %s", e.GetConvertedType())
		if e.GetConvertedType() == pq.ConvertedType_DECIMAL {
			fmt.Fprintf(&b, "(%d,%d)", e.GetPrecision(), e.GetScale())
		}
	}
	if lt := e.LogicalType; lt != nil && lt.TIMESTAMP != nil {
		fmt.Fprintf(&b, " adjusted_to_utc=%t", lt.TIMESTAMP.IsAdjustedToUTC)
	}
	if e.RepetitionType != nil {
		fmt.Fprintf(&b, " %s", e.GetRepetitionType())
	}
	fmt.Fprintf(&b, " children=%d", e.GetNumChildren())
	return b.String()
}

// readFile gives the writer library's footer reader a cursor over an
// io.ReaderAt.
type readFile struct {
	ra        io.ReaderAt
	size, off int64
}

func (f *readFile) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if rest := f.size - f.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.ra.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *readFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return f.off, fmt.Errorf("seek: bad whence %d", whence)
	}
	if offset < 0 {
		return f.off, errors.New("seek before the start of the file")
	}
	f.off = offset
	return offset, nil
}

var errReadOnly = errors.New("export file is read-only")

func (f *readFile) Write([]byte) (int, error) { return 0, errReadOnly }
func (f *readFile) Close() error              { return nil }
func (f *readFile) Open(string) (source.ParquetFile, error) {
	return &readFile{ra: f.ra, size: f.size}, nil
}
func (f *readFile) Create(string) (source.ParquetFile, error) { return nil, errReadOnly }

package intervalrows

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement/exact"
)

// The run's interval rows are the bulk of an export (about 100 per
// statement line), and pgx's Scan cost more per row than writing the row
// to Parquet: numerics go through big.Int, every destination escapes to
// the heap, every text is copied. The functions below decode a row's raw
// values directly from Postgres's binary forms instead, giving exactly what
// rows.Scan would give; a value in any other form (another format, a type
// or value they do not handle) is scanned by pgx as before.

// column is one raw value of the current row.
type column struct {
	rows pgx.Rows
	i    int
}

func (c column) raw() ([]byte, pgconn.FieldDescription) {
	return c.rows.RawValues()[c.i], c.rows.FieldDescriptions()[c.i]
}

// scan is the fallback: pgx decodes the value into dst.
func (c column) scan(dst any) error {
	src, fd := c.raw()
	if err := c.rows.TypeMap().Scan(fd.DataTypeOID, fd.Format, src, dst); err != nil {
		return fmt.Errorf("can't scan into dest[%d] (col: %s): %w", c.i, fd.Name, err)
	}
	return nil
}

// text is the value as a string, sharing prev's memory when it is the same
// text (a line's consecutive rows repeat their participant and point).
func (c column) text(prev string) (string, error) {
	src, fd := c.raw()
	if src == nil || fd.DataTypeOID != pgtype.TextOID && fd.DataTypeOID != pgtype.VarcharOID {
		var s string
		err := c.scan(&s)
		return s, err
	}
	// Text and binary forms of text are the same UTF-8 bytes.
	if string(src) != prev {
		return string(src), nil
	}
	return prev, nil
}

// instant is a timestamptz value, in UTC.
func (c column) instant() (time.Time, error) {
	src, fd := c.raw()
	if fd.Format == pgx.BinaryFormatCode && fd.DataTypeOID == pgtype.TimestamptzOID && len(src) == 8 {
		// ±infinity (the extreme int64s) has no time.Time: pgx refuses it.
		if us := int64(binary.BigEndian.Uint64(src)); us != math.MaxInt64 && us != math.MinInt64 {
			return time.UnixMicro(exact.PGEpochMicros + us).UTC(), nil
		}
	}
	var t time.Time
	err := c.scan(&t)
	return t.UTC(), err
}

// int32 is an integer value.
func (c column) int32() (int32, error) {
	src, fd := c.raw()
	if fd.Format == pgx.BinaryFormatCode && fd.DataTypeOID == pgtype.Int4OID && len(src) == 4 {
		return int32(binary.BigEndian.Uint32(src)), nil
	}
	var v int32
	err := c.scan(&v)
	return v, err
}

// decimal is a numeric value.
func (c column) decimal() (decimal.Decimal, error) {
	src, fd := c.raw()
	if fd.Format == pgx.BinaryFormatCode && fd.DataTypeOID == pgtype.NumericOID {
		if d, ok := exact.NumericDecimal(src); ok {
			return d, nil
		}
	}
	var d decimal.Decimal
	err := c.scan(&d)
	return d, err
}

// nullDecimal is a numeric value or NULL.
func (c column) nullDecimal() (decimal.NullDecimal, error) {
	if src, _ := c.raw(); src == nil {
		return decimal.NullDecimal{}, nil
	}
	d, err := c.decimal()
	return decimal.NullDecimal{Decimal: d, Valid: true}, err
}

package intervalrows

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
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

// pgEpochMicros is 2000-01-01T00:00:00Z, Postgres's timestamp epoch, in
// unix microseconds.
const pgEpochMicros = 946_684_800_000_000

// instant is a timestamptz value, in UTC.
func (c column) instant() (time.Time, error) {
	src, fd := c.raw()
	if fd.Format == pgx.BinaryFormatCode && fd.DataTypeOID == pgtype.TimestamptzOID && len(src) == 8 {
		// ±infinity (the extreme int64s) has no time.Time: pgx refuses it.
		if us := int64(binary.BigEndian.Uint64(src)); us != math.MaxInt64 && us != math.MinInt64 {
			return time.UnixMicro(pgEpochMicros + us).UTC(), nil
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
		if d, ok := numericDecimal(src); ok {
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

// numericDecimal decodes a numeric in Postgres's binary form into the
// decimal pgx's binary numeric plan (which migrations registers) gives —
// the same value with the same exponent — with integer arithmetic instead
// of big.Int, when the coefficient fits an int64. ok is false for anything
// else (NaN, infinities, longer coefficients, malformed input): pgx then
// decodes it, or says what is wrong.
func numericDecimal(b []byte) (d decimal.Decimal, ok bool) {
	if len(b) < 8 {
		return d, false
	}
	ndigits := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	dscale := int(int16(binary.BigEndian.Uint16(b[6:])))
	if sign != 0 && sign != 0x4000 || len(b) != 8+2*ndigits {
		return d, false
	}
	if ndigits == 0 {
		return decimal.New(0, 0), true // pgx: zero with exponent 0, whatever the scale
	}
	// The digits are base 10,000, most significant first.
	var v uint64
	for i := range ndigits {
		hi, lo := bits.Mul64(v, 10_000)
		lo, carry := bits.Add64(lo, uint64(binary.BigEndian.Uint16(b[8+2*i:])), 0)
		if hi != 0 || carry != 0 {
			return d, false
		}
		v = lo
	}
	exp := (weight - ndigits + 1) * 4
	// As pgx: the exponent is the display scale's, with the coefficient
	// scaled (or truncated) to it.
	if dscale > 0 {
		switch frac := (ndigits - weight - 1) * 4; {
		case dscale > frac:
			for range dscale - frac {
				hi, lo := bits.Mul64(v, 10)
				if hi != 0 {
					return d, false
				}
				v = lo
			}
			exp -= dscale - frac
		case dscale < frac:
			for range frac - dscale {
				v /= 10
			}
			exp += frac - dscale
		}
	}
	// As pgx: an integer loses its trailing zeros to the exponent.
	for exp >= 0 && v != 0 && v%10 == 0 {
		v /= 10
		exp++
	}
	if v > math.MaxInt64 {
		return d, false
	}
	c := int64(v)
	if sign != 0 {
		c = -c
	}
	return decimal.New(c, int32(exp)), true
}

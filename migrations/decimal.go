package migrations

import (
	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// registerDecimals makes numeric columns scan into decimal.Decimal and
// decimal.NullDecimal straight from Postgres's binary form.
//
// pgxdecimal.Register alone is not enough with pgx v5.12: pgx prefers a
// target's sql.Scanner over the wrapped scan plans pgxdecimal installs, and
// shopspring's types are sql.Scanners, so every numeric was decoded to
// text and parsed back (measured: the largest cost of reading a run's rows).
// The values are the same either way: the binary plan keeps the column's
// scale, as the text form does.
func registerDecimals(m *pgtype.Map) {
	pgxdecimal.Register(m)
	m.RegisterType(&pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: decimalCodec{}})
}

// decimalCodec is pgxdecimal's numeric codec, planning scans into
// shopspring's own types as scans into pgxdecimal's NumericScanner twins.
type decimalCodec struct{ pgxdecimal.NumericCodec }

func (c decimalCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	switch target.(type) {
	case *decimal.Decimal:
		if p := c.NumericCodec.PlanScan(m, oid, format, (*pgxdecimal.Decimal)(nil)); p != nil {
			return scanDecimal{p}
		}
	case *decimal.NullDecimal:
		if p := c.NumericCodec.PlanScan(m, oid, format, (*pgxdecimal.NullDecimal)(nil)); p != nil {
			return scanNullDecimal{p}
		}
	}
	return c.NumericCodec.PlanScan(m, oid, format, target)
}

type scanDecimal struct{ next pgtype.ScanPlan }

func (s scanDecimal) Scan(src []byte, dst any) error {
	return s.next.Scan(src, (*pgxdecimal.Decimal)(dst.(*decimal.Decimal)))
}

type scanNullDecimal struct{ next pgtype.ScanPlan }

func (s scanNullDecimal) Scan(src []byte, dst any) error {
	return s.next.Scan(src, (*pgxdecimal.NullDecimal)(dst.(*decimal.NullDecimal)))
}

package parquet

import (
	"fmt"
	"strings"

	pgo "github.com/parquet-go/parquet-go"
)

// Codec is the compression of an export's Parquet files.
type Codec string

// The codecs reporting/README.md allows.
const (
	ZSTD   Codec = "zstd"
	Snappy Codec = "snappy"
)

// ParseCodec accepts "zstd" or "snappy" in any case.
func ParseCodec(s string) (Codec, error) {
	switch c := Codec(strings.ToLower(s)); c {
	case ZSTD, Snappy:
		return c, nil
	}
	return "", fmt.Errorf("compression %q: want zstd or snappy", s)
}

// spec describes one of the export's files: its name, the record that is its
// schema, how rows convert to records (written) and from rows of values
// (read back, given the previous row read), and their natural-key order.
type spec[R, Rec any] struct {
	name    string
	encode  func(R) (Rec, error)
	decode  func(v pgo.Row, prev *R) (R, error)
	compare func(a, b R) int
	// readTies allows equal keys between consecutive rows read back, for
	// files whose key includes a field that is not a column (ledger lines).
	readTies bool
}

var (
	statementsSpecV1 = spec[Statement, statementRecordV1]{
		name: StatementsFile, encode: Statement.recordV1, decode: statementOf, compare: compareStatements,
	}
	statementsSpec = spec[Statement, statementRecord]{
		name: StatementsFile, encode: Statement.record, decode: statementOfV2, compare: compareStatements,
	}
	intervalsSpecV1 = spec[Interval, intervalRecordV1]{
		name: IntervalsFile, encode: Interval.recordV1, decode: intervalOf, compare: compareIntervals,
	}
	intervalsSpec = spec[Interval, intervalRecord]{
		name: IntervalsFile, encode: Interval.record, decode: intervalOfV2, compare: compareIntervals,
	}
	ledgerSpec = spec[LedgerLine, ledgerRecord]{
		name: LedgerFile, encode: LedgerLine.record, decode: ledgerLineOf, compare: compareLedgerLines,
		readTies: true,
	}
	estimatesSpec = spec[Estimate, estimateRecord]{
		name: EstimatesFile, encode: Estimate.record, decode: estimateOf, compare: compareEstimates,
	}
)

// byLayout picks the v1 or v2 variant of an operation on a file whose
// columns depend on the layout; any other layout is an error.
func byLayout[T any](l Layout, name string, v1, v2 func() (T, error)) (T, error) {
	switch l {
	case LayoutV1:
		return v1()
	case LayoutV2:
		return v2()
	}
	var zero T
	return zero, fmt.Errorf("%s: unknown layout %d", name, l)
}

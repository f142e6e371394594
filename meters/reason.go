package meters

// Reason is a stable quarantine reason of the contract (meters/README.md,
// "Validation and quarantine"). The constants are listed in the order the
// checks run: the first that fails is the record's reason.
type Reason string

// The quarantine reasons, in check order.
const (
	MalformedJSON          Reason = "malformed_json"
	SchemaViolation        Reason = "schema_violation"
	UnsupportedInterval    Reason = "unsupported_interval"
	MisalignedStart        Reason = "misaligned_start"
	StartOutOfRange        Reason = "start_out_of_range"
	ValueOutOfRange        Reason = "value_out_of_range"
	TooManyDecimals        Reason = "too_many_decimals"
	QualityLengthMismatch  Reason = "quality_length_mismatch"
	UnknownMeter           Reason = "unknown_meter"
	UnknownSettlementPoint Reason = "unknown_settlement_point"
	CurrencyMismatch       Reason = "currency_mismatch"
	IntervalLengthMismatch Reason = "interval_length_mismatch"
	ConflictingDuplicate   Reason = "conflicting_duplicate"
	// Unprocessable is a record that passed every check above but that the
	// database or an output encoder refused: a data error of the record's own,
	// quarantined so that it cannot stop its partition (meters/README.md
	// "Nothing a producer sends can stop ingest").
	Unprocessable Reason = "unprocessable"
)

// Rejection is why a record cannot be used: a Reason and a human detail that
// names the offending field where there is one.
type Rejection struct {
	Reason Reason
	Detail string
}

// Error makes a Rejection usable as an error.
func (r *Rejection) Error() string { return string(r.Reason) + ": " + r.Detail }

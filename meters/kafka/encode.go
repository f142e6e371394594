package kafka

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gridsettle/gridsettle/meters"
)

// wireReadBlock is the meters/README.md shape of one ami.interval-reads record.
type wireReadBlock struct {
	MeterID         string   `json:"meter_id"`
	Channel         string   `json:"channel"`
	Start           string   `json:"start"`
	IntervalSeconds int      `json:"interval_seconds"`
	Values          []string `json:"values"`
	Quality         []string `json:"quality"`
	Version         int64    `json:"version"`
	Source          string   `json:"source,omitempty"`
}

// EncodeReadBlock is b as the JSON value of one ami.interval-reads record:
// values as plain-notation decimal strings, start in RFC 3339 UTC, one
// quality code per value. Check the block first with CheckReadBlock.
func EncodeReadBlock(b meters.ReadBlock) []byte {
	w := wireReadBlock{
		MeterID:         b.MeterID,
		Channel:         string(b.Channel),
		Start:           b.Start.UTC().Format(time.RFC3339),
		IntervalSeconds: b.IntervalSeconds,
		Values:          make([]string, len(b.Values)),
		Quality:         make([]string, len(b.Quality)),
		Version:         b.Version,
		Source:          b.Source,
	}
	for i, v := range b.Values {
		w.Values[i] = v.String() // shopspring never writes an exponent
	}
	for i, q := range b.Quality {
		w.Quality[i] = string(q)
	}
	out, err := json.Marshal(w)
	if err != nil {
		// Unreachable: the shape holds only strings and integers.
		panic(fmt.Sprintf("encode read block: %v", err))
	}
	return out
}

// CheckReadBlock returns what the ingest would reject b for, or nil: b is
// encoded and then decoded by the ingest's own decoder
// (meters.DecodeReadBlock), so an import and the ingest cannot disagree on
// the contract's rules.
func CheckReadBlock(b meters.ReadBlock) *meters.Rejection {
	_, rej := meters.DecodeReadBlock(EncodeReadBlock(b))
	return rej
}

package reporting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
)

// Format is the manifest's format identifier.
const Format = "gridsettle-export/v1"

// The files of an export folder besides the Parquet files.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.json.sig"
	PublicKeyFile = "signing-key.pub.pem"
)

// DataFiles are the Parquet files of an export, in the manifest's order.
var DataFiles = []string{parquet.StatementsFile, parquet.IntervalsFile, parquet.LedgerFile}

// FolderFiles are every file of an export folder, and nothing else may be
// in it.
var FolderFiles = append(append([]string{}, DataFiles...), ManifestFile, SignatureFile, PublicKeyFile)

// Manifest is manifest.json (exports.md "Manifest"). Field order is the
// JSON order; decimals are strings with their column's scale.
type Manifest struct {
	Format                 string        `json:"format"`
	OperatingDay           string        `json:"operating_day"`
	RunType                string        `json:"run_type"`
	Version                int           `json:"version"`
	RunID                  string        `json:"run_id"`
	ComputedAt             string        `json:"computed_at"`
	Generator              string        `json:"generator"`
	Market                 Market        `json:"market"`
	Files                  []File        `json:"files"`
	ControlTotals          ControlTotals `json:"control_totals"`
	Lineage                Lineage       `json:"lineage"`
	PreviousManifestSHA256 *string       `json:"previous_manifest_sha256"`
	SigningKeyID           string        `json:"signing_key_id"`
}

// Market is the market the run settled.
type Market struct {
	Timezone        string `json:"timezone"`
	Currency        string `json:"currency"`
	IntervalSeconds int    `json:"interval_seconds"`
}

// File describes one Parquet file of the folder.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	Rows   int64  `json:"rows"`
}

// FolderFile is one file of an export folder as the export registry lists
// it (api.md "An export"): every file of the folder, so that downloading
// each gives the whole folder; Rows only for the Parquet files.
type FolderFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	Rows   *int64 `json:"rows,omitempty"`
}

// ControlTotals are sums over the files' rows: energy_mwh, amount and
// delta_amount over statements.parquet, ledger_sum over ledger.parquet
// (zero, since every entry balances).
type ControlTotals struct {
	EnergyMWh   string `json:"energy_mwh"`
	Amount      string `json:"amount"`
	DeltaAmount string `json:"delta_amount"`
	LedgerSum   string `json:"ledger_sum"`
}

// Lineage is what the run read and what it posted.
type Lineage struct {
	Inputs []Input       `json:"inputs"`
	Ledger LedgerLineage `json:"ledger"`
}

// Input is one input partition the run's snapshot included, through
// OffsetThrough.
type Input struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	OffsetThrough int64  `json:"offset_through"`
}

// LedgerLineage is the range of journal entries the run posted, and the
// chain head: the hash of its last entry, which commits the whole hash
// chain up to it. All null when the run posted nothing (no line changed).
type LedgerLineage struct {
	FirstEntryID *int64  `json:"first_entry_id"`
	LastEntryID  *int64  `json:"last_entry_id"`
	ChainHead    *string `json:"chain_head"`
}

// Dir is an export's folder relative to the export root:
// {operating_day}/{run_type}-v{version}.
func Dir(day settlement.Day, runType string, version int) string {
	return path.Join(day.String(), fmt.Sprintf("%s-v%d", runType, version))
}

// formatInstant is the manifest's form of an instant: RFC 3339 in UTC with
// as many fractional digits as it has.
func formatInstant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Marshal is the manifest's exact bytes: indented JSON with a final
// newline. It is deterministic: struct field order, no maps.
func (m *Manifest) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b.Bytes(), nil
}

// ParseManifest decodes manifest bytes strictly: unknown fields and
// trailing data are refused, and the bytes must be exactly what Marshal
// produces for the decoded value.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("decode %s: %w", ManifestFile, err)
	}
	if dec.More() {
		return m, fmt.Errorf("decode %s: data after the manifest", ManifestFile)
	}
	if m.Format != Format {
		return m, fmt.Errorf("%s: format %q, want %q", ManifestFile, m.Format, Format)
	}
	again, err := m.Marshal()
	if err != nil {
		return m, err
	}
	if !bytes.Equal(again, b) {
		return m, fmt.Errorf("%s is not in its canonical form (re-encoding it gives other bytes)", ManifestFile)
	}
	return m, nil
}

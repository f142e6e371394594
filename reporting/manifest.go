package reporting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
)

// The manifest's format identifiers (reporting/README.md "Manifest"). An export
// keeps the format it was written with: regenerating it writes that format
// again, byte for byte.
const (
	// FormatV1: statements.parquet, intervals.parquet and ledger.parquet
	// without estimate columns.
	FormatV1 = "gridsettle-export/v1"
	// FormatV2 adds estimates.parquet, the estimate columns of
	// statements.parquet and intervals.parquet (parquet.LayoutV2), the
	// control total estimated_energy_mwh and completeness.
	FormatV2 = "gridsettle-export/v2"
	// Format is what exports are written as from now on.
	Format = FormatV2
)

// The files of an export folder besides the Parquet files.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.json.sig"
	PublicKeyFile = "signing-key.pub.pem"
)

// Layout is what a format means for the folder: the layout of its Parquet
// files and which of them it holds, in the manifest's order.
type Layout struct {
	Format    string
	Parquet   parquet.Layout
	DataFiles []string
}

var layouts = []Layout{
	{FormatV1, parquet.LayoutV1, []string{parquet.StatementsFile, parquet.IntervalsFile, parquet.LedgerFile}},
	{FormatV2, parquet.LayoutV2, []string{parquet.StatementsFile, parquet.IntervalsFile, parquet.LedgerFile, parquet.EstimatesFile}},
}

// LayoutOf is the layout of format; an unknown format is an error.
func LayoutOf(format string) (Layout, error) {
	for _, l := range layouts {
		if l.Format == format {
			return l, nil
		}
	}
	return Layout{}, fmt.Errorf("export format %q: want %s or %s", format, FormatV1, FormatV2)
}

// FolderFiles are every file of a folder of this layout, and nothing else
// may be in it.
func (l Layout) FolderFiles() []string {
	return append(slices.Clone(l.DataFiles), ManifestFile, SignatureFile, PublicKeyFile)
}

// v2 reports whether the layout carries estimates.
func (l Layout) v2() bool { return l.Parquet >= parquet.LayoutV2 }

// FolderFiles are every file an export folder of any format may hold: those
// of the latest format, which holds every file of the earlier ones.
var FolderFiles = layouts[len(layouts)-1].FolderFiles()

// Manifest is manifest.json (reporting/README.md "Manifest"). Field order is
// the JSON order; decimals are strings with their column's scale.
// Completeness is absent in FormatV1 and, in FormatV2, for a run made
// before gridsettle counted its input records (runs.completeness NULL):
// there is nothing to account with, and the v2 exports written before
// counting existed regenerate byte for byte.
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
	Completeness           *Completeness `json:"completeness,omitempty"`
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
// it (api/README.md "An export"): every file of the folder, so that downloading
// each gives the whole folder; Rows only for the Parquet files.
type FolderFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	Rows   *int64 `json:"rows,omitempty"`
}

// ControlTotals are sums over the files' rows: energy_mwh, amount and
// delta_amount over statements.parquet, ledger_sum over ledger.parquet
// (zero, since every entry balances), and from FormatV2 on
// estimated_energy_mwh over statements.parquet (empty, so absent, in v1).
type ControlTotals struct {
	EnergyMWh          string `json:"energy_mwh"`
	Amount             string `json:"amount"`
	DeltaAmount        string `json:"delta_amount"`
	LedgerSum          string `json:"ledger_sum"`
	EstimatedEnergyMWh string `json:"estimated_energy_mwh,omitempty"`
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
	if _, err := LayoutOf(m.Format); err != nil {
		return m, fmt.Errorf("%s: %w", ManifestFile, err)
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

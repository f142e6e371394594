package reporting

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
)

// Discrepancy is why a folder failed verification: the file at fault ("" for
// the folder as a whole) and what is wrong, in a sentence that names it.
type Discrepancy struct {
	File string
	Err  error
}

func (d *Discrepancy) Error() string { return d.Err.Error() }
func (d *Discrepancy) Unwrap() error { return d.Err }

func discrepancy(file, format string, args ...any) *Discrepancy {
	return &Discrepancy{File: file, Err: fmt.Errorf(format, args...)}
}

// Report is what Verify checked, one line per check, in order.
type Report struct {
	Dir            string
	Manifest       Manifest
	ManifestSHA256 string
	KeyID          string
	// Authenticated is true when the signature was checked against a key
	// given to Verify; false when only the folder's own signing-key.pub.pem
	// vouches for it, which proves integrity but not who signed.
	Authenticated bool
	Checks        []string
}

// maxSmallFile bounds what Verify reads into memory of the manifest,
// signature and public key files.
const maxSmallFile = 1 << 20

// Verify checks an export folder of either format offline and returns the
// first discrepancy as a *Discrepancy: exactly the files of the manifest's
// format (signing-key.pub.pem may be absent when trusted is given: the
// signed files are the export); the
// signature of the exact bytes of manifest.json, by trusted when it is
// given, else by the folder's own signing-key.pub.pem (the report then says
// the signer is not authenticated); the manifest's canonical form and key id;
// (v2) its completeness against its lineage (Completeness.Check); every Parquet
// file's size and SHA-256; and, by reading the Parquet files, their schemas,
// row order, row counts, control totals, ledger lineage, the statement
// lines' agreement with their interval rows and (v2) every estimate's
// method and line. Parquet files are parsed only
// once their hashes matched the signed manifest.
func Verify(ctx context.Context, dir string, trusted ed25519.PublicKey) (Report, error) {
	r := Report{Dir: dir}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return r, discrepancy("", "export folder %s does not exist", dir)
	} else if err != nil {
		return r, fmt.Errorf("list export folder: %w", err)
	}
	for _, e := range entries {
		if !slices.Contains(FolderFiles, e.Name()) {
			return r, discrepancy(e.Name(), "%s: unexpected file in an export folder", e.Name())
		}
		if !e.Type().IsRegular() {
			return r, discrepancy(e.Name(), "%s: not a regular file", e.Name())
		}
	}
	has := func(name string) bool {
		return slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() == name })
	}
	// The folder's public key is a convenience: with a trusted key the
	// signed files are the whole export. Which Parquet files the folder
	// must hold depends on the manifest's format, checked once it is read.
	hasKey := has(PublicKeyFile)
	for _, name := range []string{ManifestFile, SignatureFile, PublicKeyFile} {
		if has(name) {
			continue
		}
		if name == PublicKeyFile && trusted == nil {
			return r, discrepancy(name, "%s is missing: pass --public-key FILE with the key obtained from the operator", name)
		} else if name != PublicKeyFile {
			return r, discrepancy(name, "%s is missing", name)
		}
	}

	small := map[string][]byte{}
	for _, name := range []string{ManifestFile, SignatureFile, PublicKeyFile} {
		if name == PublicKeyFile && !hasKey {
			continue
		}
		if small[name], err = readSmall(filepath.Join(dir, name)); err != nil {
			return r, err
		}
	}
	key, err := signer(small[PublicKeyFile], trusted)
	if err != nil {
		return r, err
	}
	sig, err := decodeSignature(small[SignatureFile])
	if err != nil {
		return r, err
	}
	r.KeyID = KeyID(key)
	if !ed25519.Verify(key, small[ManifestFile], sig) {
		return r, discrepancy(ManifestFile, "%s: the signature in %s does not verify with key %s: the manifest or the signature was altered, or another key signed it",
			ManifestFile, SignatureFile, r.KeyID)
	}
	if trusted != nil {
		r.Authenticated = true
		if hasKey && !bytes.Equal(small[PublicKeyFile], PublicKeyPEM(trusted)) {
			return r, discrepancy(PublicKeyFile, "%s is not the trusted public key that signed the manifest", PublicKeyFile)
		}
		r.Checks = append(r.Checks, fmt.Sprintf("signature: manifest.json is signed by the trusted key %s (ed25519)", r.KeyID))
	} else {
		r.Checks = append(r.Checks, fmt.Sprintf("signature: manifest.json is signed by key %s from the folder's own %s; "+
			"the signer is NOT authenticated (give the public key obtained from gridsettle's operator to authenticate it)", r.KeyID, PublicKeyFile))
	}
	m, err := ParseManifest(small[ManifestFile])
	if err != nil {
		return r, &Discrepancy{File: ManifestFile, Err: err}
	}
	r.Manifest = m
	sum := sha256.Sum256(small[ManifestFile])
	r.ManifestSHA256 = hex.EncodeToString(sum[:])
	if m.SigningKeyID != r.KeyID {
		return r, discrepancy(ManifestFile, "%s: signing_key_id %s is not the signing key's id %s", ManifestFile, m.SigningKeyID, r.KeyID)
	}
	day, err := settlement.ParseDay(m.OperatingDay)
	if err != nil {
		return r, discrepancy(ManifestFile, "%s: %v", ManifestFile, err)
	}
	layout, _ := LayoutOf(m.Format) // ParseManifest checked it
	if err := checkFolderFiles(layout, has); err != nil {
		return r, err
	}
	folder := layout.FolderFiles()
	if hasKey {
		r.Checks = append(r.Checks, fmt.Sprintf("folder: the %d files of a %s export and nothing else", len(folder), layout.Format))
	} else {
		r.Checks = append(r.Checks, fmt.Sprintf("folder: the %d signed files of a %s export and nothing else (no %s; the trusted key is given)",
			len(folder)-1, layout.Format, PublicKeyFile))
	}
	if names := fileNames(m.Files); !slices.Equal(names, layout.DataFiles) {
		return r, discrepancy(ManifestFile, "%s lists files %v, want %v", ManifestFile, names, layout.DataFiles)
	}
	r.Checks = append(r.Checks, fmt.Sprintf("manifest: %s, %s %s v%d (%s), sha256 %s", m.Format, m.OperatingDay, m.RunType, m.Version, m.RunID, r.ManifestSHA256))
	check, err := checkCompleteness(m, layout)
	if err != nil {
		return r, err
	}
	r.Checks = append(r.Checks, check)

	for _, f := range m.Files {
		if err := checkHash(ctx, dir, f); err != nil {
			return r, err
		}
	}
	checks, err := checkRows(ctx, dir, m, day, layout)
	if err != nil {
		return r, err
	}
	for _, f := range m.Files {
		r.Checks = append(r.Checks, fmt.Sprintf("%s: sha256 %s, %d bytes, %d rows", f.Name, f.SHA256, f.Bytes, f.Rows))
	}
	r.Checks = append(r.Checks, checks...)
	return r, nil
}

// checkCompleteness checks the manifest's completeness (Completeness.Check)
// and says what it found.
func checkCompleteness(m Manifest, layout Layout) (string, error) {
	switch {
	case m.Completeness == nil && !layout.v2():
		return fmt.Sprintf("completeness: none in a %s export", layout.Format), nil
	case m.Completeness == nil:
		return "completeness: none (the run was made before gridsettle counted its input records)", nil
	case !layout.v2():
		return "", discrepancy(ManifestFile, "%s: a %s manifest has no completeness", ManifestFile, layout.Format)
	}
	if err := m.Completeness.Check(m.Lineage.Inputs); err != nil {
		return "", discrepancy(ManifestFile, "%s: %w", ManifestFile, err)
	}
	return fmt.Sprintf("completeness: every record of the %d input partitions through the lineage's offsets is accounted for "+
		"(records = applied + Σ quarantined, no count negative)", len(m.Completeness.Inputs)), nil
}

// checkFolderFiles checks that the folder (has) holds every Parquet file of
// layout and none of another format's.
func checkFolderFiles(layout Layout, has func(string) bool) error {
	for _, name := range layout.DataFiles {
		if !has(name) {
			return discrepancy(name, "%s is missing", name)
		}
	}
	for _, name := range FolderFiles {
		if has(name) && !slices.Contains(layout.FolderFiles(), name) {
			return discrepancy(name, "%s: unexpected file in a %s export folder", name, layout.Format)
		}
	}
	return nil
}

// ListFolder lists every file of the export folder dir, whose manifest is
// m, in FolderFiles order: the manifest's entries for the Parquet files,
// then manifest.json, its signature and the public key, hashed as they are
// in the folder.
func ListFolder(ctx context.Context, dir string, m Manifest) ([]FolderFile, error) {
	out := make([]FolderFile, 0, len(m.Files)+3)
	for _, f := range m.Files {
		out = append(out, FolderFile{Name: f.Name, SHA256: f.SHA256, Bytes: f.Bytes, Rows: &f.Rows})
	}
	for _, name := range []string{ManifestFile, SignatureFile, PublicKeyFile} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := readSmall(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("list export folder %s: %w", dir, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, FolderFile{Name: name, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(b))})
	}
	return out, nil
}

func fileNames(files []File) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return names
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if len(b) > maxSmallFile {
		return nil, discrepancy(filepath.Base(path), "%s is larger than %d bytes", filepath.Base(path), maxSmallFile)
	}
	return b, nil
}

// signer is the key to check the signature with: trusted if given, else the
// folder's own, which must be in exactly the form Build writes.
func signer(pemBytes []byte, trusted ed25519.PublicKey) (ed25519.PublicKey, error) {
	if trusted != nil {
		return trusted, nil
	}
	pub, err := ParsePublicKeyPEM(pemBytes)
	if err != nil {
		return nil, discrepancy(PublicKeyFile, "%s: %v", PublicKeyFile, err)
	}
	if !bytes.Equal(pemBytes, PublicKeyPEM(pub)) {
		return nil, discrepancy(PublicKeyFile, "%s is not in the form gridsettle writes", PublicKeyFile)
	}
	return pub, nil
}

// decodeSignature reads manifest.json.sig: standard base64 of the 64-byte
// signature and a newline, nothing else.
func decodeSignature(b []byte) ([]byte, error) {
	text, ok := strings.CutSuffix(string(b), "\n")
	sig, err := base64.StdEncoding.Strict().DecodeString(text)
	if !ok || err != nil || len(sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(sig) != text {
		return nil, discrepancy(SignatureFile, "%s is not a base64 ed25519 signature followed by a newline", SignatureFile)
	}
	return sig, nil
}

func checkHash(ctx context.Context, dir string, f File) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file, err := os.Open(filepath.Join(dir, f.Name))
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Name, err)
	}
	defer file.Close()
	h := sha256.New()
	n, err := io.Copy(h, file)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	if n != f.Bytes {
		return discrepancy(f.Name, "%s has %d bytes, the manifest says %d", f.Name, n, f.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return discrepancy(f.Name, "%s has sha256 %s, the manifest says %s", f.Name, got, f.SHA256)
	}
	return nil
}

// checkRows reads the Parquet files back and compares what they hold with
// the manifest.
func checkRows(ctx context.Context, dir string, m Manifest, day settlement.Day, layout Layout) ([]string, error) {
	t := newTally(day, m.RunType, m.Version, layout)
	readers := map[string]func(context.Context, io.ReaderAt, int64) (int64, error){
		parquet.StatementsFile: func(ctx context.Context, r io.ReaderAt, n int64) (int64, error) {
			return parquet.ReadStatements(ctx, r, n, layout.Parquet, t.statement)
		},
		parquet.IntervalsFile: func(ctx context.Context, r io.ReaderAt, n int64) (int64, error) {
			return parquet.ReadIntervals(ctx, r, n, layout.Parquet, t.interval)
		},
		parquet.LedgerFile: func(ctx context.Context, r io.ReaderAt, n int64) (int64, error) {
			return parquet.ReadLedger(ctx, r, n, t.ledgerLine)
		},
		parquet.EstimatesFile: func(ctx context.Context, r io.ReaderAt, n int64) (int64, error) {
			return parquet.ReadEstimates(ctx, r, n, t.estimate)
		},
	}
	// m.Files are layout.DataFiles, in the order the tally needs.
	for _, f := range m.Files {
		file, err := os.Open(filepath.Join(dir, f.Name))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", f.Name, err)
		}
		rows, err := readers[f.Name](ctx, file, f.Bytes)
		file.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, &Discrepancy{File: f.Name, Err: err}
		}
		if rows != f.Rows {
			return nil, discrepancy(f.Name, "%s has %d rows, the manifest says %d", f.Name, rows, f.Rows)
		}
	}
	totals, ledger, err := t.finish()
	if err != nil {
		return nil, &Discrepancy{File: parquet.StatementsFile, Err: err}
	}
	if totals != m.ControlTotals {
		return nil, discrepancy(ManifestFile, "%s: control_totals %+v, the files' rows give %+v", ManifestFile, m.ControlTotals, totals)
	}
	if !sameLedger(ledger, m.Lineage.Ledger) {
		return nil, discrepancy(ManifestFile, "%s: lineage.ledger %s, %s holds %s", ManifestFile,
			describeLedger(m.Lineage.Ledger), parquet.LedgerFile, describeLedger(ledger))
	}
	recomputed := fmt.Sprintf("control totals recomputed from the rows: energy_mwh %s, amount %s, delta_amount %s, ledger_sum %s",
		totals.EnergyMWh, totals.Amount, totals.DeltaAmount, totals.LedgerSum)
	if layout.v2() {
		recomputed += ", estimated_energy_mwh " + totals.EstimatedEnergyMWh
	}
	lines := "energy, unpriced energy, amount rounded half-even, interval counts"
	if layout.v2() {
		lines = "energy, unpriced energy, estimated energy, amount rounded half-even, interval counts"
	}
	checks := []string{
		recomputed,
		fmt.Sprintf("statement lines: each of the %d agrees with its interval rows (%s)", t.statements, lines),
		fmt.Sprintf("ledger: %s, every entry balances", describeLedger(ledger)),
	}
	if layout.v2() {
		checks = append(checks, fmt.Sprintf("estimates: %d, each with a method of settlement/README.md and the statement line it flows into", t.estimates))
	}
	return checks, nil
}

func sameLedger(a, b LedgerLineage) bool {
	return equalPtr(a.FirstEntryID, b.FirstEntryID) && equalPtr(a.LastEntryID, b.LastEntryID) && equalPtr(a.ChainHead, b.ChainHead)
}

func equalPtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func describeLedger(l LedgerLineage) string {
	if l.FirstEntryID == nil || l.LastEntryID == nil || l.ChainHead == nil {
		if l.FirstEntryID == nil && l.LastEntryID == nil && l.ChainHead == nil {
			return "no entries"
		}
		return "an incomplete entry range"
	}
	return fmt.Sprintf("entries %d to %d, chain head %s", *l.FirstEntryID, *l.LastEntryID, *l.ChainHead)
}

// IsDiscrepancy reports whether err is a verification failure rather than
// an error reading the folder.
func IsDiscrepancy(err error) bool {
	var d *Discrepancy
	return errors.As(err, &d)
}

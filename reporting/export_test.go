package reporting_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// testKey is a fixed signing key, so that signatures are reproducible.
func testKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

// source serves a fixture day's rows, as reporting/postgres serves a run's.
type source struct{ d reportingtest.Day }

func each[R any](ctx context.Context, rows []R, fn func(R) error) error {
	for _, r := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s source) Statements(ctx context.Context, fn func(parquet.Statement) error) error {
	return each(ctx, s.d.Statements, fn)
}

func (s source) Intervals(ctx context.Context, fn func(parquet.Interval) error) error {
	return each(ctx, s.d.Intervals, fn)
}

func (s source) Ledger(ctx context.Context, fn func(parquet.LedgerLine) error) error {
	return each(ctx, s.d.Ledger, fn)
}

func (s source) Estimates(ctx context.Context, fn func(parquet.Estimate) error) error {
	return each(ctx, s.d.Estimates, fn)
}

// estimated is the fixture day with estimates, as v2 exports carry them.
func estimated() reportingtest.Day { return reportingtest.FallBackDay().WithEstimates() }

func runOf(d reportingtest.Day) reporting.Run {
	return reporting.Run{
		RunID: d.RunID, OperatingDay: d.Day, RunType: d.RunType, Version: int(d.Version), ComputedAt: d.ComputedAt,
		Inputs: []reporting.Input{
			{Topic: "market.prices", Partition: 0, OffsetThrough: 4411},
			{Topic: "ami.interval-reads", Partition: 1, OffsetThrough: 98},
			{Topic: "ami.interval-reads", Partition: 0, OffsetThrough: 123456},
		},
	}
}

func configOf(d reportingtest.Day) reporting.Config {
	return reporting.Config{Generator: "gridsettle test", Market: d.Market, Codec: parquet.ZSTD, Key: testKey("gridsettle test key")}
}

var previous = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// publish writes the fixture day's export under a fresh root, in the
// current format, and returns the folder.
func publish(t *testing.T, d reportingtest.Day) (string, reporting.Written) {
	t.Helper()
	return publishAs(t, d, configOf(d))
}

func publishAs(t *testing.T, d reportingtest.Day, cfg reporting.Config) (string, reporting.Written) {
	t.Helper()
	return publishRun(t, d, runOf(d), cfg)
}

// publishRun is publishAs with the run's metadata given.
func publishRun(t *testing.T, d reportingtest.Day, run reporting.Run, cfg reporting.Config) (string, reporting.Written) {
	t.Helper()
	root := t.TempDir()
	w, err := reporting.Publish(t.Context(), root, run, &previous, source{d}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "2026-11-01", "final-v2"), w
}

// v1 is the configuration of a build from before v2: exports written as
// gridsettle-export/v1.
func v1(d reportingtest.Day) reporting.Config {
	cfg := configOf(d)
	cfg.Format = reporting.FormatV1
	return cfg
}

// TestGoldenExport: the folder of the fixture day is byte-identical on every
// run and to the checked-in manifest, signature and key (the manifest holds
// the Parquet files' hashes, so it pins their bytes too), in each format:
// testdata/final-v2 is a gridsettle-export/v1 folder written before v2
// existed, and testdata/format-v2 a v2 folder of a run made before input
// records were counted (no completeness), which must be written again
// exactly as they were; testdata/completeness holds a v2 folder with
// completeness.
func TestGoldenExport(t *testing.T) {
	for _, tc := range []struct {
		name, format, golden string
		day                  reportingtest.Day
		run                  func(reportingtest.Day) reporting.Run
		cfg                  func(reportingtest.Day) reporting.Config
	}{
		{"v1", reporting.FormatV1, filepath.Join("testdata", "final-v2"), reportingtest.FallBackDay(), runOf, v1},
		{"v2", reporting.FormatV2, filepath.Join("testdata", "format-v2", "final-v2"), estimated(), runOf, configOf},
		{"v2 counted", reporting.FormatV2, filepath.Join("testdata", "completeness", "final-v2"), estimated(), counted, configOf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, w := publishRun(t, tc.day, tc.run(tc.day), tc.cfg(tc.day))
			again, _ := publishRun(t, tc.day, tc.run(tc.day), tc.cfg(tc.day))
			if differs, err := reporting.CompareFolders(t.Context(), dir, again); err != nil || differs != "" {
				t.Fatalf("two exports of the same run differ in %q (%v)", differs, err)
			}
			m := w.Manifest
			if m.Format != tc.format || m.ControlTotals.LedgerSum != "0.00" || m.Files[1].Rows != 300 || m.Lineage.Ledger.FirstEntryID == nil ||
				m.Lineage.Inputs[0].Topic != "ami.interval-reads" || *m.PreviousManifestSHA256 != previous {
				t.Errorf("manifest: %+v", m)
			}
			for _, name := range []string{reporting.ManifestFile, reporting.SignatureFile, reporting.PublicKeyFile} {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join(tc.golden, name)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s; if the change is intended, run with -update:\n%s", name, golden, got)
				}
			}
		})
	}
}

// TestV2ControlTotals: a v2 export holds estimates.parquet with one row per
// estimate, and its manifest the control total estimated_energy_mwh, the
// sum of that column of statements.parquet; verification recomputes both.
func TestV2ControlTotals(t *testing.T) {
	d := estimated()
	dir, w := publish(t, d)
	m := w.Manifest
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	if m.Format != reporting.FormatV2 || !slices.Equal(names, []string{"statements.parquet", "intervals.parquet", "ledger.parquet", "estimates.parquet"}) ||
		m.Files[3].Rows != int64(len(d.Estimates)) || len(d.Estimates) != 5 {
		t.Fatalf("manifest: %+v", m)
	}
	var want decimal.Decimal
	for _, s := range d.Statements {
		want = want.Add(s.EstimatedEnergyMWh)
	}
	if want.IsZero() || m.ControlTotals.EstimatedEnergyMWh != want.StringFixed(6) {
		t.Fatalf("estimated_energy_mwh %q, want %s", m.ControlTotals.EstimatedEnergyMWh, want.StringFixed(6))
	}
	r, err := reporting.Verify(t.Context(), dir, configOf(d).PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	report := strings.Join(r.Checks, "\n")
	for _, s := range []string{"estimated_energy_mwh " + want.StringFixed(6), "estimates: 5", "estimates.parquet: sha256", "gridsettle-export/v2"} {
		if !strings.Contains(report, s) {
			t.Errorf("report without %q:\n%s", s, report)
		}
	}
	// A run without estimates still has estimates.parquet, empty, and a
	// zero total.
	dir, w = publish(t, reportingtest.FallBackDay())
	if f := w.Manifest.Files[3]; f.Name != parquet.EstimatesFile || f.Rows != 0 || w.Manifest.ControlTotals.EstimatedEnergyMWh != "0.000000" {
		t.Fatalf("manifest of a run without estimates: %+v", w.Manifest)
	}
	if _, err := reporting.Verify(t.Context(), dir, configOf(d).PublicKey()); err != nil {
		t.Fatal(err)
	}
}

// TestV1StaysV1: an export written as gridsettle-export/v1 is regenerated
// as v1, byte for byte, by a build that writes v2 (and another generator),
// and verifies as v1: no estimates.parquet, no estimated_energy_mwh total.
// A run with estimates cannot be written as v1 (it would drop them).
func TestV1StaysV1(t *testing.T) {
	d := reportingtest.FallBackDay()
	dir, w := publishRun(t, d, counted(d), v1(d))
	root := filepath.Dir(filepath.Dir(dir))
	if w.Manifest.Format != reporting.FormatV1 || len(w.Manifest.Files) != 3 || w.Manifest.ControlTotals.EstimatedEnergyMWh != "" ||
		w.Manifest.Completeness != nil {
		t.Fatalf("v1 manifest: %+v", w.Manifest)
	}
	// v1 has neither estimates nor completeness, even for a counted run.
	if b, _ := os.ReadFile(filepath.Join(dir, reporting.ManifestFile)); bytes.Contains(b, []byte("estimated")) || bytes.Contains(b, []byte("completeness")) {
		t.Fatalf("v1 manifest mentions estimates or completeness:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, parquet.EstimatesFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("v1 folder has %s: %v", parquet.EstimatesFile, err)
	}
	current := configOf(d)
	current.Generator = "gridsettle v9.9.9"
	if differs, err := reporting.Regenerate(t.Context(), root, counted(d), &previous, source{d}, current); err != nil || differs != "" {
		t.Fatalf("v1 export regenerated by a v2 build differs in %q (%v)", differs, err)
	}
	r, err := reporting.Verify(t.Context(), dir, current.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(r.Checks, "\n"), "gridsettle-export/v1") {
		t.Errorf("report: %v", r.Checks)
	}
	// An estimates.parquet slipped into a v1 folder is not part of it.
	extra := copyDir(t, dir)
	if err := os.WriteFile(filepath.Join(extra, parquet.EstimatesFile), []byte("PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reporting.Verify(t.Context(), extra, current.PublicKey()); err == nil || !strings.Contains(err.Error(), "unexpected file in a gridsettle-export/v1") {
		t.Fatalf("v1 folder with estimates.parquet: %v", err)
	}
	e := estimated()
	if _, err := reporting.Publish(t.Context(), t.TempDir(), runOf(e), nil, source{e}, v1(e)); err == nil ||
		!strings.Contains(err.Error(), "estimated_energy_mwh") {
		t.Fatalf("run with estimates written as v1: %v", err)
	}
	e.Statements = reportingtest.FallBackDay().Statements
	for i := range e.Intervals {
		e.Intervals[i].GridsettleEstimatedReads, e.Intervals[i].EstimatedEnergyMWh = 0, decimal.Zero
	}
	if _, err := reporting.Publish(t.Context(), t.TempDir(), runOf(e), nil, source{e}, v1(e)); err == nil ||
		!strings.Contains(err.Error(), "has no estimates.parquet") {
		t.Fatalf("run with (zero) estimates written as v1: %v", err)
	}
}

func TestPublishNeverOverwrites(t *testing.T) {
	d := estimated()
	dir, _ := publish(t, d)
	root := filepath.Dir(filepath.Dir(dir))
	before, _ := os.ReadFile(filepath.Join(dir, reporting.ManifestFile))
	_, err := reporting.Publish(t.Context(), root, runOf(d), nil, source{d}, configOf(d))
	if !errors.Is(err, reporting.ErrExists) {
		t.Fatalf("second publish: %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, reporting.ManifestFile))
	if !bytes.Equal(before, after) {
		t.Fatal("published manifest changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("scratch folders left behind: %v", entries)
	}
	// A scratch folder left by a crashed attempt goes with the next one.
	if err := os.MkdirAll(filepath.Join(filepath.Dir(dir), ".final-v2.tmp-123", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Regeneration compares without touching the folder: identical with the
	// same inputs, and names the manifest when the chain link differs.
	if differs, err := reporting.Regenerate(t.Context(), root, runOf(d), &previous, source{d}, configOf(d)); err != nil || differs != "" {
		t.Fatalf("regeneration differs in %q (%v)", differs, err)
	}
	// A newer build regenerates with the generator of the manifest it
	// compares with.
	upgraded := configOf(d)
	upgraded.Generator = "gridsettle v9.9.9"
	if differs, err := reporting.Regenerate(t.Context(), root, runOf(d), &previous, source{d}, upgraded); err != nil || differs != "" {
		t.Fatalf("regeneration by another build differs in %q (%v)", differs, err)
	}
	if differs, err := reporting.Regenerate(t.Context(), root, runOf(d), nil, source{d}, configOf(d)); err != nil || differs != reporting.ManifestFile {
		t.Fatalf("regeneration with another previous manifest: differs in %q (%v)", differs, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("scratch folders left behind: %v", entries)
	}
}

func TestVerifyGenuine(t *testing.T) {
	d := estimated()
	dir, w := publish(t, d)
	pub := configOf(d).PublicKey()
	r, err := reporting.Verify(t.Context(), dir, pub)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Authenticated || r.ManifestSHA256 != w.ManifestSHA256 || r.KeyID != reporting.KeyID(pub) {
		t.Fatalf("report %+v", r)
	}
	var out bytes.Buffer
	if err := reporting.VerifyCommand(t.Context(), &out, dir, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "NOT authenticated") || !strings.Contains(out.String(), "control totals recomputed") {
		t.Fatalf("output without --public-key:\n%s", out.String())
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, reporting.PublicKeyPEM(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := reporting.VerifyCommand(t.Context(), &out, dir, keyFile); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "NOT authenticated") || !strings.Contains(out.String(), "signed by the trusted key") {
		t.Fatalf("output with --public-key:\n%s", out.String())
	}
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, reporting.PublicKeyPEM(testKey("another key").Public().(ed25519.PublicKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = reporting.VerifyCommand(t.Context(), &out, dir, other)
	if err == nil || !strings.Contains(err.Error(), "signature") || !strings.Contains(out.String(), "FAIL") {
		t.Fatalf("verify with another key: %v\n%s", err, out.String())
	}
}

// copyDir copies an export folder so that a test can damage the copy.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestTamperedFolderFails: changing any byte of any file, truncating or
// extending one, adding or removing a file makes Verify fail with a
// discrepancy that names the damaged file (the manifest when its
// signature no longer verifies).
func TestTamperedFolderFails(t *testing.T) {
	d := estimated()
	dir, _ := publish(t, d)
	pub := configOf(d).PublicKey()
	for _, name := range reporting.FolderFiles {
		orig, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Every byte of the signature and the key; for larger files the
		// first and last 16 bytes and 48 places in between.
		var positions []int
		for i := range orig {
			if len(orig) <= 256 || i < 16 || i >= len(orig)-16 || i%(len(orig)/48) == 0 {
				positions = append(positions, i)
			}
		}
		variants := map[string][]byte{"truncated": orig[:len(orig)-1], "extended": append(slices.Clone(orig), ' ')}
		for _, i := range positions {
			b := slices.Clone(orig)
			b[i] ^= 0x01
			variants[fmt.Sprintf("byte %d", i)] = b
		}
		copied := copyDir(t, dir)
		for what, b := range variants {
			if err := os.WriteFile(filepath.Join(copied, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, trusted := range []ed25519.PublicKey{pub, nil} {
				_, err := reporting.Verify(t.Context(), copied, trusted)
				var disc *reporting.Discrepancy
				if !errors.As(err, &disc) {
					t.Fatalf("%s %q (trusted key %t): %v, want a discrepancy", name, what, trusted != nil, err)
				}
				allowed := []string{name}
				if name == reporting.SignatureFile || (name == reporting.PublicKeyFile && trusted == nil) {
					allowed = append(allowed, reporting.ManifestFile) // the signature no longer verifies
				}
				if !slices.Contains(allowed, disc.File) || !strings.Contains(disc.Error(), disc.File) {
					t.Fatalf("%s %q (trusted key %t): discrepancy in %q: %v", name, what, trusted != nil, disc.File, disc)
				}
			}
		}
		if _, err := reporting.Verify(t.Context(), copied, pub); err == nil {
			t.Fatalf("%s: the last variant verified", name)
		}
	}
	extra := copyDir(t, dir)
	if err := os.WriteFile(filepath.Join(extra, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reporting.Verify(t.Context(), extra, pub); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("extra file: %v", err)
	}
	missing := copyDir(t, dir)
	if err := os.Remove(filepath.Join(missing, parquet.LedgerFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := reporting.Verify(t.Context(), missing, pub); err == nil || !strings.Contains(err.Error(), "ledger.parquet is missing") {
		t.Fatalf("missing file: %v", err)
	}
	noEstimates := copyDir(t, dir)
	if err := os.Remove(filepath.Join(noEstimates, parquet.EstimatesFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := reporting.Verify(t.Context(), noEstimates, pub); err == nil || !strings.Contains(err.Error(), "estimates.parquet is missing") {
		t.Fatalf("v2 folder without estimates.parquet: %v", err)
	}
}

// TestVerifyWithoutTheFolderKey: the signed files are the export. With a
// trusted key a folder without signing-key.pub.pem verifies (a regulator's
// download); without one the folder's key is needed, and the command says
// so.
func TestVerifyWithoutTheFolderKey(t *testing.T) {
	d := estimated()
	dir, _ := publish(t, d)
	pub := configOf(d).PublicKey()
	signed := copyDir(t, dir)
	if err := os.Remove(filepath.Join(signed, reporting.PublicKeyFile)); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, reporting.PublicKeyPEM(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := reporting.VerifyCommand(t.Context(), &out, signed, keyFile); err != nil {
		t.Fatalf("signed files with --public-key: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "signed by the trusted key") || !strings.Contains(out.String(), "no signing-key.pub.pem") {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	err := reporting.VerifyCommand(t.Context(), &out, signed, "")
	if err == nil || !strings.Contains(err.Error(), "signing-key.pub.pem is missing: pass --public-key") {
		t.Fatalf("without any key: %v\n%s", err, out.String())
	}
	// Another key still fails on the signature.
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, reporting.PublicKeyPEM(testKey("another key").Public().(ed25519.PublicKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reporting.VerifyCommand(t.Context(), &out, signed, other); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("another key: %v", err)
	}
}

// resign rewrites a folder's manifest with change applied and signs it
// with key, as a forger holding their own key would.
func resign(t *testing.T, dir string, key ed25519.PrivateKey, change func(*reporting.Manifest)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, reporting.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := reporting.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	change(&m)
	if b, err = m.Marshal(); err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, b)) + "\n"
	for name, content := range map[string][]byte{reporting.ManifestFile: b, reporting.SignatureFile: []byte(sig)} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgedButSelfSigned: a folder signed by a forger's own key, whose
// hashes and signature agree but whose figures do not. Without a trusted
// key the signature passes and the recomputation from the rows finds the
// discrepancy; with the trusted key the signature fails first.
func TestForgedButSelfSigned(t *testing.T) {
	d := estimated()
	forger := configOf(d)
	forger.Key = testKey("forger")
	root := t.TempDir()
	if _, err := reporting.Publish(t.Context(), root, runOf(d), nil, source{d}, forger); err != nil {
		t.Fatal(err)
	}
	genuine := filepath.Join(root, "2026-11-01", "final-v2")
	trusted := configOf(d).PublicKey()

	totals := copyDir(t, genuine)
	resign(t, totals, forger.Key, func(m *reporting.Manifest) { m.ControlTotals.Amount = "1.00" })
	if _, err := reporting.Verify(t.Context(), totals, nil); err == nil || !strings.Contains(err.Error(), "control_totals") {
		t.Fatalf("self-signed manifest with a wrong total: %v", err)
	}
	if _, err := reporting.Verify(t.Context(), totals, trusted); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("forged folder with the trusted key: %v", err)
	}

	// A statements file whose amount was raised, hashed and signed again.
	rows := copyDir(t, genuine)
	d.Statements[1].Amount = d.Statements[1].Amount.Add(decimal.NewFromInt(1000))
	d.Statements[1].DeltaAmount = d.Statements[1].DeltaAmount.Add(decimal.NewFromInt(1000))
	var b bytes.Buffer
	w, err := parquet.NewStatementWriter(&b, parquet.ZSTD, parquet.LayoutV2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Statements {
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rows, parquet.StatementsFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b.Bytes())
	resign(t, rows, forger.Key, func(m *reporting.Manifest) {
		m.Files[0].SHA256, m.Files[0].Bytes = hex.EncodeToString(sum[:]), int64(b.Len())
	})
	_, err = reporting.Verify(t.Context(), rows, nil)
	if err == nil || !strings.Contains(err.Error(), "interval rows in intervals.parquet round to") {
		t.Fatalf("self-signed folder with a raised amount: %v", err)
	}

	// An estimates file with an estimate by a method settlement/README.md
	// "Estimation of missing reads (VEE)" does not have, hashed and signed
	// again.
	est := copyDir(t, genuine)
	d.Estimates[0].Method = "AVG"
	b.Reset()
	ew, err := parquet.NewEstimateWriter(&b, parquet.ZSTD)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range d.Estimates {
		if err := ew.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := ew.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(est, parquet.EstimatesFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(b.Bytes())
	resign(t, est, forger.Key, func(m *reporting.Manifest) {
		m.Files[3].SHA256, m.Files[3].Bytes = hex.EncodeToString(sum[:]), int64(b.Len())
	})
	var disc *reporting.Discrepancy
	if _, err = reporting.Verify(t.Context(), est, nil); !errors.As(err, &disc) || disc.File != parquet.EstimatesFile || !strings.Contains(err.Error(), `method "AVG"`) {
		t.Fatalf("self-signed folder with a bad estimate: %v", err)
	}
	// A manifest whose estimated total was changed and signed again.
	total := copyDir(t, genuine)
	resign(t, total, forger.Key, func(m *reporting.Manifest) { m.ControlTotals.EstimatedEnergyMWh = "0.000000" })
	if _, err := reporting.Verify(t.Context(), total, nil); err == nil || !strings.Contains(err.Error(), "control_totals") {
		t.Fatalf("self-signed manifest with a wrong estimated total: %v", err)
	}
}

// TestRefusesInconsistentRows: the checks Build makes as it writes.
func TestRefusesInconsistentRows(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		damage     func(*reportingtest.Day)
	}{
		{"unbalanced entry", "summing to", func(d *reportingtest.Day) { d.Ledger[0].Amount = d.Ledger[0].Amount.Add(decimal.New(1, -2)) }},
		{"interval of no line", "has no statement line", func(d *reportingtest.Day) { d.Statements = d.Statements[:2] }},
		{"priced interval count", "priced", func(d *reportingtest.Day) { d.Statements[0].PricedIntervals++ }},
		{"unpriced energy", "unpriced_energy_mwh", func(d *reportingtest.Day) {
			d.Statements[0].UnpricedEnergyMWh = d.Statements[0].UnpricedEnergyMWh.Add(decimal.New(1, -6))
		}},
		{"delta", "delta_amount", func(d *reportingtest.Day) { d.Statements[2].DeltaAmount = decimal.Zero }},
		{"price without amount", "both", func(d *reportingtest.Day) { d.Intervals[0].Amount = decimal.NullDecimal{} }},
		{"another day", "is for", func(d *reportingtest.Day) { d.Statements[0].Version = 1 }},
		{"value that does not fit", "column energy_mwh", func(d *reportingtest.Day) {
			d.Intervals[3].EnergyMWh = d.Intervals[3].EnergyMWh.Add(decimal.New(1, -19))
		}},
		{"estimated energy", "estimated_energy_mwh", func(d *reportingtest.Day) {
			d.Statements[0].EstimatedEnergyMWh = d.Statements[0].EstimatedEnergyMWh.Add(decimal.New(1, -6))
		}},
		{"estimate of no line", "has no statement line", func(d *reportingtest.Day) { d.Estimates[4].SettlementPoint = "LZ_WEST" }},
		{"estimate method", "is not one of", func(d *reportingtest.Day) { d.Estimates[0].Method = "lin" }},
		{"estimate out of order", "natural-key order", func(d *reportingtest.Day) { d.Estimates[0], d.Estimates[1] = d.Estimates[1], d.Estimates[0] }},
		{"estimate value that does not fit", "column value_kwh", func(d *reportingtest.Day) { d.Estimates[1].ValueKWh = decimal.New(1, -7) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := estimated()
			tc.damage(&d)
			root := t.TempDir()
			_, err := reporting.Publish(t.Context(), root, runOf(d), nil, source{d}, configOf(d))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNoLedgerEntries(t *testing.T) {
	d := reportingtest.FallBackDay()
	d.Ledger = nil
	dir, w := publish(t, d)
	l := w.Manifest.Lineage.Ledger
	if l.FirstEntryID != nil || l.LastEntryID != nil || l.ChainHead != nil || w.Manifest.Files[2].Rows != 0 {
		t.Fatalf("manifest of a run that posted nothing: %+v", w.Manifest)
	}
	if _, err := reporting.Verify(t.Context(), dir, configOf(d).PublicKey()); err != nil {
		t.Fatal(err)
	}
}

package reporting

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
)

// Source streams one run's rows, each kind in natural-key order (see
// reporting/parquet). Build calls Statements, then Intervals, then Ledger.
type Source interface {
	Statements(ctx context.Context, fn func(parquet.Statement) error) error
	Intervals(ctx context.Context, fn func(parquet.Interval) error) error
	Ledger(ctx context.Context, fn func(parquet.LedgerLine) error) error
}

// Run is what the manifest says about a run beyond its rows.
type Run struct {
	RunID        string
	OperatingDay settlement.Day
	RunType      string
	Version      int
	ComputedAt   time.Time
	Inputs       []Input // the run's lineage: input offsets its snapshot included
}

// Config is how exports are written. Everything in it ends up in the bytes,
// so instances that share an export root must share it.
type Config struct {
	Generator string // the manifest's generator, e.g. "gridsettle v0.3.0"
	Market    settlement.Market
	Codec     parquet.Codec
	Key       ed25519.PrivateKey // signs manifests
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Generator == "":
		return errors.New("export generator is empty")
	case c.Market.Location == nil || c.Market.Currency == "" || c.Market.IntervalSeconds <= 0:
		return errors.New("export market is incomplete (time zone, currency, interval)")
	case len(c.Key) != ed25519.PrivateKeySize:
		return errors.New("export signing key is missing or not ed25519")
	}
	if _, err := parquet.ParseCodec(string(c.Codec)); err != nil {
		return fmt.Errorf("export %w", err)
	}
	return nil
}

// PublicKey is the public half of the signing key.
func (c Config) PublicKey() ed25519.PublicKey { return c.Key.Public().(ed25519.PublicKey) }

// Written is a folder that Build wrote.
type Written struct {
	Manifest       Manifest
	ManifestSHA256 string // hex SHA-256 of manifest.json's bytes
}

// ErrExists is returned by Publish when the export's folder already exists:
// exports are never overwritten.
var ErrExists = errors.New("export folder already exists")

// Publish builds the export of run under root, atomically: into a temporary
// folder next to its final place, every file and the folder fsynced, the
// folder verified by reading it back, then renamed into place and the
// parent fsynced. previous is the hex SHA-256 of the manifest of the
// operating day's previous export (nil for the first).
func Publish(ctx context.Context, root string, run Run, previous *string, src Source, cfg Config) (Written, error) {
	final := filepath.Join(root, filepath.FromSlash(Dir(run.OperatingDay, run.RunType, run.Version)))
	if _, err := os.Lstat(final); err == nil {
		return Written{}, fmt.Errorf("%s: %w", final, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Written{}, fmt.Errorf("check export folder: %w", err)
	}
	tmp, err := scratchDir(final, "tmp")
	if err != nil {
		return Written{}, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	w, err := Build(ctx, tmp, run, previous, src, cfg)
	if err != nil {
		return Written{}, err
	}
	if _, err := Verify(ctx, tmp, cfg.PublicKey()); err != nil {
		return Written{}, fmt.Errorf("verify export before publishing it: %w", err)
	}
	if _, err := os.Lstat(final); err == nil {
		return Written{}, fmt.Errorf("%s: %w", final, ErrExists)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Written{}, fmt.Errorf("publish export folder: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return Written{}, err
	}
	return w, nil
}

// Regenerate builds the export of run again into a scratch folder next to
// the published one and compares the two byte for byte. It never touches
// the published folder. differs names the first file that differs (empty
// when identical).
func Regenerate(ctx context.Context, root string, run Run, previous *string, src Source, cfg Config) (differs string, err error) {
	final := filepath.Join(root, filepath.FromSlash(Dir(run.OperatingDay, run.RunType, run.Version)))
	scratch, err := scratchDir(final, "regen")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(scratch)
	if _, err := Build(ctx, scratch, run, previous, src, cfg); err != nil {
		return "", err
	}
	return CompareFolders(ctx, final, scratch)
}

// scratchDir creates an empty folder named .{base}.{what}-* beside final
// (in the same parent, so a rename is atomic), readable like an export.
func scratchDir(final, what string) (string, error) {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create export folder's parent: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "."+filepath.Base(final)+"."+what+"-")
	if err != nil {
		return "", fmt.Errorf("create scratch export folder: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("create scratch export folder: %w", err)
	}
	return dir, nil
}

// CompareFolders compares two export folders byte for byte and returns the
// name of the first file that differs or is missing from either, or "" when
// they are identical.
func CompareFolders(ctx context.Context, a, b string) (string, error) {
	for _, dir := range []string{a, b} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", fmt.Errorf("list export folder: %w", err)
		}
		for _, e := range entries {
			if !slices.Contains(FolderFiles, e.Name()) {
				return e.Name(), nil
			}
		}
	}
	for _, name := range FolderFiles {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		same, err := sameFile(filepath.Join(a, name), filepath.Join(b, name))
		if err != nil {
			return "", err
		}
		if !same {
			return name, nil
		}
	}
	return "", nil
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("compare export files: %w", err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("compare export files: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aDone := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bDone := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		switch {
		case aDone && bDone:
			return true, nil
		case aDone != bDone:
			return false, nil
		case ea != nil:
			return false, fmt.Errorf("compare export files: %w", ea)
		case eb != nil:
			return false, fmt.Errorf("compare export files: %w", eb)
		}
	}
}

// Build writes the export of run into dir, an existing empty folder: the
// three Parquet files streamed from src, then the manifest computed from
// the rows written, its signature and the public key. Every file and dir
// itself are fsynced. It does not verify or publish the folder (Publish
// does).
func Build(ctx context.Context, dir string, run Run, previous *string, src Source, cfg Config) (Written, error) {
	if err := cfg.Validate(); err != nil {
		return Written{}, err
	}
	t := newTally(run.OperatingDay, run.RunType, run.Version)
	var files []File
	f, err := writeParquet(ctx, dir, parquet.StatementsFile, cfg.Codec, parquet.NewStatementWriter, src.Statements, t.statement)
	if err != nil {
		return Written{}, err
	}
	files = append(files, f)
	if f, err = writeParquet(ctx, dir, parquet.IntervalsFile, cfg.Codec, parquet.NewIntervalWriter, src.Intervals, t.interval); err != nil {
		return Written{}, err
	}
	files = append(files, f)
	if f, err = writeParquet(ctx, dir, parquet.LedgerFile, cfg.Codec, parquet.NewLedgerWriter, src.Ledger, t.ledgerLine); err != nil {
		return Written{}, err
	}
	files = append(files, f)
	totals, ledger, err := t.finish()
	if err != nil {
		return Written{}, fmt.Errorf("export of %s: %w", run.RunID, err)
	}
	inputs := slices.Clone(run.Inputs)
	if inputs == nil {
		inputs = []Input{}
	}
	slices.SortFunc(inputs, func(a, b Input) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	pub := cfg.PublicKey()
	m := Manifest{
		Format:       Format,
		OperatingDay: run.OperatingDay.String(),
		RunType:      run.RunType,
		Version:      run.Version,
		RunID:        run.RunID,
		ComputedAt:   formatInstant(run.ComputedAt),
		Generator:    cfg.Generator + " (" + parquet.Libraries + ")",
		Market: Market{
			Timezone:        cfg.Market.Location.String(),
			Currency:        cfg.Market.Currency,
			IntervalSeconds: cfg.Market.IntervalSeconds,
		},
		Files:                  files,
		ControlTotals:          totals,
		Lineage:                Lineage{Inputs: inputs, Ledger: ledger},
		PreviousManifestSHA256: previous,
		SigningKeyID:           KeyID(pub),
	}
	body, err := m.Marshal()
	if err != nil {
		return Written{}, err
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(cfg.Key, body)) + "\n"
	for _, file := range []struct {
		name string
		b    []byte
	}{{ManifestFile, body}, {SignatureFile, []byte(sig)}, {PublicKeyFile, PublicKeyPEM(pub)}} {
		if err := writeSmall(ctx, filepath.Join(dir, file.name), file.b); err != nil {
			return Written{}, err
		}
	}
	if err := syncDir(dir); err != nil {
		return Written{}, err
	}
	sum := sha256.Sum256(body)
	return Written{Manifest: m, ManifestSHA256: hex.EncodeToString(sum[:])}, nil
}

// writeParquet streams rows from stream through check into a new file
// name in dir, hashing and counting the bytes as they are written.
func writeParquet[R any](ctx context.Context, dir, name string, codec parquet.Codec,
	open func(io.Writer, parquet.Codec) (*parquet.Writer[R], error),
	stream func(context.Context, func(R) error) error, check func(R) error,
) (File, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return File{}, fmt.Errorf("create %s: %w", name, err)
	}
	defer f.Close()
	buf := bufio.NewWriterSize(f, 1<<20)
	hw := &hashingWriter{w: buf, h: sha256.New()}
	w, err := open(hw, codec)
	if err != nil {
		return File{}, err
	}
	if err := stream(ctx, func(r R) error {
		if err := check(r); err != nil {
			return err
		}
		return w.Write(r)
	}); err != nil {
		return File{}, fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Close(ctx); err != nil {
		return File{}, err
	}
	if err := buf.Flush(); err != nil {
		return File{}, fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return File{}, fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return File{}, fmt.Errorf("close %s: %w", name, err)
	}
	return File{Name: name, SHA256: hex.EncodeToString(hw.h.Sum(nil)), Bytes: hw.n, Rows: w.Rows()}, nil
}

type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// writeSmall writes a new file in one go and fsyncs it.
func writeSmall(ctx context.Context, path string, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if err := writeAndSync(f, b); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

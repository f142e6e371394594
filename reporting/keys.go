package reporting

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// KeyID is the hex SHA-256 of the public key's DER (SubjectPublicKeyInfo)
// bytes: the manifest's signing_key_id.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(publicKeyDER(pub))
	return hex.EncodeToString(sum[:])
}

func publicKeyDER(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only unsupported key types fail, and the type is fixed.
		panic(fmt.Sprintf("marshal ed25519 public key: %v", err))
	}
	return der
}

// PublicKeyPEM is the public key as a PEM "PUBLIC KEY" block: the content
// of signing-key.pub.pem and of GET /api/v1/exports/public-key.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: publicKeyDER(pub)})
}

// ParsePublicKeyPEM reads an ed25519 public key from a PEM "PUBLIC KEY"
// block, with nothing else in b.
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM PUBLIC KEY block")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("data after the PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want ed25519", k)
	}
	return pub, nil
}

// ReadPublicKeyFile reads a PEM ed25519 public key (--public-key FILE).
func ReadPublicKeyFile(ctx context.Context, path string) (ed25519.PublicKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	pub, err := ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// LoadSigningKey reads an ed25519 private key from a PEM PKCS #8 file
// (--signing-key).
func LoadSigningKey(ctx context.Context, path string) (ed25519.PrivateKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: no PEM PRIVATE KEY (PKCS #8) block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is %T, want ed25519", path, k)
	}
	return key, nil
}

// LoadOrCreateSigningKey loads the key at path, or, when there is no file
// there, generates one and writes it (mode 0600, its folder 0700), logging
// that it did and the public key. Instances that start together on shared
// storage end up with the same key: the file is published with a hard link,
// which fails if another instance got there first, and then that key is
// loaded.
func LoadOrCreateSigningKey(ctx context.Context, path string, log *slog.Logger) (ed25519.PrivateKey, error) {
	key, err := LoadSigningKey(ctx, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create signing key folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".export-signing-*.pem")
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeAndSync(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadSigningKey(ctx, path)
		}
		return nil, fmt.Errorf("publish signing key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	log.Warn("generated a new export signing key; give regulators its public key through a channel they trust",
		"path", path, "key_id", KeyID(pub), "public_key", string(PublicKeyPEM(pub)))
	return key, nil
}

// writeAndSync writes b to f (created 0600 by os.CreateTemp), fsyncs and
// closes it.
func writeAndSync(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir fsyncs a folder, so that the names created or renamed in it
// survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

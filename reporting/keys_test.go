package reporting_test

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/reporting"
)

func TestLoadOrCreateSigningKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "export-signing.pem")
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	key, err := reporting.LoadOrCreateSigningKey(t.Context(), path, log)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("key folder mode %v, want 0700", di.Mode().Perm())
	}
	pub := key.Public().(ed25519.PublicKey)
	if !strings.Contains(logged.String(), "generated a new export signing key") ||
		!strings.Contains(logged.String(), reporting.KeyID(pub)) || !strings.Contains(logged.String(), "BEGIN PUBLIC KEY") {
		t.Fatalf("log does not announce the new key and print its public key:\n%s", logged.String())
	}
	logged.Reset()
	again, err := reporting.LoadOrCreateSigningKey(t.Context(), path, log)
	if err != nil || !again.Equal(key) {
		t.Fatalf("second start: %v, same key %t", err, again.Equal(key))
	}
	if logged.Len() != 0 {
		t.Fatalf("loading an existing key logged %q", logged.String())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("key folder holds %v", entries)
	}
	parsed, err := reporting.ParsePublicKeyPEM(reporting.PublicKeyPEM(pub))
	if err != nil || !parsed.Equal(pub) {
		t.Fatalf("public key PEM round trip: %v", err)
	}
}

func TestLoadSigningKeyRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty.pem":  "",
		"public.pem": string(reporting.PublicKeyPEM(testKey("x").Public().(ed25519.PublicKey))),
		"junk.pem":   "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := reporting.LoadSigningKey(t.Context(), path); err == nil {
			t.Errorf("%s loaded as a signing key", name)
		}
	}
	if _, err := reporting.LoadSigningKey(t.Context(), filepath.Join(dir, "absent.pem")); err == nil {
		t.Error("absent key loaded")
	}
}

package reporting

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
)

// VerifyCommand is `gridsettle export verify DIR [--public-key FILE]`: it
// verifies the folder DIR (see Verify), with the public key in the PEM file
// publicKeyFile when it is not empty, prints each check that passed to out
// and a last line saying whether the export verified, and returns the first
// discrepancy (the command then exits non-zero).
func VerifyCommand(ctx context.Context, out io.Writer, dir, publicKeyFile string) error {
	var trusted ed25519.PublicKey
	if publicKeyFile != "" {
		var err error
		if trusted, err = ReadPublicKeyFile(ctx, publicKeyFile); err != nil {
			return err
		}
	}
	r, err := Verify(ctx, dir, trusted)
	for _, c := range r.Checks {
		fmt.Fprintln(out, "ok  ", c)
	}
	if err != nil {
		fmt.Fprintf(out, "FAIL %s: %v\n", dir, err)
		return fmt.Errorf("export %s does not verify: %w", dir, err)
	}
	if r.Authenticated {
		fmt.Fprintf(out, "export %s verified: signed by the trusted key %s\n", dir, r.KeyID)
	} else {
		fmt.Fprintf(out, "export %s verified, but the signer is NOT authenticated: pass --public-key FILE with the key obtained from the operator\n", dir)
	}
	return nil
}

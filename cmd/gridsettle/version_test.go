package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	m := &Main{Args: []string{"version"}, LookupEnv: func(string) (string, bool) { return "", false }, Stdout: &out, Stderr: &out}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := readBuild()
	if !strings.HasPrefix(out.String(), "gridsettle "+b.Version+"\nrevision   ") || !strings.Contains(out.String(), "go         go1.") {
		t.Errorf("version printed:\n%s", out.String())
	}
}

// The manifest's generator names the version and, when the version does not
// carry it, the revision.
func TestGenerator(t *testing.T) {
	for _, c := range []struct {
		b    build
		want string
	}{
		{build{Version: "v0.4.0"}, "gridsettle v0.4.0"},
		{build{Version: "(devel)", Revision: "1a2b3c4d5e6f7a8b9c0d", Modified: true}, "gridsettle (devel) 1a2b3c4d5e6f+dirty"},
		{build{Version: "(devel)", Revision: "1a2b3c4d5e6f7a8b9c0d"}, "gridsettle (devel) 1a2b3c4d5e6f"},
		{build{Version: "v0.0.0-20261206103000-1a2b3c4d5e6f+dirty", Revision: "1a2b3c4d5e6f7a8b9c0d", Modified: true},
			"gridsettle v0.0.0-20261206103000-1a2b3c4d5e6f+dirty"},
		{build{Version: "v0.4.0", Revision: "abc"}, "gridsettle v0.4.0 abc"},
	} {
		if got := c.b.generator(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.b, got, c.want)
		}
	}
}

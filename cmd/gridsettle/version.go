package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// build is what the go command recorded about this binary: the main
// module's version (a tag, a pseudo-version, or "(devel)" for a build of a
// work tree) and the VCS revision it was built from.
type build struct {
	Version  string // e.g. v0.4.0, v0.0.0-20261206103000-1a2b3c4d5e6f+dirty, (devel)
	Revision string // the VCS commit; "" when the build has no VCS stamp (go test, -buildvcs=false)
	Time     string // the commit's time, RFC 3339
	Modified bool   // built from a work tree with uncommitted changes
	Go       string // the toolchain
}

// readBuild reads the build information embedded in the binary.
func readBuild() build {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return build{Version: "(unknown)"}
	}
	b := build{Version: info.Main.Version, Go: info.GoVersion}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// generator names this build in new export manifests' "generator"
// (reporting/README.md): "gridsettle <version>", with the revision when the
// version does not already carry it. Regenerating an export keeps the generator
// of its stored manifest.
func (b build) generator() string {
	g := "gridsettle " + b.Version
	if b.Revision != "" && !strings.Contains(b.Version, shortRevision(b.Revision)) {
		g += " " + shortRevision(b.Revision)
		if b.Modified {
			g += "+dirty"
		}
	}
	return g
}

func shortRevision(r string) string { return r[:min(len(r), 12)] }

// newVersionCmd is `gridsettle version`.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the build's module version and VCS revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuild()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "gridsettle %s\n", b.Version)
			revision := b.Revision
			switch {
			case revision == "":
				revision = "unknown (built without VCS information)"
			case b.Modified:
				revision += " (modified)"
			}
			fmt.Fprintf(w, "revision   %s\n", revision)
			if b.Time != "" {
				fmt.Fprintf(w, "committed  %s\n", b.Time)
			}
			fmt.Fprintf(w, "go         %s\n", b.Go)
			return nil
		},
	}
}

//go:build !linux

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newChaosCmd is `gridsettle chaos`, which needs Linux (/proc, process
// groups, SIGSTOP of the workers).
func newChaosCmd(*Main) *cobra.Command {
	c := &cobra.Command{Use: "chaos", Short: "Prove exactly-once under faults (Linux only)", Args: cobra.NoArgs}
	bindFlags(c.Flags(), groupLog)
	c.RunE = func(*cobra.Command, []string) error { return errors.New("chaos needs Linux") }
	return c
}

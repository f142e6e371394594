//go:build !unix

package failpoint

import (
	"errors"
	"os"
	"slices"
)

// errUnsupported is returned by Enable for an action this platform lacks.
var errUnsupported = errors.New("failpoints: :stop needs a Unix system")

// signalSelf kills this process; Enable refuses Stop here.
func signalSelf(Action) error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Kill()
}

func supported(specs []Spec) error {
	if slices.ContainsFunc(specs, func(s Spec) bool { return s.Action == Stop }) {
		return errUnsupported
	}
	return nil
}

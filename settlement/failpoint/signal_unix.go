//go:build unix && !linux

package failpoint

import (
	"os"
	"syscall"
)

// signalSelf sends the action's signal to this process. SIGSTOP returns
// once someone sends SIGCONT.
func signalSelf(a Action) error {
	sig := syscall.SIGKILL
	if a == Stop {
		sig = syscall.SIGSTOP
	}
	return syscall.Kill(os.Getpid(), sig)
}

func supported([]Spec) error { return nil }

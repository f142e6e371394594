package failpoint

import (
	"runtime"
	"syscall"
)

// signalSelf sends the action's signal to the calling thread. A stop or a
// kill signal acts on the whole process either way, but a signal sent to
// the process may be taken by another thread first, and the caller runs on
// meanwhile (long enough to COMMIT); sent to the calling thread, it acts
// before the thread returns to the failpoint. SIGSTOP returns once someone
// sends SIGCONT.
func signalSelf(a Action) error {
	sig := syscall.SIGKILL
	if a == Stop {
		sig = syscall.SIGSTOP
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return syscall.Tgkill(syscall.Getpid(), syscall.Gettid(), sig)
}

func supported([]Spec) error { return nil }

package main

import "syscall"

// childProcAttr puts a child in its own process group and has the kernel
// send it SIGTERM if we die without stopping it (kill -9), so that an
// orphaned broker still shuts down cleanly instead of holding the port.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

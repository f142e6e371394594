package mosquittotest

import "syscall"

// procAttr makes the broker die with the process that started it, even
// one killed hard.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

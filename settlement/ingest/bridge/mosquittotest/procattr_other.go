//go:build !linux

package mosquittotest

import "syscall"

// procAttr: without Pdeathsig, Stop is what ends the broker.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

package integration

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill a child when the test binary
// dies, so a crashed or timed-out test run leaves no agent behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

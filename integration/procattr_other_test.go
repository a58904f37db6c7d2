//go:build !linux

package integration

import "os/exec"

// setParentDeathSignal has no portable equivalent off Linux; the tests'
// cleanups still kill their processes.
func setParentDeathSignal(*exec.Cmd) {}

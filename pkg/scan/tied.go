package scan

import (
	"os/exec"
	"runtime"
)

// startTied starts cmd, a process that lives as long as the scan (the
// trivy server, a worker), so that it dies with this process even when
// this one is killed outright: a trivy server left running keeps the
// vulnerability DB locked, and every later scan would wait on it. exited
// gets what Wait returns.
//
// On Linux that is the parent-death signal. The kernel sends it when the
// thread that started the child ends, not the process, so the start and
// the wait run on one goroutine locked to its thread, which therefore lives
// as long as the child.
func startTied(cmd *exec.Cmd, exited func(error)) error {
	tieToParent(cmd)
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}

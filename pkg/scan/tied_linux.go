package scan

import (
	"os/exec"
	"syscall"
)

// tieToParent has the kernel kill cmd when the thread that starts it ends.
func tieToParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// Package checks runs the static checks of hoist.yaml (vet, tests, a
// linter, …) in order, stopping at the first that fails.
package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Check is one command run in the repository root.
type Check struct {
	Name string
	Run  []string
}

// Options tune Run.
type Options struct {
	Dir      string    // working folder (the repository root)
	LogDir   string    // each check's output goes to check-NAME.log here
	Progress io.Writer // one line per check; nil is silent
	Env      []string  // the commands' environment, KEY=VALUE; nil inherits this process's
}

// Error is a failed check: its name, exit code, log and the tail of its output.
type Error struct {
	Name string
	Code int
	Log  string
	Tail string
	Err  error // when it could not run at all
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("check %s could not run: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("check %s failed (exit %d; full output in %s):\n%s", e.Name, e.Code, e.Log, e.Tail)
}

// tailLines is how much of a failing check's output the error shows.
const tailLines = 30

// Run runs the checks in order and returns the first failure as *Error.
func Run(ctx context.Context, checks []Check, o Options) error {
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return fmt.Errorf("creating the log folder: %w", err)
	}
	for _, c := range checks {
		start := time.Now()
		if err := runOne(ctx, c, o); err != nil {
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "check %-12s FAIL (%.1fs)\n", c.Name, time.Since(start).Seconds())
			}
			return err
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "check %-12s ok (%.1fs)\n", c.Name, time.Since(start).Seconds())
		}
	}
	return nil
}

// LogPath is where a check's output goes.
func LogPath(dir, name string) string {
	return filepath.Join(dir, "check-"+strings.NewReplacer("/", "_", " ", "_").Replace(name)+".log")
}

func runOne(ctx context.Context, c Check, o Options) error {
	logPath := LogPath(o.LogDir, c.Name)
	f, err := os.Create(logPath)
	if err != nil {
		return &Error{Name: c.Name, Err: err}
	}
	defer f.Close()
	var tail tailBuffer
	cmd := exec.CommandContext(ctx, c.Run[0], c.Run[1:]...)
	cmd.Dir = o.Dir
	cmd.Env = o.Env
	cmd.Stdout = io.MultiWriter(f, &tail)
	cmd.Stderr = cmd.Stdout
	// A check such as go test starts children; on cancel the whole process
	// group goes, and Wait does not hang on pipes they still hold.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("check %s: %w", c.Name, ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return &Error{Name: c.Name, Code: ee.ExitCode(), Log: logPath, Tail: tail.String()}
	default:
		return &Error{Name: c.Name, Log: logPath, Err: fmt.Errorf("%w: install it or fix checks in hoist.yaml", err)}
	}
}

// tailBuffer keeps the last lines written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 64<<10 {
		t.b = append([]byte(nil), t.b[len(t.b)-32<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	lines := bytes.Split(bytes.TrimRight(t.b, "\n"), []byte("\n"))
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

package lock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hoistci/hoist/pkg/readlimit"
)

// RunLock is held by one run of Hoist per checkout for its whole duration:
// two runs in one build folder would interleave their builds, lock updates
// and pushes.
type RunLock struct{ l *FileLock }

// HoldRun takes the run lock at path. When another process holds it,
// waiting is called once with that process's ID, and HoldRun waits until
// the lock is free or ctx ends.
func HoldRun(ctx context.Context, path string, waiting func(pid int)) (*RunLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	var told func()
	if waiting != nil {
		told = func() {
			// The PID is a short line; read no more than that, whatever the
			// file has become.
			b, _ := readlimit.ReadFile(path, "the run lock", 32)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			waiting(pid)
		}
	}
	fl, err := Acquire(ctx, path, told)
	if err != nil {
		return nil, fmt.Errorf("taking the run lock: %w", err)
	}
	// The holder's PID, for the message a waiting run prints.
	if err := fl.f.Truncate(0); err == nil {
		_, _ = fl.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &RunLock{l: fl}, nil
}

// Release lets the next run in; the lock is released even when the
// process dies.
func (l *RunLock) Release() {
	if l != nil {
		l.l.Release()
	}
}

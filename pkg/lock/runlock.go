package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RunLock is held by one run of Hoist per checkout for its whole duration:
// two runs in one build folder would interleave their builds, lock updates
// and pushes.
type RunLock struct{ f *os.File }

// HoldRun takes the run lock at path. When another process holds it,
// waiting is called once with that process's ID, and HoldRun waits until
// the lock is free or ctx ends.
func HoldRun(ctx context.Context, path string, waiting func(pid int)) (*RunLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("taking the run lock %s: %w", path, err)
	}
	told := false
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("taking the run lock %s: %w", path, err)
		}
		if !told && waiting != nil {
			b, _ := os.ReadFile(path)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			waiting(pid)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the run lock %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
	// The holder's PID, for the message a waiting run prints.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &RunLock{f: f}, nil
}

// Release lets the next run in; closing the file releases the lock even
// when the process dies.
func (l *RunLock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// FileLock is an exclusive advisory lock on one file, held until Release;
// the kernel drops it when the process dies.
type FileLock struct{ f *os.File }

// Acquire takes an exclusive advisory lock on the file at path (created
// when missing). While another process holds it, Acquire waits until ctx
// ends; waiting, when not nil, is called once, the first time the lock is
// found held. The kernel's blocking wait cannot be interrupted by a
// context, so it tries without blocking and waits between tries (1ms,
// doubling to 50ms).
func Acquire(ctx context.Context, path string, waiting func()) (*FileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &FileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for %s, held by another process: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

// Release lets the next holder in.
func (l *FileLock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN) // closing releases it anyway
	l.f.Close()
	l.f = nil
}

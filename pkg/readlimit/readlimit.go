// Package readlimit is the one home of reading a file Hoist was pointed
// at: a regular file only (a FIFO or a device such as /dev/zero is
// refused, after symlinks), and never more bytes than its kind may hold,
// so a hostile or careless path cannot exhaust memory or hang a run.
package readlimit

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits per kind of file (docs/config.md lists them).
const (
	Config     = 1 << 20   // hoist.yaml
	Version    = 256       // VERSION
	Dockerfile = 1 << 20   // a Dockerfile or a Dockerfile template
	List       = 64 << 10  // an axis file such as PYTHON_VERSIONS
	Lock       = 64 << 20  // build/hoist/lock.json
	BaseFile   = 1 << 30   // a host file copied into a local base (bases[].files, busybox)
	Secret     = 500 << 10 // a build secret's file (BuildKit's own limit for a secret)
)

// ErrTooLarge is wrapped when a file holds more than its limit.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped when a path names a FIFO, a device, a socket or
// a folder where a file is meant.
var ErrNotRegular = errors.New("not a regular file")

// ReadFile reads the regular file at path, refusing it when it holds more
// than limit bytes. what names the file's kind in the message (e.g.
// "VERSION"). A missing file's error wraps fs.ErrNotExist, as os.ReadFile's does.
func ReadFile(path, what string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO with no writer must not block before the
	// mode check below can refuse it.
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is %s, %w: point it at a regular file", what, path, kind(st.Mode()), ErrNotRegular)
	}
	if st.Size() > limit {
		return nil, tooLarge(path, what, fmt.Sprint(st.Size()), limit)
	}
	// The size can grow between Stat and Read: read one byte past the limit to see it.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(path, what, "more than "+fmt.Sprint(limit), limit)
	}
	return b, nil
}

// Check is ReadFile's refusals without the read, for a file that is
// streamed later (a base's host files): a regular file of at most limit
// bytes. The stream itself stops at the size seen here.
func Check(path, what string, limit int64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s is %s, %w: point it at a regular file", what, path, kind(st.Mode()), ErrNotRegular)
	}
	if st.Size() > limit {
		return tooLarge(path, what, fmt.Sprint(st.Size()), limit)
	}
	return nil
}

func tooLarge(path, what, size string, limit int64) error {
	return fmt.Errorf("%s %s holds %s bytes, %w: the limit for a %s is %s (docs/config.md)", what, path, size, ErrTooLarge, what, Size(limit))
}

// Size writes n bytes the way the docs do: 256 bytes, 64 KiB, 1 MiB.
func Size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

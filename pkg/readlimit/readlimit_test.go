package readlimit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 257), 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       error
		text       string
	}{
		{name: "within the limit", path: small},
		{name: "one byte over", path: big, want: ErrTooLarge, text: "the limit for a VERSION is 256 bytes"},
		{name: "symlink to /dev/zero", path: zero, want: ErrNotRegular, text: "is a character device"},
		{name: "FIFO with no writer", path: fifo, want: ErrNotRegular, text: "is a FIFO"},
		{name: "folder", path: dir, want: ErrNotRegular, text: "is a folder"},
		{name: "missing", path: filepath.Join(dir, "none"), want: fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadFile(tc.path, "VERSION", Version)
			if tc.want == nil {
				if err != nil || string(b) != "0.1.0\n" {
					t.Fatalf("got %q, %v", b, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("message %q: want one line containing %q", err, tc.text)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{256: "256 bytes", 64 << 10: "64 KiB", 1 << 20: "1 MiB", 64 << 20: "64 MiB", 1500: "1500 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

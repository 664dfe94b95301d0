package bump

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/Masterminds/semver/v3"
)

// File is a VERSION file as read: the version and the style it is written
// in, so writing it back changes nothing but the version.
type File struct {
	Path     string
	Version  *semver.Version
	LeadingV bool   // written as v1.2.3
	EOL      string // what ended the line: "\n", "\r\n" or "" (none)
}

// ReadFile reads a VERSION file: one version on one line.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: no such file: create it with one version, e.g. echo 0.1.0 > %s", path, filepath.Base(path))
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	f := &File{Path: path}
	line := b
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		f.EOL, line = "\r\n", line[:len(line)-2]
	case bytes.HasSuffix(line, []byte("\n")):
		f.EOL, line = "\n", line[:len(line)-1]
	}
	if bytes.ContainsAny(line, "\r\n") {
		return nil, fmt.Errorf("%s: %w: the file must hold one version on one line, nothing else", path, ErrInvalid)
	}
	f.Version, f.LeadingV, err = Parse(string(line))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// String is the version in the file's style, e.g. v1.2.3.
func (f *File) String() string { return Format(f.Version, f.LeadingV) }

// Write replaces the version, keeping the file's style, atomically: a
// reader sees the old file or the new one, never a part.
func (f *File) Write(v *semver.Version) error {
	data := []byte(Format(v, f.LeadingV) + f.EOL)
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(f.Path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), mode)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), f.Path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", f.Path, werr)
	}
	f.Version = v
	return nil
}

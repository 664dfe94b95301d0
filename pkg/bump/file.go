package bump

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/version"
)

// File is a VERSION file as read: the version and the style it is written
// in, so writing it back changes nothing but the version.
type File struct {
	Path     string
	Version  *semver.Version
	LeadingV bool   // written as v1.2.3
	EOL      string // what ended the line: "\n", "\r\n" or "" (none)
}

// ReadFile reads a VERSION file by version.Load's rule: one version on one
// line, nothing else.
func ReadFile(path string) (*File, error) {
	f, err := version.Load(path)
	if err != nil {
		return nil, err
	}
	return &File{Path: f.Path, Version: f.Version.SemVer, LeadingV: f.Version.V, EOL: f.EOL}, nil
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

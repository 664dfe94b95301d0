// Package version reads the VERSION file (SemVer with an optional leading
// "v", written back in the file's own style) and list files such as
// PYTHON_VERSIONS (one value a line, blank lines and # comments allowed).
package version

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Version is a parsed VERSION file.
type Version struct {
	SemVer *semver.Version
	// V records whether the file wrote a leading "v", so it is written back
	// the same way.
	V bool
}

// strict is SemVer 2.0.0 (with an optional leading v): Masterminds' own
// parser also takes "1.2" and "1", which a VERSION file must not hold.
var strict = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// Parse reads a version such as 1.2.3, v1.2.3-rc.1 or 1.2.3+build.5.
func Parse(s string) (Version, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Version{}, fmt.Errorf("empty version: write one such as 1.2.3")
	}
	if !strict.MatchString(s) {
		return Version{}, fmt.Errorf("%q is not a SemVer version: write MAJOR.MINOR.PATCH, e.g. 1.2.3 or v1.2.3-rc.1", s)
	}
	sv, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		return Version{}, fmt.Errorf("%q is not a SemVer version (%v): write MAJOR.MINOR.PATCH, e.g. 1.2.3", s, err)
	}
	return Version{SemVer: sv, V: strings.HasPrefix(s, "v")}, nil
}

// String writes the version in the file's style.
func (v Version) String() string {
	if v.SemVer == nil {
		return ""
	}
	if v.V {
		return "v" + v.SemVer.String()
	}
	return v.SemVer.String()
}

// Plain is the version without a leading v: what image tags use.
func (v Version) Plain() string { return v.SemVer.String() }

// Base is MAJOR.MINOR.PATCH with prerelease and build metadata dropped.
func (v Version) Base() string {
	return fmt.Sprintf("%d.%d.%d", v.SemVer.Major(), v.SemVer.Minor(), v.SemVer.Patch())
}

// Prerelease reports whether the version has a prerelease part.
func (v Version) Prerelease() bool { return v.SemVer.Prerelease() != "" }

// ReadFile reads and parses a VERSION file. Errors name the file.
func ReadFile(path string) (Version, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Version{}, fmt.Errorf("reading version file: %w: create it with one line such as 0.1.0", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	if len(lines) != 1 {
		return Version{}, fmt.Errorf("%s: %d lines: a VERSION file holds exactly one version line", path, len(lines))
	}
	v, err := Parse(lines[0])
	if err != nil {
		return Version{}, fmt.Errorf("%s:1: %w", path, err)
	}
	return v, nil
}

// ListError is a bad line in a list file.
type ListError struct {
	File string
	Line int
	Msg  string
}

func (e *ListError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// pythonVersion is MAJOR.MINOR or MAJOR.MINOR.PATCH.
var pythonVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)

// ParsePythonVersions parses a PYTHON_VERSIONS file's content: one version a
// line (3.12 or 3.12.1), blank lines and # comments allowed; malformed or
// duplicate lines are rejected with their line number.
func ParsePythonVersions(file string, data []byte) ([]string, error) {
	return ParseList(file, data, func(s string) error {
		if !pythonVersion.MatchString(s) {
			return fmt.Errorf("%q is not a version: write MAJOR.MINOR such as 3.12", s)
		}
		for _, p := range strings.Split(s, ".") {
			if len(p) > 1 && p[0] == '0' {
				return fmt.Errorf("%q has a leading zero: write %s", s, strings.TrimLeft(p, "0"))
			}
			if len(p) > 9 {
				return fmt.Errorf("%q has a number too large to be a version", s)
			}
		}
		return nil
	})
}

// ParseList parses a file of one value a line, blank lines and # comments
// allowed, checking each value with valid and refusing duplicates.
func ParseList(file string, data []byte, valid func(string) error) ([]string, error) {
	var out []string
	seen := map[string]int{}
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, &ListError{file, n, fmt.Sprintf("%q holds more than one value: write one value a line", line)}
		}
		if valid != nil {
			if err := valid(line); err != nil {
				return nil, &ListError{file, n, err.Error()}
			}
		}
		if prev, ok := seen[line]; ok {
			return nil, &ListError{file, n, fmt.Sprintf("%s is listed twice (first at line %d): remove one", line, prev)}
		}
		seen[line] = n
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, &ListError{file, 1, "no values: add one a line"}
	}
	return out, nil
}

// Package version is the one home of Hoist's version rules: reading the
// VERSION file, parsing SemVer (with an optional leading "v", written back
// in the file's own style), the X.Y.Z base of a version and the staging
// form X.Y.Z-staging.N. It also reads list files such as PYTHON_VERSIONS
// (one value a line, blank lines and # comments allowed).
package version

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/readlimit"
)

// ErrInvalid is wrapped by every refusal of a version's text.
var ErrInvalid = errors.New("invalid version")

// Version is a parsed version.
type Version struct {
	SemVer *semver.Version
	// V records whether the text had a leading "v", so it is written back
	// the same way.
	V bool
}

// strict is SemVer 2.0.0's grammar (with an optional leading v). Checked
// before Masterminds' strict parser, it lets a refusal tell a malformed
// version from one whose numbers are too large for uint64, which only the
// parser refuses. (Masterminds' loose parser would take "1.2" and "1".)
var strict = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

const form = "write MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.2.3 or v1.2.3-rc.1"

// Parse reads a version such as 1.2.3, v1.2.3-rc.1 or 1.2.3+build.5,
// exactly: no surrounding space, no loose form such as 1.2. Errors wrap
// ErrInvalid and quote at most a short prefix of s.
func Parse(s string) (Version, error) {
	switch {
	case s == "":
		return Version{}, fmt.Errorf("%w: empty: %s", ErrInvalid, form)
	case strings.TrimSpace(s) != s:
		return Version{}, fmt.Errorf("%w %s: space before or after it: remove it", ErrInvalid, Quote(s))
	case !strict.MatchString(s):
		return Version{}, fmt.Errorf("%w %s: %s", ErrInvalid, Quote(s), form)
	}
	sv, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		// The pattern matched, so only a number too large is left.
		return Version{}, fmt.Errorf("%w %s: a number is larger than semver tools hold (%d): %s", ErrInvalid, Quote(s), uint64(1<<64-1), form)
	}
	return Version{SemVer: sv, V: strings.HasPrefix(s, "v")}, nil
}

// MaxTag is the longest image tag a registry takes (the distribution spec's
// tag grammar allows 128 characters).
const MaxTag = 128

// Taggable refuses a version that cannot be an image tag, so a VERSION
// file is refused when read rather than by every build later with
// "invalid reference format": a tag cannot hold '+' (SemVer build
// metadata), and is at most MaxTag characters. Hoist does not map build
// metadata to another character: 1.2.3+a and 1.2.3-a would then collide
// (docs/release.md).
func Taggable(v Version) error {
	if m := v.SemVer.Metadata(); m != "" {
		if len(m) > quoteMax { // the grammar makes it ASCII
			m = m[:quoteMax] + "…"
		}
		return fmt.Errorf("%w %s: build metadata (+%s) cannot be in an image tag, which cannot hold '+': remove it (a prerelease, -%s, can be)", ErrInvalid, Quote(v.String()), m, m)
	}
	// The staging form of a release candidate's base is short; the version
	// itself is the longest tag Hoist writes.
	if n := len(v.Plain()); n > MaxTag {
		return fmt.Errorf("%w %s: %d characters, and an image tag holds at most %d: shorten the prerelease", ErrInvalid, Quote(v.String()), n, MaxTag)
	}
	return nil
}

// String writes the version in its original style.
func (v Version) String() string {
	if v.SemVer == nil {
		return ""
	}
	return Format(v.SemVer, v.V)
}

// Format writes v with or without a leading v.
func Format(v *semver.Version, leadingV bool) string {
	if leadingV {
		return "v" + v.String()
	}
	return v.String()
}

// Plain is the version without a leading v: what image tags use.
func (v Version) Plain() string { return v.SemVer.String() }

// Base is MAJOR.MINOR.PATCH with prerelease and build metadata dropped.
func (v Version) Base() string { return Base(v.SemVer).String() }

// Prerelease reports whether the version has a prerelease part.
func (v Version) Prerelease() bool { return v.SemVer.Prerelease() != "" }

// Base is X.Y.Z of v: the prerelease and build metadata dropped. Every
// build of X.Y.Z (staging builds, release candidates, the release) shares
// its changelog, its staging counter and its release tag.
func Base(v *semver.Version) *semver.Version {
	return semver.New(v.Major(), v.Minor(), v.Patch(), "", "")
}

// Channel is the prerelease name of staging builds: X.Y.Z-staging.N.
const Channel = "staging"

// FirstStaging is N of the first staging build of a version: the staging
// line bootstraps at X.Y.Z-staging.0 on its first publish.
const FirstStaging = 0

// Staging is X.Y.Z-staging.N for the base of v.
func Staging(v *semver.Version, n uint64) string {
	return StagingTag(Base(v).String(), n)
}

// StagingTag is base-staging.N for a base already written as X.Y.Z.
func StagingTag(base string, n uint64) string {
	return base + "-" + Channel + "." + strconv.FormatUint(n, 10)
}

// StagingN returns N when v is X.Y.Z-staging.N (build metadata aside).
func StagingN(v *semver.Version) (uint64, bool) {
	rest, ok := strings.CutPrefix(v.Prerelease(), Channel+".")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

// ParseStaging splits a tag X.Y.Z-staging.N into X.Y.Z and N. Only the
// exact form is accepted (no leading v, no build metadata, no leading
// zeros), so Staging(base, n) gives back s.
func ParseStaging(s string) (base *semver.Version, n uint64, ok bool) {
	v, err := Parse(s)
	if err != nil || v.V || v.SemVer.Metadata() != "" {
		return nil, 0, false
	}
	n, ok = StagingN(v.SemVer)
	if !ok {
		return nil, 0, false
	}
	return Base(v.SemVer), n, true
}

// File is a VERSION file as read: the version and what ended its line, so
// rewriting it changes nothing but the version.
type File struct {
	Path    string
	Version Version
	EOL     string // "\n", "\r\n" or "" (none)
}

// Load reads a VERSION file. The rule: the file holds one version and
// nothing else, optionally followed by one line ending (\n or \r\n).
// Anything more (spaces, blank lines, a second line, a byte-order mark) is
// refused rather than trimmed, because other tools read the file too
// (`docker tag app:$(cat VERSION)` keeps a trailing space) and Bump writes
// it back as it was read. Errors name the file and say what to remove.
func Load(path string) (*File, error) {
	b, err := readlimit.ReadFile(path, "VERSION", readlimit.Version)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: no such file: create it with one version, e.g. echo 0.1.0 > %s", path, filepath.Base(path))
	}
	if errors.Is(err, readlimit.ErrTooLarge) || errors.Is(err, readlimit.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return decode(path, b)
}

// decode applies Load's rule to the file's bytes.
func decode(path string, b []byte) (*File, error) {
	f := &File{Path: path}
	line := b
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		f.EOL, line = "\r\n", line[:len(line)-2]
	case bytes.HasSuffix(line, []byte("\n")):
		f.EOL, line = "\n", line[:len(line)-1]
	}
	if bytes.HasPrefix(line, []byte("\uFEFF")) {
		return nil, fmt.Errorf("%s: %w: the file starts with a byte-order mark: save it as UTF-8 without one", path, ErrInvalid)
	}
	if bytes.ContainsAny(line, "\r\n") {
		if rest := bytes.TrimRight(line, "\r\n \t"); !bytes.ContainsAny(rest, "\r\n") {
			return nil, fmt.Errorf("%s: %w: blank lines or spaces after the version: remove them; the file holds one line", path, ErrInvalid)
		}
		n := len(bytes.FieldsFunc(line, func(r rune) bool { return r == '\n' || r == '\r' }))
		return nil, fmt.Errorf("%s: %w: %d lines: the file holds one version on one line, nothing else", path, ErrInvalid, n)
	}
	v, err := Parse(string(line))
	if err == nil {
		err = Taggable(v)
	}
	if err != nil {
		return nil, fmt.Errorf("%s:1: %w", path, err)
	}
	f.Version = v
	return f, nil
}

// ReadFile reads and parses a VERSION file (see Load for the rule).
func ReadFile(path string) (Version, error) {
	f, err := Load(path)
	if err != nil {
		return Version{}, err
	}
	return f.Version, nil
}

// quoteMax bounds how much of a bad value an error repeats: enough to
// recognise it, never a whole file pasted into a log.
const quoteMax = 40

// Quote is s quoted for an error message, cut to its first quoteMax
// characters with the full length said when longer.
func Quote(s string) string {
	if utf8.RuneCountInString(s) <= quoteMax {
		return strconv.Quote(s)
	}
	r := []rune(s)
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(string(r[:quoteMax])), len(s))
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
			return fmt.Errorf("%s is not a version: write MAJOR.MINOR such as 3.12", Quote(s))
		}
		for _, p := range strings.Split(s, ".") {
			if len(p) > 1 && p[0] == '0' {
				return fmt.Errorf("%s has a leading zero: write %s", Quote(s), strings.TrimLeft(p, "0"))
			}
			if len(p) > 9 {
				return fmt.Errorf("%s has a number too large to be a version", Quote(s))
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
			return nil, &ListError{file, n, fmt.Sprintf("%s holds more than one value: write one value a line", Quote(line))}
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

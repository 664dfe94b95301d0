// Package changelog keeps the release notes of each version in one file,
// docs/CHANGELOGS/X.Y.Z.md by default. Every build of X.Y.Z reads the same
// file: staging prereleases (X.Y.Z-staging.N), release candidates and the
// X.Y.Z release itself, so notes are written once, as work lands.
package changelog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/version"
)

// ErrMissing means the version has no changelog file.
var ErrMissing = errors.New("no changelog")

// TemplateFile, when present in the changelog folder, is used instead of
// the built-in template. It is a Go text/template; {{.Version}} is X.Y.Z.
const TemplateFile = "_template.md"

const builtin = `# {{.Version}}

<!-- Release notes for {{.Version}}. Write them as work lands: staging
prereleases ({{.Version}}-staging.N) and the {{.Version}} release both use
this file. HTML comments are left out of the published notes. -->

## Added

## Changed

## Fixed
`

// Base is X.Y.Z of v as text (version.Base): the prerelease and build
// metadata removed.
func Base(v *semver.Version) string { return version.Base(v).String() }

// Path is the changelog file of v in dir.
func Path(dir string, v *semver.Version) string {
	return filepath.Join(dir, Base(v)+".md")
}

// Ensure creates the changelog of v from the template when it is missing,
// and reports whether it did. An existing file is never touched.
func Ensure(dir string, v *semver.Version) (path string, created bool, err error) {
	path = Path(dir, v)
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return path, false, fmt.Errorf("checking %s: %w", path, err)
	}
	text := builtin
	if b, err := os.ReadFile(filepath.Join(dir, TemplateFile)); err == nil {
		text = string(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return path, false, fmt.Errorf("reading changelog template: %w", err)
	}
	tpl, err := template.New(TemplateFile).Option("missingkey=error").Parse(text)
	if err != nil {
		return path, false, fmt.Errorf("parsing %s: %w: fix the template", filepath.Join(dir, TemplateFile), err)
	}
	var buf bytes.Buffer
	if err := tpl.Execute(&buf, struct{ Version string }{Base(v)}); err != nil {
		return path, false, fmt.Errorf("rendering %s: %w: the template may use only {{.Version}}", filepath.Join(dir, TemplateFile), err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return path, false, fmt.Errorf("creating %s: %w", dir, err)
	}
	// O_EXCL: two bumps racing never overwrite each other's notes.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return path, false, nil
	}
	if err != nil {
		return path, false, fmt.Errorf("creating %s: %w", path, err)
	}
	_, werr := f.Write(buf.Bytes())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return path, false, fmt.Errorf("writing %s: %w", path, werr)
	}
	return path, true, nil
}

var comment = regexp.MustCompile(`(?s)<!--.*?-->\n?`)

// Read returns the notes of v ready to publish: HTML comments removed, a
// leading "# X.Y.Z" heading dropped (the release carries the title), and
// blank runs squeezed. A missing file is ErrMissing, with what to do.
func Read(dir string, v *semver.Version) (string, error) {
	path := Path(dir, v)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w for %s: %s is missing: create it (the Bump target does) and write the release notes", ErrMissing, Base(v), path)
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	text = comment.ReplaceAllString(text, "")
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && strings.TrimSpace(lines[0]) == "# "+Base(v) {
		lines = lines[1:]
	}
	var out []string
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" && (len(out) == 0 || out[len(out)-1] == "") {
			continue
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n")), nil
}

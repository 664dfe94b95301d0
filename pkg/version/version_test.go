package version

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/readlimit"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		plain   string
		base    string
		pre     bool
		wantErr string
	}{
		{name: "plain", in: "1.2.3", want: "1.2.3", plain: "1.2.3", base: "1.2.3"},
		{name: "leading v kept", in: "v0.1.0", want: "v0.1.0", plain: "0.1.0", base: "0.1.0"},
		{name: "prerelease", in: "v1.2.0-rc.1", want: "v1.2.0-rc.1", plain: "1.2.0-rc.1", base: "1.2.0", pre: true},
		{name: "staging", in: "1.2.3-staging.4", want: "1.2.3-staging.4", plain: "1.2.3-staging.4", base: "1.2.3", pre: true},
		{name: "build metadata", in: "1.2.3+abc.1", want: "1.2.3+abc.1", plain: "1.2.3+abc.1", base: "1.2.3"},
		{name: "surrounding space", in: "  1.0.0\n", wantErr: "space before or after it"},
		{name: "empty", in: "", wantErr: "invalid version: empty"},
		{name: "two parts", in: "1.2", wantErr: "write MAJOR.MINOR.PATCH"},
		{name: "leading zero", in: "01.2.3", wantErr: "write MAJOR.MINOR.PATCH"},
		{name: "V upper", in: "V1.2.3", wantErr: "write MAJOR.MINOR.PATCH"},
		{name: "garbage", in: "latest", wantErr: "write MAJOR.MINOR.PATCH"},
		{name: "empty prerelease", in: "1.2.3-", wantErr: "write MAJOR.MINOR.PATCH"},
		{name: "prerelease leading zero", in: "1.2.3-01", wantErr: "write MAJOR.MINOR.PATCH"},
		{name: "too large", in: "18446744073709551616.0.0", wantErr: "larger than semver tools hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := v.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := v.Plain(); got != tt.plain {
				t.Errorf("Plain() = %q, want %q", got, tt.plain)
			}
			if got := v.Base(); got != tt.base {
				t.Errorf("Base() = %q, want %q", got, tt.base)
			}
			if got := v.Prerelease(); got != tt.pre {
				t.Errorf("Prerelease() = %v, want %v", got, tt.pre)
			}
		})
	}
}

// TestReadFile pins the one VERSION rule: the version, then at most one line
// ending; anything else is refused with what to remove, never trimmed.
func TestReadFile(t *testing.T) {
	tests := []struct {
		name, content string
		want, eol     string
		wantErr       string
	}{
		{name: "newline", content: "v1.4.0\n", want: "v1.4.0", eol: "\n"},
		{name: "crlf", content: "1.4.0-rc.1\r\n", want: "1.4.0-rc.1", eol: "\r\n"},
		{name: "no line ending", content: "1.4.0", want: "1.4.0"},
		{name: "trailing space and blank line", content: "1.2.3 \n\n", wantErr: "blank lines or spaces after the version: remove them"},
		{name: "blank line", content: "1.2.3\n\n", wantErr: "blank lines or spaces after the version"},
		{name: "trailing space", content: "1.2.3 \n", wantErr: ":1: invalid version \"1.2.3 \": space before or after it: remove it"},
		{name: "leading space", content: " 1.2.3\n", wantErr: "space before or after it"},
		{name: "tab", content: "1.2.3\t", wantErr: "space before or after it"},
		{name: "two lines", content: "1.0.0\n2.0.0\n", wantErr: "2 lines: the file holds one version on one line"},
		{name: "bare cr", content: "1.0.0\r2.0.0", wantErr: "2 lines"},
		{name: "byte-order mark", content: "\uFEFF1.2.3\n", wantErr: "byte-order mark"},
		{name: "empty", content: "", wantErr: ":1: invalid version: empty"},
		{name: "only a newline", content: "\n", wantErr: ":1: invalid version: empty"},
		{name: "loose", content: "1.2\n", wantErr: ":1: invalid version \"1.2\": write MAJOR.MINOR.PATCH"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("VERSION%d", i))
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Load(p)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), p) {
					t.Fatalf("Load(%q) error = %v, want ErrInvalid naming %s and containing %q", tt.content, err, p, tt.wantErr)
				}
				if _, rerr := ReadFile(p); rerr == nil || rerr.Error() != err.Error() {
					t.Fatalf("ReadFile and Load disagree: %v vs %v", rerr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%q): %v", tt.content, err)
			}
			if f.Version.String() != tt.want || f.EOL != tt.eol {
				t.Fatalf("Load(%q) = %q, EOL %q; want %q, %q", tt.content, f.Version, f.EOL, tt.want, tt.eol)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "create it with one version") {
		t.Fatalf("missing: err = %v", err)
	}
}

// TestLongInputIsNotEchoed: a bad 10 KB VERSION (or list line) is named by
// a short prefix and its size, not pasted whole into the log.
func TestLongInputIsNotEchoed(t *testing.T) {
	long := "1.2.3-" + strings.Repeat("x", 10<<10) + "!"
	p := filepath.Join(t.TempDir(), "VERSION")
	if err := os.WriteFile(p, []byte(long+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file is over VERSION's size limit, so it is refused unread.
	_, err := ReadFile(p)
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), fmt.Sprintf("holds %d bytes", len(long)+1)) {
		t.Fatalf("error of %d bytes: %.400v", len(fmt.Sprint(err)), err)
	}
	_, err = Parse(long)
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), fmt.Sprintf("(%d bytes)", len(long))) {
		t.Fatalf("parse error of %d bytes: %.400v", len(fmt.Sprint(err)), err)
	}
	_, err = ParsePythonVersions("PYTHON_VERSIONS", []byte(strings.Repeat("3", 10<<10)+".x\n"))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("list error of %d bytes: %.400v", len(fmt.Sprint(err)), err)
	}
	if got := Quote("1.2.3"); got != `"1.2.3"` {
		t.Fatalf("Quote of a short value = %s", got)
	}
}

func TestBaseAndStaging(t *testing.T) {
	for _, tt := range []struct {
		in, base, staging string
		n                 uint64
		isStaging         bool
	}{
		{in: "1.2.3", base: "1.2.3", staging: "1.2.3-staging.0"},
		{in: "1.2.3-rc.1+sha.5", base: "1.2.3", staging: "1.2.3-staging.0"},
		{in: "1.2.3-staging.4", base: "1.2.3", staging: "1.2.3-staging.0", n: 4, isStaging: true},
		{in: "1.2.3-staging.4+x", base: "1.2.3", staging: "1.2.3-staging.0", n: 4, isStaging: true},
		{in: "1.2.3-staging.04x", base: "1.2.3", staging: "1.2.3-staging.0"},
		{in: "1.2.3-staging", base: "1.2.3", staging: "1.2.3-staging.0"},
		{in: "1.2.3-staging.4.1", base: "1.2.3", staging: "1.2.3-staging.0"},
	} {
		v := semver.MustParse(tt.in)
		if got := Base(v).String(); got != tt.base {
			t.Errorf("Base(%s) = %s, want %s", tt.in, got, tt.base)
		}
		if got := Staging(v, FirstStaging); got != tt.staging {
			t.Errorf("Staging(%s, FirstStaging) = %s, want %s", tt.in, got, tt.staging)
		}
		if n, ok := StagingN(v); ok != tt.isStaging || n != tt.n {
			t.Errorf("StagingN(%s) = %d, %v; want %d, %v", tt.in, n, ok, tt.n, tt.isStaging)
		}
	}
}

func TestParseStaging(t *testing.T) {
	for _, tt := range []struct {
		tag  string
		base string
		n    uint64
		ok   bool
	}{
		{tag: "1.2.3-staging.4", base: "1.2.3", n: 4, ok: true},
		{tag: "0.0.1-staging.0", base: "0.0.1", n: 0, ok: true},
		{tag: "1.2.3-staging.18446744073709551615", base: "1.2.3", n: 1<<64 - 1, ok: true},
		{tag: "v1.2.3-staging.4"},
		{tag: "1.2.3-staging.04"},
		{tag: "1.2.3-staging.4.1"},
		{tag: "1.2.3-staging.4+x"},
		{tag: "1.2.3-staging"},
		{tag: "1.2.3-staging."},
		{tag: " 1.2.3-staging.4"},
		{tag: "1.2.3-staging.99999999999999999999"},
	} {
		b, n, ok := ParseStaging(tt.tag)
		if ok != tt.ok || (ok && (b.String() != tt.base || n != tt.n)) {
			t.Errorf("ParseStaging(%q) = %v, %d, %v", tt.tag, b, n, ok)
		}
		if ok && Staging(b, n) != tt.tag {
			t.Errorf("Staging round trip of %q", tt.tag)
		}
	}
}

func TestParsePythonVersions(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []string
		wantLine int
		wantMsg  string
	}{
		{name: "list", in: "3.7\n3.8\n3.13\n", want: []string{"3.7", "3.8", "3.13"}},
		{name: "comments and blanks", in: "# versions\n\n3.11  # current\r\n3.12.1\n", want: []string{"3.11", "3.12.1"}},
		{name: "duplicate", in: "3.7\n3.8\n3.7\n", wantLine: 3, wantMsg: "listed twice (first at line 1)"},
		{name: "malformed", in: "3.7\npython3.8\n", wantLine: 2, wantMsg: "not a version"},
		{name: "two on a line", in: "3.7 3.8\n", wantLine: 1, wantMsg: "one value a line"},
		{name: "leading zero", in: "3.07\n", wantLine: 1, wantMsg: "leading zero"},
		{name: "empty", in: "# nothing\n", wantLine: 1, wantMsg: "no values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePythonVersions("PYTHON_VERSIONS", []byte(tt.in))
			if tt.wantMsg != "" {
				var le *ListError
				if !errors.As(err, &le) {
					t.Fatalf("err = %v, want a *ListError", err)
				}
				if le.Line != tt.wantLine || !strings.Contains(le.Msg, tt.wantMsg) {
					t.Fatalf("err = %v, want line %d and %q", err, tt.wantLine, tt.wantMsg)
				}
				if !strings.HasPrefix(err.Error(), "PYTHON_VERSIONS:") {
					t.Fatalf("err %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1.2.3", "v0.1.0-rc", "1.2.3-staging.4+x", "", "v", "1..2", "18446744073709551615.0.0", "1.2.3-0a.b-c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			if msg := err.Error(); !errors.Is(err, ErrInvalid) || len(msg) > 300 {
				t.Fatalf("refusal of %q: %q", s, msg)
			}
			return
		}
		// What parses must write back to something that parses to the same.
		again, err := Parse(v.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok but its String %q does not parse: %v", s, v.String(), err)
		}
		if !again.SemVer.Equal(v.SemVer) || again.V != v.V {
			t.Fatalf("round trip of %q changed it: %q", s, again.String())
		}
	})
}

// FuzzReadFile checks the VERSION rule on any bytes: what is accepted is
// exactly the version written back plus one line ending (so Bump's rewrite
// changes nothing else), and every refusal is one short line naming the
// file and wrapping ErrInvalid. It reads through Load, so the size limit
// and the tag rules (no build metadata, at most MaxTag) are fuzzed too.
func FuzzReadFile(f *testing.F) {
	for _, s := range []string{"1.2.3\n", "v1.2.3\r\n", "1.2.3", "1.2.3 \n\n", "\n", "", "1.0.0\n2.0.0", "\uFEFF1.2.3", "1.2.3\r", "1.2.3-staging.0\n\r\n",
		"1.2.3+build.7\n", "1.2.3-" + strings.Repeat("a", 122) + "\n", "1.2.3-" + strings.Repeat("a", 123) + "\n", "1.2.3-" + strings.Repeat("a", 250) + "\n", strings.Repeat("9", 257)} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "VERSION")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Load(p)
		if err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(msg, p) || strings.Contains(msg, "\n") || len(msg) > 400 {
				t.Fatalf("refusal of %q: %q", b, msg)
			}
			return
		}
		if got := file.Version.String() + file.EOL; got != string(b) {
			t.Fatalf("accepted %q but it writes back as %q", b, got)
		}
		if Taggable(file.Version) != nil || len(b) > readlimit.Version {
			t.Fatalf("accepted %q, which is not a valid tag or over the limit", b)
		}
	})
}

// FuzzParseStaging: every accepted tag formats back to itself, and agrees
// with Parse and StagingN.
func FuzzParseStaging(f *testing.F) {
	for _, s := range []string{"1.2.3-staging.4", "0.0.0-staging.0", "1.2.3-staging.18446744073709551615", "01.2.3-staging.1", "1.2.3-staging.", "v1.2.3-staging.1", "1.2.3-staging.1+x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, n, ok := ParseStaging(s)
		if !ok {
			return
		}
		if Staging(b, n) != s || StagingTag(b.String(), n) != s {
			t.Fatalf("%q parsed to %s, %d which formats as %q", s, b, n, Staging(b, n))
		}
		v, err := Parse(s)
		if err != nil {
			t.Fatalf("%q is a staging tag but Parse refuses it: %v", s, err)
		}
		if m, ok := StagingN(v.SemVer); !ok || m != n {
			t.Fatalf("StagingN(%q) = %d, %v; ParseStaging said %d", s, m, ok, n)
		}
	})
}

func FuzzParsePythonVersions(f *testing.F) {
	for _, s := range []string{"3.7\n3.8\n", "# c\n\n3.12.1\n", "3.7\n3.7\n", "x\n", "3.7 3.8", "\r\n3.1\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := ParsePythonVersions("PYTHON_VERSIONS", []byte(s))
		if err != nil {
			var le *ListError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("error %v has no line number", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, v := range vs {
			if seen[v] || !pythonVersion.MatchString(v) {
				t.Fatalf("accepted bad or duplicate value %q from %q", v, s)
			}
			seen[v] = true
		}
	})
}

// TestLoadRefusesUntaggable: a VERSION that cannot be an image tag is
// refused when read, in one line saying why, not by every build later.
func TestLoadRefusesUntaggable(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, content, want string }{
		{name: "build metadata", content: "1.2.3+build.7\n", want: `VERSION:1: invalid version "1.2.3+build.7": build metadata (+build.7) cannot be in an image tag, which cannot hold '+'`},
		{name: "prerelease and metadata", content: "v1.2.3-rc.1+sha.abc\n", want: "cannot hold '+'"},
		{name: "over-long prerelease", content: "1.2.3-" + strings.Repeat("a", 123) + "\n", want: "129 characters, and an image tag holds at most 128: shorten the prerelease"},
		{name: "longest taggable", content: "1.2.3-" + strings.Repeat("a", 122) + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "VERSION")
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(p)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\nwant one line containing %q", err, tt.want)
			}
		})
	}
}

// TestLoadBounded: VERSION symlinked to /dev/zero, or a FIFO, is refused
// without being read.
func TestLoadBounded(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "VERSION")
	os.Symlink("/dev/zero", zero)
	fifo := filepath.Join(dir, "FIFO")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{zero: "is a character device", fifo: "is a FIFO"} {
		_, err := ReadFile(path)
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, readlimit.ErrNotRegular) || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadFile(%s) = %v, want %q", path, err, want)
		}
	}
}

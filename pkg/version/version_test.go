package version

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
		{name: "surrounding space", in: "  1.0.0\n", want: "1.0.0", plain: "1.0.0", base: "1.0.0"},
		{name: "empty", in: "", wantErr: "empty version"},
		{name: "two parts", in: "1.2", wantErr: "not a SemVer"},
		{name: "leading zero", in: "01.2.3", wantErr: "not a SemVer"},
		{name: "V upper", in: "V1.2.3", wantErr: "not a SemVer"},
		{name: "garbage", in: "latest", wantErr: "not a SemVer"},
		{name: "empty prerelease", in: "1.2.3-", wantErr: "not a SemVer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
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

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if v, err := ReadFile(write("ok", "v1.4.0\n")); err != nil || v.String() != "v1.4.0" {
		t.Fatalf("ReadFile = %v, %v", v, err)
	}
	if _, err := ReadFile(write("two", "1.0.0\n2.0.0\n")); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("two lines: err = %v", err)
	}
	if _, err := ReadFile(write("bad", "one\n")); err == nil || !strings.Contains(err.Error(), ":1: ") {
		t.Fatalf("bad: err = %v, want file:line", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "create it") {
		t.Fatalf("missing: err = %v", err)
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

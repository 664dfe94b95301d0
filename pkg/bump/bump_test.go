package bump

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNext(t *testing.T) {
	max := strconv.FormatUint(math.MaxUint64, 10)
	tests := []struct {
		name    string
		cur     string
		step    string
		want    string
		wantErr error // nil: success; otherwise errors.Is target, or errAny
	}{
		{name: "major", cur: "1.2.3", step: "major", want: "2.0.0"},
		{name: "minor", cur: "1.2.3", step: "minor", want: "1.3.0"},
		{name: "patch", cur: "1.2.3", step: "patch", want: "1.2.4"},
		{name: "major finishes a major prerelease", cur: "2.0.0-rc.1", step: "major", want: "2.0.0"},
		{name: "major past a minor prerelease", cur: "1.3.0-rc.1", step: "major", want: "2.0.0"},
		{name: "minor finishes a minor prerelease", cur: "1.3.0-rc.1", step: "minor", want: "1.3.0"},
		{name: "minor past a patch prerelease", cur: "1.2.4-rc.1", step: "minor", want: "1.3.0"},
		{name: "patch finishes a prerelease", cur: "1.2.4-beta.2", step: "patch", want: "1.2.4"},
		{name: "metadata dropped", cur: "1.2.3+build.7", step: "patch", want: "1.2.4"},
		{name: "rc opens on next patch", cur: "1.2.0", step: "rc", want: "1.2.1-rc.1"},
		{name: "rc counts up", cur: "1.2.0-rc.1", step: "rc", want: "1.2.0-rc.2"},
		{name: "rc counts past 9", cur: "1.2.0-rc.9", step: "rc", want: "1.2.0-rc.10"},
		{name: "bare rc gets a counter", cur: "0.1.0-rc", step: "rc", want: "0.1.0-rc.1"},
		{name: "glued counter keeps its style", cur: "1.1.0-rc1", step: "rc", want: "1.1.0-rc2"},
		{name: "glued counter refused past 9", cur: "1.1.0-rc9", step: "rc", wantErr: ErrDowngrade},
		{name: "beta to rc", cur: "1.2.0-beta.3", step: "rc", want: "1.2.0-rc.1"},
		{name: "alpha to beta", cur: "1.2.0-alpha.3", step: "beta", want: "1.2.0-beta.1"},
		{name: "rc to beta goes back", cur: "1.2.0-rc.2", step: "beta", wantErr: ErrDowngrade},
		{name: "rc to alpha goes back", cur: "1.2.0-rc.2", step: "alpha", wantErr: ErrDowngrade},
		{name: "rc with extra identifiers", cur: "1.2.0-rc.1.fix", step: "rc", want: "1.2.0-rc.1.fix.1"},
		{name: "numeric prerelease to alpha", cur: "1.2.0-7", step: "alpha", want: "1.2.0-alpha.1"},
		{name: "pre releases", cur: "1.2.0-rc.2", step: "pre", want: "1.2.0"},
		{name: "pre on a release", cur: "1.2.0", step: "pre", wantErr: errAny},
		{name: "explicit greater", cur: "1.2.0", step: "1.4.0", want: "1.4.0"},
		{name: "explicit with v", cur: "1.2.0", step: "v2.0.0-rc.1", want: "2.0.0-rc.1"},
		{name: "explicit downgrade", cur: "1.2.0", step: "1.1.9", wantErr: ErrDowngrade},
		{name: "explicit same", cur: "1.2.0", step: "1.2.0", wantErr: ErrDowngrade},
		{name: "explicit prerelease of current", cur: "1.2.0", step: "1.2.0-rc.1", wantErr: ErrDowngrade},
		{name: "unknown step", cur: "1.2.0", step: "huge", wantErr: ErrStep},
		{name: "major overflow", cur: max + ".0.0", step: "major", wantErr: ErrOverflow},
		{name: "minor overflow", cur: "1." + max + ".0", step: "minor", wantErr: ErrOverflow},
		{name: "patch overflow", cur: "1.2." + max, step: "patch", wantErr: ErrOverflow},
		{name: "rc opening overflow", cur: "1.2." + max, step: "rc", wantErr: ErrOverflow},
		{name: "rc counter overflow", cur: "1.2.3-rc." + max, step: "rc", wantErr: ErrOverflow},
		{name: "rc counter beyond uint64", cur: "1.2.3-rc.99999999999999999999", step: "rc", wantErr: ErrOverflow},
		{name: "patch finishes even at max", cur: "1.2." + max + "-rc.1", step: "patch", want: "1.2." + max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, _, err := Parse(tt.cur)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.cur, err)
			}
			got, err := Next(cur, tt.step)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Next(%s, %s) = %s, want an error", tt.cur, tt.step, got)
				}
				if !errors.Is(tt.wantErr, errAny) && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Next(%s, %s) error %q, want %v", tt.cur, tt.step, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Next(%s, %s): %v", tt.cur, tt.step, err)
			}
			if got.String() != tt.want {
				t.Fatalf("Next(%s, %s) = %s, want %s", tt.cur, tt.step, got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestParse(t *testing.T) {
	tests := []struct {
		in       string
		want     string
		leadingV bool
		ok       bool
	}{
		{in: "1.2.3", want: "1.2.3", ok: true},
		{in: "v1.2.3", want: "1.2.3", leadingV: true, ok: true},
		{in: "v0.1.0-rc", want: "0.1.0-rc", leadingV: true, ok: true},
		{in: "1.2.3-rc.1+sha.abc", want: "1.2.3-rc.1+sha.abc", ok: true},
		{in: "1.2"},
		{in: "V1.2.3"},
		{in: "vv1.2.3"},
		{in: "01.2.3"},
		{in: " 1.2.3"},
		{in: "1.2.3-"},
		{in: "1.2.3-rc..1"},
		{in: "1.2.3-01"},
		{in: ""},
		{in: "v"},
		{in: "99999999999999999999.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, lv, err := Parse(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("Parse(%q) = %s, want an error", tt.in, v)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) error %v, want ErrInvalid", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if v.String() != tt.want || lv != tt.leadingV {
				t.Fatalf("Parse(%q) = %s, v=%v; want %s, v=%v", tt.in, v, lv, tt.want, tt.leadingV)
			}
			if got := Format(v, lv); got != tt.in {
				t.Fatalf("Format(Parse(%q)) = %q", tt.in, got)
			}
		})
	}
}

// FuzzBump checks parse → bump → format: it never panics, every accepted
// bump is greater than its input, and the formatted result parses back to
// the same version in the same style.
func FuzzBump(f *testing.F) {
	max := strconv.FormatUint(math.MaxUint64, 10)
	for _, s := range []string{"1.2.3", "v1.2.3", "0.1.0-rc", "v1.1.0-rc1", "1.1.0-rc9", "1.2.0-rc.2", "1.2.0-beta.1.x", "2.0.0-alpha", "1.2.3+meta", max + ".0.0", "1.2." + max, "1.2.3-rc." + max, "0.0.0-0", "1.0.0-x-y.z--"} {
		for _, st := range append(append([]Step{}, Steps...), "9.9.9", "v0.0.1", "nope") {
			f.Add(s, string(st))
		}
	}
	f.Fuzz(func(t *testing.T, in, step string) {
		cur, lv, err := Parse(in)
		if err != nil {
			return
		}
		next, err := Next(cur, step)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if !next.GreaterThan(cur) {
			t.Fatalf("Next(%s, %q) = %s, not greater", cur, step, next)
		}
		out := Format(next, lv)
		back, lv2, err := Parse(out)
		if err != nil {
			t.Fatalf("Next(%s, %q) formatted as %q does not parse: %v", cur, step, out, err)
		}
		if !back.Equal(next) || back.Prerelease() != next.Prerelease() || lv2 != lv {
			t.Fatalf("round trip of %q gave %s (v=%v)", out, back, lv2)
		}
	})
}

func TestFileKeepsStyle(t *testing.T) {
	tests := []struct {
		name, content, step, want string
	}{
		{name: "leading v and newline", content: "v0.1.0\n", step: "minor", want: "v0.2.0\n"},
		{name: "no v, no newline", content: "1.2.3", step: "patch", want: "1.2.4"},
		{name: "crlf", content: "1.2.3-rc.1\r\n", step: "rc", want: "1.2.3-rc.2\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "VERSION")
			if err := os.WriteFile(path, []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			next, err := Next(f.Version, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Write(next); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if string(b) != tt.want {
				t.Fatalf("VERSION = %q, want %q", b, tt.want)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Fatalf("mode changed to %v", st.Mode().Perm())
			}
		})
	}
}

func TestReadFileRefuses(t *testing.T) {
	tests := []struct {
		name, content, wantIn string
	}{
		{name: "two lines", content: "1.2.3\n1.2.4\n", wantIn: "one version on one line"},
		{name: "loose", content: "1.2\n", wantIn: "MAJOR.MINOR.PATCH"},
		{name: "trailing space", content: "1.2.3 \n", wantIn: "invalid version"},
		{name: "empty", content: "", wantIn: "invalid version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "VERSION")
			os.WriteFile(path, []byte(tt.content), 0o644)
			_, err := ReadFile(path)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ReadFile(%q) error %v, want one naming %s and %q", tt.content, err, path, tt.wantIn)
			}
		})
	}
	_, err := ReadFile(filepath.Join(t.TempDir(), "VERSION"))
	if err == nil || !strings.Contains(err.Error(), "create it") {
		t.Fatalf("missing file: %v", err)
	}
}

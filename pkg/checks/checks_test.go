package checks_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/pkg/checks"
)

func TestRunFailsFast(t *testing.T) {
	tests := []struct {
		name     string
		checks   []checks.Check
		failed   string // "" for success
		code     int
		tailHas  string
		notRun   string // a file the check after the failure would create
		progress string
	}{
		{
			name:     "all pass",
			checks:   []checks.Check{{Name: "one", Run: []string{"true"}}, {Name: "two", Run: []string{"sh", "-c", "echo fine"}}},
			progress: "check two",
		},
		{
			name: "second fails, third never runs",
			checks: []checks.Check{
				{Name: "vet", Run: []string{"true"}},
				{Name: "lint", Run: []string{"sh", "-c", "seq 1 100; echo 'x.go:3: bad thing' >&2; exit 7"}},
				{Name: "test", Run: []string{"sh", "-c", "touch ran"}},
			},
			failed: "lint", code: 7, tailHas: "x.go:3: bad thing", notRun: "ran",
		},
		{
			name:   "missing program",
			checks: []checks.Check{{Name: "lint", Run: []string{"no-such-linter-hoist"}}},
			failed: "lint", code: 0, tailHas: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			err := checks.Run(context.Background(), tt.checks, checks.Options{Dir: dir, LogDir: filepath.Join(dir, "logs"), Progress: &out})
			if tt.failed == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.String(), tt.progress) {
					t.Errorf("progress %q lacks %q", out.String(), tt.progress)
				}
				return
			}
			var ce *checks.Error
			if !errors.As(err, &ce) || ce.Name != tt.failed || ce.Code != tt.code {
				t.Fatalf("got %#v, want check %s to fail with %d", err, tt.failed, tt.code)
			}
			if !strings.Contains(err.Error(), tt.tailHas) || !strings.Contains(err.Error(), tt.failed) {
				t.Errorf("error %q lacks the check's name or %q", err, tt.tailHas)
			}
			if tt.tailHas != "" && strings.Contains(err.Error(), "\n1\n") {
				t.Errorf("error shows the whole output, want its tail:\n%s", err)
			}
			if tt.notRun != "" {
				if _, serr := os.Stat(filepath.Join(dir, tt.notRun)); serr == nil {
					t.Errorf("a check after the failure ran")
				}
			}
		})
	}
}

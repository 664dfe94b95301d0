package plan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/matrix"
	"github.com/hoistci/hoist/pkg/readlimit"
	"github.com/hoistci/hoist/pkg/version"
)

func makePlan(t *testing.T, dir, yaml string) (*Plan, error) {
	t.Helper()
	cfg, err := config.Parse("hoist.yaml", dir, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildDir = t.TempDir()
	v, _ := version.Parse("1.0.0")
	return Make(cfg, Options{Version: v})
}

// TestMakeRefusesSilentAndHugeMatrices: a matrix that include/exclude
// leave empty is an error naming the image, and the plan as a whole is
// bounded, whatever the axes.
func TestMakeRefusesSilentAndHugeMatrices(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	var axis strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&axis, "\"%d\", ", i)
	}
	var many strings.Builder
	for i := range 5 {
		fmt.Fprintf(&many, "  - name: m%d-{{.x}}\n    dockerfile: Dockerfile\n    matrix: {axes: {x: [%s]}}\n", i, axis.String())
	}
	for _, tt := range []struct{ name, yaml, want string }{
		{name: "exclude leaves nothing", yaml: "project: d\nimages:\n  - {name: ok, dockerfile: Dockerfile}\n  - name: gone-{{.x}}\n    dockerfile: Dockerfile\n    matrix:\n      axes: {x: [a, b]}\n      exclude: [{x: a}, {x: b}]\n",
			want: `hoist.yaml:7: image "gone-{{.x}}": the matrix leaves no entry`},
		{name: "plan over the limit", yaml: "project: d\nimages:\n" + many.String(), want: `image "m4-{{.x}}": the plan passes 4096 images, the limit`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := makePlan(t, dir, tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\nwant one line containing %q", err, tt.want)
			}
			if tt.name == "exclude leaves nothing" && !errors.Is(err, matrix.ErrNoEntries) {
				t.Fatalf("err = %v, want it to wrap matrix.ErrNoEntries", err)
			}
		})
	}
}

// TestReadsBounded: a template, an axis file or a Dockerfile that is a
// symlink to /dev/zero is refused in one line instead of read to the end
// of memory.
func TestReadsBounded(t *testing.T) {
	for _, tt := range []struct{ name, file, yaml, want string }{
		{name: "template", file: "demo.tmpl", yaml: "project: d\nimages:\n  - {name: a, template: demo.tmpl}\n", want: "template"},
		{name: "axis file", file: "PYTHON_VERSIONS", yaml: "project: d\nimages:\n  - name: a-{{.python}}\n    dockerfile: Dockerfile\n    matrix: {axes: {python: {file: PYTHON_VERSIONS}}}\n", want: "axis file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "demo.tmpl"), []byte("FROM scratch\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "PYTHON_VERSIONS"), []byte("3.12\n"), 0o644)
			cfg, err := config.Parse("hoist.yaml", dir, []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			// Swapped after the config loaded, as a file can be between stages.
			os.Remove(filepath.Join(dir, tt.file))
			os.Symlink("/dev/zero", filepath.Join(dir, tt.file))
			cfg.BuildDir = t.TempDir()
			v, _ := version.Parse("1.0.0")
			_, err = Make(cfg, Options{Version: v})
			if !errors.Is(err, readlimit.ErrNotRegular) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line refusing the %s", err, tt.want)
			}
		})
	}
	t.Run("Dockerfile", func(t *testing.T) {
		dir := t.TempDir()
		df := filepath.Join(dir, "Dockerfile")
		os.Symlink("/dev/zero", df)
		_, err := (&Hasher{}).Inputs(context.Background(), Image{Name: "a", Dockerfile: df})
		if !errors.Is(err, readlimit.ErrNotRegular) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v, want the Dockerfile refused", err)
		}
		big := filepath.Join(t.TempDir(), "Dockerfile")
		os.WriteFile(big, make([]byte, readlimit.Dockerfile+1), 0o644)
		_, err = (&Hasher{}).Inputs(context.Background(), Image{Name: "a", Dockerfile: big})
		if !errors.Is(err, readlimit.ErrTooLarge) || !strings.Contains(err.Error(), "1 MiB") {
			t.Fatalf("err = %v, want the Dockerfile refused as too large", err)
		}
	})
}

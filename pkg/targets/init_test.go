package targets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
)

func TestInitTarget(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"svc/Dockerfile": "FROM scratch\nCOPY . /\n"})
	t.Setenv("HOIST_PROJECT", "initdemo")
	out, err := captureOut(t, func() error { return Init(context.Background(), dir) })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"init: wrote hoist.yaml", "init: wrote .github/workflows/hoist-ci.yml", "init: 1 images: [svc]", "go mod tidy"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hoist.yaml")); !strings.Contains(string(b), "project: initdemo") {
		t.Errorf("HOIST_PROJECT not used:\n%s", b)
	}
	if _, err := captureOut(t, func() error { return Init(context.Background(), dir) }); err == nil || !strings.Contains(err.Error(), "exist already") {
		t.Errorf("a second init: %v", err)
	}
}

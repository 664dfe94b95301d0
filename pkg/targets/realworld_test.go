package targets

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/realworld"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// TestRealWorldDockerfiles builds and tests, with the Images and Test
// targets, the write-ups' three kinds of Dockerfile reduced to what runs
// offline: a multi-stage compile, a package pip-installed from a loopback
// index and an app npm-installed from a loopback tarball.
func TestRealWorldDockerfiles(t *testing.T) {
	e := testenv.Engine(t)
	testenv.Binary(t, "node", "nodejs")
	ctx := context.Background()
	bases, err := realworld.MakeBases(ctx, e)
	if err != nil {
		testenv.Need(t, err.Error())
	}
	idx, err := realworld.ServeIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	dir := t.TempDir()
	project := testenv.Unique("hoistrw")
	testenv.WriteFiles(t, dir, realworld.Files(project, bases, idx.URL))
	// A commit gives the images a reproducible created label, so a second
	// run finds them unchanged.
	for k, v := range testenv.GitEnv {
		t.Setenv(k, v)
	}
	testenv.Git(t, dir, "init", "-q")
	testenv.Git(t, dir, "add", ".")
	testenv.Git(t, dir, "commit", "-qm", "app")
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
	t.Cleanup(func() {
		for _, n := range []string{"compile", "pyapp", "nodeapp"} {
			e.Remove(context.Background(), project+"/"+n+":1.0.0")
		}
	})
	out, err := captureOut(t, func() error { return Images(ctx) })
	if err != nil {
		t.Fatalf("Images: %v", err)
	}
	if !strings.Contains(out, "3 images ready (3 built") {
		t.Fatalf("Images did not build the three images:\n%s", out)
	}
	out, err = captureOut(t, func() error { return Test(ctx) })
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if !strings.Contains(out, "3 images ready (0 built, 3 unchanged)") || !strings.Contains(out, "test: 3 passed, 0 failed") {
		t.Fatalf("Test did not find the images unchanged and pass their three tests:\n%s", out)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range l.Images {
		if img.Test == nil || !img.Test.Passed {
			t.Errorf("lock: %s not recorded as tested: %+v", img.Name, img.Test)
		}
	}
}

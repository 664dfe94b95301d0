package kubenode

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
)

// ToolsDir is the tools folder users and every test share, so the pinned
// components are built once per machine.
func ToolsDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "hoist", "tools")
}

// ForTest starts a node for a new, uniquely named k3d cluster and stops it
// when t ends. Without root, or without the host tools and Go to build the
// components, it skips (and fails in CI).
func ForTest(t testing.TB, e *engine.Engine) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Need(t, "a Kubernetes node needs root (its kubelet manages cgroups and mounts)")
	}
	if _, err := hostTools(); err != nil {
		testenv.Need(t, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := EnsureComponents(ctx, EnsureOptions{Tools: ToolsDir(), Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n, err := Start(ctx, Options{Engine: e, Components: c, Cluster: testenv.Unique("hoist-k-"), Dir: dir})
	t.Cleanup(func() {
		if err := n.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

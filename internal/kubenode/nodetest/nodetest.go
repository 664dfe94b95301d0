// Package nodetest starts real Kubernetes nodes (internal/kubenode) for
// tests, stopped when the test ends.
package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/kubenode"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
)

// Start starts a node for a new, uniquely named k3d cluster and stops it
// when t ends. Without root, or without the host tools and Go to build the
// components, it skips (and fails in CI).
func Start(t testing.TB, e *engine.Engine) *kubenode.Node {
	t.Helper()
	if err := kubenode.CanRun(); err != nil {
		testenv.Need(t, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: kubenode.DefaultTools(), Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n, err := kubenode.Start(ctx, kubenode.Options{Engine: e, Components: c, Cluster: testenv.Unique("hoist-k-"), Dir: dir})
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

// Kubectl returns the pinned kubectl, building the components when this
// machine has none yet.
func Kubectl(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: kubenode.DefaultTools(), Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Path("kubectl")
}

package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/kubenode/nodetest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
)

func TestInClusterBadInput(t *testing.T) {
	kubectl := nodetest.Kubectl(t)
	repo := testenv.RepoRoot(t)
	refs := map[string]string{"toolbox": "hoist/toolbox:1.2.3", "demo-cpu-py3.12": "hoist/demo-cpu-py3.12:1.2.3"}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// A cluster that does not answer (nothing listens on 127.0.0.1:1).
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)

	t.Run("image not in the plan", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'redis:7'}]}\n"), 0o644)
		_, err := cluster.InCluster(context.Background(), cluster.InClusterOptions{Kubectl: kubectl, Kubeconfig: kubeconfig, Manifests: dir, Refs: refs, WorkDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), `a.yaml:3: image "redis:7" is not built by this plan`) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("manifest does not parse", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte("kind: Pod\nmetadata: {name: p\n"), 0o644)
		_, err := cluster.InCluster(context.Background(), cluster.InClusterOptions{Kubectl: kubectl, Kubeconfig: kubeconfig, Manifests: dir, Refs: refs, WorkDir: t.TempDir()})
		if err == nil || !strings.HasPrefix(err.Error(), bad+": ") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("got %v, want one line naming %s", err, bad)
		}
	})
	t.Run("no kubectl", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := cluster.InCluster(context.Background(), cluster.InClusterOptions{Kubeconfig: kubeconfig, Manifests: filepath.Join(repo, "infra", "k8s"), Refs: refs, WorkDir: t.TempDir()})
		if !errors.Is(err, cluster.ErrNoKubectl) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("got %v, want %v", err, cluster.ErrNoKubectl)
		}
	})
	t.Run("no manifests", func(t *testing.T) {
		_, err := cluster.InCluster(context.Background(), cluster.InClusterOptions{Kubectl: kubectl, Kubeconfig: kubeconfig, Manifests: t.TempDir(), Refs: refs, WorkDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "no manifests") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cluster does not answer", func(t *testing.T) {
		work := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := cluster.InCluster(ctx, cluster.InClusterOptions{Kubectl: kubectl, Kubeconfig: kubeconfig, Manifests: filepath.Join(repo, "infra", "k8s"), Refs: refs, WorkDir: work, Timeout: 5 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "the API server https://127.0.0.1:1 (kubeconfig "+kubeconfig+") does not answer") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("got %v, want one line naming the endpoint and the kubeconfig", err)
		}
		// The reload's apply, in process, says the same.
		_, rerr := cluster.Restart(ctx, cluster.RestartOptions{Kubectl: kubectl, Kubeconfig: kubeconfig, Manifests: filepath.Join(repo, "infra", "k8s"), Refs: refs, Changed: []string{"toolbox"}, WorkDir: t.TempDir(), Timeout: 5 * time.Second})
		if rerr == nil || !strings.Contains(rerr.Error(), "the API server https://127.0.0.1:1 (kubeconfig "+kubeconfig+") does not answer") || strings.Contains(rerr.Error(), "\n") {
			t.Fatalf("reload got %v, want one line naming the endpoint and the kubeconfig", rerr)
		}
		b, _ := os.ReadFile(filepath.Join(work, "manifests", "toolbox.yaml"))
		if !strings.Contains(string(b), "image: hoist/toolbox:1.2.3") || !strings.Contains(string(b), "image: hoist/demo-cpu-py3.12:1.2.3") {
			t.Errorf("applied manifest not resolved:\n%s", b)
		}
	})
}

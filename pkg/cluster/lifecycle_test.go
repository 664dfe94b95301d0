package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
)

func TestReadConfig(t *testing.T) {
	repo := testenv.RepoRoot(t)
	cfg, err := cluster.ReadConfig(filepath.Join(repo, "infra", "k3d", "cluster.yaml"), os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "hoist" || cfg.Servers != 1 || cfg.Agents != 1 || !strings.HasPrefix(cfg.Image, "rancher/k3s:") {
		t.Errorf("read %+v", cfg)
	}

	tests := []struct {
		name, yaml, want string
	}{
		{name: "wrong kind", yaml: "apiVersion: k3d.io/v1alpha5\nkind: Cluster\nmetadata: {name: x}\nimage: rancher/k3s:v1.31.5-k3s1\n", want: `kind "Cluster"`},
		{name: "unknown key", yaml: "apiVersion: k3d.io/v1alpha5\nkind: Simple\nmetadata: {name: x}\nimage: rancher/k3s:v1.31.5-k3s1\nserverz: 2\n", want: "not a valid k3d config"},
		{name: "no name", yaml: "apiVersion: k3d.io/v1alpha5\nkind: Simple\nimage: rancher/k3s:v1.31.5-k3s1\n", want: "metadata.name is missing"},
		{name: "no image", yaml: "apiVersion: k3d.io/v1alpha5\nkind: Simple\nmetadata: {name: x}\n", want: "pin the k3s image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cluster.yaml")
			os.WriteFile(p, []byte(tt.yaml), 0o644)
			_, err := cluster.ReadConfig(p, os.Getenv)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want an error naming %s and saying %q", err, p, tt.want)
			}
		})
	}
}

// On an engine that refuses privileged containers (this machine) Create
// says so in one line and creates nothing; where privilege is allowed the
// probe passes. Either way no network is used by the probe.
func TestCreateWhereK3sCannotRun(t *testing.T) { testenv.EachEngine(t, testCreateWhereK3sCannotRun) }

func testCreateWhereK3sCannotRun(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	perr := cluster.Probe(ctx, e)
	if perr != nil && !errors.Is(perr, cluster.ErrCannotRun) {
		t.Fatalf("probe: %v", perr)
	}
	name := testenv.Unique("hoist-c-")
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(p, []byte("apiVersion: k3d.io/v1alpha5\nkind: Simple\nmetadata: {name: "+name+"}\nimage: rancher/k3s:v1.31.5-k3s1\n"), 0o644)
	if perr == nil {
		// Privilege is allowed here (as in the GitHub workflow): creating a
		// real cluster is the workflow's job, not a unit test's.
		t.Log("this engine allows privileged containers; the refusal path is not exercised")
	} else {
		if strings.Contains(perr.Error(), "\n") {
			t.Errorf("probe error is not one line: %q", perr)
		}
		created, err := cluster.Create(ctx, e, cluster.Runtime(), p, cluster.CreateOptions{Name: name})
		if created || !errors.Is(err, cluster.ErrCannotRun) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("got %v, %v; want one line wrapping ErrCannotRun", created, err)
		}
		if _, err := cluster.Nodes(ctx, cluster.Runtime(), name); !errors.Is(err, cluster.ErrNoCluster) {
			t.Errorf("after a refused create: %v, want no cluster", err)
		}
	}

	_, err := cluster.Create(ctx, e, cluster.Runtime(), p, cluster.CreateOptions{Name: "other"})
	if err == nil || !strings.Contains(err.Error(), "make them the same") {
		t.Errorf("name mismatch: got %v", err)
	}
	deleted, err := cluster.Delete(ctx, cluster.Runtime(), name)
	if deleted || err != nil {
		t.Errorf("deleting a missing cluster: %v, %v; want nothing to do", deleted, err)
	}
}

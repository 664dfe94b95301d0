package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
)

func TestNodesThroughK3d(t *testing.T) {
	e := testenv.Engine(t)
	img := standin.Image(t, e)
	name, nodes := standin.Cluster(t, e, img, cluster.RoleServer, cluster.RoleAgent)
	ctx := context.Background()

	got, err := cluster.Nodes(ctx, cluster.Runtime(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != nodes[1] || got[1] != nodes[0] {
		// sorted by name: ...-agent-1 before ...-server-0
		t.Fatalf("found %v, want %v", got, nodes)
	}

	t.Run("unknown cluster", func(t *testing.T) {
		_, err := cluster.Nodes(ctx, cluster.Runtime(), testenv.Unique("nosuch-"))
		if !errors.Is(err, cluster.ErrNoCluster) || strings.Count(err.Error(), "\n") > 0 {
			t.Fatalf("got %v, want one line wrapping ErrNoCluster", err)
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%v: want the running clusters named (%s)", err, name)
		}
	})

	t.Run("stopped node", func(t *testing.T) {
		if err := e.API.ContainerStop(ctx, nodes[1].Name, container.StopOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := cluster.Nodes(ctx, cluster.Runtime(), name)
		if err == nil || !strings.Contains(err.Error(), nodes[1].Name) || !strings.Contains(err.Error(), "k3d cluster start") {
			t.Fatalf("got %v, want the stopped node named and how to start it", err)
		}
	})

	t.Run("no server or agent", func(t *testing.T) {
		lb, _ := standin.Cluster(t, e, img, "loadbalancer")
		_, err := cluster.Nodes(ctx, cluster.Runtime(), lb)
		if !errors.Is(err, cluster.ErrNoNodes) {
			t.Fatalf("got %v, want ErrNoNodes", err)
		}
	})
}

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

func TestNodesThroughK3d(t *testing.T) { testenv.EachEngine(t, testNodesThroughK3d) }

func testNodesThroughK3d(t *testing.T) {
	e := testenv.Engine(t)
	img := standin.Image(t, e)
	name, nodes := standin.Cluster(t, e, img, cluster.RoleServer, cluster.RoleAgent)
	ctx := context.Background()

	// Through k3d's own runtime and through the one-listing lister: the
	// same nodes, sorted by name (…-agent-1 before …-server-0).
	for _, l := range []cluster.NodeLister{cluster.Runtime(), cluster.Lister(e.API)} {
		got, err := cluster.Nodes(ctx, l, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != nodes[1] || got[1] != nodes[0] {
			t.Fatalf("%T found %v, want %v", l, got, nodes)
		}
	}

	t.Run("unknown cluster", func(t *testing.T) {
		_, err := cluster.Nodes(ctx, cluster.Lister(e.API), testenv.Unique("nosuch-"))
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
		_, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
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

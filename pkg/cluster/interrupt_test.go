package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// streamImages are two images whose archive takes many writes, so the
// stream hook (cluster.OnStream) runs with most of it still to send.
func streamImages(t *testing.T, e *engine.Engine) []cluster.Image {
	t.Helper()
	prefix := testenv.Unique("hoist-test/stream")
	base := standin.Layer{"bin/base": random(1 << 20)}
	return []cluster.Image{
		makeImage(t, e, prefix+"-a:1", base, standin.Layer{"payload": random(4 << 20)}),
		makeImage(t, e, prefix+"-b:1", base, standin.Layer{"payload": random(4 << 20)}),
	}
}

// importsRunning lists the nodes in which ctr images import runs.
func importsRunning(t *testing.T, e *engine.Engine, nodes []cluster.Node) []string {
	t.Helper()
	var out []string
	for _, n := range nodes {
		top, err := e.API.ContainerTop(context.Background(), n.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range top.Processes {
			if strings.Contains(strings.Join(p, " "), "import") {
				out = append(out, n.Name)
				break
			}
		}
	}
	return out
}

func TestLoadNodeDiesMidImport(t *testing.T) { testenv.EachEngine(t, testLoadNodeDiesMidImport) }

func testLoadNodeDiesMidImport(t *testing.T) {
	e := testenv.Engine(t)
	_, nodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer, cluster.RoleAgent)
	imgs := streamImages(t, e)
	victim := nodes[1]
	hooked := false
	cluster.OnStream(t, func() {
		// Both nodes are importing the stream, which waits for this.
		hooked = true
		if kerr := e.API.ContainerKill(context.Background(), victim.Name, "KILL"); kerr != nil {
			t.Error(kerr)
		}
	})
	_, err := cluster.Load(context.Background(), e.API, nodes, imgs, cluster.LoadOptions{})
	if !hooked {
		t.Fatalf("the load never streamed: %v", err)
	}
	t.Logf("load: %v", err)
	if err == nil || !strings.Contains(err.Error(), "node "+victim.Name) {
		t.Fatalf("got %v, want an error naming node %s", err, victim.Name)
	}
	if strings.Contains(err.Error(), "node "+nodes[0].Name) {
		t.Errorf("%v: the healthy node %s is blamed too", err, nodes[0].Name)
	}
	// The healthy node finished its import from the shared stream.
	requireLoaded(t, e, nodes[:1], imgs)
}

func TestLoadInterruptedLeavesNothingRunning(t *testing.T) {
	testenv.EachEngine(t, testLoadInterruptedLeavesNothingRunning)
}

func testLoadInterruptedLeavesNothingRunning(t *testing.T) {
	e := testenv.Engine(t)
	name, nodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer, cluster.RoleAgent)
	imgs := streamImages(t, e)
	before, err := standin.Containers(context.Background(), e, name)
	if err != nil {
		t.Fatal(err)
	}

	ignore := goleak.IgnoreCurrent()
	api, err := engine.Connect(context.Background(), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hooked := false
	cluster.OnStream(t, func() {
		// Mid-stream: every node's import was started and sent a first
		// chunk, most of the archive still to come; interrupt the load.
		hooked = true
		cancel()
	})
	_, err = cluster.Load(ctx, api.API, nodes, imgs, cluster.LoadOptions{})
	if !hooked {
		t.Fatalf("the load never streamed: %v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	api.Close()
	goleak.VerifyNone(t, ignore)

	// Load returned: no import is left running in any node, and no
	// container was added.
	if left := importsRunning(t, e, nodes); len(left) > 0 {
		t.Errorf("ctr images import still runs in %v after the interrupted load returned", left)
	}
	after, err := standin.Containers(context.Background(), e, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("containers of the cluster went from %v to %v", before, after)
	}
}

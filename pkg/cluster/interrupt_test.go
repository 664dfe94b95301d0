package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// bigImages are large enough that a load takes a while, so a test can act
// while `ctr images import` runs.
func bigImages(t *testing.T, e *engine.Engine) []cluster.Image {
	t.Helper()
	prefix := testenv.Unique("hoist-test/big")
	base := standin.Layer{"bin/base": random(1 << 20)}
	return []cluster.Image{
		makeImage(t, e, prefix+"-a:1", base, standin.Layer{"payload": random(16 << 20)}),
		makeImage(t, e, prefix+"-b:1", base, standin.Layer{"payload": random(16 << 20)}),
	}
}

// importing waits until node runs `ctr images import` and reports whether
// it saw it before done was closed.
func importing(t *testing.T, e *engine.Engine, node string, done <-chan struct{}) bool {
	t.Helper()
	for {
		top, err := e.API.ContainerTop(context.Background(), node, nil)
		if err == nil {
			for _, p := range top.Processes {
				if strings.Contains(strings.Join(p, " "), "import") {
					return true
				}
			}
		}
		select {
		case <-done:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ingesting waits until node's containerd is receiving a blob of the load.
func ingesting(t *testing.T, e *engine.Engine, node string, done <-chan struct{}) bool {
	t.Helper()
	for {
		out, err := standin.Ctr(context.Background(), e, node, "content", "active")
		if err == nil && strings.Count(strings.TrimSpace(out), "\n") >= 1 {
			return true // a line besides the header
		}
		select {
		case <-done:
			return false
		default:
		}
	}
}

func TestLoadNodeDiesMidImport(t *testing.T) { testenv.EachEngine(t, testLoadNodeDiesMidImport) }

func testLoadNodeDiesMidImport(t *testing.T) {
	e := testenv.Engine(t)
	_, nodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer, cluster.RoleAgent)
	imgs := bigImages(t, e)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		_, err = cluster.Load(context.Background(), e.API, nodes, imgs, cluster.LoadOptions{})
	}()
	victim := nodes[1]
	if !ingesting(t, e, victim.Name, done) {
		t.Fatal("the load ended before the node could be killed; make bigImages bigger")
	}
	if kerr := e.API.ContainerKill(context.Background(), victim.Name, "KILL"); kerr != nil {
		t.Fatal(kerr)
	}
	<-done
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
	imgs := bigImages(t, e)
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err = cluster.Load(ctx, api.API, nodes, imgs, cluster.LoadOptions{})
	}()
	if !importing(t, e, nodes[0].Name, done) {
		t.Fatal("the load ended before it could be interrupted; make bigImages bigger")
	}
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	api.Close()
	goleak.VerifyNone(t, ignore)

	// No import is left running in any node, and no container was added.
	for _, n := range nodes {
		gone := false
		for i := 0; i < 200 && !gone; i++ {
			top, err := e.API.ContainerTop(context.Background(), n.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			gone = true
			for _, p := range top.Processes {
				if strings.Contains(strings.Join(p, " "), "import") {
					gone = false
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !gone {
			t.Errorf("node %s still runs ctr images import after the load was interrupted", n.Name)
		}
	}
	after, err := standin.Containers(context.Background(), e, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("containers of the cluster went from %v to %v", before, after)
	}
}

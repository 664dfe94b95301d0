package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// platformNode adds to clusterName a stand-in node whose image says it runs
// platform (its binaries are the host's, so it runs natively here).
func platformNode(t *testing.T, e *engine.Engine, clusterName, platform, name string) cluster.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = standin.Remove(context.Background(), e, name) })
	n, err := standin.StartNode(ctx, e, standin.ImageFor(t, e, platform), clusterName, cluster.RoleAgent, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// twoPlatformImage makes an image built for linux/amd64 and linux/arm64, as
// the lock records one: the amd64 image under ref, the arm64 one beside it.
func twoPlatformImage(t *testing.T, e *engine.Engine, ref string) (amd, arm cluster.Image) {
	t.Helper()
	base := standin.Layer{"bin/base": random(64 << 10)}
	amd = makeImage(t, e, ref, base, standin.Layer{"arch": []byte("amd64")})
	arm = makeImage(t, e, ref+"-linux-arm64", base, standin.Layer{"arch": []byte("arm64")})
	amd.Platform, arm.Platform = "linux/amd64", "linux/arm64"
	return amd, arm
}

func TestLoadGivesEachNodeItsPlatform(t *testing.T) {
	testenv.EachEngine(t, testLoadGivesEachNodeItsPlatform)
}

func testLoadGivesEachNodeItsPlatform(t *testing.T) {
	e := testenv.Engine(t)
	name, amdNodes := standin.Cluster(t, e, standin.ImageFor(t, e, "linux/amd64"), cluster.RoleServer)
	armNode := platformNode(t, e, name, "linux/arm64", "k3d-"+name+"-agent-1")
	nodes := append(amdNodes, armNode)

	ref := testenv.Unique("hoist-test/multi") + ":1"
	amd, arm := twoPlatformImage(t, e, ref)
	multi := cluster.Image{Ref: ref, ID: amd.ID, DiffIDs: amd.DiffIDs, Platforms: []cluster.Image{amd, arm}}
	// An image of no chosen platform goes to every node as it is.
	plain := makeImage(t, e, testenv.Unique("hoist-test/plain")+":1", standin.Layer{"p": random(1024)})
	ctx := context.Background()

	res, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{multi, plain}, cluster.LoadOptions{StateFile: t.TempDir() + "/state.json"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Sent, " ") != ref+" "+plain.Ref || len(res.Nodes) != 2 {
		t.Fatalf("sent %v to %v, want %s and %s (under their own references) to both nodes", res.Sent, res.Nodes, ref, plain.Ref)
	}
	// Each node holds its own platform's image under the image's reference.
	requireLoaded(t, e, amdNodes, []cluster.Image{{Ref: ref, ID: amd.ID}, plain})
	requireLoaded(t, e, []cluster.Node{armNode}, []cluster.Image{{Ref: ref, ID: arm.ID}, plain})
	got, err := standin.Images(ctx, e, armNode.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["docker.io/"+arm.Ref]; ok {
		t.Errorf("node %s holds the engine's platform reference %s; only %s should be there", armNode.Name, arm.Ref, ref)
	}

	// Loaded again, nothing is sent to either platform's node.
	res, err = cluster.Load(ctx, e.API, nodes, []cluster.Image{multi, plain}, cluster.LoadOptions{StateFile: t.TempDir() + "/state.json"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != 0 || strings.Join(res.Skipped, " ") != ref+" "+plain.Ref {
		t.Fatalf("second load sent %v, skipped %v; want nothing sent, both skipped", res.Sent, res.Skipped)
	}
}

func TestLoadRefusesAnImageLackingTheNodesPlatform(t *testing.T) {
	e := testenv.Engine(t)
	name, amdNodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer)
	armNode := platformNode(t, e, name, "linux/arm64", "k3d-"+name+"-agent-1")

	ref := testenv.Unique("hoist-test/amdonly") + ":1"
	amd, _ := twoPlatformImage(t, e, ref)
	only := cluster.Image{Ref: ref, ID: amd.ID, DiffIDs: amd.DiffIDs, Platforms: []cluster.Image{amd}}
	ctx := context.Background()

	_, err := cluster.Load(ctx, e.API, append(amdNodes, armNode), []cluster.Image{only}, cluster.LoadOptions{})
	if err == nil {
		t.Fatal("an image with no linux/arm64 image was loaded into an arm64 node")
	}
	msg := err.Error()
	for _, want := range []string{ref, "linux/arm64", armNode.Name, "platforms"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is more than one line: %q", msg)
	}
	// Refused before anything was sent: no node holds it.
	for _, n := range append(amdNodes, armNode) {
		got, err := standin.Images(ctx, e, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["docker.io/"+ref]; ok {
			t.Errorf("node %s was loaded with %s although the load was refused", n.Name, ref)
		}
	}
}

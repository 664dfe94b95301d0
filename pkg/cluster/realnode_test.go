package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/kubenode/nodetest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// busyboxImage is a FROM-scratch busybox image under a unique reference, as
// the loader sees it (config digest and layers).
func busyboxImage(t *testing.T, e *engine.Engine) cluster.Image {
	t.Helper()
	ref := testenv.BusyboxBase(t, e)
	img, err := e.Inspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := e.ConfigDigest(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.Image{Ref: ref, ID: cfg, DiffIDs: img.DiffIDs}
}

// TestLoadIntoRealNodeRunsThatImage loads an image into a real Kubernetes
// node found by its k3d labels, then has the kubelet run it: the running
// container's image is exactly the loaded config. A second load sends
// nothing.
//
// The node runs on the classic engine only: the modern engine (moby v2,
// containerd image store) could take the hoist-runc runtime too, but one
// real node per test binary keeps the machine's two cores for the rest.
func TestLoadIntoRealNodeRunsThatImage(t *testing.T) {
	e := testenv.Engine(t)
	node := nodetest.Start(t, e)
	img := busyboxImage(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), node.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != node.Container || nodes[0].Role != cluster.RoleServer {
		t.Fatalf("nodes of %s = %+v, want the server %s", node.Cluster, nodes, node.Container)
	}
	res, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{img}, cluster.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != 1 {
		t.Fatalf("first load sent %v, want %s", res.Sent, img.Ref)
	}

	pod := `apiVersion: v1
kind: Pod
metadata: {name: loaded}
spec:
  containers:
  - name: c
    image: ` + img.Ref + `
    imagePullPolicy: Never
    command: [/bin/busybox, sleep, "3600"]
`
	apply := node.Command(ctx, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(pod)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if out, err := node.Run(ctx, "wait", "--for=condition=Ready", "pod/loaded", "--timeout=2m"); err != nil {
		desc, _ := node.Run(ctx, "describe", "pod/loaded")
		t.Fatalf("%v\n%s\n%s", err, out, desc)
	}
	got, err := node.Run(ctx, "get", "pod/loaded", "-o", "jsonpath={.status.containerStatuses[0].imageID}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got, img.ID) {
		t.Errorf("the running container's image ID is %q, want the loaded config %s", got, img.ID)
	}

	again, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{img}, cluster.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Sent) != 0 || again.Blobs != 0 {
		t.Errorf("second load sent %v (%d blobs), want nothing", again.Sent, again.Blobs)
	}
}

package cluster_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// makeImages loads n images sharing one base layer, each with its own
// payload layer, under unique references removed when t ends.
func makeImages(t *testing.T, e *engine.Engine, n int) ([]cluster.Image, standin.Layer) {
	t.Helper()
	base := standin.Layer{"bin/base": random(256 << 10)}
	prefix := testenv.Unique("hoist-test/load")
	var imgs []cluster.Image
	for i := 0; i < n; i++ {
		ref := fmt.Sprintf("%s-%d:1", prefix, i)
		imgs = append(imgs, makeImage(t, e, ref, base, standin.Layer{"payload": random(64 << 10)}))
	}
	return imgs, base
}

func makeImage(t *testing.T, e *engine.Engine, ref string, layers ...standin.Layer) cluster.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := standin.MakeImage(ctx, e, ref, layers...)
	if err != nil {
		t.Fatal(err)
	}
	// By ID too: an image remade under the same reference leaves the old
	// one untagged.
	t.Cleanup(func() {
		e.Remove(context.Background(), ref)
		e.Remove(context.Background(), img.ID)
	})
	return cluster.Image{Ref: ref, ID: img.Config, DiffIDs: img.DiffIDs}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// requireLoaded checks with ctr on every node that each image's name points
// at the image's config (its digest is the engine's image ID only on the
// classic store).
func requireLoaded(t *testing.T, e *engine.Engine, nodes []cluster.Node, imgs []cluster.Image) {
	t.Helper()
	for _, n := range nodes {
		got, err := standin.Images(context.Background(), e, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			name := "docker.io/" + img.Ref
			if got[name] != img.ID {
				t.Errorf("node %s: %s has config %q, want the config %s", n.Name, name, got[name], img.ID)
			}
		}
		// Every blob of every image is in the node's content store.
		check, err := standin.Ctr(context.Background(), e, n.Name, "images", "check")
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			complete := false
			for _, line := range strings.Split(check, "\n") {
				if strings.HasPrefix(line, "docker.io/"+img.Ref+" ") {
					complete = strings.Contains(line, " complete ")
				}
			}
			if !complete {
				t.Errorf("node %s: ctr images check does not call %s complete:\n%s", n.Name, img.Ref, check)
			}
		}
	}
}

// requireUnpacks has the node unpack and mount the image, as the kubelet's
// CRI does when a container first uses an image imported without unpacking.
func requireUnpacks(t *testing.T, e *engine.Engine, node, ref string) {
	t.Helper()
	ctx := context.Background()
	if _, err := standin.Ctr(ctx, e, node, "images", "mount", "docker.io/"+ref, "/tmp"); err != nil {
		t.Fatalf("unpacking %s on %s: %v", ref, node, err)
	}
	if _, err := standin.Ctr(ctx, e, node, "images", "unmount", "/tmp"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadServerAndAgentFromOneStream(t *testing.T) {
	testenv.EachEngine(t, testLoadServerAndAgentFromOneStream)
}

func testLoadServerAndAgentFromOneStream(t *testing.T) {
	e := testenv.Engine(t)
	_, nodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer, cluster.RoleAgent)
	imgs, _ := makeImages(t, e, 3)
	ctx := context.Background()

	res, err := cluster.Load(ctx, e.API, nodes, imgs, cluster.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != 3 || len(res.Nodes) != 2 {
		t.Fatalf("first load sent %v to %v, want 3 images to both nodes", res.Sent, res.Nodes)
	}
	// 1 shared base layer + 3 payload layers + 3 configs + 3 manifests.
	if res.Blobs != 10 {
		t.Errorf("first load streamed %d blobs, want 10 (the shared base once)", res.Blobs)
	}
	requireLoaded(t, e, nodes, imgs)
}

func TestLoadIncremental(t *testing.T) { testenv.EachEngine(t, testLoadIncremental) }

func testLoadIncremental(t *testing.T) {
	e := testenv.Engine(t)
	img := standin.Image(t, e)
	tests := []struct {
		name  string
		state bool // remember manifests between loads (one question per node)
	}{
		{name: "asking the nodes everything", state: false},
		{name: "with remembered manifests", state: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, nodes := standin.Cluster(t, e, img, cluster.RoleServer, cluster.RoleAgent)
			imgs, base := makeImages(t, e, 4)
			ctx := context.Background()
			o := cluster.LoadOptions{}
			if tt.state {
				o.StateFile = t.TempDir() + "/manifests.json"
			}
			if _, err := cluster.Load(ctx, e.API, nodes, imgs, o); err != nil {
				t.Fatal(err)
			}

			// Unchanged: nothing is saved or sent.
			res, err := cluster.Load(ctx, e.API, nodes, imgs, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Sent) != 0 || res.Bytes != 0 || len(res.Skipped) != 4 || len(res.Nodes) != 0 {
				t.Fatalf("reload of unchanged images sent %v to %v (%d bytes), skipped %v; want nothing sent, 4 skipped", res.Sent, res.Nodes, res.Bytes, res.Skipped)
			}

			// One image rebuilt under the same reference with a new payload:
			// only it is sent, and of it only the new layer, its config and
			// its manifest; the shared base layer is already on the nodes.
			changed := imgs[2].Ref
			imgs[2] = makeImage(t, e, changed, base, standin.Layer{"payload": random(64 << 10)})
			res, err = cluster.Load(ctx, e.API, nodes, imgs, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Sent) != 1 || res.Sent[0] != changed || len(res.Skipped) != 3 {
				t.Fatalf("after changing %s: sent %v, skipped %v", changed, res.Sent, res.Skipped)
			}
			if res.Blobs != 3 {
				t.Errorf("after changing one image: %d blobs streamed, want 3 (new layer, config, manifest)", res.Blobs)
			}
			if res.Bytes > 100<<10 {
				t.Errorf("after changing one image: %d bytes streamed, want about the 64 KiB payload (the 256 KiB base must not be sent)", res.Bytes)
			}
			requireLoaded(t, e, nodes, imgs)
			// Its base layer came from the other images: it still unpacks.
			for _, n := range nodes {
				requireUnpacks(t, e, n.Name, changed)
			}

			// Tagged away on one node (e.g. a node replaced): that node alone
			// gets it again.
			if _, err := standin.Ctr(ctx, e, nodes[1].Name, "images", "rm", "docker.io/"+imgs[0].Ref); err != nil {
				t.Fatal(err)
			}
			res, err = cluster.Load(ctx, e.API, nodes, imgs, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Sent) != 1 || len(res.Nodes) != 1 || res.Nodes[0] != nodes[1].Name {
				t.Fatalf("after removing %s from %s: sent %v to %v", imgs[0].Ref, nodes[1].Name, res.Sent, res.Nodes)
			}
			requireLoaded(t, e, nodes, imgs)
		})
	}
}

func TestLoadSendsOnlyWhatEachNodeLacks(t *testing.T) {
	testenv.EachEngine(t, testLoadSendsOnlyWhatEachNodeLacks)
}

func testLoadSendsOnlyWhatEachNodeLacks(t *testing.T) {
	e := testenv.Engine(t)
	img := standin.Image(t, e)
	_, nodes := standin.Cluster(t, e, img, cluster.RoleServer)
	imgs, _ := makeImages(t, e, 2)
	ctx := context.Background()
	if _, err := cluster.Load(ctx, e.API, nodes, imgs, cluster.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	// An agent joins empty: it alone is sent the images; the server, which
	// has them, is not sent anything.
	_, agents := standin.Cluster(t, e, img, cluster.RoleAgent)
	all := append(nodes, agents...)
	res, err := cluster.Load(ctx, e.API, all, imgs, cluster.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 1 || res.Nodes[0] != agents[0].Name {
		t.Fatalf("sent to %v, want only the new agent %s", res.Nodes, agents[0].Name)
	}
	requireLoaded(t, e, all, imgs)
}

// Command cluster compares Hoist's cluster load with k3d's own
// ImageImportIntoClusterMulti (direct mode, exec made non-privileged) on
// stand-in k3d nodes (server + agent), side by side in one run:
//
//	go run ./internal/bench/cluster [-images 14] [-runs 3] [-kube]
//
// With -kube it measures on real Kubernetes nodes instead (kube.go).
//
// Scenarios: a first load of all images into empty nodes; a reload with
// nothing changed; a reload after one image changed (against k3d importing
// just that image). It prints medians and the ratios the issue sets.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"

	k3dclient "github.com/k3d-io/k3d/v5/pkg/client"
	k3dlog "github.com/k3d-io/k3d/v5/pkg/logger"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

func main() {
	n := flag.Int("images", 14, "images to load")
	runs := flag.Int("runs", 3, "runs of each scenario (the median is reported)")
	payload := flag.Int("payload-kib", 2048, "size of each image's own layer (the shared base is 2 MiB)")
	onKube := flag.Bool("kube", false, "measure on real Kubernetes nodes (internal/kubenode; needs root) instead of stand-in nodes")
	flag.Parse()
	k3dlog.Log().SetLevel(logrus.WarnLevel)
	do := run
	if *onKube {
		do = func(n, runs, payload int) error {
			ctx := context.Background()
			e, err := engine.Connect(ctx, engine.Options{})
			if err != nil {
				return err
			}
			defer e.Close()
			return kube(ctx, e, n, runs, payload)
		}
	}
	if err := do(*n, *runs, *payload<<10); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	state   string // Hoist's remembered manifests, as K3dLoad keeps them in the build folder
	ctx     context.Context
	e       *engine.Engine
	k3drt   unprivileged
	node    string // stand-in image
	cleanup []func()
}

func run(n, runs, payload int) error {
	ctx := context.Background()
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hoist-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{ctx: ctx, e: e, k3drt: unprivileged{api: api}, state: dir + "/cluster-manifests.json"}
	defer func() {
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
	}()
	b.node = testenv.Unique("hoist-bench/node:")
	if err := standin.BuildImage(ctx, e, b.node); err != nil {
		return err
	}
	b.cleanup = append(b.cleanup, func() { e.Remove(ctx, b.node) })

	// The images: a shared 2 MiB base and an own layer each, as a matrix of
	// images built FROM one base is.
	base := standin.Layer{"bin/base": random(2 << 20)}
	prefix := testenv.Unique("hoist-bench/img")
	var imgs []cluster.Image
	var refs []string
	for i := 0; i < n; i++ {
		ref := fmt.Sprintf("%s-%02d:1", prefix, i)
		img, err := b.image(ref, base, payload)
		if err != nil {
			return err
		}
		imgs, refs = append(imgs, img), append(refs, ref)
	}
	fmt.Printf("%d images (2 MiB shared base + %d KiB each), 2 stand-in nodes (server + agent), %d runs each, medians\n\n", n, payload>>10, runs)

	// Three contenders, each on its own fresh cluster: K3dLoad as it runs
	// (the CRI unpacks on first use), K3dLoad told to unpack at import as
	// k3d does, and k3d.
	const H, HU, K = 0, 1, 2
	var full, reload, changed [3][]time.Duration
	for r := 0; r < runs; r++ {
		var names [3]string
		var nodes [3][]cluster.Node
		for c := range names {
			if names[c], nodes[c], err = b.cluster(); err != nil {
				return err
			}
		}
		all := append(append(append([]cluster.Node{}, nodes[H]...), nodes[HU]...), nodes[K]...)
		load := func(c int, refs []string) func() (time.Duration, error) {
			switch c {
			case H:
				return func() (time.Duration, error) { return b.hoist(names[H], imgs, false) }
			case HU:
				return func() (time.Duration, error) { return b.hoist(names[HU], imgs, true) }
			}
			return func() (time.Duration, error) { return b.k3d(names[K], refs) }
		}
		// Each scenario times every contender, the order rotating between
		// runs so none always meets a warm page cache.
		each := func(out *[3][]time.Duration, k3dRefs []string) error {
			for i := 0; i < 3; i++ {
				c := (i + r) % 3
				d, err := load(c, k3dRefs)()
				if err != nil {
					return err
				}
				out[c] = append(out[c], d)
			}
			return nil
		}
		// First load into empty nodes.
		if err := each(&full, refs); err != nil {
			return err
		}
		if err := b.verify(all, imgs); err != nil {
			return err
		}
		// Nothing changed.
		if err := each(&reload, refs); err != nil {
			return err
		}
		// One image rebuilt with a new own layer; k3d imports just it.
		k := r % n
		if imgs[k], err = b.image(refs[k], base, payload); err != nil {
			return err
		}
		if err := each(&changed, refs[k:k+1]); err != nil {
			return err
		}
		if err := b.verify(all, imgs); err != nil {
			return err
		}
	}
	rows := []struct {
		what, k3dWhat string
		d             [3][]time.Duration
		target        float64
	}{
		{fmt.Sprintf("first load of %d", n), fmt.Sprintf("import of %d", n), full, 0.8},
		{fmt.Sprintf("reload, %d unchanged", n), fmt.Sprintf("import of %d", n), reload, 0.1},
		{fmt.Sprintf("reload, 1 of %d changed", n), "import of the 1 changed", changed, 1.0},
	}
	fmt.Println("| scenario | Hoist K3dLoad | ratio | target | Hoist, unpacking at import | ratio | k3d ImageImportIntoClusterMulti |")
	fmt.Println("|---|---|---|---|---|---|---|")
	ok := true
	for _, r := range rows {
		h, hu, kd := median(r.d[H]), median(r.d[HU]), median(r.d[K])
		ratio, uratio := h.Seconds()/kd.Seconds(), hu.Seconds()/kd.Seconds()
		mark := "ok"
		if ratio > r.target {
			mark, ok = "MISSED", false
		}
		fmt.Printf("| %s | %s | %.3f× | ≤ %.1f× %s | %s | %.3f× | %s (%s) |\n", r.what, ms(h), ratio, r.target, mark, ms(hu), uratio, ms(kd), r.k3dWhat)
	}
	if !ok {
		return fmt.Errorf("a target was missed")
	}
	return nil
}

func (b *bench) image(ref string, base standin.Layer, payload int) (cluster.Image, error) {
	img, err := standin.MakeImage(b.ctx, b.e, ref, base, standin.Layer{"payload": random(payload)})
	if err != nil {
		return cluster.Image{}, err
	}
	b.cleanup = append(b.cleanup, func() {
		b.e.Remove(b.ctx, ref)
		b.e.Remove(b.ctx, img.ID) // a remade image leaves the old one untagged
	})
	return cluster.Image{Ref: ref, ID: img.Config, DiffIDs: img.DiffIDs}, nil
}

// cluster starts a server and an agent stand-in node for a new cluster.
func (b *bench) cluster() (string, []cluster.Node, error) {
	name := testenv.Unique("hoist-bench-")
	var nodes []cluster.Node
	for i, role := range []string{cluster.RoleServer, cluster.RoleAgent} {
		cname := fmt.Sprintf("k3d-%s-%s-%d", name, role, i)
		b.cleanup = append(b.cleanup, func() { standin.Remove(b.ctx, b.e, cname) })
		nd, err := standin.StartNode(b.ctx, b.e, b.node, name, role, cname)
		if err != nil {
			return "", nil, err
		}
		nodes = append(nodes, nd)
	}
	return name, nodes, nil
}

// hoist times what K3dLoad does: find the nodes through k3d, then load.
func (b *bench) hoist(name string, imgs []cluster.Image, unpack bool) (time.Duration, error) {
	start := time.Now()
	nodes, err := cluster.Nodes(b.ctx, cluster.Lister(b.e.API), name)
	if err != nil {
		return 0, err
	}
	if _, err := cluster.Load(b.ctx, b.e.API, nodes, imgs, cluster.LoadOptions{StateFile: b.state, Unpack: unpack}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// k3d times k3d's own import: get the cluster, import in direct mode.
func (b *bench) k3d(name string, refs []string) (time.Duration, error) {
	start := time.Now()
	c, err := k3dclient.ClusterGet(b.ctx, b.k3drt, &k3d.Cluster{Name: name})
	if err != nil {
		return 0, fmt.Errorf("k3d cluster get: %w", err)
	}
	if err := k3dclient.ImageImportIntoClusterMulti(b.ctx, b.k3drt, refs, c, k3d.ImageImportOpts{Mode: k3d.ImportModeDirect}); err != nil {
		return 0, fmt.Errorf("k3d image import: %w", err)
	}
	return time.Since(start), nil
}

// verify checks with ctr that every node holds every image with the
// engine's config digest.
func (b *bench) verify(nodes []cluster.Node, imgs []cluster.Image) error {
	for _, nd := range nodes {
		got, err := standin.Images(b.ctx, b.e, nd.Name)
		if err != nil {
			return err
		}
		for _, img := range imgs {
			if got["docker.io/"+img.Ref] != img.ID {
				return fmt.Errorf("node %s: %s has config %q, want %s", nd.Name, img.Ref, got["docker.io/"+img.Ref], img.ID)
			}
		}
	}
	return nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) string {
	return strings.TrimSuffix(fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000), ".")
}

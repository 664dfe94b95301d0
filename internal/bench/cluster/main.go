// Command cluster compares Hoist's cluster load with k3d's own
// ImageImportIntoClusterMulti (direct mode, exec made non-privileged) on
// stand-in k3d nodes (server + agent), side by side in one run:
//
//	go run ./internal/bench/cluster [-images 14] [-runs 3]
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
	flag.Parse()
	k3dlog.Log().SetLevel(logrus.WarnLevel)
	if err := run(*n, *runs, *payload<<10); err != nil {
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

	var full, reload, changed [2][]time.Duration // [0] hoist, [1] k3d
	for r := 0; r < runs; r++ {
		hc, hnodes, err := b.cluster()
		if err != nil {
			return err
		}
		kc, knodes, err := b.cluster()
		if err != nil {
			return err
		}
		// Each scenario times both tools, the first to go alternating
		// between runs so neither always meets a warm page cache.
		pair := func(out *[2][]time.Duration, h func() (time.Duration, error), k func() (time.Duration, error)) error {
			fns := [2]func() (time.Duration, error){h, k}
			order := [2]int{0, 1}
			if r%2 == 1 {
				order = [2]int{1, 0}
			}
			for _, i := range order {
				d, err := fns[i]()
				if err != nil {
					return err
				}
				out[i] = append(out[i], d)
			}
			return nil
		}
		// First load into empty nodes.
		if err := pair(&full, func() (time.Duration, error) { return b.hoist(hc, imgs) }, func() (time.Duration, error) { return b.k3d(kc, knodes, refs) }); err != nil {
			return err
		}
		if err := b.verify(append(hnodes, knodes...), imgs); err != nil {
			return err
		}
		// Nothing changed.
		if err := pair(&reload, func() (time.Duration, error) { return b.hoist(hc, imgs) }, func() (time.Duration, error) { return b.k3d(kc, knodes, refs) }); err != nil {
			return err
		}
		// One image rebuilt with a new own layer.
		k := r % n
		if imgs[k], err = b.image(refs[k], base, payload); err != nil {
			return err
		}
		if err := pair(&changed, func() (time.Duration, error) { return b.hoist(hc, imgs) }, func() (time.Duration, error) { return b.k3d(kc, knodes, refs[k:k+1]) }); err != nil {
			return err
		}
		if err := b.verify(append(hnodes, knodes...), imgs); err != nil {
			return err
		}
	}
	rows := []struct {
		what, k3dWhat string
		d             [2][]time.Duration
		target        float64
	}{
		{fmt.Sprintf("first load of %d", n), fmt.Sprintf("import of %d", n), full, 0.8},
		{fmt.Sprintf("reload, %d unchanged", n), fmt.Sprintf("import of %d", n), reload, 0.1},
		{fmt.Sprintf("reload, 1 of %d changed", n), "import of the 1 changed", changed, 1.0},
	}
	fmt.Println("| scenario | Hoist K3dLoad | k3d ImageImportIntoClusterMulti | ratio | target |")
	fmt.Println("|---|---|---|---|---|")
	ok := true
	for _, r := range rows {
		h, kd := median(r.d[0]), median(r.d[1])
		ratio := h.Seconds() / kd.Seconds()
		mark := "ok"
		if ratio > r.target {
			mark, ok = "MISSED", false
		}
		fmt.Printf("| %s | %s | %s (%s) | %.3f× | ≤ %.1f× %s |\n", r.what, ms(h), ms(kd), r.k3dWhat, ratio, r.target, mark)
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
	b.cleanup = append(b.cleanup, func() { b.e.Remove(b.ctx, ref) })
	return cluster.Image{Ref: ref, ID: img.ID, DiffIDs: img.DiffIDs}, nil
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
func (b *bench) hoist(name string, imgs []cluster.Image) (time.Duration, error) {
	start := time.Now()
	nodes, err := cluster.Nodes(b.ctx, cluster.Runtime(), name)
	if err != nil {
		return 0, err
	}
	if _, err := cluster.Load(b.ctx, b.e.API, nodes, imgs, cluster.LoadOptions{StateFile: b.state}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// k3d times k3d's own import: get the cluster, import in direct mode.
func (b *bench) k3d(name string, nodes []cluster.Node, refs []string) (time.Duration, error) {
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

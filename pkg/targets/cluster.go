package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// envUnpack makes the nodes unpack images at import, as k3d does, instead of
// leaving it to the kubelet's first use.
const envUnpack = "HOIST_UNPACK"

// K3dLoad loads the built images into every server and agent node of the k3d cluster named in hoist.yaml, with no registry, sending only what the nodes lack.
//
// Nodes are found by k3d's labels. One archive is streamed to all nodes at
// once into `ctr images import` (no privileged exec); images every node
// already has are not sent, and of the others only the layers a node lacks.
// A node that fails fails the target, named in the error. Images are
// unpacked by the kubelet when a pod first runs them; HOIST_UNPACK=1 unpacks
// at import instead.
func K3dLoad(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	name, err := s.clusterName()
	if err != nil {
		return err
	}
	e, err := s.engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	_, imgs, err := s.built(ctx, e)
	if err != nil {
		return err
	}
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
	if err != nil {
		return err
	}
	return s.load(ctx, e, nodes, imgs)
}

// Cluster holds the k3d cluster's lifecycle targets.
type Cluster mg.Namespace

// Create creates the k3d cluster from infra/k3d/cluster.yaml (k3d's own format) through the k3d library, unless it exists; says so in one line where k3s cannot run.
func (Cluster) Create(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	if _, err := s.clusterName(); err != nil {
		return err
	}
	e, err := s.engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	created, err := cluster.Create(ctx, e, cluster.Runtime(), s.cfg.Path(s.cfg.Cluster.Config), cluster.CreateOptions{Kubeconfig: s.kubeconfig(), Name: s.cfg.Cluster.Name, Getenv: os.Getenv})
	if err != nil {
		return err
	}
	what := "exists"
	if created {
		what = "created"
	}
	fmt.Fprintf(s.out, "hoist: k3d cluster %s %s; kubeconfig: %s\n", s.cfg.Cluster.Name, what, s.rel(s.kubeconfig()))
	return nil
}

// Delete deletes the k3d cluster named in hoist.yaml (nothing to do when it does not exist).
func (Cluster) Delete(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	name, err := s.clusterName()
	if err != nil {
		return err
	}
	deleted, err := cluster.Delete(ctx, cluster.Runtime(), name)
	if err != nil {
		return err
	}
	if deleted {
		fmt.Fprintf(s.out, "hoist: k3d cluster %s deleted\n", name)
	} else {
		fmt.Fprintf(s.out, "hoist: no k3d cluster %s to delete\n", name)
	}
	return nil
}

func (s *session) clusterName() (string, error) {
	if s.cfg.Cluster.Name == "" {
		return "", fmt.Errorf("%s: no cluster configured: add `cluster: {name: NAME}` (see docs/cluster.md)", s.cfg.File)
	}
	return s.cfg.Cluster.Name, nil
}

func (s *session) kubeconfig() string {
	return filepath.Join(s.cfg.Path(s.cfg.BuildDir), "kubeconfig")
}

func (s *session) load(ctx context.Context, e *engine.Engine, nodes []cluster.Node, imgs []lock.Image) error {
	start := time.Now()
	var ci []cluster.Image
	for _, img := range imgs {
		ci = append(ci, cluster.Image{Ref: img.Ref, ID: img.ConfigDigest, DiffIDs: img.DiffIDs})
	}
	res, err := cluster.Load(ctx, e.API, nodes, ci, cluster.LoadOptions{
		StateFile: filepath.Join(s.cfg.Path(s.cfg.BuildDir), "cluster-manifests.json"),
		Unpack:    truthy(os.Getenv(envUnpack)),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "hoist: %d images in %d nodes of %s: %d sent (%d blobs, %.1f MiB) to %d nodes, %d already there, in %.2fs\n",
		len(imgs), len(nodes), s.cfg.Cluster.Name, len(res.Sent), res.Blobs, float64(res.Bytes)/(1<<20), len(res.Nodes), len(res.Skipped), time.Since(start).Seconds())
	return nil
}

// clusterStage loads the images and runs the in-cluster tests; where no k3s
// node can run it says so in one line and returns nil.
func (s *session) clusterStage(ctx context.Context, e *engine.Engine, p *plan.Plan, imgs []lock.Image) error {
	name := s.cfg.Cluster.Name
	rt := cluster.Runtime()
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
	if errors.Is(err, cluster.ErrNoCluster) {
		if perr := cluster.Probe(ctx, e); errors.Is(perr, cluster.ErrCannotRun) {
			fmt.Fprintf(s.out, "hoist: in-cluster stage skipped: %v\n", perr)
			return nil
		}
		if _, err := cluster.Create(ctx, e, rt, s.cfg.Path(s.cfg.Cluster.Config), cluster.CreateOptions{Kubeconfig: s.kubeconfig(), Name: s.cfg.Cluster.Name, Getenv: os.Getenv}); err != nil {
			return err
		}
		nodes, err = cluster.Nodes(ctx, cluster.Lister(e.API), name)
	}
	if err != nil {
		return err
	}
	if err := s.load(ctx, e, nodes, imgs); err != nil {
		return err
	}
	if err := cluster.WriteKubeconfig(ctx, rt, name, s.kubeconfig()); err != nil {
		return err
	}
	refs := map[string]string{}
	ids := map[string]string{}
	for _, img := range imgs {
		refs[img.Name], ids[img.Name] = img.Ref, img.ImageID
	}
	start := time.Now()
	res, err := cluster.InCluster(ctx, cluster.InClusterOptions{
		Kubeconfig: s.kubeconfig(),
		Manifests:  s.cfg.Path(s.cfg.Cluster.Manifests),
		Refs:       refs,
		Test:       s.cfg.Cluster.Test,
		Dir:        s.cfg.Dir,
		Timeout:    s.cfg.Cluster.Timeout,
		WorkDir:    filepath.Join(s.cfg.Path(s.cfg.BuildDir), "cluster"),
	})
	if ctx.Err() != nil || len(res.Images) == 0 {
		return err
	}
	if err == nil {
		s.passed++
	} else {
		s.failed++
	}
	rec := lock.Test{Passed: err == nil, Log: res.PodLogs, Duration: time.Since(start).Round(time.Millisecond).String(), At: time.Now().UTC()}
	if err == nil {
		fmt.Fprintf(s.out, "hoist: in-cluster tests passed (%d images)\n", len(res.Images))
	}
	if rerr := lock.Update(s.lockPath, func(l *lock.Lock) error {
		for _, n := range res.Images {
			if img, ok := l.Find(n); ok {
				t := rec
				t.ImageID = ids[n]
				img.Cluster = &t
			}
		}
		return nil
	}); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
)

// K3dLoad loads the built images into every node of the configured k3d
// cluster, sending only what the nodes lack.
func (r *Run) K3dLoad(ctx context.Context) error {
	name, err := r.ClusterName()
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	_, imgs, err := r.Built(ctx, e)
	if err != nil {
		return err
	}
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
	if err != nil {
		return err
	}
	return r.load(ctx, e, nodes, imgs)
}

// ClusterCreate creates the configured k3d cluster unless it exists.
func (r *Run) ClusterCreate(ctx context.Context) error {
	if _, err := r.ClusterName(); err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	created, err := cluster.Create(ctx, e, cluster.Runtime(), r.Cfg.Path(r.Cfg.Cluster.Config), r.createOptions())
	if err != nil {
		return err
	}
	what := "exists"
	if created {
		what = "created"
	}
	r.logf("hoist: k3d cluster %s %s; kubeconfig: %s", r.Cfg.Cluster.Name, what, r.Rel(r.kubeconfig()))
	return nil
}

// ClusterDelete deletes the configured k3d cluster when it exists.
func (r *Run) ClusterDelete(ctx context.Context) error {
	name, err := r.ClusterName()
	if err != nil {
		return err
	}
	deleted, err := cluster.Delete(ctx, cluster.Runtime(), name)
	if err != nil {
		return err
	}
	if deleted {
		r.logf("hoist: k3d cluster %s deleted", name)
	} else {
		r.logf("hoist: no k3d cluster %s to delete", name)
	}
	return nil
}

// ClusterName is the configured cluster, or an error saying how to add one.
func (r *Run) ClusterName() (string, error) {
	if r.Cfg.Cluster.Name == "" {
		return "", fmt.Errorf("%s: no cluster configured: add `cluster: {name: NAME}` (see docs/cluster.md)", r.Cfg.File)
	}
	return r.Cfg.Cluster.Name, nil
}

func (r *Run) kubeconfig() string { return filepath.Join(r.BuildDir(), "kubeconfig") }

func (r *Run) createOptions() cluster.CreateOptions {
	return cluster.CreateOptions{Kubeconfig: r.kubeconfig(), Name: r.Cfg.Cluster.Name, Getenv: func(k string) string { v, _ := r.Set.Lookup(k); return v }}
}

func (r *Run) load(ctx context.Context, e *engine.Engine, nodes []cluster.Node, imgs []lock.Image) error {
	start := time.Now()
	var ci []cluster.Image
	for _, img := range imgs {
		ci = append(ci, cluster.Image{Ref: img.Ref, ID: img.ConfigDigest, DiffIDs: img.DiffIDs})
	}
	res, err := cluster.Load(ctx, e.API, nodes, ci, cluster.LoadOptions{
		StateFile: filepath.Join(r.BuildDir(), "cluster-manifests.json"),
		Unpack:    r.Set.Unpack,
	})
	if err != nil {
		return err
	}
	r.logf("hoist: %d images in %d nodes of %s: %d sent (%d blobs, %.1f MiB) to %d nodes, %d already there, in %.2fs",
		len(imgs), len(nodes), r.Cfg.Cluster.Name, len(res.Sent), res.Blobs, float64(res.Bytes)/(1<<20), len(res.Nodes), len(res.Skipped), time.Since(start).Seconds())
	return nil
}

// clusterStage loads the images and runs the in-cluster tests, recording
// the result in the lock; where no k3s node can run it says so in one line
// and returns nil.
func (r *Run) clusterStage(ctx context.Context, e *engine.Engine, imgs []lock.Image) error {
	name := r.Cfg.Cluster.Name
	rt := cluster.Runtime()
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
	if errors.Is(err, cluster.ErrNoCluster) {
		if perr := cluster.Probe(ctx, e); errors.Is(perr, cluster.ErrCannotRun) {
			r.logf("hoist: in-cluster stage skipped: %v", perr)
			return nil
		}
		if _, err := cluster.Create(ctx, e, rt, r.Cfg.Path(r.Cfg.Cluster.Config), r.createOptions()); err != nil {
			return err
		}
		nodes, err = cluster.Nodes(ctx, cluster.Lister(e.API), name)
	}
	if err != nil {
		return err
	}
	if err := r.load(ctx, e, nodes, imgs); err != nil {
		return err
	}
	if err := cluster.WriteKubeconfig(ctx, rt, name, r.kubeconfig()); err != nil {
		return err
	}
	refs := map[string]string{}
	ids := map[string]string{}
	for _, img := range imgs {
		refs[img.Name], ids[img.Name] = img.Ref, img.ImageID
	}
	res, err := cluster.InCluster(ctx, cluster.InClusterOptions{
		Kubeconfig: r.kubeconfig(),
		Manifests:  r.Cfg.Path(r.Cfg.Cluster.Manifests),
		Refs:       refs,
		Test:       r.Cfg.Cluster.Test,
		Dir:        r.Cfg.Dir,
		Timeout:    r.Cfg.Cluster.Timeout,
		WorkDir:    filepath.Join(r.BuildDir(), "cluster"),
		LockPath:   r.LockPath,
		ImageIDs:   ids,
	})
	if ctx.Err() != nil || len(res.Images) == 0 {
		return err
	}
	if err == nil {
		r.Passed++
		r.logf("hoist: in-cluster tests passed (%d images)", len(res.Images))
	} else {
		r.Failed++
	}
	return err
}

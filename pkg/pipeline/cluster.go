package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hoistci/hoist/internal/kubenode"
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
	_, err = r.load(ctx, e, nodes, imgs)
	return err
}

// ClusterReload is the dev loop in one step: build (unchanged images cost
// an inspect), load into the cluster only what changed, then restart the
// workloads of the manifests that run a changed image and wait until they
// run its new content.
func (r *Run) ClusterReload(ctx context.Context) error {
	name, err := r.ClusterName()
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	if _, err := r.Images(ctx); err != nil {
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
	res, err := r.load(ctx, e, nodes, imgs)
	if err != nil {
		return err
	}
	kubeconfig, kubectl, err := r.access(ctx, e, name)
	if err != nil {
		return err
	}
	refs, ids := map[string]string{}, map[string]string{}
	var changed []string
	for _, img := range imgs {
		refs[img.Name], ids[img.Name] = img.Ref, img.ConfigDigest
		if slices.Contains(res.Sent, img.Ref) {
			changed = append(changed, img.Name)
		}
	}
	start := time.Now()
	done, err := cluster.Restart(ctx, cluster.RestartOptions{
		Kubeconfig: kubeconfig,
		Kubectl:    kubectl,
		Manifests:  r.Cfg.Path(r.Cfg.Cluster.Manifests),
		Refs:       refs,
		IDs:        ids,
		Changed:    changed,
		Timeout:    r.Cfg.Cluster.Timeout,
		WorkDir:    filepath.Join(r.BuildDir(), "cluster"),
		Alive: func(ctx context.Context) error {
			_, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
			return err
		},
	})
	if err != nil {
		return err
	}
	if len(done) == 0 {
		r.logf("hoist: no workload runs a changed image; nothing restarted")
		return nil
	}
	r.logf("hoist: restarted %s; running the new images after %.2fs", strings.Join(done, ", "), time.Since(start).Seconds())
	return nil
}

// access returns the kubeconfig and kubectl for the named cluster: a node
// Hoist started (internal/kubenode) names its own kubeconfig and runs with
// the pinned kubectl; a k3d cluster's kubeconfig is written from k3d, and
// kubectl comes from PATH.
func (r *Run) access(ctx context.Context, e *engine.Engine, name string) (kubeconfig, kubectl string, err error) {
	kc, ok, err := kubenode.Kubeconfig(ctx, e, name)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return r.kubeconfig(), "", cluster.WriteKubeconfig(ctx, cluster.Runtime(), name, r.kubeconfig())
	}
	c, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: r.toolsDir(), Progress: r.Out})
	if err != nil {
		return "", "", err
	}
	return kc, c.Path("kubectl"), nil
}

func (r *Run) toolsDir() string {
	if r.Set.ToolsDir != "" {
		return r.Set.ToolsDir
	}
	return filepath.Join(userCache(), "hoist", "tools")
}

// ClusterCreate creates the configured k3d cluster unless it exists.
// Where k3s cannot run (the engine refuses what it needs) it starts a
// Kubernetes node of its own under the cluster's name instead, kept
// running after this command until cluster:delete.
func (r *Run) ClusterCreate(ctx context.Context) error {
	name, err := r.ClusterName()
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	// A node whose starter died, or a kept one missing a part, goes first.
	kubenode.Sweep(ctx, e)
	if _, err := cluster.Nodes(ctx, cluster.Lister(e.API), name); err == nil {
		kc, _, err := r.access(ctx, e, name)
		if err != nil {
			return err
		}
		r.logf("hoist: cluster %s exists; kubeconfig: %s", name, r.Rel(kc))
		return nil
	}
	if perr := cluster.Probe(ctx, e); errors.Is(perr, cluster.ErrCannotRun) {
		node, err := r.startNode(ctx, e, perr, true)
		if node == nil {
			if err == nil {
				err = fmt.Errorf("cluster %s: %v, and %v", name, perr, kubenode.CanRun())
			}
			return err
		}
		r.logf("hoist: cluster %s is node %s, kept running: kubeconfig %s; stop it with cluster:delete", name, node.Container, r.Rel(node.Kubeconfig))
		return nil
	}
	created, err := cluster.Create(ctx, e, cluster.Runtime(), r.Cfg.Path(r.Cfg.Cluster.Config), r.createOptions())
	if err != nil {
		return err
	}
	what := "exists"
	if created {
		what = "created"
	}
	r.logf("hoist: k3d cluster %s %s; kubeconfig: %s", name, what, r.Rel(r.kubeconfig()))
	return nil
}

// ClusterDelete deletes the configured cluster when it exists: the node
// cluster:create kept running, or the k3d cluster.
func (r *Run) ClusterDelete(ctx context.Context) error {
	name, err := r.ClusterName()
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	if found, err := kubenode.StopKept(ctx, e, name); found || err != nil {
		if err == nil {
			r.logf("hoist: cluster %s (a node Hoist kept running) deleted", name)
		}
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

func (r *Run) load(ctx context.Context, e *engine.Engine, nodes []cluster.Node, imgs []lock.Image) (cluster.LoadResult, error) {
	start := time.Now()
	var ci []cluster.Image
	for _, img := range imgs {
		c := cluster.Image{Ref: img.Ref, ID: img.ConfigDigest, DiffIDs: img.DiffIDs}
		for _, p := range img.Platforms {
			c.Platforms = append(c.Platforms, cluster.Image{Platform: p.Platform, Ref: p.Ref, ID: p.ConfigDigest, DiffIDs: p.DiffIDs})
		}
		ci = append(ci, c)
	}
	res, err := cluster.Load(ctx, e.API, nodes, ci, cluster.LoadOptions{
		StateFile: filepath.Join(r.BuildDir(), "cluster-manifests.json"),
		Unpack:    r.Set.Unpack,
	})
	if err != nil {
		return res, err
	}
	r.logf("hoist: %d images in %d nodes of %s: %d sent (%d blobs, %.1f MiB) to %d nodes, %d already there, in %.2fs",
		len(imgs), len(nodes), r.Cfg.Cluster.Name, len(res.Sent), res.Blobs, float64(res.Bytes)/(1<<20), len(res.Nodes), len(res.Skipped), time.Since(start).Seconds())
	return res, nil
}

// clusterStage loads the images and runs the in-cluster tests, recording
// the result in the lock. With no cluster of that name running it creates
// the k3d cluster; where k3s cannot run (the engine refuses privileged
// containers) it runs the stage on a Kubernetes node of its own instead
// (internal/kubenode), stopped again at the end; where neither can run it
// says so in one line and returns nil.
func (r *Run) clusterStage(ctx context.Context, e *engine.Engine, imgs []lock.Image) error {
	name := r.Cfg.Cluster.Name
	rt := cluster.Runtime()
	// A node left by a run that was killed would otherwise be found below.
	kubenode.Sweep(ctx, e)
	kubeconfig, kubectl := r.kubeconfig(), ""
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
	if errors.Is(err, cluster.ErrNoCluster) {
		if perr := cluster.Probe(ctx, e); errors.Is(perr, cluster.ErrCannotRun) {
			node, err := r.startNode(ctx, e, perr, false)
			if node == nil {
				return err
			}
			defer func() {
				if err := node.Stop(context.WithoutCancel(ctx)); err != nil {
					r.logf("hoist: stopping the Kubernetes node: %v", err)
				}
			}()
			kubeconfig, kubectl = node.Kubeconfig, node.Kubectl
		} else if _, err := cluster.Create(ctx, e, rt, r.Cfg.Path(r.Cfg.Cluster.Config), r.createOptions()); err != nil {
			return err
		}
		nodes, err = cluster.Nodes(ctx, cluster.Lister(e.API), name)
	}
	if err != nil {
		return err
	}
	if pid := kubenode.Borrowed(ctx, e, name); pid > 0 && kubectl == "" {
		return fmt.Errorf("cluster %s is a node another run (pid %d) started for its own tests, and it stops when that run ends: wait for it, give this checkout another cluster.name, or start a node that stays with cluster:create", name, pid)
	}
	if _, err := r.load(ctx, e, nodes, imgs); err != nil {
		return err
	}
	if kubectl == "" {
		// A k3d cluster, or a node cluster:create keeps running.
		if kubeconfig, kubectl, err = r.access(ctx, e, name); err != nil {
			return err
		}
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	refs := map[string]string{}
	ids := map[string]string{}
	for _, img := range imgs {
		refs[img.Name], ids[img.Name] = img.Ref, img.ImageID
	}
	res, err := cluster.InCluster(ctx, cluster.InClusterOptions{
		Kubeconfig: kubeconfig,
		Kubectl:    kubectl,
		Manifests:  r.Cfg.Path(r.Cfg.Cluster.Manifests),
		Refs:       refs,
		Test:       r.Cfg.Cluster.Test,
		Dir:        r.Cfg.Dir,
		Timeout:    r.Cfg.Cluster.Timeout,
		WorkDir:    filepath.Join(r.BuildDir(), "cluster"),
		LockPath:   r.LockPath,
		ImageIDs:   ids,
		Nodes:      names,
		Alive: func(ctx context.Context) error {
			_, err := cluster.Nodes(ctx, cluster.Lister(e.API), name)
			return err
		},
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

// startNode starts a Kubernetes node labelled as the configured k3d
// cluster's server, building the pinned components once; keep makes it
// outlive this process (cluster:create). Where this machine cannot run one
// either, it logs the one line saying the stage is skipped and why, and
// returns nil, nil.
func (r *Run) startNode(ctx context.Context, e *engine.Engine, k3s error, keep bool) (*kubenode.Node, error) {
	name := r.Cfg.Cluster.Name
	if err := kubenode.CanRun(); err != nil {
		if !keep {
			r.logf("hoist: in-cluster stage skipped: %v, and %v", k3s, err)
		}
		return nil, nil
	}
	c, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: r.toolsDir(), Progress: r.Out})
	if err != nil {
		return nil, err
	}
	// A kept node has a folder of its own: a Test run's node never clears it.
	dir := filepath.Join(r.BuildDir(), "kubenode")
	if keep {
		dir = filepath.Join(r.BuildDir(), "cluster-node")
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", dir, err)
	}
	start := time.Now()
	node, err := kubenode.Start(ctx, kubenode.Options{Engine: e, Components: c, Cluster: name, Dir: dir, Keep: keep})
	if err != nil {
		return nil, fmt.Errorf("starting a Kubernetes node for cluster %s (k3s cannot run on this engine): %w (logs: %s)", name, err, r.Rel(filepath.Join(dir, "logs")))
	}
	r.logf("hoist: k3s cannot run on this engine: Kubernetes %s node %s is Ready in %.1fs (logs: %s)", kubenode.Version, node.Container, time.Since(start).Seconds(), r.Rel(filepath.Join(dir, "logs")))
	return node, nil
}

package targets

import (
	"context"

	"github.com/magefile/mage/mg"
)

// K3dLoad loads the built images into each k3d node, sending only what the node lacks.
//
// Every server and agent node of the k3d cluster named in hoist.yaml gets
// the images with no registry in between.
//
// Nodes are found by k3d's labels. One archive is streamed to all nodes at
// once into `ctr images import` (no privileged exec); images every node
// already has are not sent, and of the others only the layers a node lacks.
// A node that fails fails the target, named in the error. Images are
// unpacked by the kubelet when a pod first runs them; HOIST_UNPACK=1 unpacks
// at import instead.
func K3dLoad(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.K3dLoad(ctx)
}

// Cluster holds the k3d cluster's lifecycle targets.
type Cluster mg.Namespace

// Create creates the k3d cluster of infra/k3d/cluster.yaml unless it exists.
//
// The file is k3d's own format, read through the k3d library. Where k3s
// cannot run here, it starts a Kubernetes node of Hoist's own under the
// cluster's name instead (docs/cluster.md), kept running until
// cluster:delete; where neither can run, it says so in one line.
func (Cluster) Create(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ClusterCreate(ctx)
}

// Delete deletes the cluster named in hoist.yaml: k3d's, or the node Create kept.
func (Cluster) Delete(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ClusterDelete(ctx)
}

// Reload is the dev loop: Images, K3dLoad, then restarts workloads of changed images.
//
// After an edit to one image, Reload rebuilds it (unchanged images cost an
// inspect), sends only its new layers to the cluster's nodes, and restarts
// the workloads of the cluster manifests (infra/k8s) that run it:
// Deployments, StatefulSets and DaemonSets with `kubectl rollout restart`,
// Jobs and Pods deleted and applied again. It returns once they run the new
// image. kubectl must be installed.
func (Cluster) Reload(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ClusterReload(ctx)
}

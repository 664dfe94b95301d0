package targets

import (
	"context"

	"github.com/magefile/mage/mg"
)

// K3dLoad loads the built images into every server and agent node of the k3d cluster named in hoist.yaml, with no registry, sending only what the nodes lack.
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

// Create creates the k3d cluster from infra/k3d/cluster.yaml (k3d's own format) through the k3d library, unless it exists; says so in one line where k3s cannot run.
func (Cluster) Create(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ClusterCreate(ctx)
}

// Delete deletes the k3d cluster named in hoist.yaml (nothing to do when it does not exist).
func (Cluster) Delete(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ClusterDelete(ctx)
}

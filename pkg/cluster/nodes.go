package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
)

// ErrNoCluster means no k3d cluster of that name exists.
var ErrNoCluster = errors.New("no such k3d cluster")

// Runtime is k3d's Docker runtime, which creates and deletes clusters and
// talks to the engine DOCKER_HOST names.
func Runtime() runtimes.Runtime { return runtimes.Docker }

// NodeLister finds k3d nodes by label; k3d's runtimes.Runtime is one, and
// Lister is a faster one for a single engine.
type NodeLister interface {
	GetNodesByLabel(ctx context.Context, labels map[string]string) ([]*k3d.Node, error)
}

// Lister lists k3d nodes on the engine api talks to with one container
// listing, into k3d's node type (k3d's runtime inspects every container and
// opens a new client per call, which a reload that sends nothing notices).
func Lister(api client.APIClient) NodeLister { return lister{api} }

type lister struct{ api client.APIClient }

func (l lister) GetNodesByLabel(ctx context.Context, labels map[string]string) ([]*k3d.Node, error) {
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	cs, err := l.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	var nodes []*k3d.Node
	for _, c := range cs {
		n := &k3d.Node{
			Name:          strings.TrimPrefix(firstOr(c.Names, c.ID), "/"),
			Role:          k3d.Role(c.Labels[k3d.LabelRole]),
			RuntimeLabels: c.Labels,
			State:         k3d.NodeState{Running: c.State == "running", Status: c.State},
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// Nodes returns the server and agent nodes of the named cluster, found by
// k3d's labels (app=k3d, k3d.cluster=NAME, k3d.role). It fails with
// ErrNoCluster when nothing carries the cluster's label, naming the clusters
// that exist, and with ErrNoNodes when the cluster has no running server or
// agent node.
func Nodes(ctx context.Context, rt NodeLister, name string) ([]Node, error) {
	labels := map[string]string{k3d.LabelClusterName: name}
	for k, v := range k3d.DefaultRuntimeLabels {
		labels[k] = v
	}
	found, err := rt.GetNodesByLabel(ctx, labels)
	if err != nil {
		return nil, fmt.Errorf("listing the nodes of k3d cluster %s: %w", name, err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("k3d cluster %q: %w (%s): create it with `mage cluster:create` or fix cluster.name in hoist.yaml", name, ErrNoCluster, existing(ctx, rt))
	}
	var nodes []Node
	var stopped []string
	for _, n := range found {
		if n.Role != k3d.ServerRole && n.Role != k3d.AgentRole {
			continue
		}
		if !n.State.Running {
			stopped = append(stopped, n.Name)
			continue
		}
		nodes = append(nodes, Node{Name: n.Name, Role: string(n.Role)})
	}
	if len(stopped) > 0 {
		sort.Strings(stopped)
		return nil, fmt.Errorf("k3d cluster %q: nodes %s are not running: start them with `k3d cluster start %s` (a node Hoist's Test started where k3s cannot run is started afresh by running Test again)", name, strings.Join(stopped, ", "), name)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("k3d cluster %q: %w: add a server with `k3d node create` or recreate the cluster", name, ErrNoNodes)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, nil
}

// existing names the k3d clusters the engine runs, for error messages.
func existing(ctx context.Context, rt NodeLister) string {
	all, err := rt.GetNodesByLabel(ctx, k3d.DefaultRuntimeLabels)
	if err != nil {
		return "could not list the others"
	}
	seen := map[string]bool{}
	var names []string
	for _, n := range all {
		c := n.RuntimeLabels[k3d.LabelClusterName]
		if c != "" && !seen[c] {
			seen[c] = true
			names = append(names, c)
		}
	}
	if len(names) == 0 {
		return "the engine runs no k3d cluster"
	}
	sort.Strings(names)
	return "clusters running: " + strings.Join(names, ", ")
}

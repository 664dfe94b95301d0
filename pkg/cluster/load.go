// Package cluster loads built images into the nodes of a k3d cluster with no
// registry, creates and deletes the cluster from k3d's own config file, and
// runs the in-cluster tests.
//
// Nodes are found through the k3d library (labels app=k3d, k3d.cluster,
// k3d.role). The import is Hoist's own: k3d's execs are privileged (refused
// by engines that forbid privilege), poll once a second and send every image
// every time. Load asks each node what it holds, saves the images once and
// streams one archive, holding only the blobs some node lacks, into every
// node's `ctr images import` at the same time.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"

	"github.com/hoistci/hoist/pkg/dockersave"
)

// Roles of the nodes that take images; k3d's load balancer and registry
// nodes do not run workloads.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Node is one server or agent node container of a k3d cluster.
type Node struct {
	Name string // container name, e.g. k3d-demo-server-0
	Role string // server or agent
}

// Image is one built image to load.
type Image struct {
	Ref     string   // reference in the engine, e.g. hoist/demo:1.2.3
	ID      string   // config digest (the engine's image ID only on the classic store)
	DiffIDs []string // uncompressed layer digests, bottom first
	// Platform is what this image runs on (e.g. linux/arm64); it is set on
	// the records of Platforms.
	Platform string
	// Platforms holds an image built for several platforms, one record per
	// platform (Ref is that platform's image in the engine): each node is
	// given the record of its own platform under this image's Ref, and a
	// node whose platform has none fails the load. Empty: every node gets
	// Ref as it is.
	Platforms []Image
}

// LoadOptions tune Load.
type LoadOptions struct {
	// TempDir holds layers over 16 MiB while their digest is computed
	// (smaller ones stay in memory; default: the system's temporary folder).
	TempDir string
	// StateFile remembers the manifests Hoist wrote, with the config and
	// layers each names (e.g. build/hoist/cluster-manifests.json). A node's
	// image list then tells which images and layers it holds, so most
	// loads ask each node one question (`ctr images ls`). Empty: no memory;
	// names of ours then need a second question (`ctr content ls`).
	StateFile string
	// Unpack makes each node unpack the images into snapshots as it imports
	// them. Off, the kubelet's CRI unpacks an image when a container first
	// uses it (containerd's CRI WithNewSnapshot unpacks on a missing
	// snapshot), into the snapshotter the CRI uses, so images no pod runs
	// are never unpacked. k3d's import always unpacks.
	Unpack bool
}

// LoadResult says what Load did.
type LoadResult struct {
	Sent    []string // refs sent to at least one node
	Skipped []string // refs every node already had
	Blobs   int      // blobs in the stream (configs, layers, manifests)
	Bytes   int64    // bytes of blobs in the stream
	Nodes   []string // nodes that were sent something
}

// ErrNoNodes means the cluster has no server or agent node to load into.
var ErrNoNodes = errors.New("no server or agent nodes")

// ctr is the containerd client inside a k3s node; the k8s.io namespace is
// the one the kubelet's CRI reads.
var ctr = []string{"ctr", "-n", "k8s.io"}

// Load makes every node hold every image under its reference, sending only
// what is missing. A node that fails fails the load, named in the error; the
// other nodes still finish.
func Load(ctx context.Context, api client.APIClient, nodes []Node, images []Image, o LoadOptions) (LoadResult, error) {
	if len(nodes) == 0 {
		return LoadResult{}, ErrNoNodes
	}
	groups, err := byPlatform(ctx, api, nodes, images)
	if err != nil {
		return LoadResult{}, err
	}
	if len(groups) == 1 {
		g := groups[0]
		res, err := loadGroup(ctx, api, g.nodes, g.images, g.names, o)
		return g.shown(res), err
	}
	// Nodes of different platforms hold different images under one name,
	// so each platform's nodes get a stream of their own, one after the
	// other (they share the state file).
	var all []LoadResult
	var errs []error
	for _, g := range groups {
		res, err := loadGroup(ctx, api, g.nodes, g.images, g.names, o)
		all = append(all, g.shown(res))
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return merge(images, all), errors.Join(errs...)
}

// loadGroup loads images into nodes under names (their containerd names,
// one per image), as Load describes.
func loadGroup(ctx context.Context, api client.APIClient, nodes []Node, images []Image, names []string, o LoadOptions) (LoadResult, error) {
	var res LoadResult
	// What Hoist loaded before: manifest digest -> config and layers.
	known := readState(o.StateFile)
	unknown := neverLoaded(images, known)
	// Images Hoist has never loaded anywhere are most likely to be sent:
	// the engine starts saving them, and the nodes start their imports,
	// while the nodes are asked what they hold. The save is dropped, and a
	// node's import cancelled before it read a byte, when not needed.
	var early *saving
	var pre []*starting
	if len(unknown) > 0 {
		early = startSave(ctx, api, unknown)
		defer early.close()
		pre = make([]*starting, len(nodes))
		for j, n := range nodes {
			pre[j] = startImport(ctx, api, n, o.Unpack)
		}
		defer func() {
			for _, p := range pre {
				if p != nil {
					p.cancel(ctx)
				}
			}
		}()
	}

	invs, bad := survey(ctx, api, nodes, names, known)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	var badErrs []error
	for _, err := range bad {
		if err != nil {
			badErrs = append(badErrs, err)
		}
	}
	plan := decide(images, names, invs, bad, known)
	res.Skipped = plan.skipped
	if len(plan.send) == 0 {
		return res, errors.Join(badErrs...)
	}
	var targets []Node
	for _, j := range plan.targets {
		targets = append(targets, nodes[j])
		res.Nodes = append(res.Nodes, nodes[j].Name)
	}
	refs := plan.refs
	res.Sent = refs

	if early == nil || !subset(refs, unknown) {
		if early != nil {
			early.close()
		}
		early = startSave(ctx, api, refs)
		defer early.close()
	}
	// The engine's own inspect bounds what its save may hold.
	sizes := make([]int64, 0, len(refs))
	for _, ref := range refs {
		ii, err := api.ImageInspect(ctx, ref)
		if err != nil {
			return res, fmt.Errorf("inspecting %s: %w", ref, err)
		}
		sizes = append(sizes, ii.Size)
	}
	if err := early.first(); err != nil {
		return res, err
	}

	f := &fanout{}
	for _, n := range targets {
		var s *session
		var err error
		if pre != nil {
			j := indexOf(nodes, n)
			s, err = pre[j].get()
			pre[j] = nil
		} else {
			s, err = start(ctx, api, n.Name, importCmd(o.Unpack), true)
		}
		if err != nil {
			f.abort()
			f.wait(ctx)
			return res, fmt.Errorf("node %s: %w", n.Name, err)
		}
		f.sinks = append(f.sinks, &sink{node: n.Name, s: s})
	}
	var werr error
	written := map[string]loaded{}
	res.Blobs, res.Bytes, werr = rewrite(ctx, f, early.streams(), plan.send, plan.want, o.TempDir, written, dockersave.Bound(sizes...))
	if serr := early.failed(); werr != nil && serr != nil {
		werr = serr // the engine's refusal says it best
	}
	if werr != nil {
		// A truncated archive has no index.json, so no node imports half
		// of it; closing the connections ends every ctr promptly.
		f.abort()
	}
	nodeErrs := f.wait(ctx)
	if ctx.Err() != nil {
		return res, fmt.Errorf("loading images into %s: %w", strings.Join(res.Nodes, ", "), ctx.Err())
	}
	if werr != nil {
		return res, errors.Join(append(append(badErrs, nodeErrs...), fmt.Errorf("streaming images to the nodes: %w", werr))...)
	}
	// The archive was whole, so its manifests are worth remembering even
	// when a node failed: the others hold them now.
	for m, l := range written {
		known[m] = l
	}
	serr := writeState(o.StateFile, known)
	return res, errors.Join(append(append(badErrs, nodeErrs...), serr)...)
}

// survey asks every node what it holds. One question per node: which images
// it has. A name pointing at a manifest Hoist wrote tells the config and
// layers behind it (the manifest's digest covers them). Only a name of ours
// pointing at a manifest someone else wrote needs a second question (which
// blobs and configs the node holds), to learn its config. A node that
// cannot answer gets its error in bad; the others are still loaded.
func survey(ctx context.Context, api client.APIClient, nodes []Node, names []string, known map[string]loaded) (invs []inventory, bad []error) {
	invs, bad = askEach(ctx, api, nodes, []string{"images"})
	if ask := needContent(invs, bad, names, known); len(ask) > 0 && ctx.Err() == nil {
		sub := make([]Node, len(ask))
		for k, j := range ask {
			sub[k] = nodes[j]
		}
		more, errs := askEach(ctx, api, sub, []string{"content"})
		for k, j := range ask {
			invs[j].blobs, invs[j].config = more[k].blobs, more[k].config
			bad[j] = errs[k]
		}
	}
	creditKnown(invs, known)
	return invs, bad
}

// containerdName is the name containerd records for an engine reference:
// fully qualified, e.g. docker.io/hoist/demo:1.2.3.
func containerdName(ref string) (string, error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(n).String(), nil
}

// inventories asks every node, at once, what images (and, with content,
// which blobs) its containerd holds.
func inventories(ctx context.Context, api client.APIClient, nodes []Node, content bool) ([]inventory, error) {
	what := []string{"images"}
	if content {
		what = append(what, "content")
	}
	return ask(ctx, api, nodes, what)
}

func ask(ctx context.Context, api client.APIClient, nodes []Node, lists []string) ([]inventory, error) {
	invs, errs := askEach(ctx, api, nodes, lists)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return invs, nil
}

// askEach asks every node, at once, for the lists (images, content) and
// returns what each holds and, per node, why it could not answer.
func askEach(ctx context.Context, api client.APIClient, nodes []Node, lists []string) ([]inventory, []error) {
	invs := make([]inventory, len(nodes))
	errs := make([]error, len(lists)*len(nodes))
	var wg sync.WaitGroup
	for j, n := range nodes {
		invs[j] = newInventory()
		for k, what := range lists {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := run(ctx, api, n.Name, append(append([]string{}, ctr...), what, "ls")...)
				if err == nil && r.ExitCode != 0 {
					err = fmt.Errorf("ctr %s ls exited %d: %s", what, r.ExitCode, r.tail())
				}
				if err != nil {
					errs[len(lists)*j+k] = fmt.Errorf("node %s: asking containerd what it holds: %w", n.Name, err)
					return
				}
				if what == "images" {
					parseImages(r.Stdout, &invs[j])
				} else {
					parseContent(r.Stdout, &invs[j])
				}
			}()
		}
	}
	// Each goroutine writes only its own node's maps, one for images and
	// one for content, which touch different fields.
	wg.Wait()
	perNode := make([]error, len(nodes))
	for j := range nodes {
		perNode[j] = errors.Join(errs[len(lists)*j : len(lists)*(j+1)]...)
	}
	return invs, perNode
}

func subset(a, b []string) bool {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	for _, x := range a {
		if !in[x] {
			return false
		}
	}
	return true
}

func indexOf(nodes []Node, n Node) int {
	for j := range nodes {
		if nodes[j] == n {
			return j
		}
	}
	return -1
}

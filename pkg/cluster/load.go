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
	"sort"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"
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
	ID      string   // engine image ID, which is the config digest
	DiffIDs []string // uncompressed layer digests, bottom first
}

// LoadOptions tune Load.
type LoadOptions struct {
	// TempDir holds layers while their digest is computed (default: the
	// system's temporary folder).
	TempDir string
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
	var res LoadResult
	if len(nodes) == 0 {
		return res, ErrNoNodes
	}
	names := make([]string, len(images))
	for i, img := range images {
		n, err := containerdName(img.Ref)
		if err != nil {
			return res, err
		}
		names[i] = n
	}
	invs, err := inventories(ctx, api, nodes)
	if err != nil {
		return res, err
	}

	// Decide per node what it lacks; the stream carries the union.
	want := map[string]bool{}
	var send []sendImage
	var refs []string
	var targets []Node
	for i, img := range images {
		missing := false
		for j := range nodes {
			if invs[j].has(names[i], img.ID) {
				continue
			}
			missing = true
			for _, d := range append([]string{img.ID}, img.DiffIDs...) {
				if !invs[j].blobs[d] {
					want[d] = true
				}
			}
		}
		if !missing {
			res.Skipped = append(res.Skipped, img.Ref)
			continue
		}
		send = append(send, sendImage{Name: names[i], ID: img.ID, DiffIDs: img.DiffIDs})
		refs = append(refs, img.Ref)
	}
	if len(send) == 0 {
		return res, nil
	}
	for j, n := range nodes {
		for i, img := range images {
			if !invs[j].has(names[i], img.ID) {
				targets = append(targets, n)
				res.Nodes = append(res.Nodes, n.Name)
				break
			}
		}
	}
	res.Sent = refs

	saved, err := api.ImageSave(ctx, refs)
	if err != nil {
		return res, fmt.Errorf("saving %s from the engine: %w", strings.Join(refs, ", "), err)
	}
	defer saved.Close()

	f := &fanout{}
	for _, n := range targets {
		s, err := start(ctx, api, n.Name, append(append([]string{}, ctr...), "images", "import", "--all-platforms", "-"), true)
		if err != nil {
			f.abort()
			f.wait(ctx)
			return res, fmt.Errorf("node %s: %w", n.Name, err)
		}
		f.sinks = append(f.sinks, &sink{node: n.Name, s: s})
	}
	var werr error
	res.Blobs, res.Bytes, werr = rewrite(f, saved, send, want, o.TempDir)
	if werr != nil {
		// A truncated archive has no index.json, so no node imports half
		// of it; closing the connections ends every ctr promptly.
		f.abort()
	}
	nodeErrs := f.wait(ctx)
	if ctx.Err() != nil {
		return res, fmt.Errorf("loading images into %s: %w", strings.Join(res.Nodes, ", "), ctx.Err())
	}
	if len(nodeErrs) > 0 {
		return res, errors.Join(nodeErrs...)
	}
	if werr != nil {
		return res, fmt.Errorf("streaming images to the nodes: %w", werr)
	}
	return res, nil
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

// inventories asks every node, at once, what its containerd holds.
func inventories(ctx context.Context, api client.APIClient, nodes []Node) ([]inventory, error) {
	invs := make([]inventory, len(nodes))
	errs := make([]error, 2*len(nodes))
	var wg sync.WaitGroup
	for j, n := range nodes {
		invs[j] = newInventory()
		for k, what := range []string{"images", "content"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := run(ctx, api, n.Name, append(append([]string{}, ctr...), what, "ls")...)
				if err == nil && r.ExitCode != 0 {
					err = fmt.Errorf("ctr %s ls exited %d: %s", what, r.ExitCode, r.tail())
				}
				if err != nil {
					errs[2*j+k] = fmt.Errorf("node %s: asking containerd what it holds: %w", n.Name, err)
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return invs, nil
}

// sink is one node's import.
type sink struct {
	node string
	s    *session
	err  error
}

// fanout writes one stream to every node's import. A node that fails is
// dropped and remembered; the others go on. It fails only when every node
// has failed.
type fanout struct{ sinks []*sink }

func (f *fanout) Write(p []byte) (int, error) {
	live := 0
	for _, k := range f.sinks {
		if k.err != nil {
			continue
		}
		if _, err := k.s.Write(p); err != nil {
			k.err = err
			k.s.Abort()
			continue
		}
		live++
	}
	if live == 0 {
		return 0, errors.New("every node stopped reading")
	}
	return len(p), nil
}

func (f *fanout) abort() {
	for _, k := range f.sinks {
		k.s.Abort()
	}
}

// wait ends every node's import and returns one error per failed node.
func (f *fanout) wait(ctx context.Context) []error {
	errs := make([]error, len(f.sinks))
	var wg sync.WaitGroup
	for i, k := range f.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := k.s.Wait(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				errs[i] = fmt.Errorf("node %s: importing images: %w", k.node, err)
			case r.ExitCode == 137:
				errs[i] = fmt.Errorf("node %s: ctr images import was killed (exit 137): the node stopped or ran out of memory; check it with docker ps -a and load again", k.node)
			case r.ExitCode != 0:
				errs[i] = fmt.Errorf("node %s: ctr images import exited %d: %s", k.node, r.ExitCode, r.tail())
			case k.err != nil:
				errs[i] = fmt.Errorf("node %s: the node stopped reading the image stream: %v", k.node, k.err)
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Error() < out[j].Error() })
	return out
}

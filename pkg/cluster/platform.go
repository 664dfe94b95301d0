package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/client"
)

// group is the nodes of one platform and the images they are given: images
// name what the engine saves (a platform's own image), names the containerd
// name each is loaded under (the image's Ref), and refs maps the first back
// to the second for the result.
type group struct {
	platform string
	nodes    []Node
	images   []Image
	names    []string
	refs     map[string]string
}

// byPlatform splits nodes by the platform they run and picks, for each
// platform, the record of every image built for several. With no such image
// nothing is asked: every node gets every image as it is. An image lacking
// a node's platform is an error naming image, platform and nodes.
func byPlatform(ctx context.Context, api client.APIClient, nodes []Node, images []Image) ([]group, error) {
	several := false
	for _, img := range images {
		several = several || len(img.Platforms) > 0
	}
	if !several {
		g := group{nodes: nodes, images: images}
		for _, img := range images {
			n, err := containerdName(img.Ref)
			if err != nil {
				return nil, err
			}
			g.names = append(g.names, n)
		}
		return []group{g}, nil
	}
	ps, err := nodePlatforms(ctx, api, nodes)
	if err != nil {
		return nil, err
	}
	var groups []group
	at := map[string]int{}
	for j, n := range nodes {
		i, ok := at[ps[j]]
		if !ok {
			i = len(groups)
			at[ps[j]] = i
			groups = append(groups, group{platform: ps[j], refs: map[string]string{}})
		}
		groups[i].nodes = append(groups[i].nodes, n)
	}
	var errs []error
	for i := range groups {
		g := &groups[i]
		for _, img := range images {
			n, err := containerdName(img.Ref)
			if err != nil {
				return nil, err
			}
			rec, err := img.forPlatform(g.platform, g.nodes)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			g.images = append(g.images, rec)
			g.names = append(g.names, n)
			g.refs[rec.Ref] = img.Ref
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return groups, nil
}

// forPlatform is the image a node of platform p gets.
func (img Image) forPlatform(p string, nodes []Node) (Image, error) {
	if len(img.Platforms) == 0 {
		return img, nil
	}
	var have []string
	for _, rec := range img.Platforms {
		if rec.Platform == p {
			return Image{Ref: rec.Ref, ID: rec.ID, DiffIDs: rec.DiffIDs, Platform: p}, nil
		}
		have = append(have, rec.Platform)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return Image{}, fmt.Errorf("image %s has no %s image (built for %s) for node %s: add %s to its platforms in hoist.yaml",
		img.Ref, p, strings.Join(have, ", "), strings.Join(names, ", "), p)
}

// nodePlatforms says what platform each node runs: the one its container's
// image was made for (a node run under emulation runs that platform too).
// Nodes of one image cost one inspect of it.
func nodePlatforms(ctx context.Context, api client.APIClient, nodes []Node) ([]string, error) {
	out := make([]string, len(nodes))
	byImage := map[string]string{}
	for j, n := range nodes {
		c, err := api.ContainerInspect(ctx, n.Name)
		if err != nil {
			return nil, fmt.Errorf("node %s: asking the engine what platform it runs: %w", n.Name, err)
		}
		p, ok := byImage[c.Image]
		if !ok {
			ii, err := api.ImageInspect(ctx, c.Image)
			if err != nil {
				return nil, fmt.Errorf("node %s: asking the engine what platform its image %s runs on: %w", n.Name, c.Image, err)
			}
			p = platformString(ii.Os, ii.Architecture, ii.Variant)
			byImage[c.Image] = p
		}
		out[j] = p
	}
	return out, nil
}

// platformString writes a platform as the lock does: OS/ARCH, with the
// variant only where it tells ABIs apart (arm64's v8 is arm64).
func platformString(os, arch, variant string) string {
	if os == "" {
		os = "linux"
	}
	if variant == "" || (arch == "arm64" && variant == "v8") {
		return os + "/" + arch
	}
	return os + "/" + arch + "/" + variant
}

// shown reports res under the images' own references rather than the
// platform images the engine saved.
func (g group) shown(res LoadResult) LoadResult {
	if g.refs == nil {
		return res
	}
	for i, r := range res.Sent {
		res.Sent[i] = g.refs[r]
	}
	for i, r := range res.Skipped {
		res.Skipped[i] = g.refs[r]
	}
	return res
}

// merge sums the loads of several groups: an image is sent when any node
// was sent it, skipped when every node had it.
func merge(images []Image, all []LoadResult) LoadResult {
	var res LoadResult
	sent, skipped := map[string]bool{}, map[string]bool{}
	for _, r := range all {
		for _, ref := range r.Sent {
			sent[ref] = true
		}
		for _, ref := range r.Skipped {
			skipped[ref] = true
		}
		res.Blobs += r.Blobs
		res.Bytes += r.Bytes
		res.Nodes = append(res.Nodes, r.Nodes...)
	}
	for _, img := range images {
		switch {
		case sent[img.Ref]:
			res.Sent = append(res.Sent, img.Ref)
		case skipped[img.Ref]:
			res.Skipped = append(res.Skipped, img.Ref)
		}
	}
	sort.Strings(res.Nodes)
	return res
}

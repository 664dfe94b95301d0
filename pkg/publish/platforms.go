package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// indexItem is an image with platforms on its way to the registry: each
// platform's image is a pushItem of its own (pushed by digest like any
// image), and the OCI image index naming them is what its tags point at.
type indexItem struct {
	img      lock.Image
	repo     name.Repository
	children []*pushItem // in the order of img.Platforms
	tags     []string    // the repository's tags before this push
	manifest []byte
	digest   v1.Hash
	present  bool // the registry already has the index by digest
	ownOK    bool // the version's own tag already names it
}

// expandPlatforms replaces each item of an image with platforms by one
// item per platform, and returns the indexes to assemble from them.
func expandPlatforms(items []*pushItem) ([]*pushItem, []*indexItem) {
	var out []*pushItem
	var idx []*indexItem
	for _, it := range items {
		if len(it.img.Platforms) == 0 {
			out = append(out, it)
			continue
		}
		x := &indexItem{img: it.img, repo: it.repo}
		for _, p := range it.img.Platforms {
			child := &pushItem{img: platformImage(it.img, p), repo: it.repo, platform: p.Platform}
			x.children = append(x.children, child)
			out = append(out, child)
		}
		idx = append(idx, x)
	}
	return out, idx
}

// platformImage is one platform's record shaped as an image, so the
// single-image steps (export, upload, manifest, gate) apply unchanged.
func platformImage(img lock.Image, p lock.Platform) lock.Image {
	return lock.Image{
		Name: img.Name, Ref: p.Ref, ImageID: p.ImageID, ConfigDigest: p.ConfigDigest,
		DiffIDs: p.DiffIDs, Store: img.Store, Test: p.Test,
	}
}

// moveTags gives each index the tags listed for its repository: the
// platforms' manifests go up by digest only, so their own version tag
// checks must not see the index's tags.
func moveTags(idx []*indexItem) {
	for _, x := range idx {
		x.tags = x.children[0].tags
		for _, c := range x.children {
			c.tags = nil
		}
	}
}

// ociPlatform parses OS/ARCH[/VARIANT].
func ociPlatform(p string) *v1.Platform {
	parts := strings.SplitN(p, "/", 3)
	out := &v1.Platform{OS: parts[0]}
	if len(parts) > 1 {
		out.Architecture = parts[1]
	}
	if len(parts) > 2 {
		out.Variant = parts[2]
	}
	return out
}

// assemble writes x's index from its platforms' pushed manifests.
func (x *indexItem) assemble() error {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Annotations: ociAnnotations(x.img.Labels)}
	for _, c := range x.children {
		im.Manifests = append(im.Manifests, v1.Descriptor{
			MediaType: c.built.mediaType,
			Digest:    c.built.digest,
			Size:      int64(len(c.built.manifest)),
			Platform:  ociPlatform(c.platform),
		})
	}
	b, err := json.Marshal(im)
	if err != nil {
		return fmt.Errorf("writing the image index of %s: %w", x.img.Name, err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	x.manifest, x.digest = b, d
	return nil
}

// ociAnnotations are the image's org.opencontainers.image.* labels, which
// an index carries as annotations: registries (GHCR's package page among
// them) read the source, version and description of a multi-platform
// image there. nil when there are none.
func ociAnnotations(labels map[string]string) map[string]string {
	var out map[string]string
	for k, v := range labels {
		if strings.HasPrefix(k, "org.opencontainers.image.") {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// pushIndexes assembles each index and pushes it by digest unless the
// registry has it; the platforms' manifests are there already.
func pushIndexes(ctx context.Context, c *registry.Client, sess *registry.Session, idx []*indexItem, own string, parallel int, logf func(string, ...any)) error {
	return forEach(ctx, parallel, idx, func(ctx context.Context, x *indexItem) error {
		if err := x.assemble(); err != nil {
			return err
		}
		ref := x.repo.Digest(x.digest.String())
		if slices.Contains(x.tags, own) {
			if d, err := sess.Head(ctx, x.repo.Tag(own)); err == nil && d.Digest == x.digest {
				x.present, x.ownOK = true, true
				return nil
			}
		}
		_, err := sess.Head(ctx, ref)
		if err == nil {
			x.present = true
			return nil
		}
		if !errors.Is(err, registry.ErrNotFound) {
			return err
		}
		if err := c.Pusher().Push(ctx, ref, rawManifest{x.manifest, types.OCIImageIndex}); err != nil {
			return c.Explain("pushing the image index of "+x.img.Name+" to "+ref.String(), ref.RegistryStr(), err)
		}
		logf("%s: %s (index of %d platforms)", x.img.Name, ref, len(x.children))
		return nil
	})
}

// attachIndex runs o.Attach, when set, for one gated index: the proofs go
// on what the tags name.
func attachIndex(ctx context.Context, o PushOptions, sess *registry.Session, x *indexItem) error {
	if o.Attach == nil {
		return nil
	}
	desc := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: x.digest, Size: int64(len(x.manifest))}
	if err := o.Attach(ctx, sess, x.img, x.repo.Digest(x.digest.String()), desc); err != nil {
		return fmt.Errorf("attaching proofs to %s: %w", x.img.Name, err)
	}
	return nil
}

// dryRunItems are what a dry run reports: each image once, an image with
// platforms as its index (with the tags listed for it).
func dryRunItems(items []*pushItem, idx []*indexItem) []*pushItem {
	var out []*pushItem
	for _, it := range items {
		if it.platform == "" {
			out = append(out, it)
		}
	}
	for _, x := range idx {
		out = append(out, &pushItem{img: x.img, repo: x.repo, tags: x.tags})
	}
	return out
}

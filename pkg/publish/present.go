package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// checkPresent finds which images the registry already has. When the
// version's own tag exists, one lookup of it tells both whether the
// manifest is there and whether the tag conflicts; a manifest there under
// that tag with the tested config (e.g. pushed before the push cache was
// lost, with other compression) is the tested image, and is adopted as is.
func checkPresent(ctx context.Context, sess *registry.Session, items []*pushItem, own string) error {
	return forEach(ctx, tagJobs, items, func(ctx context.Context, it *pushItem) error {
		if it.present {
			return nil
		}
		if !slices.Contains(it.tags, own) {
			if it.built == nil {
				return nil
			}
			_, err := sess.Head(ctx, it.repo.Digest(it.built.digest.String()))
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			it.present = err == nil
			return err
		}
		ref := it.repo.Tag(own)
		if it.built != nil {
			d, err := sess.Head(ctx, ref)
			if err == nil && d.Digest == it.built.digest {
				it.present, it.ownOK = true, true
				return nil
			}
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				return err
			}
		}
		raw, d, err := sess.Get(ctx, ref)
		if errors.Is(err, registry.ErrNotFound) {
			return nil // deleted since the listing
		}
		if err != nil {
			return err
		}
		var cfg string
		if d.MediaType.IsImage() {
			if m, err := v1.ParseManifest(bytes.NewReader(raw)); err == nil {
				cfg = m.Config.Digest.String()
			}
		}
		if cfg != it.img.ConfigDigest {
			ours := "the tested image"
			if it.built != nil {
				ours = "this push has " + it.built.digest.String()
			}
			return fmt.Errorf("%s: %s is %s (config %s), %s (config %s): %w; an immutable tag is never rewritten: bump VERSION (or the staging number) and run again", it.img.Name, ref, d.Digest, cfg, ours, it.img.ConfigDigest, ErrTagConflict)
		}
		it.built = &image{manifest: raw, digest: d.Digest, mediaType: d.MediaType}
		it.present, it.ownOK = true, true
		return nil
	})
}

// fromCache assembles an image from the cache alone, or returns nil.
func fromCache(ch *cache, img lock.Image, uploads *counterSet) *image {
	cfg, ok := ch.config(img.ConfigDigest)
	if !ok {
		return nil
	}
	blobs := make([]*blob, len(img.DiffIDs))
	for i, d := range img.DiffIDs {
		b, ok := ch.layer(d)
		if !ok {
			return nil
		}
		b.onRead = uploads.add
		blobs[i] = b
	}
	built, err := newImage(cfg, blobs)
	if err != nil {
		return nil
	}
	return built
}

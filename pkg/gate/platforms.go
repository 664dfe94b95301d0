package gate

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// platformImage is one platform's record of img shaped as an image, so
// the single-image checks apply to it unchanged.
func platformImage(img lock.Image, p lock.Platform) lock.Image {
	return lock.Image{
		Name: img.Name + " (" + p.Platform + ")", Ref: p.Ref, ImageID: p.ImageID,
		ConfigDigest: p.ConfigDigest, DiffIDs: p.DiffIDs, Store: img.Store, Test: p.Test,
	}
}

// enginePlatforms runs the engine gate on every platform's image of an
// image with platforms: each tested on its own and unchanged since.
func enginePlatforms(ctx context.Context, e Inspector, img lock.Image) error {
	var errs []error
	for _, p := range img.Platforms {
		if p.ImageID == img.ImageID && p.Ref == img.Ref {
			continue // the primary platform: checked as the image itself
		}
		if err := Engine(ctx, e, platformImage(img, p)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s is built for %d platforms: %w", img.Name, len(img.Platforms), err)
	}
	return nil
}

// index checks a fetched image index against an image with platforms: it
// must list exactly the recorded platforms, each by a manifest naming that
// platform's tested config.
func index(ctx context.Context, c *registry.Client, ref name.Reference, d *remote.Descriptor, img lock.Image) error {
	where := "registry index " + ref.String() + "@" + d.Digest.String()
	im, err := v1.ParseIndexManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		return fmt.Errorf("digest gate: %s: reading %s: %w", img.Name, where, err)
	}
	listed := map[string]v1.Descriptor{}
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue // not an image of a platform (e.g. an attestation manifest)
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		if _, dup := listed[p]; dup {
			return fmt.Errorf("digest gate: %s: %s lists %s twice: do not promote it; push again", img.Name, where, p)
		}
		listed[p] = m
	}
	var errs []error
	for _, p := range img.Platforms {
		m, ok := listed[p.Platform]
		if !ok {
			errs = append(errs, fmt.Errorf("digest gate: %s: %s lacks %s, which was built and tested: do not promote it; push again", img.Name, where, p.Platform))
			continue
		}
		delete(listed, p.Platform)
		if _, err := Registry(ctx, c, ref.Context().Digest(m.Digest.String()), platformImage(img, p)); err != nil {
			errs = append(errs, err)
		}
	}
	for p := range listed {
		errs = append(errs, fmt.Errorf("digest gate: %s: %s lists %s, which was never tested: do not promote it", img.Name, where, p))
	}
	return errors.Join(errs...)
}

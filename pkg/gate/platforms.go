package gate

import (
	"context"
	"errors"
	"fmt"

	"github.com/hoistci/hoist/pkg/lock"
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

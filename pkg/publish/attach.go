package publish

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/lock"
)

// Attacher attaches proofs (signatures, attestations) to one pushed
// manifest. Push calls it for every image once the registry serves the
// tested manifest and before any tag names it, so a tag never points at an
// image without its proofs.
// desc is the manifest's descriptor, as pushed.
type Attacher func(ctx context.Context, img lock.Image, d name.Digest, desc v1.Descriptor) error

// attachAll runs o.Attach for every item, at most o.Parallel at once.
func attachAll(ctx context.Context, o PushOptions, items []*pushItem) error {
	if o.Attach == nil {
		return nil
	}
	return forEach(ctx, o.Parallel, items, func(ctx context.Context, it *pushItem) error {
		d := it.repo.Digest(it.built.digest.String())
		desc := v1.Descriptor{MediaType: it.built.mediaType, Digest: it.built.digest, Size: int64(len(it.built.manifest))}
		if err := o.Attach(ctx, it.img, d, desc); err != nil {
			return fmt.Errorf("attaching proofs to %s: %w", it.img.Name, err)
		}
		return nil
	})
}

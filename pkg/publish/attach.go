package publish

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// Attacher attaches proofs (signatures, attestations) to one pushed
// manifest. Push calls it for each image as soon as the registry serves
// the tested manifest (the digest gate on it has passed), several at once,
// and writes no tag before every call has returned, so a tag never points
// at an image without its proofs.
// desc is the manifest's descriptor, as pushed; sess is Push's own
// session on the registry (one ping and token for every repository), for
// the proofs' writes.
type Attacher func(ctx context.Context, sess *registry.Session, img lock.Image, d name.Digest, desc v1.Descriptor) error

// attach runs o.Attach, when set, for one gated item.
func attach(ctx context.Context, o PushOptions, sess *registry.Session, it *pushItem) error {
	if o.Attach == nil {
		return nil
	}
	d := it.repo.Digest(it.built.digest.String())
	desc := v1.Descriptor{MediaType: it.built.mediaType, Digest: it.built.digest, Size: int64(len(it.built.manifest))}
	if err := o.Attach(ctx, sess, it.img, d, desc); err != nil {
		return fmt.Errorf("attaching proofs to %s: %w", it.img.Name, err)
	}
	return nil
}

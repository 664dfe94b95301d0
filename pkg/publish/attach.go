package publish

import (
	"context"
	"fmt"
	"sync"

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
//
// The same type serves as a stager (PushOptions.StageProofs): called for each
// image as soon as its digest is known, beside the upload of the images'
// own blobs, it may upload the blobs of the proofs that need nothing but
// the digest. It must attach nothing: no manifest or tag may name what it
// uploads. Push calls an image's Attacher only after its stager returned.
type Attacher func(ctx context.Context, sess *registry.Session, img lock.Image, d name.Digest, desc v1.Descriptor) error

// attach runs o.Attach, when set, for one gated item.
func attach(ctx context.Context, o PushOptions, sess *registry.Session, it *pushItem) error {
	if o.Attach == nil {
		return nil
	}
	d, desc := pushedRef(it)
	if err := o.Attach(ctx, sess, it.img, d, desc); err != nil {
		return fmt.Errorf("attaching proofs to %s: %w", it.img.Name, err)
	}
	return nil
}

func pushedRef(it *pushItem) (name.Digest, v1.Descriptor) {
	return it.repo.Digest(it.built.digest.String()), v1.Descriptor{MediaType: it.built.mediaType, Digest: it.built.digest, Size: int64(len(it.built.manifest))}
}

// stages runs o.StageProofs for every item, tagJobs at once, beside the
// rest of the push.
type stages struct {
	done   map[*pushItem]chan error
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// startStages starts o.StageProofs, when set, for every item whose digest
// is known and whose proofs go on its own manifest. Call stop before
// returning.
func startStages(ctx context.Context, o PushOptions, sess *registry.Session, items []*pushItem) *stages {
	s := &stages{done: map[*pushItem]chan error{}}
	if o.StageProofs == nil {
		return s
	}
	ctx, s.cancel = context.WithCancel(ctx)
	slots := make(chan struct{}, tagJobs)
	for _, it := range items {
		if it.platform != "" {
			continue // the proofs go on its index, attached whole after the gate
		}
		ch := make(chan error, 1)
		s.done[it] = ch
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			case <-ctx.Done():
				ch <- ctx.Err()
				return
			}
			d, desc := pushedRef(it)
			if err := o.StageProofs(ctx, sess, it.img, d, desc); err != nil {
				ch <- fmt.Errorf("preparing the proofs of %s: %w", it.img.Name, err)
				return
			}
			ch <- nil
		}()
	}
	return s
}

// wait returns the result of it's stage (nil when there is none).
func (s *stages) wait(ctx context.Context, it *pushItem) error {
	ch, ok := s.done[it]
	if !ok {
		return nil
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop cancels the stages still running and waits for them.
func (s *stages) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

package publish

import (
	"context"
	"errors"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hoistci/hoist/pkg/registry"
)

// blobAt is a blob in a repository.
type blobAt struct {
	d    v1.Hash
	repo name.Repository
}

// placement is where the registry holds the layer blobs of images not yet
// in it.
type placement struct {
	at      map[blobAt]bool             // d is a blob of repo
	where   map[v1.Hash]name.Repository // a repository holding d
	missing map[v1.Hash]bool            // d is in none
}

// locate finds which repositories of items hold each layer blob of images
// not yet in the registry, and which blobs none holds.
func locate(ctx context.Context, c *registry.Client, items []*pushItem) (*placement, error) {
	var probes []blobAt
	seen := map[blobAt]bool{}
	need := map[v1.Hash]bool{}
	for _, it := range items {
		if it.present || it.built == nil {
			continue
		}
		for _, l := range it.built.layers {
			d, _ := l.Digest()
			p := blobAt{d, it.repo}
			need[d] = true
			if !seen[p] {
				seen[p] = true
				probes = append(probes, p)
			}
		}
	}
	var mu sync.Mutex
	pl := &placement{at: map[blobAt]bool{}, where: map[v1.Hash]name.Repository{}, missing: map[v1.Hash]bool{}}
	err := forEach(ctx, tagJobs, probes, func(ctx context.Context, p blobAt) error {
		ok, err := c.HasBlob(ctx, p.repo, p.d)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			return err
		}
		if ok {
			mu.Lock()
			pl.at[p] = true
			pl.where[p.d] = p.repo
			mu.Unlock()
		}
		return nil
	})
	for d := range need {
		if _, ok := pl.where[d]; !ok {
			pl.missing[d] = true
		}
	}
	return pl, err
}

// placeBlobs makes every layer blob of items a blob of each item's
// repository: one the registry lacks goes up once, to the first repository
// needing it, and the other repositories mount it (a registry that declines
// a mount gets the bytes). The mounts are Hoist's own requests through
// sess: handed a layer to mount from another repository, go-containerregistry
// swaps the HTTP client its other uploads to that repository are reading
// (a data race, go-containerregistry#2391), so Push gives it only layers
// already in place.
func placeBlobs(ctx context.Context, c *registry.Client, sess *registry.Session, parallel int, items []*pushItem, pl *placement) error {
	type job struct {
		to     blobAt
		l      v1.Layer
		upload bool
	}
	var now, after []job
	queued := map[blobAt]bool{}
	fresh := map[v1.Hash]bool{} // uploaded by this call
	for _, it := range items {
		if it.present {
			continue
		}
		for _, l := range it.built.layers {
			d, _ := l.Digest()
			to := blobAt{d, it.repo}
			if pl.at[to] || queued[to] {
				continue
			}
			queued[to] = true
			switch {
			case pl.missing[d]:
				now = append(now, job{to, l, true})
				pl.missing[d] = false
				pl.where[d] = it.repo
				fresh[d] = true
			case fresh[d]:
				after = append(after, job{to, l, false})
			default:
				now = append(now, job{to, l, false})
			}
		}
	}
	place := func(ctx context.Context, j job) error {
		if !j.upload {
			from := pl.where[j.to.d]
			ok, err := sess.Mount(ctx, j.to.repo, from, j.to.d)
			if err != nil || ok {
				return err
			}
		}
		if err := c.Pusher().Upload(ctx, j.to.repo, j.l); err != nil {
			return c.Explain("uploading blob "+j.to.d.String()+" to "+j.to.repo.String(), j.to.repo.RegistryStr(), err)
		}
		return nil
	}
	if err := forEach(ctx, parallel, now, place); err != nil {
		return err
	}
	if err := forEach(ctx, parallel, after, place); err != nil {
		return err
	}
	for _, j := range append(now, after...) {
		pl.at[j.to] = true
	}
	return nil
}

func anyMissing(img *image, missing map[v1.Hash]bool) bool {
	for _, l := range img.layers {
		d, _ := l.Digest()
		if missing[d] {
			return true
		}
	}
	return false
}

// counterSet counts distinct blobs read for upload.
type counterSet struct {
	mu   sync.Mutex
	seen map[v1.Hash]bool
}

func (s *counterSet) add(d v1.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[v1.Hash]bool{}
	}
	s.seen[d] = true
}

func (s *counterSet) count(img *image) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range img.layers {
		d, _ := l.Digest()
		if s.seen[d] {
			n++
		}
	}
	return n
}

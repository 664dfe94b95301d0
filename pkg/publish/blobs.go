package publish

import (
	"context"
	"errors"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/hoistci/hoist/pkg/registry"
)

// locate finds, for each layer blob of images not yet in the registry, a
// repository that holds it (to mount from), and which blobs none holds.
func locate(ctx context.Context, c *registry.Client, parallel int, items []*pushItem) (map[v1.Hash]name.Repository, map[v1.Hash]bool, error) {
	type probe struct {
		d    v1.Hash
		repo name.Repository
	}
	var probes []probe
	seen := map[probe]bool{}
	need := map[v1.Hash]bool{}
	for _, it := range items {
		if it.present || it.built == nil {
			continue
		}
		for _, l := range it.built.layers {
			d, _ := l.Digest()
			p := probe{d, it.repo}
			need[d] = true
			if !seen[p] {
				seen[p] = true
				probes = append(probes, p)
			}
		}
	}
	var mu sync.Mutex
	where := map[v1.Hash]name.Repository{}
	err := forEach(ctx, tagJobs, probes, func(ctx context.Context, p probe) error {
		ok, err := c.HasBlob(ctx, p.repo, p.d)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			return err
		}
		if ok {
			mu.Lock()
			where[p.d] = p.repo
			mu.Unlock()
		}
		return nil
	})
	missing := map[v1.Hash]bool{}
	for d := range need {
		if _, ok := where[d]; !ok {
			missing[d] = true
		}
	}
	return where, missing, err
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

// mountable returns img with layers held elsewhere marked mountable from
// there, so go-containerregistry mounts them instead of uploading.
func mountable(img *image, repo name.Repository, where map[v1.Hash]name.Repository) *image {
	cp := *img
	cp.layers = make([]v1.Layer, len(img.layers))
	for i, l := range img.layers {
		d, _ := l.Digest()
		if from, ok := where[d]; ok && from.String() != repo.String() && from.RegistryStr() == repo.RegistryStr() {
			cp.layers[i] = &remote.MountableLayer{Layer: l, Reference: from.Digest(d.String())}
		} else {
			cp.layers[i] = l
		}
	}
	return &cp
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

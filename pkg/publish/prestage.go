package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// Prestage uploads the layer blobs of the lock's images that the registry
// lacks, while the images are still being tested: the push after the gate
// then finds them there and only writes manifests and tags. No manifest
// and no tag is written, so nothing names these blobs until the gate has
// passed; an image the engine no longer holds as locked is left out (Push
// decides about it). It returns how many blobs it uploaded and where it
// read them. Push and Prestage share the push cache, so they must not run
// at once in one checkout.
func Prestage(ctx context.Context, c *registry.Client, e Engine, o PushOptions) (Staged, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	l, err := lock.Read(o.LockPath)
	if err != nil {
		return Staged{}, err
	}
	var items []*pushItem
	for _, img := range l.Images {
		cur, err := e.Inspect(ctx, img.Ref)
		if err != nil || cur.ID != img.ImageID {
			continue
		}
		repo, err := c.Repository(o.Prefix + "/" + img.Name)
		if err != nil {
			return Staged{}, err
		}
		items = append(items, &pushItem{img: img, repo: repo})
	}
	items, _ = expandPlatforms(items)
	if len(items) == 0 {
		return Staged{}, nil
	}
	ch := openCache(filepath.Join(o.WorkDir, "push-cache.json"))
	var uploads counterSet
	for _, it := range items {
		it.built = fromCache(ch, it.img, &uploads)
	}
	where, missing, err := locate(ctx, c, o.Parallel, items)
	if err != nil {
		return Staged{}, err
	}
	var st Staged
	var export []*pushItem
	for _, it := range items {
		if it.built == nil || anyMissing(it.built, missing) {
			export = append(export, it)
		}
	}
	if len(export) > 0 {
		tmp, err := os.MkdirTemp(o.WorkDir, "push-")
		if err != nil {
			return Staged{}, fmt.Errorf("staging blobs: %w", err)
		}
		defer os.RemoveAll(tmp)
		if st.FromLayout, err = stageExport(ctx, e, o.Layout, ch, export, tmp, &uploads); err != nil {
			return Staged{}, err
		}
		if err := ch.save(); err != nil {
			return Staged{}, err
		}
		if where, missing, err = locate(ctx, c, o.Parallel, items); err != nil {
			return Staged{}, err
		}
	}
	for _, m := range missing {
		if m {
			st.Blobs++
		}
	}
	return st, uploadMissing(ctx, c, o.Parallel, items, where, missing)
}

// uploadMissing uploads each blob the registry lacks once, to the first
// repository of items needing it; the manifests of the others mount it
// from there (where is updated).
func uploadMissing(ctx context.Context, c *registry.Client, parallel int, items []*pushItem, where map[v1.Hash]name.Repository, missing map[v1.Hash]bool) error {
	type up struct {
		repo name.Repository
		l    v1.Layer
	}
	var ups []up
	for _, it := range items {
		if it.present {
			continue
		}
		for _, l := range it.built.layers {
			d, _ := l.Digest()
			if missing[d] {
				ups = append(ups, up{it.repo, l})
				missing[d] = false
				where[d] = it.repo
			}
		}
	}
	return forEach(ctx, parallel, ups, func(ctx context.Context, u up) error {
		if err := c.Pusher().Upload(ctx, u.repo, u.l); err != nil {
			d, _ := u.l.Digest()
			return c.Explain("uploading blob "+d.String()+" to "+u.repo.String(), u.repo.RegistryStr(), err)
		}
		return nil
	})
}

// Staged is what Prestage did.
type Staged struct {
	// Blobs is how many blobs it uploaded.
	Blobs int
	// FromLayout: it read them from the layout PushOptions.Layout gave,
	// not from an engine export.
	FromLayout bool
}

// stageExport completes the items from the layout o.Layout gives, when it
// gives one holding them all (reporting true), and otherwise from an
// engine export.
func stageExport(ctx context.Context, e Engine, layout func(context.Context) (string, func()), ch *cache, items []*pushItem, dir string, uploads *counterSet) (bool, error) {
	if layout != nil {
		from, release := layout(ctx)
		if from != "" {
			ex, ok, err := fromLayout(ctx, from, items, dir)
			release()
			if err != nil {
				return false, err
			}
			if ok {
				return true, complete(ch, ex, items, uploads)
			}
		}
	}
	return false, exportItems(ctx, e, ch, items, dir, uploads)
}

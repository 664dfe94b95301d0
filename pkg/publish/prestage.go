package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"

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
	repos := make([]name.Repository, len(items))
	for i, it := range items {
		repos[i] = it.repo
	}
	sess, err := c.Session(ctx, repos[0].Registry, nil, repos)
	if err != nil {
		return Staged{}, err
	}
	pl, err := locate(ctx, c, items)
	if err != nil {
		return Staged{}, err
	}
	var st Staged
	var export []*pushItem
	for _, it := range items {
		if it.built == nil || anyMissing(it.built, pl.missing) {
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
		if pl, err = locate(ctx, c, items); err != nil {
			return Staged{}, err
		}
	}
	for _, m := range pl.missing {
		if m {
			st.Blobs++
		}
	}
	return st, placeBlobs(ctx, c, sess, o.Parallel, items, pl)
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

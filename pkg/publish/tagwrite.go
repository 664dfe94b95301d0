package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/tags"
)

// tagTarget is one manifest to tag in one repository.
type tagTarget struct {
	name     string
	repo     name.Repository
	digest   v1.Hash
	manifest rawManifest
	existing []string // the repository's tags, listed before any write
	ownOK    bool     // the immutable tag is known to name digest already
	plan     []tags.Tag

	mu      sync.Mutex
	written []string
	kept    []string
}

func (t *tagTarget) record(tag string, wrote bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if wrote {
		t.written = append(t.written, tag)
	} else {
		t.kept = append(t.kept, tag)
	}
}

// tagJobs bounds concurrent tag reads and writes: each is one small request.
const tagJobs = 16

// immutableJobs bounds the immutable tag writes sent at once.
const immutableJobs = 64

// writeTags writes version v's tags for every target, whose existing tags
// are already listed: it first checks every immutable tag (so a conflict
// stops the run before any tag is written), then writes the immutable tags,
// then the floating ones that move forward. A tag absent from the listing
// is written without a lookup; the immutable ones are read back, so a
// concurrent writer of another digest is caught.
func writeTags(ctx context.Context, sess *registry.Session, v *semver.Version, ts []*tagTarget) error {
	var mu sync.Mutex
	var conflicts []error
	own := make([]bool, len(ts)) // the immutable tag already names our digest
	err := forEach(ctx, tagJobs, indexes(ts), func(ctx context.Context, i int) error {
		t := ts[i]
		plan, err := tags.Plan(v, t.existing)
		if err != nil {
			return err
		}
		t.plan = plan
		if t.ownOK {
			own[i] = true
			return nil
		}
		if !slices.Contains(t.existing, plan[0].Name) {
			return nil
		}
		ref := t.repo.Tag(plan[0].Name)
		d, err := sess.Head(ctx, ref)
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case err != nil:
			return err
		case d.Digest != t.digest:
			mu.Lock()
			conflicts = append(conflicts, fmt.Errorf("%s: %s is %s, this run has %s", t.name, ref, d.Digest, t.digest))
			mu.Unlock()
		default:
			own[i] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("no tag was written: %w: an immutable tag is never rewritten: bump VERSION (or the staging number) and run again", conflictSummary(conflicts, len(ts)))
	}
	// Immutable tags, all at once (up to immutableJobs): until the last is
	// written a partial set is visible, so that window is one round of
	// requests, not several.
	err = forEach(ctx, min(len(ts), immutableJobs), indexes(ts), func(ctx context.Context, i int) error {
		t := ts[i]
		tag := t.plan[0].Name
		if own[i] {
			t.record(tag, false)
			return nil
		}
		ref := t.repo.Tag(tag)
		if err := sess.Put(ctx, ref, t.manifest.b, t.manifest.mt); err != nil {
			return fmt.Errorf("tagging %s: %w", t.name, err)
		}
		d, err := sess.Head(ctx, ref)
		if err != nil {
			return err
		}
		if d.Digest != t.digest {
			return fmt.Errorf("%s: %s was written at the same time with %s, this run wrote %s: %w; find the other run and bump VERSION", t.name, ref, d.Digest, t.digest, ErrTagConflict)
		}
		t.record(tag, true)
		return nil
	})
	if err != nil {
		return err
	}
	// Floating tags, each on its own.
	type job struct {
		t   *tagTarget
		tag string
	}
	var jobs []job
	for _, t := range ts {
		for _, tg := range t.plan[1:] {
			jobs = append(jobs, job{t, tg.Name})
		}
	}
	return forEach(ctx, tagJobs, jobs, func(ctx context.Context, j job) error {
		ref := j.t.repo.Tag(j.tag)
		if slices.Contains(j.t.existing, j.tag) {
			d, err := sess.Head(ctx, ref)
			if err == nil && d.Digest == j.t.digest {
				j.t.record(j.tag, false)
				return nil
			}
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				return err
			}
		}
		if err := sess.Put(ctx, ref, j.t.manifest.b, j.t.manifest.mt); err != nil {
			return fmt.Errorf("tagging %s: %w", j.t.name, err)
		}
		j.t.record(j.tag, true)
		return nil
	})
}

// conflictSummary is one line for many images' tag conflicts: how many,
// and the first, sorted by image.
func conflictSummary(conflicts []error, of int) error {
	sort.Slice(conflicts, func(i, j int) bool { return conflicts[i].Error() < conflicts[j].Error() })
	if len(conflicts) == 1 {
		return fmt.Errorf("%w: %v", ErrTagConflict, conflicts[0])
	}
	return fmt.Errorf("%w for %d of %d images (first: %v)", ErrTagConflict, len(conflicts), of, conflicts[0])
}

func putPushed(ps []lock.Pushed, p lock.Pushed) []lock.Pushed {
	for i := range ps {
		if ps[i].Ref == p.Ref {
			ps[i] = p
			return ps
		}
	}
	return append(ps, p)
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/release"
	"github.com/hoistci/hoist/pkg/shard"
)

// ShardPlan is the plan target's answer: the shards, and whether the
// images are many enough to use them.
type ShardPlan struct {
	Images  int
	Sharded bool // more images than shards.threshold
	Parts   []shard.Part
	Matrix  []byte // the GitHub Actions matrix
}

// PlanShards splits this commit's images over shards.count CI shards,
// balanced by the build times the last lock file recorded.
func (r *Run) PlanShards(ctx context.Context) (*ShardPlan, error) {
	names, err := r.ImageNames(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s defines no images: nothing to plan", r.Rel(r.Cfg.File))
	}
	millis := map[string]int64{}
	l, err := lock.Read(r.LockPath)
	switch {
	case err == nil:
		for _, img := range l.Images {
			millis[img.Name] = img.BuildMillis
		}
	case !errors.Is(err, lock.ErrNoLock):
		return nil, err
	}
	sp := &ShardPlan{Images: len(names), Sharded: len(names) > r.Cfg.Shards.Threshold}
	k := 1
	if sp.Sharded {
		k = r.Cfg.Shards.Count
	}
	sp.Parts = shard.Plan(names, millis, k)
	if sp.Matrix, err = shard.Matrix(sp.Parts); err != nil {
		return nil, err
	}
	return sp, nil
}

// FragmentsDir is where a shard writes its fragment, and where the join
// reads them unless HOIST_FRAGMENTS says otherwise.
func (r *Run) FragmentsDir() string { return filepath.Join(r.BuildDir(), "shards") }

// shardOptions make a release run a CI shard or a join, as the settings
// and the target say.
func (r *Run) shardOptions(ctx context.Context, o *release.Options, m mode) error {
	if m == modeLine && r.Set.ShardCount > 0 {
		return fmt.Errorf("HOIST_SHARD is %d/%d but this is the Release target: a shard job runs the shard target", r.Set.ShardIndex, r.Set.ShardCount)
	}
	switch m {
	case modeShard:
		if r.Set.ShardCount == 0 {
			return errors.New("shard: HOIST_SHARD is not set: give each shard job its I/K and HOIST_IMAGES from the plan target's matrix")
		}
		if len(r.Set.Images) == 0 {
			return fmt.Errorf("shard %d/%d: HOIST_IMAGES is empty: give the shard its images from the plan target's matrix", r.Set.ShardIndex, r.Set.ShardCount)
		}
		names, err := r.ImageNames(ctx)
		if err != nil {
			return err
		}
		for _, n := range r.Set.Images {
			if !slices.Contains(names, n) {
				return fmt.Errorf("shard %d/%d: HOIST_IMAGES names %s, which hoist.yaml does not define at this commit: run the plan target again", r.Set.ShardIndex, r.Set.ShardCount, n)
			}
		}
		if !r.Set.DryRun {
			// The shard's lock describes its images only: what an earlier
			// run in this checkout left of others is not this shard's.
			if err := lock.UpdateContext(ctx, r.LockPath, func(l *lock.Lock) error {
				keep := l.Images[:0]
				for _, img := range l.Images {
					if slices.Contains(r.Set.Images, img.Name) {
						keep = append(keep, img)
					}
				}
				l.Images = keep
				return nil
			}); err != nil {
				return err
			}
		}
		o.Shard = &release.Shard{Index: r.Set.ShardIndex, Count: r.Set.ShardCount, Images: r.Set.Images, Dir: r.FragmentsDir()}
	case modeJoin:
		if len(r.Set.Images) > 0 {
			return errors.New("join: HOIST_IMAGES is set: the join takes every image of the plan; unset it")
		}
		names, err := r.ImageNames(ctx)
		if err != nil {
			return err
		}
		dir := r.Set.Fragments
		if dir == "" {
			dir = r.FragmentsDir()
		}
		o.Join = &release.Join{Dir: dir, Images: names}
	}
	return nil
}

// PushDigests pushes the tested images by digest only (a CI shard).
func (r *Run) PushDigests(ctx context.Context) (*publish.PushResult, error) {
	return r.pushWith(ctx, nil, true)
}

// PushTags writes the version's tags for every image of the lock, each
// pushed by digest already (the join).
func (r *Run) PushTags(ctx context.Context) (*publish.PushResult, error) {
	if r.Set.PR {
		return nil, errors.New("push: fork/pull-request mode never pushes")
	}
	c, prefix, err := r.Registry(ctx)
	if err != nil {
		return nil, err
	}
	p, err := r.Plan(ctx)
	if err != nil {
		return nil, err
	}
	return publish.Tag(ctx, c, publish.TagOptions{LockPath: r.LockPath, Prefix: prefix, Version: p.Version.SemVer, Progress: r.Out, DryRun: r.Set.DryRun})
}

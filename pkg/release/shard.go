package release

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/shard"
)

// Shard is this run's place among CI shards.
type Shard struct {
	Index, Count int
	Images       []string // the images the plan gave this shard
	Dir          string   // where the fragment is written
}

// Join is where the shards' fragments are, and what they must hold.
type Join struct {
	Dir    string
	Images []string // every image of the plan, from hoist.yaml at this commit
}

// sharding names what this run is: "shard", "join" or "".
func (r *Run) sharding() string {
	switch {
	case r.o.Shard != nil:
		return "shard"
	case r.o.Join != nil:
		return "join"
	}
	return ""
}

// checkSharding refuses a shard or join on a line they do not serve.
func (r *Run) checkSharding() error {
	if what := r.sharding(); what != "" && r.Decision.Line != flow.Staging && r.Decision.Line != flow.Release {
		return fmt.Errorf("%s: CI shards build the staging and vX.Y.Z lines, and this run is the %s line (%s): run the Release target", what, r.Decision.Line, r.Decision.Why)
	}
	return nil
}

// checkReserved refuses a staging shard or join with no number reserved
// at this commit: the plan job reserves it, so every shard builds one
// version and none reserves its own.
func (r *Run) checkReserved() error {
	if what := r.sharding(); what != "" && r.Decision.Line == flow.Staging && !r.reuse {
		return fmt.Errorf("%s: no staging build is reserved at commit %s: the plan job reserves one first (go run mage.go reserve), then its shards and join run at that commit", what, short(r.Commit))
	}
	return nil
}

// version is the version this run builds and tags.
func (r *Run) version() string {
	if r.Staging != "" && r.Decision.Line != flow.Release {
		return r.Staging
	}
	return r.Version.String()
}

// pushDigestsStep pushes this shard's tested images by digest only.
func (r *Run) pushDigestsStep() flow.Step {
	return flow.Step{
		Name:   "Push",
		Writes: []string{"manifests by digest, no tag, on " + r.Registry},
		Run: func(ctx context.Context) error {
			res, err := r.o.Stages.PushDigests(ctx)
			r.Pushed = res
			return err
		},
	}
}

// fragmentStep keeps this shard's lock for the join.
func (r *Run) fragmentStep() flow.Step {
	s := r.o.Shard
	path := filepath.Join(s.Dir, shard.FileName(s.Index, s.Count))
	return flow.Step{
		Name:   "Fragment",
		Writes: []string{"this shard's lock as " + path},
		Run: func(ctx context.Context) error {
			l, err := lock.Read(r.o.LockPath)
			if err != nil {
				return err
			}
			p, err := shard.Write(s.Dir, l, s.Index, s.Count, s.Images)
			if err != nil {
				return err
			}
			r.logf("shard %d/%d: %d image(s) pushed by digest; fragment %s (upload it for the join)", s.Index, s.Count, len(s.Images), p)
			return nil
		},
	}
}

// joinStep merges the shards' fragments into this run's lock, refusing
// anything short of one whole release.
func (r *Run) joinStep() flow.Step {
	return flow.Step{
		Name:   "Join",
		Writes: []string{"the shards' fragments in " + r.o.Join.Dir + " merged into " + r.o.LockPath},
		Run: func(ctx context.Context) error {
			frags, err := shard.Read(r.o.Join.Dir)
			if err != nil {
				return err
			}
			l, err := shard.Join(frags, shard.Want{Images: r.o.Join.Images, Commit: r.Commit, Version: r.version(), Registry: r.Registry})
			if err != nil {
				return err
			}
			if err := lock.Write(r.o.LockPath, l); err != nil {
				return err
			}
			r.logf("joined %d shard(s): %d image(s), each built, tested and pushed once at %s", len(frags), len(l.Images), short(r.Commit))
			return nil
		},
	}
}

// pushTagsStep writes every image's tags, the shards' digests, at once.
func (r *Run) pushTagsStep(writes string) flow.Step {
	return flow.Step{
		Name:   "Push",
		Writes: []string{writes + " on " + r.Registry + " (by the shards' digests)"},
		Run: func(ctx context.Context) error {
			res, err := r.o.Stages.PushTags(ctx)
			r.Pushed = res
			if err != nil {
				return err
			}
			return r.outputDigests()
		},
	}
}

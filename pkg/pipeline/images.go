package pipeline

import (
	"context"
	"time"

	"github.com/hoistci/hoist/pkg/images"
)

// Images builds every planned image (or the settings' subset) with BuildKit
// through the engine, skipping unchanged ones, and writes the lock.
func (r *Run) Images(ctx context.Context) ([]images.Result, error) {
	start := time.Now()
	p, err := r.Plan(ctx)
	if err != nil {
		return nil, err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return nil, err
	}
	b, err := e.Builder(ctx, r.Set.BuildkitHost)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	o := images.Options{
		Parallel: r.Parallel(),
		Rebuild:  r.Set.Rebuild,
		PR:       r.Set.PR,
		Progress: r.Out,
		Only:     r.Set.Images,
	}
	if r.Set.Verbose {
		o.BuildLog = r.Out
	}
	r.logf("hoist: building %d images of %s %s (%d at once)", len(p.Images), p.Project, p.Version, o.Parallel)
	res, err := images.Build(ctx, e, b, p, r.LockPath, o)
	if err != nil {
		return res, err
	}
	built := 0
	for _, x := range res {
		if x.State == images.Built {
			built++
		}
	}
	r.logf("hoist: %d images ready (%d built, %d unchanged) in %.1fs; lock: %s",
		len(res), built, len(res)-built, time.Since(start).Seconds(), r.Rel(r.LockPath))
	return res, nil
}

package pipeline

import (
	"context"
	"time"

	"github.com/hoistci/hoist/pkg/engine"
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
	b, o, err := r.builder(ctx, e)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	o.Progress = r.Out
	if r.Set.Verbose {
		o.BuildLog = r.Out
	}
	// Local bases with Go programs are compiled for the engine's Linux.
	for _, b := range p.Bases {
		if len(b.Go) > 0 {
			if o.GoArch, err = e.Arch(ctx); err != nil {
				return nil, err
			}
			o.GoEnv = r.Set.Environ
			break
		}
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

// builder opens a BuildKit client with the run's registry credentials, and
// the build options every build of this run uses (Images, and DigestGate's
// rebuild from cache): parallelism, secrets and SSH agents, fork mode.
func (r *Run) builder(ctx context.Context, e *engine.Engine) (*engine.Builder, images.Options, error) {
	remote, err := r.remoteBuilder()
	if err != nil {
		return nil, images.Options{}, err
	}
	b, err := e.Builder(ctx, remote)
	if err != nil {
		return nil, images.Options{}, err
	}
	if err := r.registryAuth(b); err != nil {
		b.Close()
		return nil, images.Options{}, err
	}
	secrets, agents := r.buildSecrets()
	return b, images.Options{
		Parallel:       r.Parallel(),
		Rebuild:        r.Set.Rebuild,
		PR:             r.Set.PR,
		Only:           r.Set.Images,
		RemoteBuildKit: remote.Addr != "",
		Cache:          r.buildCache(),
		Secrets:        secrets,
		SSH:            agents,
	}, nil
}

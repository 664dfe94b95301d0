package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/checks"
	"github.com/hoistci/hoist/pkg/ctest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// Test is the Test stage: the static checks (unless skipped), Images when
// build is set (the Test target; a release line has just run Images),
// container tests and the cluster stage. It ends with one line counting
// what was judged: "test: N passed, M failed".
func (r *Run) Test(ctx context.Context, build bool) (err error) {
	defer func() {
		if err != nil && r.Failed == 0 {
			r.Failed = 1 // the run stopped on something that was not a test
		}
		r.logf("test: %d passed, %d failed", r.Passed, r.Failed)
	}()
	if !r.Set.SkipChecks {
		if err := r.Checks(ctx); err != nil {
			return err
		}
	}
	// Images runs every time, not as a once-per-process mage dependency:
	// tests always run against what was just built, and an unchanged image
	// costs one inspect.
	if build {
		if _, err := r.Images(ctx); err != nil {
			return err
		}
	}
	return r.containerTests(ctx)
}

// Checks runs the config's static checks in order, failing fast.
func (r *Run) Checks(ctx context.Context) error {
	var cs []checks.Check
	for _, c := range r.Cfg.Checks {
		cs = append(cs, checks.Check{Name: c.Name, Run: c.Run})
	}
	if len(cs) == 0 {
		return nil
	}
	r.logf("hoist: %d static checks", len(cs))
	err := checks.Run(ctx, cs, checks.Options{Dir: r.Cfg.Dir, LogDir: r.logDir(), Progress: r.Out, Env: sourceEnv(r.Set.Environ)})
	var ce *checks.Error
	switch {
	case err == nil:
		r.Passed += len(cs)
	case errors.As(err, &ce):
		for i, c := range cs {
			if c.Name == ce.Name {
				r.Passed += i
			}
		}
		r.Failed++
	}
	return err
}

// sourceEnv is env without the settings of one run (the images picked, a
// dry run, a registry …): static checks are about the source, and a
// release must not hand its own settings to the tests it runs.
func sourceEnv(env []string) []string {
	// HOIST_MODERN_ENGINE: the second engine the engine tests run against.
	keep := map[string]bool{"HOIST_PARALLEL": true, "HOIST_NO_ENGINE_SETUP": true, "HOIST_TOOLS_DIR": true, "HOIST_MODERN_ENGINE": true}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HOIST_") && !keep[k] {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Built pairs each plan image (those HOIST_IMAGES names, when set) with
// its lock entry, and checks the engine still holds exactly that image.
func (r *Run) Built(ctx context.Context, e *engine.Engine) (*plan.Plan, []lock.Image, error) {
	p, err := r.Plan(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(r.Set.Images) > 0 {
		p = only(p, r.Set.Images)
	}
	l, err := lock.Read(r.LockPath)
	if err != nil {
		return nil, nil, err
	}
	var imgs []lock.Image
	for _, pi := range p.Images {
		li, ok := l.Find(pi.Name)
		if !ok || li.Ref != pi.Ref {
			return nil, nil, fmt.Errorf("image %s (%s) is not built: run the Images target", pi.Name, pi.Ref)
		}
		cur, err := e.Inspect(ctx, li.Ref)
		if errors.Is(err, engine.ErrNotFound) {
			return nil, nil, fmt.Errorf("image %s is in the lock file but not in the engine: run the Images target", li.Ref)
		}
		if err != nil {
			return nil, nil, err
		}
		if cur.ID != li.ImageID {
			return nil, nil, fmt.Errorf("image %s changed since the Images target recorded it (%s, now %s): run the Images target", li.Ref, short(li.ImageID), short(cur.ID))
		}
		imgs = append(imgs, *li)
	}
	return p, imgs, nil
}

// containerTests runs each image's test in its own container, then the
// cluster stage.
func (r *Run) containerTests(ctx context.Context) error {
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	p, imgs, err := r.Built(ctx, e)
	if err != nil {
		return err
	}
	var cases []ctest.Case
	var untested []string
	for i, pi := range p.Images {
		if pi.Test == nil {
			untested = append(untested, pi.Name)
			continue
		}
		if len(imgs[i].Platforms) > 0 {
			// Every platform's image is tested, arm64 under emulation.
			pcs, err := platformCases(ctx, e, pi, imgs[i])
			if err != nil {
				return err
			}
			cases = append(cases, pcs...)
			continue
		}
		cases = append(cases, ctest.Case{
			Name: pi.Name, Ref: pi.Ref, ImageID: imgs[i].ImageID,
			Command: pi.Test.Command, Network: pi.Test.Network, Timeout: pi.Test.Timeout, Env: pi.Test.Env,
		})
	}
	r.logf("hoist: container tests of %d images", len(cases))
	if len(untested) > 0 {
		// The lock records no test for them, so Push refuses them.
		r.logf("hoist: no test command (add test: in hoist.yaml; Push refuses untested images): %s", strings.Join(untested, ", "))
	}
	res, err := ctest.Run(ctx, e.API, cases, ctest.Options{
		LogDir: r.logDir(), Parallel: r.Parallel(), LockPath: r.LockPath, Summary: r.Out,
	})
	for _, x := range res {
		if x.Passed {
			r.Passed++
		} else {
			r.Failed++
		}
	}
	if err != nil {
		return err
	}
	if r.Cfg.Cluster.Name == "" {
		return nil
	}
	return r.clusterStage(ctx, e, imgs)
}

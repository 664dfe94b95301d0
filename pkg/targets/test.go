package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/checks"
	"github.com/hoistci/hoist/pkg/ctest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// Environment variables of Test.
const envSkipChecks = "HOIST_SKIP_CHECKS" // 1: skip the static checks (e.g. when a CI job ran them already)

// Test runs the static checks, builds the images (Images), tests each image in its own container and, when a k3d cluster is configured and can run here, loads the images into it and runs the in-cluster tests.
//
// Static checks (hoist.yaml checks) run first and stop at the first failure.
// Container tests run each image's test command with no network (unless it
// asks for host), all of them even when one fails; logs go to
// build/hoist/logs/test-NAME.log and results to the lock file, which Push
// requires. No secret is needed and nothing is pushed, so a fork runs the
// same command as CI. Environment: HOIST_SKIP_CHECKS=1, HOIST_PARALLEL=N.
func Test(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	return s.testStage(ctx, true)
}

// testStage is the Test stage: checks, Images when build is set (the Test
// target; the release flow has just run Images itself), container tests and
// the cluster stage.
func (s *session) testStage(ctx context.Context, build bool) (err error) {
	defer func() {
		// One closing line in the form every CI reads: checks, container
		// tests and in-cluster tests judged in this run.
		if err != nil && s.failed == 0 {
			s.failed = 1 // the run stopped on something that was not a test
		}
		fmt.Fprintf(s.out, "test: %d passed, %d failed\n", s.passed, s.failed)
	}()
	if !truthy(os.Getenv(envSkipChecks)) {
		if err := s.checks(ctx); err != nil {
			return err
		}
	}
	// Images runs every time, not as a once-per-process mage dependency:
	// tests always run against what was just built, and an unchanged image
	// costs one inspect.
	if build {
		if _, err := s.images(ctx); err != nil {
			return err
		}
	}
	return s.test(ctx)
}

func (s *session) logDir() string { return filepath.Join(s.cfg.Path(s.cfg.BuildDir), "logs") }

func (s *session) checks(ctx context.Context) error {
	var cs []checks.Check
	for _, c := range s.cfg.Checks {
		cs = append(cs, checks.Check{Name: c.Name, Run: c.Run})
	}
	if len(cs) == 0 {
		return nil
	}
	fmt.Fprintf(s.out, "hoist: %d static checks\n", len(cs))
	err := checks.Run(ctx, cs, checks.Options{Dir: s.cfg.Dir, LogDir: s.logDir(), Progress: s.out, Env: checkEnv()})
	var ce *checks.Error
	switch {
	case err == nil:
		s.passed += len(cs)
	case errors.As(err, &ce):
		for i, c := range cs {
			if c.Name == ce.Name {
				s.passed += i
			}
		}
		s.failed++
	}
	return err
}

// built pairs each plan image with its lock entry, and checks the engine
// still holds exactly that image.
func (s *session) built(ctx context.Context, e *engine.Engine) (*plan.Plan, []lock.Image, error) {
	p, err := s.plan(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, err := lock.Read(s.lockPath)
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

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// test runs the container tests and then the cluster stage.
func (s *session) test(ctx context.Context) error {
	e, err := s.engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	p, imgs, err := s.built(ctx, e)
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
		cases = append(cases, ctest.Case{
			Name: pi.Name, Ref: pi.Ref, ImageID: imgs[i].ImageID,
			Command: pi.Test.Command, Network: pi.Test.Network, Timeout: pi.Test.Timeout, Env: pi.Test.Env,
		})
	}
	fmt.Fprintf(s.out, "hoist: container tests of %d images\n", len(cases))
	if len(untested) > 0 {
		// The lock records no test for them, so Push refuses them.
		fmt.Fprintf(s.out, "hoist: no test command (add test: in hoist.yaml; Push refuses untested images): %s\n", strings.Join(untested, ", "))
	}
	res, err := ctest.Run(ctx, e.API, cases, ctest.Options{
		LogDir: s.logDir(), Parallel: s.parallel(), LockPath: s.lockPath, Summary: s.out,
	})
	for _, r := range res {
		if r.Passed {
			s.passed++
		} else {
			s.failed++
		}
	}
	if err != nil {
		return err
	}
	if s.cfg.Cluster.Name == "" {
		return nil
	}
	return s.clusterStage(ctx, e, p, imgs)
}

// checkEnv is this process's environment without the settings of one run
// (the version being built, the images picked, a dry run …): static checks
// are about the source, and a release that reserved X.Y.Z-staging.N must not
// hand that version to the tests it runs.
func checkEnv() []string {
	// HOIST_MODERN_ENGINE: the second engine the engine tests run against.
	keep := map[string]bool{envParallel: true, envNoEngineUp: true, "HOIST_TOOLS_DIR": true, "HOIST_MODERN_ENGINE": true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HOIST_") && !keep[k] {
			continue
		}
		env = append(env, kv)
	}
	return env
}

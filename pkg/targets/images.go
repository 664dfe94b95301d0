package targets

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hoistci/hoist/pkg/images"
)

// Images builds every image locally with BuildKit, skipping unchanged ones; no push.
//
// HOIST_REBUILD=1 forces a fresh build.
//
// Each matrix entry is built through the Docker Engine's own BuildKit, several
// at once, and recorded in build/hoist/lock.json with its image ID, config
// digest and layer diff_ids. An entry whose inputs (context files, rendered
// Dockerfile, arguments, labels, base image IDs) are unchanged and whose
// image the engine has is not built at all.
//
// Environment: HOIST_REBUILD=1 (no cache, re-make bases, pull remote bases),
// HOIST_PR=1 (fork mode), HOIST_PARALLEL=N, HOIST_IMAGES=a,b (only these),
// HOIST_VERSION (build another version), HOIST_VERBOSE=1 (BuildKit progress),
// BUILDKIT_HOST (a buildkitd instead of the engine's).
func Images(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	_, err = s.images(ctx)
	return err
}

// images runs the Images stage; Test, Release and the benchmarks share it.
func (s *session) images(ctx context.Context) ([]images.Result, error) {
	start := time.Now()
	p, err := s.plan(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.engine(ctx)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	b, err := e.Builder(ctx, os.Getenv(envBuildkit))
	if err != nil {
		return nil, err
	}
	defer b.Close()
	o := images.Options{
		Parallel: s.parallel(),
		Rebuild:  truthy(os.Getenv(envRebuild)),
		PR:       s.pr,
		Progress: s.out,
		Only:     s.only(),
	}
	if truthy(os.Getenv(envVerbose)) {
		o.BuildLog = s.out
	}
	if o.GoArch, o.GoEnv, err = goBaseEnv(ctx, e, p); err != nil {
		return nil, err
	}
	fmt.Fprintf(s.out, "hoist: building %d images of %s %s (%d at once)\n", len(p.Images), p.Project, p.Version, o.Parallel)
	res, err := images.Build(ctx, e, b, p, s.lockPath, o)
	if err != nil {
		return res, err
	}
	built := 0
	for _, r := range res {
		if r.State == images.Built {
			built++
		}
	}
	fmt.Fprintf(s.out, "hoist: %d images ready (%d built, %d unchanged) in %.1fs; lock: %s\n",
		len(res), built, len(res)-built, time.Since(start).Seconds(), s.rel(s.lockPath))
	return res, nil
}

// rel shows a path relative to the working folder when it is below it.
func (s *session) rel(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := relPath(wd, p); err == nil {
			return r
		}
	}
	return p
}

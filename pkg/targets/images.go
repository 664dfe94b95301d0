package targets

import "context"

// Images builds every image in hoist.yaml locally with BuildKit (never pushes), skipping unchanged ones; HOIST_REBUILD=1 forces a fresh build.
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
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = r.Images(ctx)
	return err
}

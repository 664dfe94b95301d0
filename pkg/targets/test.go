package targets

import "context"

// Test runs the static checks, builds the images (Images), tests each image in its own container and, when a k3d cluster is configured and can run here, loads the images into it and runs the in-cluster tests.
//
// Static checks (hoist.yaml checks) run first and stop at the first failure.
// Container tests run each image's test command with no network (unless it
// asks for host), all of them even when one fails; logs go to
// build/hoist/logs/test-NAME.log and results to the lock file, which Push
// requires. No secret is needed and nothing is pushed, so a fork runs the
// same command as CI. Environment: HOIST_SKIP_CHECKS=1, HOIST_PARALLEL=N.
func Test(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Test(ctx, true)
}

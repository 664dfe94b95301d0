package targets

import "context"

// Test runs static checks, Images, container tests and the in-cluster stage.
//
// A Docker Engine is brought up first when none answers: on a fresh machine
// the static checks' own tests need it as much as the container tests do.
// The in-cluster stage runs when a k3d cluster is configured: the images are
// loaded into it and the in-cluster tests run; where k3s cannot run, on a
// Kubernetes node Hoist starts for the stage (docs/cluster.md).
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
	if _, err := r.Engine(ctx); err != nil {
		return err
	}
	return r.Test(ctx, true)
}

package targets

import (
	"context"
	"fmt"
)

// Push pushes the tested images in the lock file to the registry: blobs and manifests by digest first, tags last.
//
// Only images that passed Test, unchanged since, are pushed; anything else
// stops the whole push. Tags follow the version (HOIST_VERSION, else the
// lock's): X.Y.Z plus X.Y, X and latest for a release; the tag alone for a
// prerelease; X.Y.Z-staging.N plus staging for the staging line. Immutable
// tags are never rewritten; floating ones move only forward. With no
// registry configured (and not in CI), this checkout's local registry on
// 127.0.0.1 is started on demand.
// Credentials: HOIST_REGISTRY_USERNAME/HOIST_REGISTRY_PASSWORD, else docker login.
func Push(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = r.Push(ctx)
	return err
}

// DigestGate proves the images about to be pushed are bit for bit the tested ones, and that pushed ones are what the registry serves.
//
// For each image in the lock file it compares the config digest and layer
// diff_ids recorded at test time with the engine's image, and, for each
// reference already pushed, with the manifest and config the registry serves.
// A mismatch names the image and the layers that differ. With
// HOIST_GATE_REBUILD=1 (separate test and push machines) it rebuilds every
// image from the build cache instead and compares the result.
func DigestGate(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.DigestGate(ctx)
}

// Promote promotes the staging build of VERSION's X.Y.Z to X.Y.Z and its floating tags by digest, without rebuilding; HOIST_DRY_RUN=1 prints the plan.
//
// M is the minimum over images of each image's highest X.Y.Z-staging.N (the
// Release target's main line promotes the build of HEAD instead). In one
// repository only manifests are written; into registry.promote_to blobs
// are mounted (copied where refused) and referrers travel along. It refuses
// when X.Y.Z already names another digest.
func Promote(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	plan, err := r.Promote(ctx)
	if plan != nil {
		if r.Set.DryRun {
			fmt.Fprint(r.Out, "dry run, nothing written: ")
		}
		fmt.Fprint(r.Out, plan)
	}
	return err
}

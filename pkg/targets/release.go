package targets

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/bump"
)

// Bump STEP moves VERSION: major, minor, patch, rc, beta, alpha, pre or X.Y.Z.
//
// It creates docs/CHANGELOGS/X.Y.Z.md when missing.
//
// The file keeps its style (a leading v or not, its line ending). rc, beta
// and alpha count up (1.2.0-rc.1 → 1.2.0-rc.2) or open a prerelease of the
// next patch (1.2.0 → 1.2.1-rc.1); pre releases it (1.2.0-rc.2 → 1.2.0).
// An invalid VERSION, a step that would go backwards and a number that
// would overflow are refused with the reason. HOIST_DRY_RUN=1 writes nothing.
func Bump(ctx context.Context, step string) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := bump.Apply(r.Cfg.Path(r.Cfg.VersionFile), r.Cfg.Path(r.Cfg.Release.Changelogs), strings.TrimSpace(step), r.Set.DryRun)
	if err != nil {
		return err
	}
	fmt.Fprintln(r.Out, res.Describe(r.Rel(res.Changelog), r.Set.DryRun))
	return nil
}

// Reserve reserves X.Y.Z-staging.N for HEAD as a git tag on the remote, atomically.
//
// The number already at HEAD is reused when there is one, else the next is
// taken; HOIST_VERSION_OVERRIDE reserves exactly that one.
//
// The tag is created with a non-forced push (or GitHub's Git refs API with
// release.reserve: github); when it exists, the next N is tried, so runs
// racing each other never share a number. An override is accepted only when
// its tag is absent or already at this commit. The version is printed, and
// appended to $GITHUB_OUTPUT as version=… when that is set.
func Reserve(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	res, where, err := r.Reserve(ctx)
	if err != nil {
		return err
	}
	if res.Reservation == nil {
		fmt.Fprintf(r.Out, "dry run, nothing written: would reserve %s on %s\n", res.Next, where)
		return nil
	}
	fmt.Fprintf(r.Out, "reserved %s at %s on %s\n", res.Tag, res.SHA, where)
	return nil
}

// Release runs this checkout's line: staging, main, vX.Y.Z tag, rebuild, verify or local.
//
// Stage by stage, stopping at the first failure (see docs/release.md).
//
// staging branch → reserve, build, test, push, prerelease; main → promote
// the staging build of HEAD, tag X.Y.Z, release; vX.Y.Z tag → build, test,
// push, release; a scheduled run (GITHUB_EVENT_NAME=schedule, or
// workflow_dispatch with HOIST_REBUILD=1) at a release tag → rebuild with
// fresh bases, push as revision X.Y.Z-rN, move X.Y.Z to it, never latest;
// other refs build and test only; outside CI with no
// registry configured, the local line: the whole pipeline against this
// checkout's own registry on 127.0.0.1, writing nothing shared.
//
// The line comes from GITHUB_REF (else from git); pull requests and forks
// (HOIST_PR=1) never push. A preflight checks everything the line needs
// before anything is built (clean checkout, remote and the right to tag,
// GitHub token, registry and the right to push, VERSION, changelog, the
// staging build main promotes). HOIST_DRY_RUN=1 prints each step and what
// it would write.
func Release(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Release(ctx)
}

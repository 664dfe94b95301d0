package release

import (
	"context"
	"fmt"

	"github.com/hoistci/hoist/pkg/bump"
	"github.com/hoistci/hoist/pkg/changelog"
	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/gitref"
)

// Reservation is what Reserve did, or in a dry run would do.
type Reservation struct {
	*gitref.Reservation
	// Next is, in a dry run, the tag a real run would reserve.
	Next string
}

// Reserve reserves the staging version of HEAD on its own (the Reserve
// target), with the staging line's rule: exactly o.Override; else the
// number already reserved at this commit (reused); else the next free
// X.Y.Z-staging.N for VERSION's X.Y.Z. It refuses a dirty or detached
// checkout, a missing remote and an override tag at another commit before
// creating anything. The version is appended to o.Output as version=….
func Reserve(ctx context.Context, o Options, dryRun bool) (*Reservation, error) {
	vf, err := bump.ReadFile(o.VersionFile)
	if err != nil {
		return nil, err
	}
	r := &Run{o: o, Version: vf.Version, Base: changelog.Base(vf.Version), Decision: flow.Decision{Line: flow.Staging}}
	co, err := o.Git.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	r.Commit = co.SHA
	if dirty := changes(co, o.BuildDir); len(dirty) > 0 {
		return nil, fmt.Errorf("the checkout has %d uncommitted change(s) (first: %q): commit or stash them; a version is reserved for a commit", len(dirty), dirty[0])
	}
	if co.Branch == "" {
		return nil, fmt.Errorf("HEAD is detached at %s: check out the branch to build (e.g. %s)", short(co.SHA), o.Branches.Staging)
	}
	if g, ok := o.Reserver.(*gitref.Git); ok {
		if err := g.CheckRemote(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.chooseStaging(ctx); err != nil {
		return nil, err
	}
	if dryRun {
		return &Reservation{Next: r.Staging}, nil
	}
	res, err := r.reserve(ctx)
	if err != nil {
		return nil, err
	}
	return &Reservation{Reservation: res}, appendOutput(o.Output, "version", res.Tag)
}

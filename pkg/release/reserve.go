package release

import (
	"context"
	"fmt"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/bump"
	"github.com/hoistci/hoist/pkg/changelog"
	"github.com/hoistci/hoist/pkg/gitref"
)

// Reservation is what Reserve did, or in a dry run would do.
type Reservation struct {
	*gitref.Reservation
	// Next is, in a dry run, the tag a real run would try first.
	Next string
}

// Reserve reserves the staging version of HEAD on its own (the Reserve
// target): the next free X.Y.Z-staging.N for VERSION's X.Y.Z, or exactly
// o.Override. It refuses a dirty or detached checkout, a missing remote and
// an override tag at another commit before creating anything.
func Reserve(ctx context.Context, o Options, dryRun bool) (*Reservation, error) {
	vf, err := bump.ReadFile(o.VersionFile)
	if err != nil {
		return nil, err
	}
	base := semver.MustParse(changelog.Base(vf.Version))
	co, err := o.Git.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	if dirty := changes(co, o.BuildDir); len(dirty) > 0 {
		return nil, fmt.Errorf("the checkout has %d uncommitted change(s) (first: %q): commit or stash them; a version is reserved for a commit", len(dirty), dirty[0])
	}
	if co.Branch == "" {
		return nil, fmt.Errorf("HEAD is detached at %s: check out the branch to build (e.g. %s)", short(co.SHA), o.Branches.Staging)
	}
	if err := checkRemote(ctx, o); err != nil {
		return nil, err
	}
	if o.Override != "" {
		b, _, ok := gitref.ParseStaging(o.Override)
		if !ok {
			return nil, fmt.Errorf("version override %q is not X.Y.Z-%s.N: write e.g. %s-%s.99", o.Override, gitref.Channel, base, gitref.Channel)
		}
		if !b.Equal(base) {
			return nil, fmt.Errorf("version override %s is for %s but VERSION is %s: override within %s-%s.N, or bump VERSION", o.Override, b, vf, base, gitref.Channel)
		}
		if dryRun {
			if _, err := gitref.Check(ctx, o.Reserver, o.Override, co.SHA); err != nil {
				return nil, err
			}
			return &Reservation{Next: o.Override}, nil
		}
		res, err := gitref.ReserveExact(ctx, o.Reserver, o.Override, co.SHA)
		if err != nil {
			return nil, err
		}
		return &Reservation{Reservation: res}, nil
	}
	if dryRun {
		n, err := gitref.Hint(ctx, o.Reserver, base)
		if err != nil {
			return nil, err
		}
		return &Reservation{Next: gitref.StagingTag(base, n)}, nil
	}
	res, err := gitref.Reserve(ctx, o.Reserver, base, co.SHA)
	if err != nil {
		return nil, err
	}
	return &Reservation{Reservation: res}, nil
}

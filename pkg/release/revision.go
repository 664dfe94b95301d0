package release

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/tags"
)

// The rebuild line publishes a fresh-bases rebuild of the release at HEAD
// as its next revision X.Y.Z-rN (package tags has the policy). N is
// reserved the way staging numbers are: by creating the git tag X.Y.Z-rN at
// the release's commit on the remote, which fails atomically when the tag
// exists. Every revision of X.Y.Z is at that same commit, so the commit
// cannot tell a finished revision from one a killed run left behind; the
// record (refs/hoist/builds/X.Y.Z-rN, written last) does: the highest
// revision with no record is reused, and completed, by the next run.

// revision is one X.Y.Z-rN reserved on the remote.
type revision struct {
	Tag string
	N   uint64
	SHA string
}

// revisions lists base's revisions on the remote with their commits,
// highest N first.
func revisions(ctx context.Context, res gitref.Reserver, base string) ([]revision, error) {
	prefix := base + "-r"
	names, err := res.Tags(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %s* tags on %s: %w", prefix, res, err)
	}
	var out []revision
	for _, t := range names {
		b, n, ok := tags.ParseRevision(t)
		if !ok || b.String() != base {
			continue
		}
		sha, ok, err := res.Tag(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("reading tag %s on %s: %w", t, res, err)
		}
		if ok {
			out = append(out, revision{Tag: t, N: n, SHA: sha})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N > out[j].N })
	return out, nil
}

// chooseRevision picks the revision this run publishes: the highest one
// when it is at this commit and has no record (its run was killed or
// failed after reserving: this one completes it), else the next number.
func (r *Run) chooseRevision(ctx context.Context) error {
	revs, err := revisions(ctx, r.o.Reserver, r.Base)
	if err != nil {
		return err
	}
	next := uint64(tags.FirstRevision)
	if len(revs) > 0 {
		top := revs[0]
		next = top.N + 1
		if top.SHA == r.Commit {
			_, err := r.recorder().Record(ctx, top.Tag)
			switch {
			case errors.Is(err, gitref.ErrNoRecord):
				r.Revision, r.reuse = top.Tag, true
				return nil
			case err != nil:
				return err
			}
		}
	}
	r.Revision = tags.RevisionTag(r.Base, next)
	return nil
}

// maxRevisionAttempts bounds the search for a free revision number; the
// rebuilds of one release are few and run one at a time.
const maxRevisionAttempts = 100

// reserveRevision creates the git tag of the chosen revision (or accepts it
// at this commit, when reused), or the next free one when another run took
// it meanwhile.
func (r *Run) reserveRevision(ctx context.Context, tag string, reuse bool) (*gitref.Reservation, error) {
	if reuse {
		return gitref.ReserveExact(ctx, r.o.Reserver, tag, r.Commit)
	}
	_, n, ok := tags.ParseRevision(tag)
	if !ok {
		return nil, fmt.Errorf("reserving %q: not a revision X.Y.Z-rN", tag)
	}
	for attempt := 1; attempt <= maxRevisionAttempts; attempt++ {
		tag = tags.RevisionTag(r.Base, n)
		err := r.o.Reserver.CreateTag(ctx, tag, r.Commit)
		if err == nil {
			return &gitref.Reservation{Tag: tag, SHA: r.Commit, N: n, Attempts: attempt}, nil
		}
		if !errors.Is(err, gitref.ErrExists) {
			return nil, fmt.Errorf("reserving %s at %s on %s: %w", tag, short(r.Commit), r.o.Reserver, err)
		}
		n++
	}
	return nil, fmt.Errorf("reserving a revision of %s on %s: %d numbers in a row are taken: check the remote's %s-r* tags", r.Base, r.o.Reserver, maxRevisionAttempts, r.Base)
}

// reviseStep reserves the revision, once the rebuild passed every check:
// a failed rebuild spends no number.
func (r *Run) reviseStep() flow.Step {
	how := " (the next free number now; the real run creates it atomically and moves on if it is taken)"
	if r.reuse {
		how = " (reserved at this commit by a run that recorded nothing: this run completes it)"
	}
	where := ""
	if r.o.Reserver != nil {
		where = " on " + r.o.Reserver.String()
	}
	return flow.Step{
		Name:   "Reserve",
		Writes: []string{"git tag " + r.Revision + how + where},
		Run: func(ctx context.Context) error {
			res, err := r.reserveRevision(ctx, r.Revision, r.reuse)
			if err != nil {
				return err
			}
			r.Revision = res.Tag
			if res.Existing {
				r.logf("%s: reserved at this commit %s by an earlier run that recorded nothing; completing it", res.Tag, short(r.Commit))
			} else {
				r.reuse = false
				r.logf("reserved %s at %s", res.Tag, short(r.Commit))
			}
			return appendOutput(r.o.Output, "version", res.Tag)
		},
	}
}

// revisionPushStep pushes the rebuilt images as the revision: X.Y.Z-rN for
// every image first, then the pointers that move forward. A reused number
// whose tags name other bytes (a killed run's rebuild, which a fresh-bases
// rebuild need not reproduce) is left exactly as it is, and the next number
// is reserved and pushed instead: the labels carry X.Y.Z, not N, so the
// tested images fit any revision number.
func (r *Run) revisionPushStep() flow.Step {
	moves := r.pointerNames()
	return flow.Step{
		Name:   "Push",
		Writes: []string{fmt.Sprintf("image tags %s, then %s where they move forward (never latest), on %s", r.Revision, strings.Join(moves, ", "), r.Registry)},
		Run: func(ctx context.Context) error {
			res, err := r.o.Stages.PushRevision(ctx, r.Revision)
			if err != nil && r.reuse && errors.Is(err, publish.ErrTagConflict) {
				r.logf("%s was partly pushed with other bytes by the run that reserved it (%v); it stays as it is, and this rebuild takes the next number", r.Revision, err)
				_, n, _ := tags.ParseRevision(r.Revision)
				rv, rerr := r.reserveRevision(ctx, tags.RevisionTag(r.Base, n+1), false)
				if rerr != nil {
					return rerr
				}
				r.Revision, r.reuse = rv.Tag, false
				r.logf("reserved %s at %s", rv.Tag, short(r.Commit))
				if err := appendOutput(r.o.Output, "version", rv.Tag); err != nil {
					return err
				}
				res, err = r.o.Stages.PushRevision(ctx, r.Revision)
			}
			r.Pushed = res
			if err != nil {
				return err
			}
			return r.outputDigests()
		},
	}
}

// pointerNames are the tags a revision of the release may move.
func (r *Run) pointerNames() []string {
	all := tagNames(tags.RevisionTag(r.Base, tags.FirstRevision))
	return all[1:]
}

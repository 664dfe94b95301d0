package release

import (
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/tags"
)

// steps is the line of the run as one ordered list. Each line reads top to
// bottom here; docs/release.md's step table is checked against these lists
// (TestDocsStepTable). The preflight (Prepare) has run before any of them.
func (r *Run) steps() []flow.Step {
	switch {
	case r.o.Shard != nil:
		return r.shardSteps()
	case r.o.Join != nil:
		return r.joinSteps()
	}
	switch r.Decision.Line {
	case flow.Staging:
		return join(
			// The version first: the images are labelled with it. A number
			// reserved at this commit by an earlier run is reused, so a
			// killed or failed run is completed, not abandoned.
			r.reserveStep(),
			// Images, Test, Scan, DigestGate, Gate.
			r.verified(),
			// Manifests by digest first, tags last; the digests go to
			// $GITHUB_OUTPUT for later workflow steps.
			r.pushStep("image tags "+r.Staging+" and staging"),
			// What was pushed, kept beside the reservation where a moved
			// registry tag cannot change it: main promotes only these digests.
			r.recordStep(),
			// With pins configured: the digests for GitOps (pins.json, the
			// pinned kustomization, a commit to the GitOps branch).
			r.pinsStep(),
			// The prerelease, with the digests pushed.
			r.githubStep(r.Staging, r.Staging, true),
		)
	case flow.Main:
		if r.Done != "" {
			// Promoted, tagged and released already: a re-run writes nothing.
			return nil
		}
		return join(
			// The staging build of this very commit, copied by digest: no
			// rebuild, and never a build of another commit.
			r.promoteStep(),
			// The pins before the tag: a failed pin leaves the line
			// unfinished, so a re-run completes it.
			r.pinsStep(),
			// The release tag marks the commit the images came from.
			r.tagStep(),
			r.githubStep(r.Base, r.Base, false),
		)
	case flow.Release:
		v := r.Version.String()
		return join(
			// A vX.Y.Z tag builds its own images: there is no staging build.
			r.verified(),
			r.pushStep("image tags "+strings.Join(tagNames(v), ", ")),
			r.pinsStep(),
			r.githubStep(r.Decision.Tag, v, r.Version.Prerelease() != ""),
		)
	case flow.Rebuild:
		return join(
			// The release's own commit with fresh bases (no build cache,
			// bases made or pulled again); the images carry X.Y.Z, as
			// released: a revision changes the bases, not the source.
			r.verified(),
			// The revision number, now that the rebuild is fit to publish:
			// a failed rebuild spends none. A number a killed run reserved
			// and never recorded is reused.
			r.reviseStep(),
			// X.Y.Z-rN for every image by digest, tags last; then X.Y.Z,
			// and X.Y and X when X.Y.Z is the newest in their range, move
			// to it. latest never moves.
			r.revisionPushStep(),
			// What was pushed, beside the revision tag: the revision is
			// complete, and the next rebuild takes the next number. No
			// GitHub release: the source is the release's, whose notes stay.
			r.recordStep(),
			r.pinsStep(),
		)
	case flow.Local:
		return join(
			// The staging line and the main line's promotion on this machine,
			// reserving in a private repository and pushing to this
			// checkout's own registry: nothing shared is written.
			r.reserveStep(),
			r.verified(),
			r.pushStep("image tags "+r.Staging+" and staging"),
			r.recordStep(),
			r.promoteStep(),
			r.pinsStep(),
		)
	}
	// Verify: pull requests, forks, other branches. Build and test only.
	return r.verified()[:3]
}

// shardSteps are one CI shard's part of the staging or vX.Y.Z line: its
// images only, pushed by digest; no tag names anything until the join.
func (r *Run) shardSteps() []flow.Step {
	var reserve []flow.Step
	if r.Decision.Line == flow.Staging {
		// The number the plan job reserved at this commit (the preflight
		// refuses a shard without one): every shard builds the same version.
		reserve = []flow.Step{r.reserveStep()}
	}
	return join(
		reserve,
		// Images, Test, Scan, DigestGate, Gate, for this shard's images.
		r.verified(),
		// Manifests by digest, with their proofs; no tag.
		r.pushDigestsStep(),
		// This shard's lock, kept for the join (a CI artifact).
		r.fragmentStep(),
	)
}

// joinSteps join the shards of the staging or vX.Y.Z line into one
// release, then finish the line as a single machine would.
func (r *Run) joinSteps() []flow.Step {
	if r.Decision.Line == flow.Release {
		v := r.Version.String()
		return join(
			// Every image of the plan exactly once, at this commit, passed.
			r.joinStep(),
			r.gateStep(),
			// All tags of all images, last, as one release.
			r.pushTagsStep("image tags "+strings.Join(tagNames(v), ", ")),
			r.pinsStep(),
			r.githubStep(r.Decision.Tag, v, r.Version.Prerelease() != ""),
		)
	}
	return join(
		r.reserveStep(),
		r.joinStep(),
		r.gateStep(),
		r.pushTagsStep("image tags "+r.Staging+" and staging"),
		r.recordStep(),
		r.pinsStep(),
		r.githubStep(r.Staging, r.Staging, true),
	)
}

// join lays steps and lists of steps out as one list, in order.
func join(parts ...any) []flow.Step {
	var out []flow.Step
	for _, p := range parts {
		switch p := p.(type) {
		case flow.Step:
			out = append(out, p)
		case []flow.Step:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("release: join of a %T", p))
		}
	}
	return out
}

// verified are the steps every building line starts with: build, test and
// scan on this machine (nothing leaves it), then prove that the bytes about
// to be pushed are the tested ones (DigestGate) and that the lock says every
// image passed, for this version and commit (Gate).
func (r *Run) verified() []flow.Step {
	return []flow.Step{
		r.stage("Images", r.o.Stages.Images),
		r.stage("Test", r.o.Stages.Test),
		r.stage("Scan", r.o.Stages.Scan),
		r.stage("DigestGate", r.o.Stages.DigestGate),
		r.gateStep(),
	}
}

// Lines are the step names of every line, for the docs and their test.
func Lines() map[flow.Line][]string {
	out := map[flow.Line][]string{}
	for _, l := range []flow.Line{flow.Verify, flow.Local, flow.Staging, flow.Main, flow.Release, flow.Rebuild} {
		r := &Run{Decision: flow.Decision{Line: l}, Version: mustVersion("1.2.3"), Base: "1.2.3", o: Options{Pins: PinsOptions{File: "pins.json"}}}
		for _, s := range r.steps() {
			out[l] = append(out[l], s.Name)
		}
	}
	return out
}

// ShardLines are the step names of a CI shard and of the join, on the
// staging and vX.Y.Z lines, for the docs and their test.
func ShardLines() map[string][]string {
	out := map[string][]string{}
	for _, l := range []flow.Line{flow.Staging, flow.Release} {
		for _, mode := range []string{"shard", "join"} {
			o := Options{Pins: PinsOptions{File: "pins.json"}}
			if mode == "shard" {
				o.Shard = &Shard{Index: 1, Count: 2}
			} else {
				o.Join = &Join{}
			}
			r := &Run{Decision: flow.Decision{Line: l}, Version: mustVersion("1.2.3"), Base: "1.2.3", o: o}
			for _, s := range r.steps() {
				out[string(l)+" "+mode] = append(out[string(l)+" "+mode], s.Name)
			}
		}
	}
	return out
}

// tagNames are the image tags version v gets (package tags' policy).
func tagNames(v string) []string {
	all, err := tags.For(mustVersion(v))
	if err != nil {
		return []string{v}
	}
	var out []string
	for _, t := range all {
		out = append(out, t.Name)
	}
	return out
}

func (r *Run) promoteWrites() []string {
	if r.planned == nil {
		return []string{fmt.Sprintf("image tags %s copied by digest from this commit's staging build", strings.Join(tagNames(r.Base), ", "))}
	}
	var w []string
	for _, s := range r.planned.Steps {
		w = append(w, fmt.Sprintf("%s:{%s} = %s (from %s)", s.Dest, strings.Join(s.Tags, ","), s.Digest, s.Source))
	}
	return w
}

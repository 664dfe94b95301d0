package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/publish"
)

// stage is a step running one of the pipeline's stages.
func (r *Run) stage(name string, run func(context.Context) error) flow.Step {
	if run == nil {
		return flow.Step{Name: name}
	}
	return flow.Step{Name: name, Run: run}
}

// reserveStep reserves the run's staging version (chosen by the preflight)
// and hands it to the stages.
func (r *Run) reserveStep() flow.Step {
	how := " (the next free number now; the real run creates it atomically and moves on if it is taken)"
	switch {
	case r.reuse && r.o.Override != "":
		how = " (the override, already there at this commit)"
	case r.reuse:
		how = " (already reserved at this commit by an earlier run: this run completes it)"
	case r.o.Override != "":
		how = " (the override)"
	}
	where := ""
	if r.o.Reserver != nil {
		where = " on " + r.o.Reserver.String()
	}
	return flow.Step{
		Name:   "Reserve",
		Writes: []string{"git tag " + r.Staging + how + where},
		Run: func(ctx context.Context) error {
			res, err := r.reserve(ctx)
			if err != nil {
				return err
			}
			r.Staging = res.Tag
			if res.Existing {
				r.logf("%s: reserved at this commit %s by an earlier run; completing it", res.Tag, short(r.Commit))
			} else {
				r.logf("reserved %s at %s (%d tag(s) tried)", res.Tag, short(r.Commit), res.Attempts)
			}
			r.o.Stages.UseVersion(res.Tag)
			return appendOutput(r.o.Output, "version", res.Tag)
		},
	}
}

// reserve creates the staging tag: the chosen one when it is the override
// or already at this commit, else the next free number.
func (r *Run) reserve(ctx context.Context) (*gitref.Reservation, error) {
	if r.reuse || r.o.Override != "" {
		return gitref.ReserveExact(ctx, r.o.Reserver, r.Staging, r.Commit)
	}
	return gitref.Reserve(ctx, r.o.Reserver, semver.MustParse(r.Base), r.Commit)
}

// gateStep is the last check before anything is pushed (Gate).
func (r *Run) gateStep() flow.Step {
	return flow.Step{Name: "Gate", Run: func(ctx context.Context) error {
		return Gate(r.o.LockPath, r.version(), r.Commit)
	}}
}

// pushStep pushes the tested images and records what was written.
func (r *Run) pushStep(writes string) flow.Step {
	return flow.Step{
		Name:   "Push",
		Writes: []string{writes + " on " + r.Registry},
		Run: func(ctx context.Context) error {
			res, err := r.o.Stages.Push(ctx)
			r.Pushed = res
			if err != nil {
				return err
			}
			return r.outputDigests()
		},
	}
}

// promoteStep promotes the staging build of this commit by digest.
func (r *Run) promoteStep() flow.Step {
	return flow.Step{
		Name:   "Promote",
		Writes: r.promoteWrites(),
		Run: func(ctx context.Context) error {
			cands := r.candidates
			if r.Decision.Line == flow.Local {
				cands = []string{r.Staging}
			}
			plan, err := r.o.Stages.Promote(ctx, cands, r.tested, false)
			if r.Decision.Line == flow.Local && errors.Is(err, publish.ErrTagConflict) {
				// A later commit on a developer's machine: X.Y.Z is out with
				// other bytes and is never rewritten. The staging build is
				// pushed; say how to release it.
				r.logf("not promoted: %v", err)
				r.logf("the staging build %s is pushed; to release it, bump VERSION (go run mage.go bump patch) and run again", r.Staging)
				return nil
			}
			r.Promoted = plan
			if err != nil {
				return err
			}
			if plan.Wrote() == 0 {
				r.logf("%s already promoted to %s: nothing written", plan.Staging, plan.Base)
			}
			return nil
		},
	}
}

// tagStep tags the released commit X.Y.Z.
func (r *Run) tagStep() flow.Step {
	where := ""
	if r.o.Reserver != nil {
		where = " on " + r.o.Reserver.String()
	}
	return flow.Step{
		Name:   "Tag",
		Writes: []string{"git tag " + r.Base + where},
		Run: func(ctx context.Context) error {
			res, err := gitref.ReserveExact(ctx, r.o.Reserver, r.Base, r.Commit)
			if err != nil {
				return err
			}
			if res.Existing {
				r.logf("git tag %s already at %s: nothing written", r.Base, short(r.Commit))
			} else {
				r.Tagged = r.Base
				r.logf("tagged %s as %s", short(r.Commit), r.Base)
			}
			return nil
		},
	}
}

// githubStep creates or updates the GitHub release of tag, with notes for
// version (the two differ on the release line: tag v1.2.3, images 1.2.3).
// It is left out when no GitHub repository is configured.
func (r *Run) githubStep(tag, version string, pre bool) flow.Step {
	kind := "release"
	if pre {
		kind = "prerelease"
	}
	if r.o.GitHub == nil {
		return flow.Step{Name: "GitHub " + kind, Skip: "release.github is not set"}
	}
	return flow.Step{
		Name:   "GitHub " + kind,
		Writes: []string{fmt.Sprintf("GitHub %s %s on %s", kind, tag, r.o.GitHub.Repo())},
		Run: func(ctx context.Context) error {
			if r.Decision.Line == flow.Staging {
				tag, version = r.Staging, r.Staging
			}
			l, err := lock.Read(r.o.LockPath)
			if err != nil && !errors.Is(err, lock.ErrNoLock) {
				return err
			}
			var refs []Ref
			if l != nil {
				refs = Refs(l.Images, version)
			}
			if len(refs) == 0 && r.Decision.Line != flow.Main {
				return fmt.Errorf("no image in %s was pushed as %s: the Push stage records what it pushed; run it before publishing", r.o.LockPath, version)
			}
			pub, err := Publish(ctx, r.o.GitHub, GitHubRelease{Tag: tag, Commit: r.Commit, Name: tag, Body: Notes(r.notes, version, refs, r.history(ctx, tag)), Prerelease: pre})
			if err != nil {
				return err
			}
			verb := "updated"
			if pub.Created {
				verb = "created"
			}
			r.Released = pub.URL
			r.logf("%s GitHub %s %s: %s", verb, kind, tag, pub.URL)
			return nil
		},
	}
}

// Summary is what the run wrote, for its last lines: each image's digest
// and tags, and how to pull it.
func (r *Run) Summary() []string {
	var out []string
	if r.Done != "" {
		out = append(out, r.Done)
		if r.planned != nil {
			for _, s := range r.planned.Steps {
				out = append(out, fmt.Sprintf("  %s %s@%s tags %s", s.Name, s.Dest, s.Digest, strings.Join(s.Tags, ",")))
			}
		}
		return out
	}
	if r.Pushed != nil {
		written, kept := 0, 0
		for _, img := range r.Pushed.Images {
			written += len(img.Written)
			kept += len(img.Kept)
		}
		out = append(out, fmt.Sprintf("pushed %d images to %s: %d tags written, %d already there", len(r.Pushed.Images), r.Registry, written, kept))
		for _, img := range r.Pushed.Images {
			out = append(out, wroteLine(img.Repo, img.Digest, img.Written, img.Kept))
		}
	}
	if r.Promoted != nil {
		out = append(out, fmt.Sprintf("promoted %s to %s: %d tags written", r.Promoted.Staging, r.Promoted.Base, r.Promoted.Wrote()))
		for _, s := range r.Promoted.Steps {
			out = append(out, wroteLine(s.Dest, s.Digest, s.Written, s.Kept))
		}
	}
	if r.Tagged != "" {
		out = append(out, fmt.Sprintf("git tag %s at %s", r.Tagged, short(r.Commit)))
	}
	if r.Released != "" {
		out = append(out, "GitHub: "+r.Released)
	}
	pull := r.pullRefs()
	if len(pull) > 0 {
		out = append(out, "pull:")
		for _, p := range pull {
			out = append(out, "  docker pull "+p)
		}
	}
	return out
}

// wroteLine is one image of the summary: where, which digest, which tags
// this run wrote and which were already there.
func wroteLine(repo, digest string, written, kept []string) string {
	line := fmt.Sprintf("  %s@%s", repo, digest)
	if len(written) > 0 {
		line += " wrote " + strings.Join(written, ",")
	}
	if len(kept) > 0 {
		line += " kept " + strings.Join(kept, ",")
	}
	return line
}

// pullRefs are the references a user pulls: the release tags when this
// run promoted, else the pushed version's tag.
func (r *Run) pullRefs() []string {
	var out []string
	switch {
	case r.Promoted != nil:
		for _, s := range r.Promoted.Steps {
			out = append(out, s.Dest+":"+r.Promoted.Base)
		}
	case r.Pushed != nil:
		for _, img := range r.Pushed.Images {
			tag := img.Digest
			if len(img.Written)+len(img.Kept) > 0 {
				all := append(append([]string{}, img.Written...), img.Kept...)
				sort.Strings(all)
				tag = all[0]
				for _, t := range all {
					if strings.Contains(t, ".") {
						tag = t // a version tag, not a floating word
						break
					}
				}
				if r.Revision != "" && slices.Contains(all, r.Revision) {
					tag = r.Revision // the one tag that never moves
				}
			}
			if strings.HasPrefix(tag, "sha256:") {
				out = append(out, img.Repo+"@"+tag)
			} else {
				out = append(out, img.Repo+":"+tag)
			}
		}
	}
	return out
}

// outputDigests appends each pushed image's digest reference to the
// workflow outputs, as digest_NAME (dots and other characters an output
// name cannot hold become _), so later workflow steps can pin them.
func (r *Run) outputDigests() error {
	if r.Pushed == nil {
		return nil
	}
	for _, img := range r.Pushed.Images {
		if err := appendOutput(r.o.Output, "digest_"+outputName(img.Name), img.Repo+"@"+img.Digest); err != nil {
			return err
		}
	}
	return nil
}

// outputName maps an image name to a workflow output name: letters,
// digits, - and _ only.
func outputName(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		}
		return '_'
	}, s)
}

// appendOutput appends name=value to the workflow output file, when set.
func appendOutput(path, name, value string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("writing the workflow outputs %s: %w", path, err)
	}
	_, err = fmt.Fprintf(f, "%s=%s\n", name, value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the workflow outputs %s: %w", path, err)
	}
	return nil
}

func mustVersion(v string) *semver.Version {
	sv, err := semver.StrictNewVersion(v)
	if err != nil {
		return semver.New(0, 0, 0, "", "")
	}
	return sv
}

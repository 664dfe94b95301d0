// Package release is Hoist's release flow: it decides the line of a run
// (staging, main, a vX.Y.Z tag, or build-and-test only), checks everything
// a release depends on before anything is built, and lays out the stages in
// order: reserve a version, build, test, scan, gate, push or promote, tag,
// and publish the GitHub release with notes from docs/CHANGELOGS/X.Y.Z.md
// and the pushed image digests.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/bump"
	"github.com/hoistci/hoist/pkg/changelog"
	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/github"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/tags"
)

// Stages are the pipeline's stages, supplied by the caller (the targets
// package wires Hoist's own). A nil stage is one this build does not have:
// a run that needs it stops there, before anything is pushed.
type Stages struct {
	Images, Test, Scan, DigestGate, Push, Promote func(ctx context.Context) error
}

// Options is everything a release run reads; nothing comes from the
// environment here.
type Options struct {
	VersionFile string // the VERSION file
	Changelogs  string // folder of X.Y.Z.md notes
	LockPath    string // the run's lock file
	// BuildDir is Hoist's output folder, relative to the checkout: files
	// there do not make the checkout dirty, even when not git-ignored.
	BuildDir string
	// Git is the checkout (and, for the git backend, the remote).
	Git *gitref.Git
	// Reserver creates tags: a *gitref.Git or a *gitref.GitHub.
	Reserver gitref.Reserver
	// GitHub publishes releases; nil: no GitHub release.
	GitHub *github.Client
	// Ref is the git ref the run is for (GITHUB_REF); empty: read from git.
	Ref      string
	PR       bool // fork or pull request: build and test only
	Branches flow.Branches
	// Override is a staging version chosen by hand (X.Y.Z-staging.N),
	// reserved exactly instead of the next free N.
	Override string
	Stages   Stages
	// Local runs the local line: the whole pipeline against the local
	// registry, reserving on Reserver (a private repository), with no
	// GitHub release and no tag on the checkout's own remotes.
	Local bool
	// SetVersion tells the stages which version to build and push (the
	// reserved X.Y.Z-staging.N on the staging line).
	SetVersion func(version string) error
	// Progress receives a line per outcome (reserved tag, release URL); nil
	// discards them.
	Progress io.Writer
}

func (o Options) logf(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}
}

// Plan is a checked release run, ready to run or to print.
type Plan struct {
	Decision flow.Decision
	Version  *semver.Version // as VERSION holds it
	Base     string          // X.Y.Z
	Commit   string
	Steps    []flow.Step
	// Notes says what the run will not do and why, for the log.
	Notes []string
}

// Prepare decides the line and checks, without writing anything, all that
// the line depends on: a valid VERSION, a clean checkout on the right branch
// or tag, a reachable remote, credentials, the changelog, and an override or
// release tag that is free or already at this commit. Any failure is one
// line, and nothing has been built, tagged or pushed.
func Prepare(ctx context.Context, o Options) (*Plan, error) {
	vf, err := bump.ReadFile(o.VersionFile)
	if err != nil {
		return nil, err
	}
	p := &Plan{Version: vf.Version, Base: changelog.Base(vf.Version)}
	co, err := o.Git.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	p.Commit = co.SHA
	ref := o.Ref
	if ref == "" {
		if ref, err = localRef(ctx, o.Git, co); err != nil {
			return nil, err
		}
	}
	p.Decision = flow.Decide(ref, o.PR, o.Branches)
	if o.Local && p.Decision.Line != flow.Verify {
		p.Decision = flow.Decision{Line: flow.Local, Why: "no registry configured and not in CI: the whole pipeline against the local registry"}
	}
	if p.Decision.Line == flow.Local {
		if err := checkRemote(ctx, o); err != nil {
			return nil, err
		}
		p.Notes = append(p.Notes, "nothing shared is written: staging numbers are reserved in "+o.Reserver.String()+", images go to the local registry")
		p.local(o)
		return p, nil
	}
	if p.Decision.Line == flow.Verify {
		if o.Override != "" {
			return nil, fmt.Errorf("a version override (%s) is for the staging line, and this run builds and tests only (%s)", o.Override, p.Decision.Why)
		}
		p.Notes = append(p.Notes, "nothing is reserved, tagged or pushed: "+p.Decision.Why)
		p.Steps = []flow.Step{stage("Images", o.Stages.Images), stage("Test", o.Stages.Test), stage("Scan", o.Stages.Scan)}
		return p, nil
	}
	if err := checkCheckout(ctx, o.Git, co, p.Decision, o.BuildDir); err != nil {
		return nil, err
	}
	if err := checkRemote(ctx, o); err != nil {
		return nil, err
	}
	if o.GitHub != nil && !o.GitHub.HasToken() {
		return nil, fmt.Errorf("release.github is %s but no token is set: set HOIST_GITHUB_TOKEN or GITHUB_TOKEN (contents: write), or remove release.github to skip GitHub releases", o.GitHub.Repo())
	}
	if o.GitHub == nil {
		p.Notes = append(p.Notes, "no GitHub release: release.github is not set in hoist.yaml")
	}
	notes, err := changelog.Read(o.Changelogs, vf.Version)
	if err != nil {
		return nil, err
	}
	switch p.Decision.Line {
	case flow.Staging:
		err = p.staging(ctx, o, notes)
	case flow.Main:
		err = p.main(ctx, o, notes)
	case flow.Release:
		err = p.release(ctx, o, notes)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// localRef names the checkout the way GITHUB_REF would: its branch, or a
// vX.Y.Z tag at a detached HEAD, or nothing.
func localRef(ctx context.Context, g *gitref.Git, co *gitref.Checkout) (string, error) {
	if co.Branch != "" {
		return "refs/heads/" + co.Branch, nil
	}
	tags, err := g.TagsAtHead(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		if d := flow.Decide("refs/tags/"+t, false, flow.Branches{}); d.Line == flow.Release {
			return "refs/tags/" + t, nil
		}
	}
	return "", nil
}

func checkCheckout(ctx context.Context, g *gitref.Git, co *gitref.Checkout, d flow.Decision, buildDir string) error {
	if dirty := changes(co, buildDir); len(dirty) > 0 {
		return fmt.Errorf("the checkout has %d uncommitted change(s) (first: %q): commit or stash them; a release is built only from a commit", len(dirty), dirty[0])
	}
	switch d.Line {
	case flow.Staging, flow.Main:
		if co.Branch == "" {
			return fmt.Errorf("HEAD is detached at %s: check out the %s branch; the %s line publishes from a branch", short(co.SHA), d.Branch, d.Line)
		}
		if co.Branch != d.Branch {
			return fmt.Errorf("the run is for branch %s but the checkout is on %s: check out %s", d.Branch, co.Branch, d.Branch)
		}
	case flow.Release:
		tags, err := g.TagsAtHead(ctx)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if t == d.Tag {
				return nil
			}
		}
		return fmt.Errorf("HEAD %s is not at tag %s: check out the tag (git checkout %s) or fetch it (git fetch --tags)", short(co.SHA), d.Tag, d.Tag)
	}
	return nil
}

// changes are the checkout's uncommitted changes outside buildDir.
func changes(co *gitref.Checkout, buildDir string) []string {
	dir := strings.Trim(filepath.ToSlash(filepath.Clean(buildDir)), "/")
	var out []string
	for _, l := range co.Dirty {
		// git status --porcelain --untracked-files=all: "XY PATH".
		path := strings.Trim(strings.TrimSpace(l[min(len(l), 2):]), `"`)
		if dir != "" && dir != "." && strings.HasPrefix(path, dir+"/") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// checkRemote proves the remote exists and answers with the credentials at
// hand, by reading its tags (the reservation's starting hint).
func checkRemote(ctx context.Context, o Options) error {
	if g, ok := o.Reserver.(*gitref.Git); ok {
		if err := g.CheckRemote(ctx); err != nil {
			return err
		}
	}
	if _, err := o.Reserver.Tags(ctx, "hoist-preflight-"); err != nil {
		return fmt.Errorf("reading tags on %s: %w", o.Reserver, err)
	}
	return nil
}

func (p *Plan) staging(ctx context.Context, o Options, notes string) error {
	base := semver.MustParse(p.Base)
	var next, how string // the tag a dry run shows, and how it was chosen
	if o.Override != "" {
		b, _, ok := gitref.ParseStaging(o.Override)
		if !ok {
			return fmt.Errorf("version override %q is not X.Y.Z-%s.N: write e.g. %s-%s.99", o.Override, gitref.Channel, p.Base, gitref.Channel)
		}
		if !b.Equal(base) {
			return fmt.Errorf("version override %s is for %s but VERSION is %s: override within %s-%s.N, or bump VERSION", o.Override, b, p.Version, p.Base, gitref.Channel)
		}
		exists, err := gitref.Check(ctx, o.Reserver, o.Override, p.Commit)
		if err != nil {
			return fmt.Errorf("version override: %w", err)
		}
		next, how = o.Override, " (the override)"
		if exists {
			how = " (the override, already there at this commit)"
		}
	} else {
		n, err := gitref.Hint(ctx, o.Reserver, base)
		if err != nil {
			return err
		}
		next, how = gitref.StagingTag(base, n), " (the next free number now; the real run creates it atomically and moves on if it is taken)"
	}
	var res *gitref.Reservation
	version := func() string { return res.Tag }
	p.Steps = append(p.Steps, flow.Step{
		Name:   "Reserve",
		Writes: []string{"git tag " + next + how + " on " + o.Reserver.String()},
		Run: func(ctx context.Context) error {
			var err error
			if o.Override != "" {
				res, err = gitref.ReserveExact(ctx, o.Reserver, o.Override, p.Commit)
			} else {
				res, err = gitref.Reserve(ctx, o.Reserver, base, p.Commit)
			}
			if err != nil {
				return err
			}
			if res.Existing {
				o.logf("reserved %s: the tag was already at this commit %s", res.Tag, short(p.Commit))
			} else {
				o.logf("reserved %s at %s (%d tag(s) tried)", res.Tag, short(p.Commit), res.Attempts)
			}
			if o.SetVersion != nil {
				return o.SetVersion(res.Tag)
			}
			return nil
		},
	})
	p.build(o, func() string { return version() })
	p.Steps = append(p.Steps, stage("Push", o.Stages.Push, "image tags "+next+" and staging"))
	if o.GitHub != nil {
		p.Steps = append(p.Steps, p.publishStep(o, notes, version, version, true, next))
	}
	return nil
}

// local is the staging line and then the main line's promotion, on this
// machine only.
func (p *Plan) local(o Options) {
	base := semver.MustParse(p.Base)
	var res *gitref.Reservation
	p.Steps = append(p.Steps, flow.Step{
		Name:   "Reserve",
		Writes: []string{"git tag " + p.Base + "-" + gitref.Channel + ".N on " + o.Reserver.String()},
		Run: func(ctx context.Context) error {
			var err error
			if res, err = gitref.Reserve(ctx, o.Reserver, base, p.Commit); err != nil {
				return err
			}
			o.logf("reserved %s at %s", res.Tag, short(p.Commit))
			if o.SetVersion != nil {
				return o.SetVersion(res.Tag)
			}
			return nil
		},
	})
	p.build(o, func() string { return res.Tag })
	p.Steps = append(p.Steps,
		stage("Push", o.Stages.Push, "image tags "+p.Base+"-"+gitref.Channel+".N and staging"),
		stage("Promote", o.Stages.Promote, "image tags "+strings.Join(tags.Names(base), ", ")+" copied by digest from the staging build"))
}

func (p *Plan) main(ctx context.Context, o Options, notes string) error {
	if _, err := gitref.Check(ctx, o.Reserver, p.Base, p.Commit); err != nil {
		return fmt.Errorf("promoting %s: %w", p.Base, err)
	}
	version := func() string { return p.Base }
	p.Steps = append(p.Steps,
		stage("Promote", o.Stages.Promote, "image tags "+strings.Join(tags.Names(semver.MustParse(p.Base)), ", ")+" copied by digest from the staging build"),
		flow.Step{
			Name:   "Tag",
			Writes: []string{"git tag " + p.Base + " on " + o.Reserver.String()},
			Run: func(ctx context.Context) error {
				res, err := gitref.ReserveExact(ctx, o.Reserver, p.Base, p.Commit)
				if err == nil && !res.Existing {
					o.logf("tagged %s as %s", short(p.Commit), p.Base)
				}
				return err
			},
		})
	if o.GitHub != nil {
		p.Steps = append(p.Steps, p.publishStep(o, notes, version, version, false, p.Base))
	}
	return nil
}

func (p *Plan) release(ctx context.Context, o Options, notes string) error {
	tv, err := semver.StrictNewVersion(strings.TrimPrefix(p.Decision.Tag, "v"))
	if err != nil || !tv.Equal(p.Version) || tv.Prerelease() != p.Version.Prerelease() {
		return fmt.Errorf("tag %s does not match VERSION %s: commit the VERSION bump first, then tag that commit", p.Decision.Tag, bump.Format(p.Version, false))
	}
	v := p.Version.String()
	p.build(o, func() string { return v })
	p.Steps = append(p.Steps, stage("Push", o.Stages.Push, "image tags "+strings.Join(tags.Names(p.Version), ", ")))
	if o.GitHub != nil {
		tag := p.Decision.Tag
		p.Steps = append(p.Steps, p.publishStep(o, notes, func() string { return tag }, func() string { return v }, p.Version.Prerelease() != "", tag))
	}
	return nil
}

// build adds the stages from Images to the gate.
func (p *Plan) build(o Options, version func() string) {
	p.Steps = append(p.Steps,
		stage("Images", o.Stages.Images),
		stage("Test", o.Stages.Test),
		stage("Scan", o.Stages.Scan),
		stage("DigestGate", o.Stages.DigestGate),
		flow.Step{Name: "Gate", Run: func(ctx context.Context) error {
			return Gate(o.LockPath, version(), p.Commit)
		}},
	)
}

// publishStep creates or updates the GitHub release of tag, with notes
// for version (the two differ on the release line: tag v1.2.3, images 1.2.3).
func (p *Plan) publishStep(o Options, notes string, tag, version func() string, pre bool, shown string) flow.Step {
	kind := "release"
	if pre {
		kind = "prerelease"
	}
	return flow.Step{
		Name:   "GitHub release",
		Writes: []string{fmt.Sprintf("GitHub %s %s on %s", kind, shown, o.GitHub.Repo())},
		Run: func(ctx context.Context) error {
			v := version()
			l, err := lock.Read(o.LockPath)
			if err != nil && !errors.Is(err, lock.ErrNoLock) {
				return err
			}
			var refs []Ref
			if l != nil {
				refs = Refs(l.Images, v)
			}
			if len(refs) == 0 && p.Decision.Line != flow.Main {
				return fmt.Errorf("no image in %s was pushed as %s: the Push stage records what it pushed; run it before publishing", o.LockPath, v)
			}
			pub, err := Publish(ctx, o.GitHub, GitHubRelease{Tag: tag(), Commit: p.Commit, Name: tag(), Body: Notes(notes, v, refs), Prerelease: pre})
			if err != nil {
				return err
			}
			verb := "updated"
			if pub.Created {
				verb = "created"
			}
			o.logf("%s GitHub %s %s: %s", verb, kind, tag(), pub.URL)
			return nil
		},
	}
}

// stage is a step running one of the pipeline's stages.
func stage(name string, run func(context.Context) error, writes ...string) flow.Step {
	return flow.Step{Name: name, Run: run, Writes: writes}
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

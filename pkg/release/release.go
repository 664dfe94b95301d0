// Package release is Hoist's release flow. Prepare decides the line of a
// run (verify, local, staging, main, a vX.Y.Z tag, rebuild), checks before anything
// is built everything the line will need (the preflight), and lays out the
// line's steps in order; lines.go holds the six lists, top to bottom. The
// steps share one typed state, Run, built once here.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/changelog"
	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/github"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/tags"
	"github.com/hoistci/hoist/pkg/version"
)

// Stages are the pipeline's stages, supplied by the caller (package
// pipeline's Run, or a test's recorder). Every field must be set.
type Stages struct {
	// UseVersion tells the stages which version to build, test and push:
	// the reserved X.Y.Z-staging.N on the staging and local lines.
	UseVersion func(version string)
	Images     func(ctx context.Context) error
	Test       func(ctx context.Context) error
	Scan       func(ctx context.Context) error
	DigestGate func(ctx context.Context) error
	Push       func(ctx context.Context) (*publish.PushResult, error)
	// PushDigests pushes the tested images by digest only, writing no tag
	// (a CI shard).
	PushDigests func(ctx context.Context) (*publish.PushResult, error)
	// PushTags writes the release's tags for the images of the lock, each
	// already pushed by digest (the join of CI shards).
	PushTags func(ctx context.Context) (*publish.PushResult, error)
	// PushRevision pushes the tested images of the lock (labelled with the
	// release X.Y.Z) under the tags of revision X.Y.Z-rN: the revision tag,
	// then the pointers that move forward (package tags).
	PushRevision func(ctx context.Context, revision string) (*publish.PushResult, error)
	// Promote promotes the first of candidates (X.Y.Z-staging.N, highest
	// first) that every image has, refusing any image whose staging tag no
	// longer names the digest tested says; dryRun plans and writes nothing.
	Promote func(ctx context.Context, candidates []string, tested func(ctx context.Context, staging string) (map[string]string, error), dryRun bool) (*publish.PromotePlan, error)
	// CheckRegistry proves the registry answers and accepts pushes with the
	// run's credentials, and names it.
	CheckRegistry func(ctx context.Context) (string, error)
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
	Ref string
	PR  bool // fork or pull request: build and test only
	// Event is the CI event (GITHUB_EVENT_NAME); with FreshBases it picks
	// the rebuild line (flow.DecideEvent).
	Event      string
	FreshBases bool
	CI         bool // a CI run: never the local line
	Branches   flow.Branches
	// Override is a staging version chosen by hand (X.Y.Z-staging.N),
	// reserved exactly instead of the next free N.
	Override string
	// Local allows the local line: outside CI, no GITHUB_REF, no registry
	// configured. Staging numbers are reserved in LocalReservations, a
	// private bare repository created on first use.
	Local             bool
	LocalReservations string
	// Output is $GITHUB_OUTPUT: the staging line appends version=… there.
	Output string
	// Pins say where the publishing lines write what they published.
	Pins PinsOptions
	// Shard, when set, makes the run one CI shard of the staging or
	// vX.Y.Z line; Join, when set, the join of such shards.
	Shard  *Shard
	Join   *Join
	Stages Stages
	// Progress receives a line per outcome; nil discards them.
	Progress io.Writer
}

// Plan is a checked release run, ready to run or to print.
type Plan struct {
	*Run
	Steps []flow.Step
	// Notes says what the run will not do and why, for the log.
	Notes []string
}

// Run is the state a line's steps share.
type Run struct {
	o        Options
	Decision flow.Decision
	Version  *semver.Version // as VERSION holds it
	Base     string          // X.Y.Z
	Commit   string
	notes    string // the changelog's text

	// Staging is the staging build: on the staging and local lines the one
	// reserved (or reused) for this commit, on the main line the one built
	// from this commit, promoted.
	Staging string
	// Revision is, on the rebuild line, the revision X.Y.Z-rN published.
	Revision string
	// reuse: the staging number (or revision) was reserved at this commit
	// by an earlier run, which this one completes.
	reuse bool
	// candidates are, on the main line, the staging builds of this commit,
	// highest first.
	candidates []string
	// planned is the main line's promotion as planned by the preflight.
	planned *publish.PromotePlan
	// Done, when set, is why the line has nothing left to do.
	Done string

	// What the steps did, for the summary.
	Registry string
	Pushed   *publish.PushResult
	Promoted *publish.PromotePlan
	Tagged   string
	Released string
}

func (r *Run) logf(format string, a ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "release: "+format+"\n", a...)
	}
}

// Prepare decides the line and runs its preflight: every check the line
// depends on, without writing anything shared (a clean checkout on the
// right branch or tag, VERSION and its changelog, the remote and the right
// to create tags there, the GitHub token's access, the registry and the
// right to push there, the staging build a main run promotes). Any failure
// is one line, and nothing has been built, tagged or pushed.
func Prepare(ctx context.Context, o Options) (*Plan, error) {
	vf, err := version.ReadFile(o.VersionFile)
	if err != nil {
		return nil, err
	}
	r := &Run{o: o, Version: vf.SemVer, Base: version.Base(vf.SemVer).String()}
	p := &Plan{Run: r}
	co, err := o.Git.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	r.Commit = co.SHA
	ref := o.Ref
	if ref == "" {
		if ref, err = localRef(ctx, o.Git, co); err != nil {
			return nil, err
		}
	}
	r.Decision = flow.DecideEvent(flow.Event{Ref: ref, PR: o.PR, Name: o.Event, FreshBases: o.FreshBases}, o.Branches)
	if r.Decision.Line != flow.Verify && r.Decision.Line != flow.Rebuild && o.Local && !o.CI && o.Ref == "" {
		r.Decision = flow.Decision{Line: flow.Local, Why: "no registry configured and not in CI: the whole pipeline against this checkout's local registry"}
	}
	line := r.Decision.Line
	if err := r.checkSharding(); err != nil {
		return nil, err
	}
	if line != flow.Verify && tags.KindOf(vf.SemVer) == tags.Revision {
		return nil, fmt.Errorf("VERSION %s has the form X.Y.Z-rN of a rebuild's revision tag, which only the rebuild line writes: write a release or another prerelease (e.g. %s-rc.1)", vf.SemVer, version.Base(vf.SemVer))
	}
	if line == flow.Verify {
		if o.Override != "" {
			return nil, fmt.Errorf("a version override (%s) is for the staging line, and this run builds and tests only (%s)", o.Override, r.Decision.Why)
		}
		p.Notes = append(p.Notes, "nothing is reserved, tagged or pushed: "+r.Decision.Why)
		p.Steps = r.steps()
		return p, nil
	}
	if line == flow.Local {
		if err := initLocalReservations(ctx, &r.o); err != nil {
			return nil, err
		}
		p.Notes = append(p.Notes, "nothing shared is written: staging numbers are reserved in "+r.o.Reserver.String()+", images go to this checkout's local registry")
	} else {
		if err := checkCheckout(ctx, o.Git, co, r.Decision, o.BuildDir, vf.SemVer); err != nil {
			return nil, err
		}
		if o.GitHub == nil {
			p.Notes = append(p.Notes, "no GitHub release: release.github is not set in hoist.yaml")
		}
		if r.notes, err = changelog.Read(o.Changelogs, vf.SemVer); err != nil {
			return nil, err
		}
	}
	if err := r.preflight(ctx); err != nil {
		return nil, err
	}
	if err := r.checkReserved(); err != nil {
		return nil, err
	}
	p.Steps = r.steps()
	return p, nil
}

// preflight checks, line by line, what the steps will need, reading only.
func (r *Run) preflight(ctx context.Context) error {
	o := r.o
	line := r.Decision.Line
	// The remote: it answers, and would take a new tag (every pushing line
	// but the vX.Y.Z one writes a tag).
	if line != flow.Release {
		if g, ok := o.Reserver.(*gitref.Git); ok {
			if err := g.CheckRemote(ctx); err != nil {
				return err
			}
			if err := g.CheckPush(ctx); err != nil {
				return err
			}
		} else if _, err := o.Reserver.Tags(ctx, "hoist-preflight-"); err != nil {
			return fmt.Errorf("reading tags on %s: %w", o.Reserver, err)
		}
	}
	// GitHub: the token can write releases (and refs, for reserve: github).
	if o.GitHub != nil && line != flow.Local {
		if err := o.GitHub.CheckPush(ctx); err != nil {
			return err
		}
	}
	// The registry: it answers and takes pushes with these credentials.
	where, err := o.Stages.CheckRegistry(ctx)
	if err != nil {
		return err
	}
	r.Registry = where
	switch line {
	case flow.Staging, flow.Local:
		return r.chooseStaging(ctx)
	case flow.Main:
		return r.choosePromotion(ctx)
	case flow.Rebuild:
		return r.chooseRevision(ctx)
	case flow.Release:
		tv, err := semver.StrictNewVersion(strings.TrimPrefix(r.Decision.Tag, "v"))
		if err != nil || !tv.Equal(r.Version) || tv.Prerelease() != r.Version.Prerelease() {
			return fmt.Errorf("tag %s does not match VERSION %s: commit the VERSION bump first, then tag that commit", r.Decision.Tag, version.Format(r.Version, false))
		}
	}
	return nil
}

// chooseStaging picks the staging version of this run: the override, else
// the number an earlier run reserved at this very commit (its run was
// killed, failed or is run again: this one completes it), else the next
// free one, reserved atomically by the Reserve step.
func (r *Run) chooseStaging(ctx context.Context) error {
	base := semver.MustParse(r.Base)
	if ov := r.o.Override; ov != "" {
		b, _, ok := version.ParseStaging(ov)
		if !ok {
			return fmt.Errorf("version override %q is not X.Y.Z-%s.N: write e.g. %s-%s.99", ov, version.Channel, r.Base, version.Channel)
		}
		if !b.Equal(base) {
			return fmt.Errorf("version override %s is for %s but VERSION is %s: override within %s-%s.N, or bump VERSION", ov, b, r.Version, r.Base, version.Channel)
		}
		exists, err := gitref.Check(ctx, r.o.Reserver, ov, r.Commit)
		if err != nil {
			return fmt.Errorf("version override: %w", err)
		}
		r.Staging, r.reuse = ov, exists
		return nil
	}
	builds, err := gitref.StagingBuilds(ctx, r.o.Reserver, base)
	if err != nil {
		return err
	}
	for _, b := range builds {
		if b.SHA == r.Commit {
			r.Staging, r.reuse = b.Tag, true
			return nil
		}
	}
	next := uint64(version.FirstStaging)
	if len(builds) > 0 {
		next = builds[0].N + 1
	}
	r.Staging = version.Staging(base, next)
	return nil
}

// choosePromotion finds the staging build of this commit and plans its
// promotion: the highest N whose reservation tag points at HEAD and that
// every image has in the registry. A main branch moved to a commit with no
// staging build is refused here, before any write.
func (r *Run) choosePromotion(ctx context.Context) error {
	if _, err := gitref.Check(ctx, r.o.Reserver, r.Base, r.Commit); err != nil {
		return fmt.Errorf("promoting %s: %w", r.Base, err)
	}
	builds, err := gitref.StagingBuilds(ctx, r.o.Reserver, semver.MustParse(r.Base))
	if err != nil {
		return err
	}
	for _, b := range builds {
		if b.SHA == r.Commit {
			r.candidates = append(r.candidates, b.Tag)
		}
	}
	if len(r.candidates) == 0 {
		var at []string
		for _, b := range builds {
			at = append(at, b.Tag+" at "+short(b.SHA))
		}
		have := "there is none"
		if len(at) > 0 {
			have = "there are " + strings.Join(at, ", ")
		}
		return fmt.Errorf("commit %s has no staging build of %s (%s): promote only a commit the staging line built and tested: merge staging into %s, or push this commit to %s first", short(r.Commit), r.Base, have, r.Decision.Branch, r.o.Branches.Staging)
	}
	plan, err := r.o.Stages.Promote(ctx, r.candidates, r.tested, true)
	if errors.Is(err, publish.ErrRevised) && r.tagAtHead(ctx) {
		// Promoted, tagged, and since rebuilt as revisions: the release is
		// out and X.Y.Z names its newest revision.
		r.planned, r.Done = nil, fmt.Sprintf("already promoted, and rebuilt since as revisions of %s: nothing to do", r.Base)
		return nil
	}
	if err != nil {
		return err
	}
	r.planned, r.Staging = plan, plan.Staging
	if plan.Kept() && r.tagAtHead(ctx) {
		r.Done = "already promoted: nothing to do"
	}
	return nil
}

// tested is the proof a promotion copies: the digests staging was tested
// and pushed with.
func (r *Run) tested(ctx context.Context, staging string) (map[string]string, error) {
	return Tested(ctx, r.recorder(), r.o.LockPath, staging)
}

// tagAtHead reports whether the release tag X.Y.Z already points here.
func (r *Run) tagAtHead(ctx context.Context) bool {
	exists, err := gitref.Check(ctx, r.o.Reserver, r.Base, r.Commit)
	return err == nil && exists
}

// initLocalReservations points the local line's reservations at a private
// bare repository under the build folder, creating it on first use.
func initLocalReservations(ctx context.Context, o *Options) error {
	bare := o.LocalReservations
	if _, err := os.Stat(filepath.Join(bare, "HEAD")); err != nil {
		if out, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
			return fmt.Errorf("creating the local reservation repository %s: %v: %s", bare, err, out)
		}
	}
	o.Reserver = &gitref.Git{Dir: o.Git.Dir, Remote: bare}
	o.GitHub = nil
	return nil
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

func checkCheckout(ctx context.Context, g *gitref.Git, co *gitref.Checkout, d flow.Decision, buildDir string, v *semver.Version) error {
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
	case flow.Rebuild:
		_, err := releaseTagAtHead(ctx, g, co, v)
		return err
	}
	return nil
}

// releaseTagAtHead is the tag marking HEAD as the release VERSION names:
// X.Y.Z (written by the main line) or vX.Y.Z (a release tag). The rebuild
// line rebuilds only a released commit.
func releaseTagAtHead(ctx context.Context, g *gitref.Git, co *gitref.Checkout, v *semver.Version) (string, error) {
	if v.Prerelease() != "" {
		return "", fmt.Errorf("VERSION is %s, a prerelease: the rebuild line rebuilds a release; check out the newest X.Y.Z (or vX.Y.Z) tag", v)
	}
	tags, err := g.TagsAtHead(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		if t == v.String() || t == "v"+v.String() {
			return t, nil
		}
	}
	return "", fmt.Errorf("HEAD %s has no release tag %s (or v%s): the rebuild line rebuilds a released commit: check out the newest release tag (git checkout %s)", short(co.SHA), v, v, v)
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

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

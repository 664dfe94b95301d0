package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/bump"
	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/github"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/release"
)

// Environment variables of the release targets.
const (
	envGitHubToken = "HOIST_GITHUB_TOKEN"     // token for GitHub releases and the github reserve backend; never printed
	envCIToken     = "GITHUB_TOKEN"           // used when HOIST_GITHUB_TOKEN is not set
	envOverride    = "HOIST_VERSION_OVERRIDE" // reserve exactly this X.Y.Z-staging.N
	envRef         = "GITHUB_REF"             // the ref the run is for; else read from git
	envOutput      = "GITHUB_OUTPUT"          // Reserve appends version=… here when set
)

// Bump moves VERSION one step (major, minor, patch, rc, beta, alpha, pre, or an explicit X.Y.Z) and creates docs/CHANGELOGS/X.Y.Z.md when missing.
//
// The file keeps its style (a leading v or not, its line ending). rc, beta
// and alpha count up (1.2.0-rc.1 → 1.2.0-rc.2) or open a prerelease of the
// next patch (1.2.0 → 1.2.1-rc.1); pre releases it (1.2.0-rc.2 → 1.2.0).
// An invalid VERSION, a step that would go backwards and a number that
// would overflow are refused with the reason. HOIST_DRY_RUN=1 writes nothing.
func Bump(ctx context.Context, step string) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	r, err := bump.Apply(s.cfg.Path(s.cfg.VersionFile), s.cfg.Path(s.cfg.Release.Changelogs), strings.TrimSpace(step), s.dryRun)
	if err != nil {
		return err
	}
	note := "exists"
	switch {
	case s.dryRun && !r.ChangelogExists:
		note = "would be created"
	case r.ChangelogCreated:
		note = "created: write the notes there as work lands"
	}
	prefix := ""
	if s.dryRun {
		prefix = "dry run, nothing written: "
	}
	fmt.Fprintf(s.out, "%sVERSION %s → %s; changelog %s %s\n", prefix, r.From, r.To, s.rel(r.Changelog), note)
	return nil
}

// Reserve reserves the next X.Y.Z-staging.N for HEAD by creating its git tag on the remote, atomically; HOIST_VERSION_OVERRIDE reserves exactly that version.
//
// The tag is created with a non-forced push (or GitHub's Git refs API with
// release.reserve: github); when it exists, the next N is tried, so runs
// racing each other never share a number. An override is accepted only when
// its tag is absent or already at this commit. The version is printed, and
// appended to $GITHUB_OUTPUT as version=… when that is set.
func Reserve(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	if s.pr {
		return fmt.Errorf("reserve: fork/pull-request mode never creates tags: a reservation belongs to the staging line")
	}
	o, err := s.releaseOptions()
	if err != nil {
		return err
	}
	r, err := release.Reserve(ctx, o, s.dryRun)
	if err != nil {
		return err
	}
	if s.dryRun {
		fmt.Fprintf(s.out, "dry run, nothing written: would reserve %s on %s\n", r.Next, o.Reserver)
		return nil
	}
	fmt.Fprintf(s.out, "reserved %s at %s on %s\n", r.Tag, r.SHA, o.Reserver)
	return githubOutput("version", r.Tag)
}

// Release runs the release line of this checkout: staging branch → reserve, build, test, push, prerelease; main → promote, tag X.Y.Z, release; vX.Y.Z tag → build, test, push, release; other refs build and test only; outside CI with no registry configured, the whole pipeline against a local registry.
//
// The line comes from GITHUB_REF (else from git); pull requests and forks
// (HOIST_PR=1) never push. Everything the line needs is checked first (clean
// checkout, remote, credentials, VERSION, changelog, free tags); stages then
// run in order and the first failure stops the run, so nothing is pushed
// unless every image passed. HOIST_DRY_RUN=1 prints each step and the tags
// it would write.
//
// The local line (not in CI, no GITHUB_REF, no registry.host) is the same
// staging build and promotion on this machine: staging numbers are reserved
// in build/hoist/reservations.git, images go to the local registry on
// 127.0.0.1, and nothing shared (remotes, GitHub) is written.
func Release(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	o, err := s.releaseOptions()
	if err != nil {
		return err
	}
	o.Stages = s.stages()
	if err := s.localLine(ctx, &o); err != nil {
		return err
	}
	o.SetVersion = func(v string) error { return os.Setenv(envVersion, v) }
	p, err := release.Prepare(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "release: %s line (%s), VERSION %s, commit %.12s\n", p.Decision.Line, p.Decision.Why, p.Version, p.Commit)
	for _, n := range p.Notes {
		fmt.Fprintln(s.out, "release: "+n)
	}
	return flow.Run(ctx, s.out, p.Steps, s.dryRun)
}

// stages wires the pipeline's stages into the release flow. A nil stage
// is not in this build yet; a run that reaches it stops there.
func (s *session) stages() release.Stages {
	return release.Stages{
		Images:     func(ctx context.Context) error { _, err := s.images(ctx); return err },
		Test:       func(ctx context.Context) error { return s.testStage(ctx, false) },
		Scan:       Scan,
		DigestGate: DigestGate,
		Push:       Push,
		Promote:    Promote,
	}
}

// localLine switches a run to the local line when nothing says it is for
// a shared line: not in CI, no GITHUB_REF, no registry configured (so the
// local registry is used). Staging numbers are then reserved in a private
// bare repository under the build folder, never on the checkout's remotes.
func (s *session) localLine(ctx context.Context, o *release.Options) error {
	if s.ci || s.pr || os.Getenv(envRef) != "" || s.cfg.Registry.Host != "" {
		return nil
	}
	bare := filepath.Join(s.cfg.Path(s.cfg.BuildDir), "reservations.git")
	if _, err := os.Stat(filepath.Join(bare, "HEAD")); err != nil {
		if out, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
			return fmt.Errorf("creating the local reservation repository %s: %v: %s", bare, err, out)
		}
	}
	o.Local = true
	o.Reserver = &gitref.Git{Dir: s.cfg.Dir, Remote: bare}
	o.GitHub = nil
	promote := o.Stages.Promote
	o.Stages.Promote = func(ctx context.Context) error {
		err := promote(ctx)
		if errors.Is(err, publish.ErrTagConflict) {
			// Run again after a release: this X.Y.Z is out with other bytes
			// and is never rewritten. The staging build is pushed; say so.
			fmt.Fprintf(s.out, "release: not promoted: %v\n", err)
			fmt.Fprintln(s.out, "release: the staging build is pushed; to release it, bump VERSION (go run mage.go bump patch) and run again")
			return nil
		}
		return err
	}
	return nil
}

// releaseOptions reads the release settings: config, token and ref.
func (s *session) releaseOptions() (release.Options, error) {
	rc := s.cfg.Release
	g := &gitref.Git{Dir: s.cfg.Dir, Remote: rc.Remote}
	o := release.Options{
		VersionFile: s.cfg.Path(s.cfg.VersionFile),
		Changelogs:  s.cfg.Path(rc.Changelogs),
		LockPath:    s.lockPath,
		BuildDir:    s.cfg.BuildDir,
		Git:         g,
		Reserver:    g,
		Ref:         os.Getenv(envRef),
		PR:          s.pr,
		Branches:    flow.Branches{Staging: rc.StagingBranch, Main: rc.MainBranch},
		Override:    strings.TrimSpace(os.Getenv(envOverride)),
		Progress:    s.out,
	}
	if rc.GitHub != "" {
		token := os.Getenv(envGitHubToken)
		if token == "" {
			token = os.Getenv(envCIToken)
		}
		c, err := github.New(rc.GitHubAPI, rc.GitHub, token)
		if err != nil {
			return o, err
		}
		o.GitHub = c
		if rc.Reserve == "github" {
			if token == "" {
				return o, fmt.Errorf("release.reserve is github but no token is set: set %s or %s (contents: write)", envGitHubToken, envCIToken)
			}
			o.Reserver = &gitref.GitHub{Client: c}
		}
	}
	return o, nil
}

// githubOutput appends name=value to $GITHUB_OUTPUT when it is set.
func githubOutput(name, value string) error {
	path := os.Getenv(envOutput)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", envOutput, err)
	}
	_, err = fmt.Fprintf(f, "%s=%s\n", name, value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", envOutput, err)
	}
	return nil
}

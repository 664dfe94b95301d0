package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/github"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/release"
)

// Release runs the release line of this checkout (package release decides
// which and lists its steps) on this run's stages, then prints what was
// written.
func (r *Run) Release(ctx context.Context) error { return r.release(ctx, modeLine) }

// Shard runs this checkout's staging or vX.Y.Z line as CI shard
// HOIST_SHARD of the plan, for the images HOIST_IMAGES names: built,
// tested, scanned, pushed by digest only, and its lock kept as the
// shard's fragment for the join.
func (r *Run) Shard(ctx context.Context) error { return r.release(ctx, modeShard) }

// Join joins the shards' fragments into one release and finishes the
// line: every tag of every image, last, once every image of the plan is
// in.
func (r *Run) Join(ctx context.Context) error { return r.release(ctx, modeJoin) }

// mode is what part of a line a run is.
type mode int

const (
	modeLine  mode = iota // the whole line on this machine
	modeShard             // one CI shard
	modeJoin              // the join of the shards
)

func (r *Run) release(ctx context.Context, m mode) error {
	o, err := r.releaseOptions()
	if err != nil {
		return err
	}
	if err := r.shardOptions(ctx, &o, m); err != nil {
		return err
	}
	p, err := release.Prepare(ctx, o)
	if err != nil {
		return err
	}
	if p.Decision.Line == flow.Rebuild {
		// The rebuild line exists to pick up fresh bases, however it was
		// started.
		r.Set.Rebuild = true
	}
	r.logf("release: %s line (%s), VERSION %s, commit %.12s", p.Decision.Line, p.Decision.Why, p.Version, p.Commit)
	for _, n := range p.Notes {
		r.logf("release: %s", n)
	}
	for _, s := range p.Steps {
		r.prestage = r.prestage || (s.Name == "Push" && !r.Set.PR && !r.Set.DryRun)
	}
	err = flow.Run(ctx, r.Out, p.Steps, r.Set.DryRun)
	r.stopAhead()
	if r.Set.DryRun {
		return err
	}
	sum := p.Summary()
	if note := r.localRegistryNote(ctx); note != "" {
		sum = append(sum, note)
	}
	for _, l := range sum {
		r.logf("release: %s", l)
	}
	if serr := r.stepSummary(p, sum, err); err == nil {
		err = serr
	}
	return err
}

// stepSummary appends the run's summary to the CI job's summary file, when
// there is one.
func (r *Run) stepSummary(p *release.Plan, sum []string, runErr error) error {
	if r.Set.StepSummary == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Release: %s line, commit %.12s\n\n", p.Decision.Line, p.Commit)
	if runErr != nil {
		fmt.Fprintf(&b, "**Stopped:** %s\n\n", runErr)
	}
	b.WriteString("```\n" + strings.Join(sum, "\n") + "\n```\n")
	f, err := os.OpenFile(r.Set.StepSummary, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("writing the job summary: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the job summary: %w", err)
	}
	return nil
}

// Reserve reserves the staging version of HEAD (the Reserve target).
func (r *Run) Reserve(ctx context.Context) (*release.Reservation, string, error) {
	if r.Set.PR {
		return nil, "", fmt.Errorf("reserve: fork/pull-request mode never creates tags: a reservation belongs to the staging line")
	}
	o, err := r.releaseOptions()
	if err != nil {
		return nil, "", err
	}
	res, err := release.Reserve(ctx, o, r.Set.DryRun)
	return res, o.Reserver.String(), err
}

// releaseOptions are the release flow's inputs from the config and the
// settings, with this run's stages.
func (r *Run) releaseOptions() (release.Options, error) {
	rc := r.Cfg.Release
	g := &gitref.Git{Dir: r.Cfg.Dir, Remote: rc.Remote}
	o := release.Options{
		VersionFile:       r.Cfg.Path(r.Cfg.VersionFile),
		Changelogs:        r.Cfg.Path(rc.Changelogs),
		LockPath:          r.LockPath,
		BuildDir:          r.Cfg.BuildDir,
		Git:               g,
		Reserver:          g,
		Ref:               r.Set.Ref,
		PR:                r.Set.PR,
		Event:             r.Set.Event,
		FreshBases:        r.Set.Rebuild,
		CI:                r.Set.CI,
		Branches:          flow.Branches{Staging: rc.StagingBranch, Main: rc.MainBranch},
		Override:          r.Set.VersionOverride,
		Local:             r.Local(),
		LocalReservations: filepath.Join(r.BuildDir(), "reservations.git"),
		Output:            r.Set.Output,
		Pins:              r.pinsOptions(),
		Progress:          r.Out,
		Stages:            r.stages(),
	}
	if rc.GitHub != "" {
		token := string(r.Set.GitHubToken)
		c, err := github.New(rc.GitHubAPI, rc.GitHub, token)
		if err != nil {
			return o, err
		}
		o.GitHub = c
		if rc.Reserve == "github" {
			if token == "" {
				return o, fmt.Errorf("release.reserve is github but no token is set: set HOIST_GITHUB_TOKEN or GITHUB_TOKEN (contents: write)")
			}
			o.Reserver = &gitref.GitHub{Client: c}
		}
	}
	return o, nil
}

// stages are this run's stages as the release flow calls them.
func (r *Run) stages() release.Stages {
	return release.Stages{
		UseVersion: func(v string) { r.Version = v },
		Images:     func(ctx context.Context) error { _, err := r.Images(ctx); return err },
		// Scan starts beside Test and is collected at its own step.
		// So do the blobs on a line that pushes, collected before the push.
		Test: func(ctx context.Context) error {
			r.scanAhead(ctx)
			r.pushAhead(ctx)
			return r.Test(ctx, false)
		},
		Scan:        r.scanStep,
		DigestGate:  r.DigestGate,
		Push:        r.Push,
		PushDigests: r.PushDigests,
		PushTags:    r.PushTags,
		PushRevision: func(ctx context.Context, revision string) (*publish.PushResult, error) {
			v, err := semver.StrictNewVersion(revision)
			if err != nil {
				return nil, fmt.Errorf("pushing revision %q: %w", revision, err)
			}
			return r.push(ctx, v)
		},
		Promote: func(ctx context.Context, cands []string, tested func(context.Context, string) (map[string]string, error), dryRun bool) (*publish.PromotePlan, error) {
			return r.promote(ctx, cands, tested, dryRun)
		},
		CheckRegistry: r.CheckRegistry,
	}
}

// CheckRegistry proves the registry answers and takes pushes with the
// run's credentials: one session (ping and token) and one cancelled upload.
func (r *Run) CheckRegistry(ctx context.Context) (string, error) {
	c, prefix, err := r.Registry(ctx)
	if err != nil {
		return "", err
	}
	names, err := r.ImageNames(ctx)
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return prefix, nil
	}
	to := prefix
	if r.Cfg.Registry.PromoteTo != "" {
		to = r.Cfg.Registry.PromoteTo
	}
	var repos []name.Repository
	for _, dest := range []string{prefix, to} {
		repo, err := c.Repository(dest + "/" + names[0])
		if err != nil {
			return "", err
		}
		repos = append(repos, repo)
	}
	for _, repo := range repos {
		s, err := c.Session(ctx, repo.Registry, nil, []name.Repository{repo})
		if err != nil {
			return "", err
		}
		if err := s.CheckPush(ctx, repo); err != nil {
			return "", err
		}
		if to == prefix {
			break
		}
	}
	return prefix, nil
}

// pinsOptions are hoist.yaml's pins: pins.json in the build folder always,
// the kustomization and the GitOps branch when configured.
func (r *Run) pinsOptions() release.PinsOptions {
	p := r.Cfg.Pins
	o := release.PinsOptions{File: filepath.Join(r.BuildDir(), "pins.json"),
		Remote: p.CommitTo.Remote, Branch: p.CommitTo.Branch, Path: p.CommitTo.Path}
	if p.Kustomization != "" {
		o.Kustomization = r.Cfg.Path(p.Kustomization)
	}
	if o.Path == "" {
		o.Path = r.Cfg.Project
	}
	return o
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/images"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/release"
)

// ErrNoRegistryInCI refuses a pushing stage in CI when no registry is
// configured: the local registry would take the images and the run would
// "succeed" having published nothing.
var ErrNoRegistryInCI = errors.New("no registry is configured and this is a CI run")

// Local reports whether the run pushes to the checkout's own local
// registry (no registry configured).
func (r *Run) Local() bool { return r.Cfg.Registry.Host == "" }

// Registry returns the client and the HOST/REPOSITORY prefix images go to,
// once per run, starting the checkout's local registry when none is
// configured (never in CI).
func (r *Run) Registry(ctx context.Context) (*registry.Client, string, error) {
	if r.reg != nil {
		return r.reg, r.prefix, nil
	}
	host := r.Cfg.Registry.Host
	if host == "" {
		if r.Set.CI {
			return nil, "", fmt.Errorf("%w: set HOIST_REGISTRY=HOST/REPOSITORY (or registry.host in %s) and its credentials; the local registry is for runs outside CI", ErrNoRegistryInCI, r.Cfg.File)
		}
		srv, err := localregistry.Ensure(ctx, localregistry.Options{Dir: r.LocalRegistryDir(), Port: r.Cfg.Registry.LocalPort, Programs: r.toolsDir()})
		if err != nil {
			return nil, "", err
		}
		host = srv.Host
	}
	c, err := registry.New(registry.Options{
		Host:     host,
		Username: r.Set.RegistryUser,
		Password: registry.Secret(r.Set.RegistryPassword),
		Insecure: r.Cfg.Registry.Insecure,
	})
	if err != nil {
		return nil, "", err
	}
	r.reg, r.prefix = c, r.prefixOn(host)
	return r.reg, r.prefix, nil
}

// prefixOn is HOST/REPOSITORY, where the run's images go on host
// (registry.repository, default the project).
func (r *Run) prefixOn(host string) string {
	repository := r.Cfg.Registry.Repository
	if repository == "" {
		repository = r.Cfg.Project
	}
	return strings.TrimSuffix(host+"/"+repository, "/")
}

// Push pushes the tested images of the lock: blobs and manifests by digest,
// tags last, with the tag policy of the run's version.
func (r *Run) Push(ctx context.Context) (*publish.PushResult, error) {
	return r.push(ctx, nil)
}

// push is Push with the tags of version as (a rebuild's revision X.Y.Z-rN
// of the planned X.Y.Z) instead of the plan's version, when set.
func (r *Run) push(ctx context.Context, as *semver.Version) (*publish.PushResult, error) {
	return r.pushWith(ctx, as, false)
}

// pushWith is push, by digest only (no tag) when digestOnly.
func (r *Run) pushWith(ctx context.Context, as *semver.Version, digestOnly bool) (*publish.PushResult, error) {
	// The blobs started beside Test share the push cache: done first.
	r.awaitPrestage()
	if r.Set.PR {
		return nil, errors.New("push: fork/pull-request mode never pushes: the images were built and tested locally")
	}
	c, prefix, err := r.Registry(ctx)
	if err != nil {
		return nil, err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return nil, err
	}
	// The lock is a file: trust it only as far as it matches the plan made
	// now from hoist.yaml, VERSION and HEAD, and the engine's images carry
	// the plan's labels.
	p, err := r.Plan(ctx)
	if err != nil {
		return nil, err
	}
	l, err := lock.Read(r.LockPath)
	if err != nil {
		return nil, err
	}
	if err := gate.AgainstPlan(p, l, r.LockPath, r.Set.Images); err != nil {
		return nil, err
	}
	var pushing []string
	for _, li := range l.Images {
		pushing = append(pushing, li.Name)
	}
	if err := gate.EngineLabels(ctx, e, only(p, pushing)); err != nil {
		return nil, err
	}
	o := publish.PushOptions{LockPath: r.LockPath, Prefix: prefix, WorkDir: filepath.Dir(r.LockPath), Progress: r.Out, Parallel: r.Parallel(), DryRun: r.Set.DryRun, Version: p.Version.SemVer, DigestOnly: digestOnly}
	if as != nil {
		o.Version = as
	}
	var record func(context.Context) error
	if o.StageProofs, o.Attach, record, err = r.attacher(ctx, c, e, p); err != nil {
		return nil, err
	}
	res, err := publish.Push(ctx, c, e, o)
	if record != nil {
		// What was attached is recorded even when a later step failed.
		err = errors.Join(err, record(context.WithoutCancel(ctx)))
	}
	return res, err
}

// DigestGate proves the images about to be pushed are the tested ones (and
// pushed ones what the registry serves); with the settings' GateRebuild it
// rebuilds from cache and compares instead.
func (r *Run) DigestGate(ctx context.Context) error {
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	if r.Set.GateRebuild {
		n, err := gate.RebuiltLock(ctx, r.LockPath, filepath.Dir(r.LockPath), func(ctx context.Context, lockPath string) error {
			p, err := r.Plan(ctx)
			if err != nil {
				return err
			}
			b, o, err := r.builder(ctx, e)
			if err != nil {
				return err
			}
			defer b.Close()
			// From cache: a rebuild of the tested inputs, never fresh bases.
			o.Rebuild = false
			_, err = images.Build(ctx, e, b, p, lockPath, o)
			return err
		})
		if err == nil {
			r.logf("digest gate: %d images rebuilt from cache are the tested ones", n)
		}
		return err
	}
	var c *registry.Client
	if !r.Set.PR {
		if c, _, err = r.Registry(ctx); err != nil {
			return err
		}
	}
	prefix := ""
	if c != nil {
		_, prefix, _ = r.Registry(ctx)
	}
	n, err := gate.Lock(ctx, r.LockPath, e, c, prefix)
	if err == nil {
		r.logf("digest gate: %d checks passed: every image is the tested one", n)
	}
	return err
}

// Promote copies the staging build of VERSION's X.Y.Z that every image has
// (the write-up's N: the minimum over images of each one's highest) to
// X.Y.Z and its floating tags by digest, once the staging tags are proven
// to name the tested digests (release.Tested).
func (r *Run) Promote(ctx context.Context) (*publish.PromotePlan, error) {
	g := &gitref.Git{Dir: r.Cfg.Dir, Remote: r.Cfg.Release.Remote}
	if r.Local() {
		g.Remote = filepath.Join(r.BuildDir(), "reservations.git")
	}
	return r.promote(ctx, nil, func(ctx context.Context, staging string) (map[string]string, error) {
		return release.Tested(ctx, g, r.LockPath, staging)
	}, false)
}

func (r *Run) promote(ctx context.Context, staging []string, tested func(context.Context, string) (map[string]string, error), dryRun bool) (*publish.PromotePlan, error) {
	if r.Set.PR {
		return nil, errors.New("promote: fork/pull-request mode never pushes")
	}
	p, err := r.Plan(ctx)
	if err != nil {
		return nil, err
	}
	c, from, err := r.Registry(ctx)
	if err != nil {
		return nil, err
	}
	if r.Set.VerifyKey != "" || r.Cfg.Attest.PublicKey != "" || r.Cfg.Attest.Keyless != nil {
		// With a key or a keyless identity to check against, the staging build's proofs must
		// verify before anything is copied (the dry run included, so the
		// main line's preflight refuses early).
		if tested, err = r.provenTested(c, from, tested); err != nil {
			return nil, err
		}
	}
	o := publish.PromoteOptions{From: from, To: r.Cfg.Registry.PromoteTo, Base: p.Version.Base(), Staging: staging, Tested: tested, DryRun: r.Set.DryRun || dryRun, Parallel: r.Parallel(), LockPath: r.LockPath}
	for _, img := range p.Images {
		o.Images = append(o.Images, img.Name)
	}
	return publish.Promote(ctx, c, o)
}

// provenTested wraps tested: the digests it proves were tested must also
// carry the proofs attest.require names, signed by the configured key and
// saying the image passed; any image short of that stops the promotion
// before a write, one line per problem.
func (r *Run) provenTested(c *registry.Client, from string, tested func(context.Context, string) (map[string]string, error)) (func(context.Context, string) (map[string]string, error), error) {
	v, err := r.verifier()
	if err != nil {
		return nil, err
	}
	policy := attest.Policy{Require: r.Cfg.Attest.Require}
	return func(ctx context.Context, staging string) (map[string]string, error) {
		digests, err := tested(ctx, staging)
		if err != nil {
			return digests, err
		}
		names := make([]string, 0, len(digests))
		for n := range digests {
			names = append(names, n)
		}
		slices.Sort(names)
		var problems []string
		for _, n := range names {
			d, err := name.NewDigest(from + "/" + n + "@" + digests[n])
			if err != nil {
				return nil, fmt.Errorf("promote: %s: %w", n, err)
			}
			rep, err := attest.Verify(ctx, c.Options(ctx), d, v, policy)
			if err != nil {
				return nil, c.Explain("verifying the proofs of "+d.String(), d.RegistryStr(), err)
			}
			for _, p := range rep.Problems {
				problems = append(problems, n+": "+p)
			}
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("promote: refusing %s, its proofs do not hold: %w: %s", staging, attest.ErrRefused, strings.Join(problems, "; "))
		}
		return digests, nil
	}, nil
}

// only is p limited to the named images.
func only(p *plan.Plan, names []string) *plan.Plan {
	q := *p
	q.Images = nil
	for _, img := range p.Images {
		if slices.Contains(names, img.Name) {
			q.Images = append(q.Images, img)
		}
	}
	return &q
}

// ImageNames are the planned images' names.
func (r *Run) ImageNames(ctx context.Context) ([]string, error) {
	p, err := r.Plan(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, img := range p.Images {
		out = append(out, img.Name)
	}
	return out, nil
}

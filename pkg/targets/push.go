package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/images"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/version"
)

// Environment variables of the registry targets.
const (
	envRegistryUser = "HOIST_REGISTRY_USERNAME" // registry user (CI); else Docker's config and credential helpers
	envRegistryPass = "HOIST_REGISTRY_PASSWORD" // registry password or token; never printed
	envGateRebuild  = "HOIST_GATE_REBUILD"      // 1: DigestGate rebuilds from cache and compares (separate test and push machines)
)

// Push pushes the tested images in the lock file by digest, writing tags last.
//
// Blobs and manifests go to the registry by digest first; tags are
// written only once everything is there.
//
// Only images that passed Test, unchanged since, are pushed; anything else
// stops the whole push. Tags follow the version (HOIST_VERSION, else the
// lock's): X.Y.Z plus X.Y, X and latest for a release; the tag alone for a
// prerelease; X.Y.Z-staging.N plus staging for the staging line. Immutable
// tags are never rewritten; floating ones move only forward. With no
// registry configured, a local one on 127.0.0.1 is started on demand.
// Credentials: HOIST_REGISTRY_USERNAME/HOIST_REGISTRY_PASSWORD, else docker login.
func Push(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	if s.pr {
		return errors.New("push: fork/pull-request mode never pushes: the images were built and tested locally")
	}
	c, prefix, err := s.registry(ctx, s.cfg.Registry.Repository)
	if err != nil {
		return err
	}
	e, err := s.engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	o := publish.PushOptions{LockPath: s.lockPath, Prefix: prefix, WorkDir: filepath.Dir(s.lockPath), Progress: s.out, Parallel: s.parallel(), DryRun: s.dryRun}
	if v := os.Getenv(envVersion); v != "" {
		pv, err := version.Parse(v)
		if err != nil {
			return fmt.Errorf("%s: %w", envVersion, err)
		}
		o.Version = pv.SemVer
	}
	_, err = publish.Push(ctx, c, e, o)
	return err
}

// DigestGate proves the images about to be pushed are bit for bit the tested ones.
//
// It also proves that images already pushed are what the registry serves.
//
// For each image in the lock file it compares the config digest and layer
// diff_ids recorded at test time with the engine's image, and, for each
// reference already pushed, with the manifest and config the registry serves.
// A mismatch names the image and the layers that differ. With
// HOIST_GATE_REBUILD=1 (separate test and push machines) it rebuilds every
// image from the build cache instead and compares the result.
func DigestGate(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	e, err := s.engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	if truthy(os.Getenv(envGateRebuild)) {
		n, err := gate.RebuiltLock(ctx, s.lockPath, filepath.Dir(s.lockPath), func(ctx context.Context, lockPath string) error {
			p, err := s.plan(ctx)
			if err != nil {
				return err
			}
			b, err := e.Builder(ctx, os.Getenv(envBuildkit))
			if err != nil {
				return err
			}
			defer b.Close()
			_, err = images.Build(ctx, e, b, p, lockPath, images.Options{Parallel: s.parallel(), PR: s.pr, Only: s.only()})
			return err
		})
		if err == nil {
			fmt.Fprintf(s.out, "digest gate: %d images rebuilt from cache are the tested ones\n", n)
		}
		return err
	}
	var c *registry.Client
	if !s.pr {
		if c, _, err = s.registry(ctx, s.cfg.Registry.Repository); err != nil {
			return err
		}
	}
	n, err := gate.Lock(ctx, s.lockPath, e, c)
	if err == nil {
		fmt.Fprintf(s.out, "digest gate: %d checks passed: every image is the tested one\n", n)
	}
	return err
}

// Promote copies X.Y.Z-staging.M to X.Y.Z and its floating tags by digest, no rebuild.
//
// X.Y.Z is VERSION's; HOIST_DRY_RUN=1 prints the plan.
//
// M is the minimum over images of each image's highest X.Y.Z-staging.N. In
// one repository only manifests are written; into registry.promote_to blobs
// are mounted (copied where refused) and referrers travel along. It refuses
// when X.Y.Z already names another digest.
func Promote(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	if s.pr {
		return errors.New("promote: fork/pull-request mode never pushes")
	}
	p, err := s.plan(ctx)
	if err != nil {
		return err
	}
	c, from, err := s.registry(ctx, s.cfg.Registry.Repository)
	if err != nil {
		return err
	}
	to := s.cfg.Registry.PromoteTo
	o := publish.PromoteOptions{From: from, To: to, Base: p.Version.Base(), DryRun: s.dryRun, Parallel: s.parallel(), LockPath: s.lockPath}
	for _, img := range p.Images {
		o.Images = append(o.Images, img.Name)
	}
	plan, err := publish.Promote(ctx, c, o)
	if plan != nil {
		if s.dryRun {
			fmt.Fprint(s.out, "dry run, nothing written: ")
		}
		fmt.Fprint(s.out, plan)
	}
	return err
}

// registry returns a client and the HOST/REPOSITORY prefix images go to,
// starting the local registry when none is configured.
func (s *session) registry(ctx context.Context, repository string) (*registry.Client, string, error) {
	host := s.cfg.Registry.Host
	if host == "" {
		srv, err := localregistry.Ensure(ctx, localregistry.Options{Dir: filepath.Join(s.cfg.Path(s.cfg.BuildDir), "registry"), Port: s.cfg.Registry.LocalPort})
		if err != nil {
			return nil, "", err
		}
		host = srv.Host
	}
	if repository == "" {
		repository = s.cfg.Project
	}
	c, err := registry.New(registry.Options{
		Host:     host,
		Username: os.Getenv(envRegistryUser),
		Password: registry.Secret(os.Getenv(envRegistryPass)),
		Insecure: s.cfg.Registry.Insecure,
	})
	if err != nil {
		return nil, "", err
	}
	return c, strings.TrimSuffix(host+"/"+repository, "/"), nil
}

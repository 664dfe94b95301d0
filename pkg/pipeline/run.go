// Package pipeline holds Hoist's stages — Images, Test, K3dLoad, Scan,
// DigestGate, Push, Promote — as methods of one typed run state, built once
// per run from the config and the settings. The targets call one method
// each; the release lines (package release) call them in order on the same
// Run, so no stage reads hoist.yaml again and nothing travels through the
// environment.
package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/gitinfo"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/settings"
	"github.com/hoistci/hoist/pkg/version"
)

// Run is the state one run of Hoist shares between its stages.
type Run struct {
	Cfg      *config.Config
	Set      *settings.Settings
	Out      io.Writer
	LockPath string
	// Version, when set, is the version to build and push instead of
	// VERSION's (the release flow sets the reserved X.Y.Z-staging.N here).
	Version string

	// Passed and Failed count the checks and tests judged in this run.
	Passed, Failed int

	eng   *engine.Engine
	reg   *registry.Client
	ahead *aheadScan // a Scan running beside Test (release lines)
	// prestage: this run's line pushes, so blobs go up beside Test.
	prestage bool
	staging  *aheadPush
	share    *layoutShare // the scan's layout for the blobs, between scanAhead and pushAhead
	prefix   string
	held     *lock.RunLock
}

// Open loads the config named by the settings, applies the settings'
// overrides (registry, GitHub repository) to it, and takes the checkout's
// run lock (build/hoist/run.lock) for the run's whole duration: a second
// run in the same checkout says so and waits. Close releases it.
func Open(ctx context.Context, set *settings.Settings, out io.Writer) (*Run, error) {
	r, err := New(set, out)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(r.BuildDir(), "run.lock")
	r.held, err = lock.HoldRun(ctx, path, func(pid int) {
		r.logf("hoist: another run in this checkout holds %s (pid %d); waiting for it to finish", r.Rel(path), pid)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// New loads the config named by the settings and applies the settings'
// overrides (registry, GitHub repository) to it, without the run lock.
func New(set *settings.Settings, out io.Writer) (*Run, error) {
	path := set.Config
	if path == "" {
		path = config.DefaultFile
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if set.RegistryHost != "" {
		cfg.Registry.Host = set.RegistryHost
		if set.RegistryRepository != "" {
			cfg.Registry.Repository = set.RegistryRepository
		}
	}
	if set.GitHubRepo != "" {
		cfg.Release.GitHub = set.GitHubRepo
	}
	if set.GitHubAPI != "" {
		cfg.Release.GitHubAPI = set.GitHubAPI
	}
	return &Run{
		Cfg:      cfg,
		Set:      set,
		Out:      out,
		LockPath: filepath.Join(cfg.Path(cfg.BuildDir), "lock.json"),
		Version:  set.Version,
	}, nil
}

// Close releases the engine connection, if one was opened, and the run
// lock. Nothing is lost when closing the engine's client fails.
func (r *Run) Close() {
	r.held.Release()
	if r.eng != nil {
		_ = r.eng.Close()
		r.eng = nil
	}
}

// Engine connects to the Docker Engine once per run, bringing one up when
// none answers unless the settings say not to.
func (r *Run) Engine(ctx context.Context) (*engine.Engine, error) {
	if r.eng != nil {
		return r.eng, nil
	}
	hint := " (set HOIST_NO_ENGINE_SETUP=1 to stop this)"
	if r.Set.NoEngineSetup {
		hint = ", or unset HOIST_NO_ENGINE_SETUP to let Hoist do it"
	}
	e, err := engine.Up(ctx, engine.UpOptions{Setup: !r.Set.NoEngineSetup, Out: r.Out, Hint: hint})
	if err != nil {
		return nil, err
	}
	r.eng = e
	return e, nil
}

// VersionOf is the version this run builds: Run.Version, else VERSION's.
func (r *Run) VersionOf() (version.Version, error) {
	if r.Version != "" {
		v, err := version.Parse(r.Version)
		if err != nil {
			return v, fmt.Errorf("version %s: %w", r.Version, err)
		}
		return v, nil
	}
	return version.ReadFile(r.Cfg.Path(r.Cfg.VersionFile))
}

// Plan expands the config for the run's version and commit.
func (r *Run) Plan(ctx context.Context) (*plan.Plan, error) {
	v, err := r.VersionOf()
	if err != nil {
		return nil, err
	}
	gi := gitinfo.Read(ctx, r.Cfg.Dir)
	created := gi.Time
	if created.IsZero() {
		// Outside a checkout there is no commit time to keep labels reproducible.
		created = time.Now().UTC().Truncate(time.Second)
	}
	return plan.Make(r.Cfg, plan.Options{Version: v, Revision: gi.Revision, Created: created, Source: gi.Origin})
}

// Parallel is the settings' bound, else the config's, else twice the core
// count: a solve spends much of its time waiting on the engine's disk.
func (r *Run) Parallel() int {
	if r.Set.Parallel > 0 {
		return r.Set.Parallel
	}
	if r.Cfg.Parallel > 0 {
		return r.Cfg.Parallel
	}
	return 2 * runtime.NumCPU()
}

// BuildDir is the run's output folder.
func (r *Run) BuildDir() string { return r.Cfg.Path(r.Cfg.BuildDir) }

func (r *Run) logDir() string { return filepath.Join(r.BuildDir(), "logs") }

func (r *Run) logf(format string, a ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format+"\n", a...)
	}
}

// Rel shows a path relative to the working folder when it is below it.
func (r *Run) Rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(wd, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return rel
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/gitinfo"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/version"
)

// session is what every target starts from: the config, where to print and
// the settings read from the environment. Only this package reads the
// environment; library packages get plain values.
type session struct {
	cfg      *config.Config
	out      io.Writer
	lockPath string
	ci       bool // CI=true
	pr       bool // fork / pull-request mode: no secret, never push or write shared cache
	dryRun   bool
	// passed and failed count the checks and tests this run has judged, for
	// the closing line of Test.
	passed, failed int
}

// Environment variables every target understands.
const (
	envConfig     = "HOIST_CONFIG"          // config file (default hoist.yaml)
	envNoEngineUp = "HOIST_NO_ENGINE_SETUP" // 1: never install or start an engine
	envPR         = "HOIST_PR"              // 1: fork/PR mode
	envDryRun     = "HOIST_DRY_RUN"         // 1: print what would be done
	envBuildkit   = "BUILDKIT_HOST"         // use this buildkitd instead of the engine's
	envParallel   = "HOIST_PARALLEL"        // bound on concurrent work
)

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func newSession() (*session, error) {
	path := os.Getenv(envConfig)
	if path == "" {
		path = config.DefaultFile
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	s := &session{
		cfg:    cfg,
		out:    os.Stdout,
		ci:     truthy(os.Getenv("CI")),
		pr:     truthy(os.Getenv(envPR)) || os.Getenv("GITHUB_EVENT_NAME") == "pull_request",
		dryRun: truthy(os.Getenv(envDryRun)),
	}
	s.lockPath = filepath.Join(cfg.Path(cfg.BuildDir), "lock.json")
	if err := overrides(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Environment variables that point a run at shared services without
// editing hoist.yaml, e.g. in a workflow: HOIST_REGISTRY=ghcr.io/OWNER/REPO,
// HOIST_GITHUB_REPO=OWNER/REPO, HOIST_GITHUB_API=https://api.github.com.
const (
	envRegistry   = "HOIST_REGISTRY"
	envGitHubRepo = "HOIST_GITHUB_REPO"
	envGitHubAPI  = "HOIST_GITHUB_API"
)

func overrides(cfg *config.Config) error {
	if r := strings.TrimSpace(os.Getenv(envRegistry)); r != "" {
		host, repo, _ := strings.Cut(strings.TrimSuffix(r, "/"), "/")
		if host == "" || strings.Contains(r, "://") || strings.ContainsAny(r, " \t") {
			return fmt.Errorf("%s=%q: write HOST[/REPOSITORY], e.g. ghcr.io/owner/repo", envRegistry, r)
		}
		cfg.Registry.Host = host
		if repo != "" {
			cfg.Registry.Repository = repo
		}
	}
	if g := strings.TrimSpace(os.Getenv(envGitHubRepo)); g != "" {
		if o, r, ok := strings.Cut(g, "/"); !ok || o == "" || r == "" || strings.Contains(r, "/") {
			return fmt.Errorf("%s=%q: write OWNER/REPO", envGitHubRepo, g)
		}
		cfg.Release.GitHub = g
	}
	if a := strings.TrimSpace(os.Getenv(envGitHubAPI)); a != "" {
		cfg.Release.GitHubAPI = a
	}
	return nil
}

// engine connects to the Docker Engine, bringing one up with
// scripts/engine-up.sh when none answers (unless HOIST_NO_ENGINE_SETUP=1).
func (s *session) engine(ctx context.Context) (*engine.Engine, error) {
	e, err := engine.Connect(ctx, engine.Options{})
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, engine.ErrNoEngine) {
		return nil, err
	}
	if truthy(os.Getenv(envNoEngineUp)) {
		return nil, fmt.Errorf("%v: start Docker (on Debian as root: bash scripts/engine-up.sh), or unset %s to let Hoist do it", err, envNoEngineUp)
	}
	fmt.Fprintln(s.out, "hoist: no Docker Engine answers; bringing one up with scripts/engine-up.sh (set "+envNoEngineUp+"=1 to stop this)")
	if err := bringUp(ctx, s.out); err != nil {
		return nil, err
	}
	return engine.Connect(ctx, engine.Options{})
}

// Environment variables for the build.
const (
	envVersion = "HOIST_VERSION" // build this version instead of VERSION's (e.g. 1.2.3-staging.4)
	envRebuild = "HOIST_REBUILD" // 1: no cache, re-make local bases, pull remote ones
	envVerbose = "HOIST_VERBOSE" // 1: show BuildKit's full progress
	envOnly    = "HOIST_IMAGES"  // comma-separated image names to limit the work to
)

// plan reads VERSION (or HOIST_VERSION) and git, and expands the config.
func (s *session) plan(ctx context.Context) (*plan.Plan, error) {
	vf := s.cfg.Path(s.cfg.VersionFile)
	var v version.Version
	var err error
	if o := os.Getenv(envVersion); o != "" {
		if v, err = version.Parse(o); err != nil {
			return nil, fmt.Errorf("%s: %w", envVersion, err)
		}
	} else if v, err = version.ReadFile(vf); err != nil {
		return nil, err
	}
	gi := gitinfo.Read(ctx, s.cfg.Dir)
	created := gi.Time
	if created.IsZero() {
		// Outside a checkout there is no commit time to keep labels reproducible.
		created = time.Now().UTC().Truncate(time.Second)
	}
	return plan.Make(s.cfg, plan.Options{Version: v, Revision: gi.Revision, Created: created, Source: gi.Origin})
}

// parallel is HOIST_PARALLEL, else the config's parallel, else twice the
// core count: a solve spends much of its time waiting on the engine's disk.
func (s *session) parallel() int {
	if n, err := strconv.Atoi(os.Getenv(envParallel)); err == nil && n > 0 {
		return n
	}
	if s.cfg.Parallel > 0 {
		return s.cfg.Parallel
	}
	return 2 * runtime.NumCPU()
}

func (s *session) only() []string {
	var out []string
	for _, n := range strings.Split(os.Getenv(envOnly), ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func relPath(base, p string) (string, error) {
	r, err := filepath.Rel(base, p)
	if err != nil || strings.HasPrefix(r, "..") {
		return p, err
	}
	return r, nil
}

package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/scripts"
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
	return s, nil
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
	cmd := exec.CommandContext(ctx, "bash", "-s")
	cmd.Stdin = strings.NewReader(scripts.EngineUp)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if rerr := cmd.Run(); rerr != nil {
		return nil, fmt.Errorf("%v; bringing one up failed (%v): install and start Docker Engine, then run again", err, rerr)
	}
	return engine.Connect(ctx, engine.Options{})
}

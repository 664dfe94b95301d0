package targets

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

// Environment variables the Scan target reads.
const (
	envTrivyDB     = "HOIST_TRIVY_DB"      // offline vulnerability DB folder (overrides scan.db_dir)
	envToolsDir    = "HOIST_TOOLS_DIR"     // where pinned tools are built (default: user cache/hoist/tools)
	envScanImages  = "HOIST_SCAN_IMAGES"   // comma-separated image names; default all in the lock file
	envStepSummary = "GITHUB_STEP_SUMMARY" // GitHub's job summary file
)

// Scan checks every image in the lock file with the pinned Trivy against the
// scan policy in hoist.yaml, records the findings in the lock file, writes
// reports (table, JSON, SARIF, Markdown) under the build folder's scan/ and
// fails listing image, package, versions and ID when the policy is breached.
func Scan(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	policy, err := scan.PolicyFrom(s.cfg)
	if err != nil {
		return err
	}
	e, err := s.engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	out := filepath.Join(s.cfg.Path(s.cfg.BuildDir), "scan")
	o := scan.Options{
		LockPath: s.lockPath, Policy: policy, Engine: e, DockerHost: e.API.DaemonHost(),
		Trivy:    trivy.Options{Version: s.cfg.Scan.Trivy, Dir: toolsDir()},
		CacheDir: filepath.Join(userCache(), "hoist", "trivy"), OutDir: out,
		DBRepository: s.cfg.Scan.DBRepository, Parallel: s.cfg.Parallel, Timeout: s.cfg.Scan.Timeout, Out: s.out,
		StepSummary: os.Getenv(envStepSummary),
	}
	if v := os.Getenv(envScanImages); v != "" {
		o.Images = strings.Split(v, ",")
	}
	if o.DBDir = os.Getenv(envTrivyDB); o.DBDir == "" && s.cfg.Scan.DBDir != "" {
		o.DBDir = s.cfg.Path(s.cfg.Scan.DBDir)
	}
	if o.DBDir != "" {
		o.CacheDir = filepath.Join(out, "trivy-cache")
	}
	_, err = scan.Run(ctx, o)
	return err
}

func toolsDir() string {
	if d := os.Getenv(envToolsDir); d != "" {
		return d
	}
	return filepath.Join(userCache(), "hoist", "tools")
}

func userCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

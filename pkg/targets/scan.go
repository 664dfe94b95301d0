package targets

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

// Environment variables the Scan target reads.
const (
	envTrivyDB     = "HOIST_TRIVY_DB"      // offline vulnerability DB folder (overrides scan.db_dir)
	envToolsDir    = "HOIST_TOOLS_DIR"     // where pinned tools are built (default: user cache/hoist/tools)
	envStepSummary = "GITHUB_STEP_SUMMARY" // GitHub's job summary file
	envRescan      = "HOIST_RESCAN"        // 1: scan even images unchanged since their last scan
)

// Scan checks every built image with the pinned Trivy against hoist.yaml's policy.
//
// A failure lists image, package, versions and vulnerability ID.
//
// Findings are recorded in the lock file; reports (Trivy's JSON, SARIF, a
// table and Markdown) go to the build folder's scan/, one set per image, and
// the Markdown summary is appended to $GITHUB_STEP_SUMMARY when set. Trivy
// comes from PATH when its version matches scan.trivy, else it is built once
// into HOIST_TOOLS_DIR (default ~/.cache/hoist/tools).
//
// An image already scanned with the same Trivy, scanners and DB (same image
// ID) is not scanned again: its report is reused and the policy re-applied.
//
// Environment: HOIST_TRIVY_DB (offline DB folder; no download),
// HOIST_IMAGES=a,b (only these), HOIST_PARALLEL=N, HOIST_RESCAN=1 (scan
// everything again), HOIST_TOOLS_DIR.
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
	cache, dbDir := userCache(), os.Getenv(envTrivyDB)
	if dbDir == "" && s.cfg.Scan.DBDir != "" {
		dbDir = s.cfg.Path(s.cfg.Scan.DBDir)
	}
	_, err = scan.Run(ctx, scan.Options{
		LockPath: s.lockPath, Images: s.only(), Policy: policy, Engine: e,
		Trivy:    trivy.Options{Version: s.cfg.Scan.Trivy, Dir: envOr(envToolsDir, filepath.Join(cache, "hoist", "tools"))},
		CacheDir: filepath.Join(cache, "hoist", "trivy"), DBDir: dbDir, DBRepository: s.cfg.Scan.DBRepository,
		OutDir: filepath.Join(s.cfg.Path(s.cfg.BuildDir), "scan"), Parallel: s.parallel(), Timeout: s.cfg.Scan.Timeout,
		Out: s.out, StepSummary: os.Getenv(envStepSummary), Rescan: truthy(os.Getenv(envRescan)),
	})
	return err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func userCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

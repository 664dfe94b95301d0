package pipeline

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

// Scan runs the pinned Trivy on every built image (or the settings'
// subset) against the config's policy, recording findings in the lock.
func (r *Run) Scan(ctx context.Context) error {
	policy, err := scan.PolicyFrom(r.Cfg)
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	cache := userCache()
	tools := r.Set.ToolsDir
	if tools == "" {
		tools = filepath.Join(cache, "hoist", "tools")
	}
	dbDir := r.Set.TrivyDB
	if dbDir == "" && r.Cfg.Scan.DBDir != "" {
		dbDir = r.Cfg.Path(r.Cfg.Scan.DBDir)
	}
	_, err = scan.Run(ctx, scan.Options{
		LockPath: r.LockPath, Images: r.Set.Images, Policy: policy, Engine: e,
		Trivy:    trivy.Options{Version: r.Cfg.Scan.Trivy, Dir: tools},
		CacheDir: filepath.Join(cache, "hoist", "trivy"), DBDir: dbDir, DBRepository: r.Cfg.Scan.DBRepository,
		OutDir: filepath.Join(r.BuildDir(), "scan"), Parallel: r.Parallel(), Timeout: r.Cfg.Scan.Timeout,
		Out: r.Out, StepSummary: r.Set.StepSummary, Rescan: r.Set.Rescan,
		SBOM: r.SBOMFormat(),
	})
	return err
}

func userCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

package pipeline

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/localregistry"
)

// LocalRegistryDir is the folder of this checkout's local registry.
func (r *Run) LocalRegistryDir() string { return filepath.Join(r.BuildDir(), "registry") }

// RegistryStop stops this checkout's local registry, keeping its data.
func (r *Run) RegistryStop(ctx context.Context) error {
	stopped, err := localregistry.Stop(ctx, r.LocalRegistryDir())
	if err != nil {
		return err
	}
	what := "was not running"
	if stopped {
		what = "stopped"
	}
	r.logf("hoist: local registry %s; its data stays in %s", what, r.Rel(filepath.Join(r.LocalRegistryDir(), "data")))
	return nil
}

// RegistryStatus says whether this checkout's local registry runs, where,
// and its data folder.
func (r *Run) RegistryStatus(ctx context.Context) error {
	st, err := localregistry.Status(ctx, r.LocalRegistryDir())
	if err != nil {
		return err
	}
	st.Dir = r.Rel(st.Dir)
	r.logf("hoist: %s", st.String())
	return nil
}

// localRegistryNote is the run summary's line about the local registry:
// empty unless it is still running.
func (r *Run) localRegistryNote(ctx context.Context) string {
	st, err := localregistry.Status(ctx, r.LocalRegistryDir())
	if err != nil || !st.Running {
		return ""
	}
	return fmt.Sprintf("local registry still running at %s (data in %s); stop it with go run mage.go registry:stop", st.Host, r.Rel(filepath.Join(r.LocalRegistryDir(), "data")))
}

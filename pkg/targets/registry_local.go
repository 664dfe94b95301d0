package targets

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/hoistci/hoist/pkg/localregistry"
)

// Registry holds the targets of this checkout's local registry, the one Push
// and Promote start when no registry is configured.
type Registry mg.Namespace

// Stop stops this checkout's local registry; its data stays for the next start.
func (Registry) Stop(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	stopped, err := localregistry.Stop(ctx, s.localRegistryDir())
	if err != nil {
		return err
	}
	what := "was not running"
	if stopped {
		what = "stopped"
	}
	fmt.Fprintf(s.out, "hoist: local registry %s; its data stays in %s\n", what, s.rel(filepath.Join(s.localRegistryDir(), "data")))
	return nil
}

// Status says whether this checkout's local registry runs, where, and its data folder.
func (Registry) Status(ctx context.Context) error {
	s, err := newSession()
	if err != nil {
		return err
	}
	st, err := localregistry.Status(ctx, s.localRegistryDir())
	if err != nil {
		return err
	}
	st.Dir = s.rel(st.Dir)
	fmt.Fprintln(s.out, "hoist: "+st.String())
	return nil
}

// localRegistryDir is the folder of this checkout's local registry.
func (s *session) localRegistryDir() string {
	return filepath.Join(s.cfg.Path(s.cfg.BuildDir), "registry")
}

// localRegistryNote is the run summary's line about the local registry:
// empty unless it is still running.
func (s *session) localRegistryNote(ctx context.Context) string {
	st, err := localregistry.Status(ctx, s.localRegistryDir())
	if err != nil || !st.Running {
		return ""
	}
	return fmt.Sprintf("local registry still running at %s; stop it with go run mage.go registry:stop", st.Host)
}

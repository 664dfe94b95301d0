package targets

import (
	"context"

	"github.com/magefile/mage/mg"
)

// Registry holds the targets of this checkout's local registry, the one Push
// and Promote start when no registry is configured.
type Registry mg.Namespace

// Stop stops this checkout's local registry; its data stays for the next start.
func (Registry) Stop(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.RegistryStop(ctx)
}

// Status says whether this checkout's local registry runs, where, and its data folder.
func (Registry) Status(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.RegistryStatus(ctx)
}

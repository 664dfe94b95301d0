package targets

import (
	"context"
	"os"

	"github.com/hoistci/hoist/pkg/pipeline"
	"github.com/hoistci/hoist/pkg/settings"
)

// newRun reads the environment (the only place Hoist does) and the config,
// once, into the run state every target works on. Its Close must be called.
func newRun(ctx context.Context) (*pipeline.Run, error) {
	set, err := settings.Read(os.Environ())
	if err != nil {
		return nil, err
	}
	return pipeline.Open(ctx, set, os.Stdout)
}

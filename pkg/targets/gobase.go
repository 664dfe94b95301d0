package targets

import (
	"context"
	"os"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/plan"
)

// goBaseEnv is what compiling the Go binaries of local bases needs: the
// engine's architecture and this process's environment for the go command.
// Nothing is asked of the engine when no base has Go packages.
func goBaseEnv(ctx context.Context, e *engine.Engine, p *plan.Plan) (string, []string, error) {
	for _, b := range p.Bases {
		if len(b.Go) > 0 {
			arch, err := e.Arch(ctx)
			return arch, os.Environ(), err
		}
	}
	return "", nil, nil
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/hoistci/hoist/scripts"
)

// UpOptions configure Up.
type UpOptions struct {
	// Setup lets Up run scripts/engine-up.sh when no engine answers.
	Setup bool
	// Out receives the script's progress; nil discards it.
	Out io.Writer
	// Hint names how to turn setup back on or off, for the error line.
	Hint string
}

// Up connects to the engine, and when none answers and o.Setup is set,
// brings one up with scripts/engine-up.sh first. The targets and the tests
// start engines only through here.
func Up(ctx context.Context, o UpOptions) (*Engine, error) {
	e, err := Connect(ctx, Options{})
	if err == nil || !errors.Is(err, ErrNoEngine) {
		return e, err
	}
	if !o.Setup {
		return nil, fmt.Errorf("%v: start Docker (on Debian as root: bash scripts/engine-up.sh)%s", err, o.Hint)
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintln(out, "hoist: no Docker Engine answers; bringing one up with scripts/engine-up.sh"+o.Hint)
	cmd := exec.CommandContext(ctx, "bash", "-s")
	cmd.Stdin = strings.NewReader(scripts.EngineUp)
	cmd.Stdout, cmd.Stderr = out, out
	if rerr := cmd.Run(); rerr != nil {
		return nil, fmt.Errorf("%v; bringing one up failed (%v): install and start Docker Engine, then run again", err, rerr)
	}
	return Connect(ctx, Options{})
}

package engine

import (
	"bufio"
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
	if err := runEngineUp(ctx, out); err != nil {
		return nil, err
	}
	return Connect(ctx, Options{})
}

// runEngineUp runs scripts/engine-up.sh, showing its lines as they come.
// When it fails, its last line (which says what to install or start)
// becomes the error instead of being printed, so the reason is told once,
// as one line.
func runEngineUp(ctx context.Context, out io.Writer) error {
	cmd := exec.CommandContext(ctx, "bash", "-s")
	cmd.Stdin = strings.NewReader(scripts.EngineUp)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	last := make(chan string, 1)
	go func() {
		// Hold each line back until the next one arrives: the last one is
		// printed on success and returned on failure.
		held := ""
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if held != "" {
				fmt.Fprintln(out, held)
			}
			held = sc.Text()
		}
		_, _ = io.Copy(io.Discard, pr) // a line too long for the scanner
		last <- held
	}()
	err := cmd.Run()
	_ = pw.Close() // ends the reader's loop; a pipe close cannot fail
	held := <-last
	if err == nil {
		if held != "" {
			fmt.Fprintln(out, held)
		}
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("bringing a Docker Engine up: %w", ctx.Err())
	}
	if msg := strings.TrimSpace(strings.TrimPrefix(held, "engine-up:")); msg != "" {
		return errors.New(msg)
	}
	return fmt.Errorf("bringing a Docker Engine up with scripts/engine-up.sh failed (%v): install and start Docker Engine, then run again", err)
}

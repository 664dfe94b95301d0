package targets

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

// bringUp runs scripts/engine-up.sh, showing its lines as they come. When
// it fails, its last line (which says what to install or start) becomes the
// error instead of being printed, so the reason is told once, as one line.
func bringUp(ctx context.Context, out io.Writer) error {
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

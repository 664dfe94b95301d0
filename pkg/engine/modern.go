package engine

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/hoistci/hoist/scripts"
)

// UpModern brings up, beside the classic engine, a modern one keeping
// images in containerd's store, with scripts/modern-engine-up.sh (dockerd
// and runc built once from the module proxy and cached), and returns its
// address for DOCKER_HOST. The script's progress goes to out (nil
// discards it). The engine tests run against it as well as the classic one.
func UpModern(ctx context.Context, out io.Writer) (string, error) {
	if out == nil {
		out = io.Discard
	}
	cmd := exec.CommandContext(ctx, "bash", "-s")
	cmd.Stdin = strings.NewReader(scripts.ModernEngineUp)
	cmd.Stderr = out
	b, err := cmd.Output()
	lines := strings.Fields(string(b))
	if err != nil || len(lines) == 0 {
		return "", fmt.Errorf("bringing up the modern engine with scripts/modern-engine-up.sh: %v (run it as root to see why)", err)
	}
	return lines[len(lines)-1], nil
}

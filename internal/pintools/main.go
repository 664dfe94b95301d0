// Command pintools builds every pinned tool Hoist's own tests use (Trivy
// and its worker, cosign, Fulcio, buildkitd, the Kubernetes components)
// into the shared tools folder, before the tests start. Each is built once
// per machine under its file lock and reused after; on a warm machine this
// takes well under a second.
//
// Without it the first test to need a tool builds it inside its own
// deadline, and every other test needing it waits on the lock inside
// theirs: on a fresh machine a test with a five-minute deadline gave up
// waiting for Trivy's build (several minutes on two loaded cores).
//
//	go run ./internal/pintools
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hoistci/hoist/internal/buildkitd"
	"github.com/hoistci/hoist/internal/cosign"
	"github.com/hoistci/hoist/internal/fulcio"
	"github.com/hoistci/hoist/internal/kubenode"
	"github.com/hoistci/hoist/pkg/gotool"
	"github.com/hoistci/hoist/pkg/trivy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := cosign.ToolsDir()
	progress := os.Stderr
	topts := trivy.Options{Version: trivy.Pinned, Dir: dir, Progress: progress, NoPath: true}
	tools := []struct {
		name   string
		ensure func(context.Context) (string, error)
	}{
		{"trivy " + trivy.Pinned, func(ctx context.Context) (string, error) {
			t, err := trivy.Ensure(ctx, topts)
			return t.Path, err
		}},
		{"hoist-trivy-worker " + trivy.Pinned, func(ctx context.Context) (string, error) {
			t, err := trivy.EnsureWorker(ctx, topts)
			return t.Path, err
		}},
		{"cosign " + cosign.Pinned, func(ctx context.Context) (string, error) {
			t, err := gotool.Ensure(ctx, cosign.Spec, gotool.Options{Dir: dir, Progress: progress})
			return t.Path, err
		}},
		{"fulcio " + fulcio.Pinned, func(ctx context.Context) (string, error) {
			t, err := gotool.Ensure(ctx, fulcio.Spec, gotool.Options{Dir: dir, Progress: progress})
			return t.Path, err
		}},
		{"buildkitd " + buildkitd.Pinned, func(ctx context.Context) (string, error) {
			return buildkitd.Ensure(ctx, dir, progress)
		}},
		{"kubernetes " + kubenode.Version, func(ctx context.Context) (string, error) {
			c, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: dir, Progress: progress})
			return c.Dir, err
		}},
	}
	for _, tool := range tools {
		start := time.Now()
		path, err := tool.ensure(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pinned tools: %s: %v\n", tool.name, err)
			os.Exit(1)
		}
		fmt.Printf("%-26s %s (%.1fs)\n", tool.name, path, time.Since(start).Seconds())
	}
}

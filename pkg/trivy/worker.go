package trivy

import (
	"context"
	_ "embed"

	"github.com/hoistci/hoist/pkg/gotool"
)

// WorkerName is the program that runs Trivy's own command line many times
// in one process (its source is tools/trivy/worker/main.go): Scan sends its
// image scans and SBOM conversions through a few of these, instead of
// starting the trivy binary, a 130 MB program, once per image and again per
// SBOM.
const WorkerName = "hoist-trivy-worker"

// workerGo is tools/trivy/worker/main.go (a test keeps them equal).
//
//go:embed worker_main.go.txt
var workerGo string

// workerSpec builds the worker from the same tools module as Trivy, so it
// is Trivy's code of the same release, stamped with its version.
var workerSpec = gotool.Spec{
	Name: WorkerName, Module: Module, Package: ".", Pinned: Pinned,
	GoMod: pinnedGoMod, GoSum: pinnedGoSum, ToolsGo: workerGo,
	Flags: BuildFlags, Version: Version,
}

// EnsureWorker returns the worker for o's Trivy release, built into o.Dir
// beside Trivy (once; later calls reuse it). It is never taken from PATH.
func EnsureWorker(ctx context.Context, o Options) (Tool, error) {
	o.NoPath = true
	t, err := gotool.Ensure(ctx, workerSpec, gotool.Options(o))
	return Tool(t), err
}

// WorkerPath is where EnsureWorker keeps the given version.
func WorkerPath(dir, version string) string {
	return gotool.BinaryPath(dir, WorkerName, version)
}

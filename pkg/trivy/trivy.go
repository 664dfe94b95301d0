// Package trivy provides Trivy as a pinned tool. Hoist runs Trivy as a
// separate program (it is never linked in), and it must be exactly the
// version the project pins: a different Trivy reads a different DB schema and
// reports differently, so a scan could pass by accident.
//
// Ensure uses `trivy` from PATH when its version matches the pin. Otherwise it
// builds the pinned release from the Go module proxy into a tools folder
// (package gotool, shared with the other pinned tools), once; later calls
// reuse the binary.
package trivy

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/gotool"
)

// Pinned is the Trivy release Hoist scans with unless the config says otherwise.
const Pinned = "0.58.0"

// Module is Trivy's Go module path.
const Module = "github.com/aquasecurity/trivy"

// The tools module for the pinned release, with its go.sum, so the build is
// reproducible and verified without asking the checksum database. The same
// files live in tools/trivy of this repository (a test keeps them equal).
var (
	//go:embed pinned.go.mod
	pinnedGoMod []byte
	//go:embed pinned.go.sum
	pinnedGoSum []byte
)

// toolsGo blank-imports Trivy's command so the module keeps its requirements.
const toolsGo = `//go:build tools

// Package tools pins the Trivy release Hoist scans with. It is a module of
// its own so that Hoist's go.mod stays free of Trivy's dependencies.
package tools

import _ "github.com/aquasecurity/trivy/cmd/trivy"
`

// Tool is a usable Trivy binary.
type Tool struct {
	Path    string
	Version string // e.g. 0.58.0
	Built   bool   // true when Ensure built it in this call
}

// String names the tool as reports do, e.g. "trivy 0.58.0".
func (t Tool) String() string { return "trivy " + t.Version }

// Options configure Ensure.
type Options struct {
	// Version is the pinned release, e.g. 0.58.0 (default Pinned).
	Version string
	// Dir is the tools folder the binary is built into and reused from,
	// e.g. ~/.cache/hoist/tools. Required.
	Dir string
	// Progress receives one line when a build starts and the go command's
	// output; nil discards it.
	Progress io.Writer
	// NoPath ignores trivy on PATH (tests of the build path use it).
	NoPath bool
	// Go is the go command (default "go" from PATH).
	Go string
}

var versionRe = gotool.VersionRe

// spec is Trivy as a pinned tool.
var spec = gotool.Spec{
	Name: "trivy", Module: Module, Package: Module + "/cmd/trivy", Pinned: Pinned,
	GoMod: pinnedGoMod, GoSum: pinnedGoSum, ToolsGo: toolsGo,
	Flags: BuildFlags, Version: Version,
}

// Ensure returns a Trivy binary of the pinned version, building it when
// neither PATH nor the tools folder has one (see package gotool). Two
// processes may call it at once: the build is serialised by a file lock and
// lands by rename, so a half-written binary is never used.
func Ensure(ctx context.Context, o Options) (Tool, error) {
	t, err := gotool.Ensure(ctx, spec, gotool.Options(o))
	return Tool(t), err
}

// BinaryPath is where Ensure keeps the given version in the tools folder.
func BinaryPath(dir, version string) string { return gotool.BinaryPath(dir, "trivy", version) }

// BuildFlags are the go build flags for Trivy; the version is stamped the way
// Trivy's own release builds do, so `trivy --version` names it.
func BuildFlags(version string) []string {
	return []string{"-trimpath", "-ldflags", "-s -w -X " + Module + "/pkg/version/app.ver=" + version}
}

// Version runs `trivy --version` and returns the version it reports.
func Version(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = append(os.Environ(), "TRIVY_CACHE_DIR="+os.TempDir()+"/hoist-trivy-version")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", path, err)
	}
	return ParseVersion(out)
}

// ParseVersion reads the version from `trivy --version` output
// ("Version: 0.58.0" on the first line that names one).
func ParseVersion(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		v, ok := strings.CutPrefix(line, "Version:")
		if !ok {
			continue
		}
		v = strings.TrimPrefix(strings.TrimSpace(v), "v")
		if !versionRe.MatchString(v) {
			return "", fmt.Errorf("trivy reports version %q, which is not a release: use a release build", v)
		}
		return v, nil
	}
	return "", errors.New("trivy --version printed no version line")
}

// Package cosign provides the real cosign CLI for tests: attestations and
// signatures Hoist attaches are checked by the tool their consumers run.
// It is built from the Go module proxy at the pinned release, exactly as
// Trivy is (package gotool: a tools module of its own, a file lock, reused
// from the tools folder).
package cosign

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/gotool"
)

// Pinned is the cosign release the tests verify with.
const Pinned = "2.4.1"

// Module is cosign's Go module path.
const Module = "github.com/sigstore/cosign/v2"

// The tools module of tools/cosign (a test keeps the copies equal).
var (
	//go:embed pinned.go.mod
	pinnedGoMod []byte
	//go:embed pinned.go.sum
	pinnedGoSum []byte
)

const toolsGo = `//go:build tools

// Package tools pins the cosign release Hoist's tests verify attestations
// with. It is a module of its own so that Hoist's go.mod stays free of
// cosign's dependencies.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
`

// Spec is cosign as a pinned tool.
var Spec = gotool.Spec{
	Name: "cosign", Module: Module, Package: Module + "/cmd/cosign", Pinned: Pinned,
	GoMod: pinnedGoMod, GoSum: pinnedGoSum, ToolsGo: toolsGo,
	Flags:   ReleaseUtilsFlags,
	Version: Version,
}

// ReleaseUtilsFlags are the go build flags of a Sigstore tool that stamps
// its version through sigs.k8s.io/release-utils (cosign, Fulcio), so its
// `version --json` names the release.
func ReleaseUtilsFlags(version string) []string {
	return []string{"-trimpath", "-ldflags", "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=v" + version}
}

// Version runs `cosign version --json` and returns the release it reports.
func Version(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version", "--json").Output()
	if err != nil {
		return "", fmt.Errorf("running %s version: %w", path, err)
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("reading %s version: %w", path, err)
	}
	ver := strings.TrimPrefix(v.GitVersion, "v")
	if !gotool.VersionRe.MatchString(ver) {
		return "", fmt.Errorf("cosign reports version %q, which is not a release", v.GitVersion)
	}
	return ver, nil
}

// ToolsDir is the tools folder every test and user shares
// (HOIST_TOOLS_DIR, else the user cache's hoist/tools), so cosign is built
// once per machine.
func ToolsDir() string {
	if d := os.Getenv("HOIST_TOOLS_DIR"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "hoist", "tools")
}

// Binary returns the pinned cosign, building it on first use (several
// minutes on a cold machine). Without Go it skips, except in CI.
func Binary(t testing.TB) string {
	t.Helper()
	testenv.Binary(t, "go", "golang-go")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	tool, err := gotool.Ensure(ctx, Spec, gotool.Options{Dir: ToolsDir(), Progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	return tool.Path
}

// logWriter logs the build's progress through t.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Run runs cosign with args and env added to the environment (no
// network beyond the loopback registry: the transparency log is never
// asked). It returns the combined output.
func Run(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "COSIGN_EXPERIMENTAL=0", "TUF_ROOT="+os.TempDir()+"/hoist-cosign-tuf")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

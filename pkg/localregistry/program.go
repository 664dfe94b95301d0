package localregistry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// programPackage is the command Ensure runs as the local registry. It is
// built with the go command in the caller's module, so it is the Hoist
// this very run uses; in another module that imports Hoist the same works.
const programPackage = "github.com/hoistci/hoist/pkg/localregistry/cmd/hoist-registry"

// programSource is this package and the command, what the program is made
// of besides its dependencies, so a changed Hoist (a new version, or an
// edit in Hoist's own checkout) builds a new program and an unchanged one
// reuses the last.
//
//go:embed *.go cmd/hoist-registry/*.go
var programSource embed.FS

// programKey names one build of the program.
func programKey() string {
	h := sha256.New()
	_ = fs.WalkDir(programSource, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := programSource.ReadFile(p)
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Replace != nil {
				m = m.Replace
			}
			if strings.HasPrefix(m.Path, "github.com/google/go-containerregistry") || strings.HasPrefix(m.Path, "github.com/hoistci/hoist") {
				fmt.Fprintln(h, m.Path, m.Version, m.Sum)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// program returns the local registry program in shared, or dir/bin when
// shared is empty, building it with the go command in moduleDir ("" for
// the current folder) when this Hoist has not built it yet. Builds into
// the shared folder take a file lock, so checkouts starting at once build
// it once.
func program(ctx context.Context, dir, shared, moduleDir string) (string, error) {
	binDir := filepath.Join(dir, "bin")
	if shared != "" {
		binDir = shared
	}
	bin := filepath.Join(binDir, "hoist-registry-"+programKey())
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if shared != "" {
		if err := os.MkdirAll(shared, 0o755); err != nil {
			return "", fmt.Errorf("building the local registry: %w", err)
		}
		unlock, err := waitLock(ctx, bin+".lock")
		if err != nil {
			return "", err
		}
		defer unlock()
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
			return bin, nil // built while this waited
		}
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the local registry: the go command is not on PATH: install Go, or set registry.host in hoist.yaml")
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("building the local registry: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, goCmd, "build", "-buildvcs=false", "-o", tmp, programPackage)
	cmd.Dir = moduleDir
	// The program runs here, whatever the caller cross-compiles for.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("building the local registry: %w", ctx.Err())
		}
		return "", fmt.Errorf("building the local registry (go build %s): %v: %s", programPackage, err, strings.TrimSpace(out.String()))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("building the local registry: %w", err)
	}
	// Builds of an older Hoist are no longer needed here; in the shared
	// folder another checkout may still use one.
	if shared != "" {
		return bin, nil
	}
	old, _ := filepath.Glob(filepath.Join(dir, "bin", "hoist-registry-*"))
	for _, p := range old {
		if p != bin && !strings.HasSuffix(p, ".tmp") {
			os.Remove(p)
		}
	}
	return bin, nil
}

// Package trivy provides Trivy as a pinned tool. Hoist runs Trivy as a
// separate program (it is never linked in), and it must be exactly the
// version the project pins: a different Trivy reads a different DB schema and
// reports differently, so a scan could pass by accident.
//
// Ensure uses `trivy` from PATH when its version matches the pin. Otherwise it
// builds the pinned release from the Go module proxy into a tools folder, in
// a small generated module of its own (so Hoist's go.mod never carries
// Trivy's dependencies), once; later calls reuse the binary.
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
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
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

var versionRe = regexp.MustCompile(`^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$`)

// Ensure returns a Trivy binary of the pinned version, building it when
// neither PATH nor the tools folder has one. Two processes may call it at
// once: the build is serialised by a file lock and lands by rename, so a
// half-written binary is never used.
func Ensure(ctx context.Context, o Options) (Tool, error) {
	if o.Version == "" {
		o.Version = Pinned
	}
	ver := strings.TrimPrefix(o.Version, "v")
	if !versionRe.MatchString(ver) {
		return Tool{}, fmt.Errorf("trivy version %q is not a release version: pin one such as %s", o.Version, Pinned)
	}
	if o.Dir == "" {
		return Tool{}, errors.New("trivy: no tools folder given")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if !o.NoPath {
		if p, err := exec.LookPath("trivy"); err == nil {
			if v, err := Version(ctx, p); err == nil && v == ver {
				return Tool{Path: p, Version: ver}, nil
			}
		}
	}
	bin := BinaryPath(o.Dir, ver)
	if v, err := Version(ctx, bin); err == nil && v == ver {
		return Tool{Path: bin, Version: ver}, nil
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return Tool{}, fmt.Errorf("creating tools folder: %w", err)
	}
	held, err := lock.Acquire(ctx, bin+".lock", nil)
	if err != nil {
		return Tool{}, fmt.Errorf("building trivy %s: %w", ver, err)
	}
	defer held.Release()
	// Another process may have built it while we waited for the lock.
	if v, err := Version(ctx, bin); err == nil && v == ver {
		return Tool{Path: bin, Version: ver}, nil
	}
	if err := build(ctx, o, ver, bin); err != nil {
		return Tool{}, err
	}
	return Tool{Path: bin, Version: ver, Built: true}, nil
}

// BinaryPath is where Ensure keeps the given version in the tools folder.
func BinaryPath(dir, version string) string {
	return filepath.Join(dir, "trivy-"+strings.TrimPrefix(version, "v"))
}

// BuildFlags are the go build flags for Trivy; the version is stamped the way
// Trivy's own release builds do, so `trivy --version` names it.
func BuildFlags(version string) []string {
	return []string{"-trimpath", "-ldflags", "-s -w -X " + Module + "/pkg/version/app.ver=" + version}
}

func build(ctx context.Context, o Options, ver, bin string) error {
	goCmd := o.Go
	if goCmd == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return fmt.Errorf("trivy %s is not on PATH and building it needs Go: install Go, or put trivy %s on PATH", ver, ver)
		}
		goCmd = p
	}
	mod, err := os.MkdirTemp(o.Dir, ".trivy-"+ver+"-module-")
	if err != nil {
		return fmt.Errorf("creating tools module: %w", err)
	}
	defer os.RemoveAll(mod)
	files := map[string][]byte{"tools.go": []byte(toolsGo)}
	pinned := ver == Pinned
	if pinned {
		files["go.mod"], files["go.sum"] = pinnedGoMod, pinnedGoSum
	} else {
		files["go.mod"] = fmt.Appendf(nil, "module github.com/hoistci/hoist/tools/trivy\n\ngo 1.22\n\nrequire %s v%s\n", Module, ver)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(mod, name), b, 0o644); err != nil {
			return fmt.Errorf("writing tools module: %w", err)
		}
	}
	fmt.Fprintf(o.Progress, "trivy %s: building it from the Go module proxy into %s (several minutes the first time, reused after)\n", ver, o.Dir)
	start := time.Now()
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
		var tail tailBuffer
		cmd.Stdout = io.MultiWriter(o.Progress, &tail)
		cmd.Stderr = cmd.Stdout
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("building trivy %s: %w", ver, ctx.Err())
			}
			return fmt.Errorf("building trivy %s (go %s): %v: %s: check that the Go module proxy answers (GOPROXY) and the version exists", ver, args[0], err, tail.last())
		}
		return nil
	}
	if !pinned {
		if err := run("mod", "tidy"); err != nil {
			return err
		}
	}
	tmp := filepath.Join(o.Dir, fmt.Sprintf(".trivy-%s.%d.tmp", ver, os.Getpid()))
	defer os.Remove(tmp)
	args := append([]string{"build"}, BuildFlags(ver)...)
	args = append(args, "-o", tmp, Module+"/cmd/trivy")
	if err := run(args...); err != nil {
		return err
	}
	if v, err := Version(ctx, tmp); err != nil || v != ver {
		return fmt.Errorf("built trivy does not report version %s (got %q, %v): remove %s and try again", ver, v, err, o.Dir)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("installing trivy %s: %w", ver, err)
	}
	fmt.Fprintf(o.Progress, "trivy %s: built in %s: %s\n", ver, time.Since(start).Round(time.Second), bin)
	return nil
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

// tailBuffer keeps the last lines written, for error messages.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) last() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

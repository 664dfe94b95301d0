// Package gotool provides pinned command-line tools that Hoist runs as
// separate programs (never linked in): Trivy for scans, cosign for checking
// attestations the way their consumers do.
//
// Ensure uses the tool from PATH when its version matches the pin. Otherwise
// it builds the pinned release from the Go module proxy into a tools folder,
// in a small generated module of its own (so Hoist's go.mod never carries the
// tool's dependencies), once; later calls reuse the binary. Two processes may
// build at once: the build is serialised by a file lock and lands by rename,
// so a half-written binary is never used.
package gotool

import (
	"context"
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

// Spec describes one pinned tool.
type Spec struct {
	// Name is the command's name, e.g. trivy; binaries are NAME-VERSION.
	Name string
	// Module is the Go module the tool is released in.
	Module string
	// Package is the main package to build, e.g. MODULE/cmd/trivy.
	Package string
	// Pinned is the release the project pins, e.g. 0.58.0.
	Pinned string
	// GoMod and GoSum are the tools module of the pinned release, so its
	// build is reproducible and verified without the checksum database.
	// Another version gets a go.mod requiring it and `go mod tidy`.
	GoMod, GoSum []byte
	// ToolsGo is the tools module's only source file: a blank import of
	// Package, so the module keeps its requirements.
	ToolsGo string
	// Flags are the go build flags for a version (its version stamp).
	Flags func(version string) []string
	// Version runs the binary at path and returns the version it reports.
	Version func(ctx context.Context, path string) (string, error)
}

// Tool is a usable binary.
type Tool struct {
	Path    string
	Version string // e.g. 0.58.0
	Built   bool   // true when Ensure built it in this call
}

// Options configure Ensure.
type Options struct {
	// Version is the release wanted (default the Spec's pin).
	Version string
	// Dir is the tools folder the binary is built into and reused from,
	// e.g. ~/.cache/hoist/tools. Required.
	Dir string
	// Progress receives one line when a build starts and the go command's
	// output; nil discards it.
	Progress io.Writer
	// NoPath ignores the tool on PATH (tests of the build path use it).
	NoPath bool
	// Go is the go command (default "go" from PATH).
	Go string
}

// VersionRe matches a release version (without a leading v).
var VersionRe = regexp.MustCompile(`^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$`)

// BinaryPath is where Ensure keeps the given version in the tools folder.
func BinaryPath(dir, name, version string) string {
	return filepath.Join(dir, name+"-"+strings.TrimPrefix(version, "v"))
}

// Ensure returns a binary of the wanted version, building it when neither
// PATH nor the tools folder has one.
func Ensure(ctx context.Context, s Spec, o Options) (Tool, error) {
	if o.Version == "" {
		o.Version = s.Pinned
	}
	ver := strings.TrimPrefix(o.Version, "v")
	if !VersionRe.MatchString(ver) {
		return Tool{}, fmt.Errorf("%s version %q is not a release version: pin one such as %s", s.Name, o.Version, s.Pinned)
	}
	if o.Dir == "" {
		return Tool{}, fmt.Errorf("%s: no tools folder given", s.Name)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if !o.NoPath {
		if p, err := exec.LookPath(s.Name); err == nil {
			if v, err := s.Version(ctx, p); err == nil && v == ver {
				return Tool{Path: p, Version: ver}, nil
			}
		}
	}
	bin := BinaryPath(o.Dir, s.Name, ver)
	if stamped(bin, ver) {
		return Tool{Path: bin, Version: ver}, nil
	}
	if v, err := s.Version(ctx, bin); err == nil && v == ver {
		stamp(bin, ver)
		return Tool{Path: bin, Version: ver}, nil
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return Tool{}, fmt.Errorf("creating tools folder: %w", err)
	}
	held, err := lock.Acquire(ctx, bin+".lock", nil)
	if err != nil {
		return Tool{}, fmt.Errorf("building %s %s: %w", s.Name, ver, err)
	}
	defer held.Release()
	// Another process may have built it while we waited for the lock.
	if v, err := s.Version(ctx, bin); err == nil && v == ver {
		return Tool{Path: bin, Version: ver}, nil
	}
	if err := build(ctx, s, o, ver, bin); err != nil {
		return Tool{}, err
	}
	stamp(bin, ver)
	return Tool{Path: bin, Version: ver, Built: true}, nil
}

// A stamp beside a binary of the tools folder records the version its
// `--version` reported, with the binary's size and modification time, so
// later runs skip starting it (a large binary: a tenth of a second of CPU
// on every scan) until the file changes.
func stampPath(bin string) string { return bin + ".version" }

func stampOf(bin, ver string) (string, bool) {
	fi, err := os.Stat(bin)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return fmt.Sprintf("%s %d %d\n", ver, fi.Size(), fi.ModTime().UnixNano()), true
}

// stamped reports whether bin's stamp says it is version ver as it is now.
func stamped(bin, ver string) bool {
	want, ok := stampOf(bin, ver)
	if !ok {
		return false
	}
	got, err := os.ReadFile(stampPath(bin))
	return err == nil && string(got) == want
}

// stamp records that bin reported ver; a failed write only costs the
// check next time.
func stamp(bin, ver string) {
	if st, ok := stampOf(bin, ver); ok {
		_ = lock.WriteFileAtomic(stampPath(bin), []byte(st))
	}
}

func build(ctx context.Context, s Spec, o Options, ver, bin string) error {
	goCmd := o.Go
	if goCmd == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return fmt.Errorf("%s %s is not on PATH and building it needs Go: install Go, or put %s %s on PATH", s.Name, ver, s.Name, ver)
		}
		goCmd = p
	}
	mod, err := os.MkdirTemp(o.Dir, "."+s.Name+"-"+ver+"-module-")
	if err != nil {
		return fmt.Errorf("creating tools module: %w", err)
	}
	defer os.RemoveAll(mod)
	files := map[string][]byte{"tools.go": []byte(s.ToolsGo)}
	pinned := ver == s.Pinned
	if pinned {
		files["go.mod"], files["go.sum"] = s.GoMod, s.GoSum
	} else {
		files["go.mod"] = fmt.Appendf(nil, "module github.com/hoistci/hoist/tools/%s\n\ngo 1.22\n\nrequire %s v%s\n", s.Name, s.Module, ver)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(mod, name), b, 0o644); err != nil {
			return fmt.Errorf("writing tools module: %w", err)
		}
	}
	fmt.Fprintf(o.Progress, "%s %s: building it from the Go module proxy into %s (several minutes the first time, reused after)\n", s.Name, ver, o.Dir)
	start := time.Now()
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
		var tail TailBuffer
		cmd.Stdout = io.MultiWriter(o.Progress, &tail)
		cmd.Stderr = cmd.Stdout
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("building %s %s: %w", s.Name, ver, ctx.Err())
			}
			return fmt.Errorf("building %s %s (go %s): %v: %s: check that the Go module proxy answers (GOPROXY) and the version exists", s.Name, ver, args[0], err, tail.Last())
		}
		return nil
	}
	if !pinned {
		if err := run("mod", "tidy"); err != nil {
			return err
		}
	}
	tmp := filepath.Join(o.Dir, fmt.Sprintf(".%s-%s.%d.tmp", s.Name, ver, os.Getpid()))
	defer os.Remove(tmp)
	args := append([]string{"build"}, s.Flags(ver)...)
	args = append(args, "-o", tmp, s.Package)
	if err := run(args...); err != nil {
		return err
	}
	if v, err := s.Version(ctx, tmp); err != nil || v != ver {
		return fmt.Errorf("built %s does not report version %s (got %q, %v): remove %s and try again", s.Name, ver, v, err, o.Dir)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("installing %s %s: %w", s.Name, ver, err)
	}
	fmt.Fprintf(o.Progress, "%s %s: built in %s: %s\n", s.Name, ver, time.Since(start).Round(time.Second), bin)
	return nil
}

// TailBuffer keeps the last lines written, for error messages.
type TailBuffer struct{ b []byte }

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

// Last returns the last three lines, joined by " | ".
func (t *TailBuffer) Last() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// Package benchutil holds what the side-by-side benchmarks share: a
// 14-entry matrix (7 Python versions × cpu/cuda, a distinct ~4 MiB layer each
// on one local busybox base) and timing helpers.
package benchutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/version"
)

// MatrixTemplate makes one distinct ~4 MiB layer per entry.
const MatrixTemplate = `FROM {{.base}}
ARG PYTHON_VERSION
ENV PYTHON_VERSION=${PYTHON_VERSION} RUNTIME={{.runtime}}
RUN head -c {{.payload}} /dev/urandom > /payload-{{.python}}-{{.runtime}}
CMD ["sh", "-c", "test -s /payload-$PYTHON_VERSION-$RUNTIME"]
`

// Shape is a matrix's size: Pythons × Runtimes entries, each with its own
// layer of Payload random bytes.
type Shape struct {
	Pythons, Runtimes, Payload int
	// Extra is appended to hoist.yaml (registry, scan, cluster sections).
	Extra string
}

// Matrix writes a repository with the 14-entry matrix under dir and returns
// its config. Image names are PROJECT/bench-RUNTIME-pyPYTHON:1.0.0.
func Matrix(dir, project string) (*config.Config, error) {
	return MatrixOf(dir, project, Shape{Pythons: 7, Runtimes: 2, Payload: 4 << 20})
}

// MatrixOf writes a repository with the matrix of shape s under dir, the
// same generator at any size: Python versions 3.7 upward, runtimes cpu,
// cuda, then rocm, xpu and rtN.
func MatrixOf(dir, project string, s Shape) (*config.Config, error) {
	var pythons, runtimes []string
	for i := 0; i < s.Pythons; i++ {
		pythons = append(pythons, fmt.Sprintf("3.%d", 7+i))
	}
	for i := 0; i < s.Runtimes; i++ {
		if i < 4 {
			runtimes = append(runtimes, []string{"cpu", "cuda", "rocm", "xpu"}[i])
		} else {
			runtimes = append(runtimes, fmt.Sprintf("rt%d", i))
		}
	}
	files := map[string]string{
		"PYTHON_VERSIONS": strings.Join(pythons, "\n") + "\n",
		"bench.tmpl":      MatrixTemplate,
		"ctx/.keep":       "",
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
build_dir: build
bases:
  - ref: %[1]s/busybox:1
    busybox: /bin/busybox
images:
  - name: bench-{{.runtime}}-py{{.python}}
    context: ctx
    template: bench.tmpl
    vars: {base: "%[1]s/busybox:1", payload: "%[2]d"}
    matrix:
      axes:
        python: {file: PYTHON_VERSIONS}
        runtime: [%[3]s]
    args: {PYTHON_VERSION: "{{.python}}"}
    test:
      command: [sh, -c, 'test -s /payload-$PYTHON_VERSION-$RUNTIME']
`, project, s.Payload, strings.Join(runtimes, ", ")) + s.Extra,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return config.Load(filepath.Join(dir, "hoist.yaml"))
}

// Plan expands cfg at version 1.0.0 with fixed labels.
func Plan(cfg *config.Config) (*plan.Plan, error) {
	v, _ := version.Parse("1.0.0")
	return plan.Make(cfg, plan.Options{Version: v, Revision: "bench", Created: time.Unix(1700000000, 0), Source: "https://example.com/bench"})
}

// Time runs fn and returns how long it took.
func Time(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// Median of ds.
func Median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Run runs a command, returning its combined output in the error.
func Run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// Report prints one comparison line and whether it meets the target ratio.
func Report(what string, hoist, anchor time.Duration, anchorName string, target float64) bool {
	ratio := hoist.Seconds() / anchor.Seconds()
	ok := ratio <= target
	verdict := "ok"
	if !ok {
		verdict = "MISSED"
	}
	fmt.Printf("%-34s hoist %7.3fs   %-22s %7.3fs   ratio %.3f (target <= %.2f) %s\n",
		what, hoist.Seconds(), anchorName, anchor.Seconds(), ratio, target, verdict)
	return ok
}

// Crane builds crane from go-containerregistry v0.20.6 (the version Hoist
// links, so it is in the module cache) into dir and returns its path.
func Crane(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", err
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "github.com/google/go-containerregistry@v0.20.6")
	bin := filepath.Join(dir, "crane")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/crane")
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building crane in %s: %w", src, err)
	}
	return bin, nil
}

// BuildxVersion is the buildx the benchmarks compare with (tools/buildx).
const BuildxVersion = "v0.19.3"

// Buildx builds the pinned buildx from the module proxy (tools/buildx)
// once per version, and returns a DOCKER_CONFIG folder holding it as a CLI
// plugin.
func Buildx(ctx context.Context, dir string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "hoist", "buildx-"+BuildxVersion, "docker-buildx")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.CommandContext(ctx, "go", "build", "-mod=mod", "-o", bin, "github.com/docker/buildx/cmd/buildx")
		cmd.Dir = filepath.Join("tools", "buildx")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building buildx %s from tools/buildx (run from the repository root): %v\n%s", BuildxVersion, err, out)
		}
	}
	cfg := filepath.Join(dir, "docker-config")
	if err := os.MkdirAll(filepath.Join(cfg, "cli-plugins"), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(bin, filepath.Join(cfg, "cli-plugins", "docker-buildx")); err != nil {
		return "", err
	}
	return cfg, nil
}

// Commit makes dir a git repository on branch main with everything in it
// committed, as the release lines expect a checkout to be.
func Commit(ctx context.Context, dir string) error {
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "matrix"}} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
	}
	return nil
}

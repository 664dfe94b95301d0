package kubenode

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
)

// Version is the Kubernetes release the node runs. Stay on 1.34: later
// kubelets refuse cgroup v1 by default, which machines of this class have.
const Version = "1.34.4"

// Commands are the Kubernetes programs the node needs, built from
// k8s.io/kubernetes at Version.
var Commands = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"}

// The tools module for Version with its go.sum, so the build is reproducible
// and verified without asking the checksum database. The same files live in
// tools/kubernetes of this repository (a test keeps them equal).
var (
	//go:embed pinned.go.mod
	pinnedGoMod []byte
	//go:embed pinned.go.sum
	pinnedGoSum []byte
)

// toolsGo blank-imports every command so `go mod tidy` keeps what each needs.
const toolsGo = `//go:build tools

// Package tools pins the Kubernetes release Hoist's test node runs. It is a
// module of its own so that Hoist's go.mod stays free of Kubernetes' own
// dependencies; listing every command keeps ` + "`go mod tidy`" + ` complete for each.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
`

// Components is a folder holding every program of Commands at Version.
type Components struct {
	Dir   string
	Built bool // true when Ensure built them in this call
}

// Path is the named program's file.
func (c Components) Path(name string) string { return filepath.Join(c.Dir, name) }

// ComponentsDir is where Ensure keeps Version in the tools folder.
func ComponentsDir(tools string) string { return filepath.Join(tools, "kubernetes-"+Version) }

// EnsureOptions configure EnsureComponents.
type EnsureOptions struct {
	// Tools is the tools folder, e.g. ~/.cache/hoist/tools. Required.
	Tools string
	// Progress receives one line when a build starts and the go command's
	// output; nil discards it.
	Progress io.Writer
	// Go is the go command (default "go" from PATH).
	Go string
}

// BuildFlags are the go build flags for the components; the version is
// stamped as Kubernetes' own release builds do, so the node and the API
// server report it.
func BuildFlags() []string {
	ld := "-s -w"
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld += fmt.Sprintf(" -X %[1]s.gitVersion=v%[2]s -X %[1]s.gitMajor=1 -X %[1]s.gitMinor=34 -X %[1]s.gitTreeState=clean", p, Version)
	}
	return []string{"-trimpath", "-ldflags", ld}
}

// EnsureComponents returns the components, building them from the Go module
// proxy when the tools folder lacks them (several minutes the first time).
// Two processes may call it at once: the build is serialised by a file lock
// and lands by renaming a complete folder, so half a build is never used.
func EnsureComponents(ctx context.Context, o EnsureOptions) (Components, error) {
	if o.Tools == "" {
		return Components{}, errors.New("kubernetes components: no tools folder given")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	dir := ComponentsDir(o.Tools)
	if complete(ctx, dir) == nil {
		return Components{Dir: dir}, nil
	}
	if err := os.MkdirAll(o.Tools, 0o755); err != nil {
		return Components{}, fmt.Errorf("creating tools folder: %w", err)
	}
	held, err := lock.Acquire(ctx, dir+".lock", nil)
	if err != nil {
		return Components{}, fmt.Errorf("building kubernetes %s: %w", Version, err)
	}
	defer held.Release()
	// Another process may have built them while we waited for the lock.
	if complete(ctx, dir) == nil {
		return Components{Dir: dir}, nil
	}
	if err := build(ctx, o, dir); err != nil {
		return Components{}, err
	}
	return Components{Dir: dir, Built: true}, nil
}

// complete checks that every command is in dir and kubectl reports Version.
func complete(ctx context.Context, dir string) error {
	for _, c := range Commands {
		if st, err := os.Stat(filepath.Join(dir, c)); err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is missing from %s", c, dir)
		}
	}
	v, err := ClientVersion(ctx, filepath.Join(dir, "kubectl"))
	if err != nil {
		return err
	}
	if v != "v"+Version {
		return fmt.Errorf("%s reports kubectl %s, not v%s", dir, v, Version)
	}
	return nil
}

// ClientVersion is the version `kubectl version --client` reports.
func ClientVersion(ctx context.Context, kubectl string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "version", "--client", "-o", "json").Output()
	if err != nil {
		return "", fmt.Errorf("running %s version: %w", kubectl, err)
	}
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("reading %s version: %w", kubectl, err)
	}
	return v.ClientVersion.GitVersion, nil
}

func build(ctx context.Context, o EnsureOptions, dir string) error {
	goCmd := o.Go
	if goCmd == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return fmt.Errorf("building kubernetes %s needs Go: install Go (https://go.dev/dl)", Version)
		}
		goCmd = p
	}
	mod, err := os.MkdirTemp(o.Tools, ".kubernetes-"+Version+"-module-")
	if err != nil {
		return fmt.Errorf("creating tools module: %w", err)
	}
	defer os.RemoveAll(mod)
	for name, b := range map[string][]byte{"go.mod": pinnedGoMod, "go.sum": pinnedGoSum, "tools.go": []byte(toolsGo)} {
		if err := os.WriteFile(filepath.Join(mod, name), b, 0o644); err != nil {
			return fmt.Errorf("writing tools module: %w", err)
		}
	}
	out := filepath.Join(mod, "bin")
	fmt.Fprintf(o.Progress, "kubernetes %s: building %s from the Go module proxy into %s (several minutes the first time, reused after)\n", Version, strings.Join(Commands, ", "), dir)
	start := time.Now()
	args := append([]string{"build"}, BuildFlags()...)
	args = append(args, "-o", out+"/")
	for _, c := range Commands {
		args = append(args, "k8s.io/kubernetes/cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	var tail tailBuffer
	cmd.Stdout = io.MultiWriter(o.Progress, &tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("building kubernetes %s: %w", Version, ctx.Err())
		}
		return fmt.Errorf("building kubernetes %s: %v: %s: check that the Go module proxy answers (GOPROXY)", Version, err, tail.last())
	}
	if err := complete(ctx, out); err != nil {
		return fmt.Errorf("built kubernetes %s: %w", Version, err)
	}
	// A stale, incomplete folder from an interrupted older layout goes first.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("installing kubernetes %s: %w", Version, err)
	}
	if err := os.Rename(out, dir); err != nil {
		return fmt.Errorf("installing kubernetes %s: %w", Version, err)
	}
	fmt.Fprintf(o.Progress, "kubernetes %s: built in %s: %s\n", Version, time.Since(start).Round(time.Second), dir)
	return nil
}

// tailBuffer keeps the last bytes written, for error messages.
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

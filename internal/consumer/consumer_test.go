// Package consumer proves an outside repository can use Hoist: a new module
// whose magefile imports Hoist's targets builds with mage, needing no
// replace directive but the one pointing at this checkout (consumers never
// inherit replaces, so Hoist's own pins must build together as they are).
package consumer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
)

func TestOutsideModuleImportsTargets(t *testing.T) {
	root := testenv.RepoRoot(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(gomod), "\nreplace") {
		t.Fatalf("Hoist's go.mod has a replace directive; consumers would not inherit it")
	}
	// The consumer uses this repository's zero-install entry as it is.
	zeroInstall, err := os.ReadFile(filepath.Join(root, "mage.go"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/consumer\n\ngo 1.26\n\nrequire github.com/hoistci/hoist v0.0.0\n\nreplace github.com/hoistci/hoist => " + root + "\n",
		"mage.go": string(zeroInstall),
		"magefiles/magefile.go": `//go:build mage

package main

import (
	"fmt"

	//mage:import
	_ "github.com/hoistci/hoist/pkg/targets"
)

// Hello is the consumer's own target beside Hoist's.
func Hello() { fmt.Println("hello") }
`,
	}
	testenv.WriteFiles(t, dir, files)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	// The consumer resolves Hoist's pins as they are: a dependency that
	// needs newer versions of these (e.g. go-containerregistry v0.20.7
	// pulling docker/cli v29, which breaks k3d) would move them here.
	for _, mod := range []string{"github.com/google/go-containerregistry", "github.com/k3d-io/k3d/v5", "github.com/docker/docker", "github.com/docker/cli", "github.com/moby/buildkit", "github.com/sigstore/sigstore"} {
		want := requiredVersion(t, string(gomod), mod)
		if got := strings.TrimSpace(run("list", "-m", "-f", "{{.Version}}", mod)); got != want {
			t.Errorf("the consumer resolves %s %s, Hoist pins %s", mod, got, want)
		}
	}
	out := run("run", "mage.go", "-l")
	for _, want := range []string{"hello", "images"} {
		if !strings.Contains(strings.ToLower(out), want) {
			t.Errorf("mage -l in the consumer does not list %q:\n%s", want, out)
		}
	}
	// Runs started together all compile the magefile and run the target:
	// mage's shared generated file and binary are never clobbered.
	const runs = 6
	errs := make(chan string, runs)
	for i := 0; i < runs; i++ {
		go func() {
			cmd := exec.Command("go", "run", "mage.go", "hello")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "hello") {
				errs <- fmt.Sprintf("%v: %s", err, out)
				return
			}
			errs <- ""
		}()
	}
	for i := 0; i < runs; i++ {
		if e := <-errs; e != "" {
			t.Errorf("concurrent run: %s", e)
		}
	}
	// The local registry's program builds where a consumer's Push runs.
	run("build", "-o", os.DevNull, "github.com/hoistci/hoist/pkg/localregistry/cmd/hoist-registry")
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if n := strings.Count(string(mod), "replace"); n != 1 {
		t.Fatalf("consumer go.mod needs %d replace directives, want 1:\n%s", n, mod)
	}
}

// requiredVersion is the version go.mod requires of mod.
func requiredVersion(t *testing.T, gomod, mod string) string {
	t.Helper()
	for _, line := range strings.Split(gomod, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == mod {
			return f[1]
		}
	}
	t.Fatalf("Hoist's go.mod does not require %s", mod)
	return ""
}

// TestZeroInstallEntryPoint: `go run mage.go -l` works in this repository
// (go mod tidy must not drop mage, which only mage.go imports directly).
func TestZeroInstallEntryPoint(t *testing.T) {
	cmd := exec.Command("go", "run", "mage.go", "-l")
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run mage.go -l: %v\n%s", err, out)
	}
	for _, target := range []string{"images", "release", "bump"} {
		if !strings.Contains(string(out), "  "+target+" ") {
			t.Errorf("mage -l does not list %s:\n%s", target, out)
		}
	}
	// One short line per target; the details are in mage -h TARGET.
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) > 100 {
			t.Errorf("mage -l line of %d characters (at most 100): %s", len(line), line)
		}
	}
}

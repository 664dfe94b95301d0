package targets

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
)

// TestFreshEngine is the README's test command on a machine where no
// engine answers: the Test target itself brings one up (engine-up.sh starts
// a private dockerd on its own socket and folders, beside the machine's),
// before its static checks, whose own tests need the engine (the check here
// asks the engine for its version); then a base compiled from Go (no host
// package), Images and the container tests run on the new engine.
func TestFreshEngine(t *testing.T) {
	testenv.Engine(t) // the machine can run engines at all
	if os.Geteuid() != 0 && exec.Command("sudo", "-n", "true").Run() != nil {
		testenv.Need(t, "starting a private dockerd needs root or passwordless sudo")
	}
	engineDir, err := os.MkdirTemp("", "hoist-fresh-engine-")
	if err != nil {
		t.Fatal(err)
	}
	sock := "unix://" + filepath.Join(engineDir, "docker.sock")
	t.Setenv("DOCKER_HOST", sock)
	t.Setenv("HOIST_DOCKERD_ROOT", engineDir)
	t.Setenv("HOIST_DOCKERD_LOG", filepath.Join(engineDir, "dockerd.log"))
	t.Setenv(envNoEngineUp, "")
	t.Cleanup(func() { stopPrivateEngine(t, engineDir) })

	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"VERSION":           "1.0.0\n",
		"go.mod":            "module example.com/fresh\n\ngo 1.22\n",
		"cmd/hello/main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from a Go base\") }\n",
		"app/Dockerfile":    "FROM fresh/base:1\nCOPY Dockerfile /app/\nCMD [\"/bin/hello\"]\n",
		"hoist.yaml": `project: fresh
checks:
  - {name: engine answers, run: [docker, version, --format, "{{.Server.Version}}"]}
bases:
  - {ref: "fresh/base:1", go: {/bin/hello: ./cmd/hello}}
images:
  - name: app
    context: app
    dockerfile: app/Dockerfile
    test: {command: [/bin/hello]}
`,
	})
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := captureOut(t, func() error { return Test(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"no Docker Engine answers; bringing one up",
		"engine-up: starting dockerd: no Docker Engine answers at " + sock,
		"test: 2 passed, 0 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if i, j := strings.Index(out, "engine-up: Docker Engine"), strings.Index(out, "static checks"); i < 0 || j < i {
		t.Error("the engine was not up before the static checks")
	}
}

// stopPrivateEngine stops the dockerd this test started (by its pid file)
// and waits for it, so its mounts are gone before the folder is removed.
func stopPrivateEngine(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "dockerd.pid"))
	if err != nil {
		t.Logf("no dockerd pid file: %v", err)
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return
	}
	root := func(args ...string) error {
		if os.Geteuid() != 0 {
			args = append([]string{"sudo", "-n", "--"}, args...)
		}
		return exec.Command(args[0], args[1:]...).Run()
	}
	_ = root("kill", strconv.Itoa(pid))
	// dockerd removes its pid file as it exits; wait on that, not a clock.
	_ = root("sh", "-c", "while kill -0 "+strconv.Itoa(pid)+" 2>/dev/null; do sleep 0.1; done")
	_ = root("rm", "-rf", dir)
}

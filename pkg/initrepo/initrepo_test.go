package initrepo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/internal/workflows"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/gobin"
	"github.com/hoistci/hoist/pkg/initrepo"
	"github.com/hoistci/hoist/pkg/targets"
)

// selftest is the program the throw-away repositories' images run as their
// HEALTHCHECK: FROM-scratch images need no pull and no shell.
const selftest = `package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "py" && (os.Getenv("PYTHON_VERSION") == "" || os.Getenv("RUNTIME") == "") {
		fmt.Println("PYTHON_VERSION or RUNTIME not set")
		os.Exit(1)
	}
	fmt.Println("ok", os.Getenv("PYTHON_VERSION"), os.Getenv("RUNTIME"))
}
`

const plainDockerfile = "FROM scratch\nCOPY selftest /selftest\nHEALTHCHECK --interval=30s CMD [\"/selftest\"]\nCMD [\"/selftest\"]\n"

// selftestBinary compiles selftest once for the engine's architecture.
func selftestBinary(t *testing.T, arch string) []byte {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"go.mod": "module example.com/selftest\n", "main.go": selftest})
	out := filepath.Join(dir, "selftest")
	if err := gobin.Build(context.Background(), dir, out, gobin.Options{Arch: arch, Env: os.Environ()}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInit(t *testing.T) {
	e := testenv.Engine(t)
	arch, err := e.Arch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bin := selftestBinary(t, arch)
	for _, tc := range []struct {
		name   string
		files  map[string]string
		bins   []string // where the selftest binary goes
		images []string
		passed int
	}{
		{
			name:   "one Dockerfile",
			files:  map[string]string{"Dockerfile": plainDockerfile, "README.md": "demo\n"},
			bins:   []string{"selftest"},
			images: []string{"PROJECT"},
			passed: 1,
		},
		{
			name: "three services",
			files: map[string]string{
				"services/api/Dockerfile":    plainDockerfile,
				"services/worker/Dockerfile": plainDockerfile,
				"web/Dockerfile":             strings.Replace(plainDockerfile, `HEALTHCHECK --interval=30s CMD ["/selftest"]`, `healthcheck --timeout=3s --retries=2 CMD ["/selftest"]`, 1),
				".git/ignored/Dockerfile":    plainDockerfile, // hidden folders are not looked in
			},
			bins:   []string{"services/api/selftest", "services/worker/selftest", "web/selftest"},
			images: []string{"api", "worker", "web"},
			passed: 3,
		},
		{
			name: "templated matrix",
			files: map[string]string{
				"PYTHON_VERSIONS": "3.11\n3.12\n",
				"VERSION":         "2.3.4\n",
				"docker/Dockerfile.tmpl": "FROM scratch\nARG PYTHON_VERSION\nENV PYTHON_VERSION=${PYTHON_VERSION} RUNTIME={{.runtime}}\n" +
					"COPY selftest /selftest\nHEALTHCHECK CMD [\"/selftest\", \"py\"]\n",
			},
			bins:   []string{"docker/selftest"},
			images: []string{"docker-{{.runtime}}-py{{.python}}"},
			passed: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testenv.WriteFiles(t, dir, tc.files)
			for _, p := range tc.bins {
				if err := os.WriteFile(filepath.Join(dir, p), bin, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			project := testenv.Unique("hoistinit")
			t.Cleanup(func() { removeProject(e, project) })
			res, err := initrepo.Init(dir, initrepo.Options{Project: project})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, n := range tc.images {
				want = append(want, strings.ReplaceAll(n, "PROJECT", project))
			}
			if fmt.Sprint(res.Images) != fmt.Sprint(want) {
				t.Errorf("images %v, want %v", res.Images, want)
			}
			for _, p := range []string{"hoist.yaml", "VERSION", "go.mod", "mage.go", "magefiles/magefile.go", ".github/workflows/hoist-ci.yml", ".github/workflows/hoist-release.yml", ".github/actions/hoist-setup/action.yml"} {
				if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
					t.Errorf("%s not written: %v", p, err)
				}
			}
			if v, _ := os.ReadFile(filepath.Join(dir, "VERSION")); tc.files["VERSION"] != "" && string(v) != tc.files["VERSION"] {
				t.Errorf("VERSION was rewritten: %q", v)
			}
			yml, _ := os.ReadFile(filepath.Join(dir, "hoist.yaml"))
			t.Logf("hoist.yaml:\n%s", yml)
			if _, err := config.Load(filepath.Join(dir, "hoist.yaml")); err != nil {
				t.Fatalf("the written hoist.yaml does not load: %v", err)
			}
			for _, wf := range []string{"workflows/hoist-ci.yml", "workflows/hoist-release.yml", "actions/hoist-setup/action.yml"} {
				w, err := workflows.Load(filepath.Join(dir, ".github", wf))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range append(w.Unpinned(), w.ForkUnsafe()...) {
					t.Error(p)
				}
			}

			// The result passes Test unchanged: Images and the container
			// tests on the real engine.
			t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
			out, err := capture(t, func() error { return targets.Test(context.Background()) })
			if err != nil {
				t.Fatalf("Test on the written pipeline: %v\n%s", err, out)
			}
			if w := fmt.Sprintf("test: %d passed, 0 failed", tc.passed); !strings.Contains(out, w) {
				t.Errorf("want %q in:\n%s", w, out)
			}

			// Again: refused, nothing touched.
			before, _ := os.ReadFile(filepath.Join(dir, "hoist.yaml"))
			if _, err := initrepo.Init(dir, initrepo.Options{Project: "other"}); !errors.Is(err, initrepo.ErrExists) || !strings.Contains(err.Error(), "hoist.yaml") {
				t.Fatalf("init over an initialised repository: %v", err)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "hoist.yaml")); string(after) != string(before) {
				t.Error("a refused init changed hoist.yaml")
			}
		})
	}
}

// One existing file (here a workflow) stops init before it writes anything.
func TestInitRefuses(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": plainDockerfile, ".github/workflows/hoist-ci.yml": "mine\n"})
	_, err := initrepo.Init(dir, initrepo.Options{})
	if !errors.Is(err, initrepo.ErrExists) || !strings.Contains(err.Error(), ".github/workflows/hoist-ci.yml") {
		t.Fatalf("want ErrExists naming the workflow, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hoist.yaml")); err == nil {
		t.Error("a refused init wrote hoist.yaml")
	}
	if _, err := initrepo.Init(t.TempDir(), initrepo.Options{}); err == nil || !strings.Contains(err.Error(), "no Dockerfile found") {
		t.Errorf("no Dockerfile: %v", err)
	}
}

// The workflows init writes, and the setup action they share, pass the
// pinned actionlint.
func TestInitWorkflowsLint(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": plainDockerfile})
	if _, err := initrepo.Init(dir, initrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	// A repository, as the user's is: actionlint then finds its root and
	// checks the jobs' use of the local setup action (its inputs).
	if out, err := exec.Command("git", "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	wfs, _ := filepath.Glob(filepath.Join(dir, ".github/workflows/*.yml"))
	cmd := exec.Command("bash", append([]string{filepath.Join(testenv.RepoRoot(t), "scripts/actionlint.sh")}, wfs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
}

func removeProject(e interface {
	Remove(ctx context.Context, ref string) error
}, project string) {
	list, _ := exec.Command("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+project+"/*").Output()
	for _, ref := range strings.Fields(string(list)) {
		_ = e.Remove(context.Background(), ref)
	}
}

// capture returns what fn prints (targets print to standard output).
func capture(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	return testenv.Stdout(t, fn)
}

package targets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// tempRepo writes a one-image repository and points HOIST_CONFIG at it.
func tempRepo(t *testing.T) (dir, project string) {
	t.Helper()
	bb := testenv.Binary(t, "busybox", "busybox-static")
	dir = t.TempDir()
	project = testenv.Unique("hoisttgt")
	files := map[string]string{
		"VERSION":        "v0.3.0\n",
		"ctx/Dockerfile": fmt.Sprintf("FROM %s/busybox:1\nRUN echo hi > /hi\n", project),
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
bases:
  - {ref: "%[1]s/busybox:1", busybox: %[2]s}
images:
  - name: app
    context: ctx
    dockerfile: ctx/Dockerfile
`, project, bb),
	}
	testenv.WriteFiles(t, dir, files)
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
	return dir, project
}

func TestImagesTarget(t *testing.T) { testenv.EachEngine(t, testImagesTarget) }

func testImagesTarget(t *testing.T) {
	e := testenv.Engine(t)
	dir, project := tempRepo(t)
	t.Cleanup(func() {
		e.Remove(context.Background(), project+"/app:0.3.0")
		e.Remove(context.Background(), project+"/busybox:1")
	})
	if err := Images(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	img, ok := l.Find("app")
	if !ok || img.Ref != project+"/app:0.3.0" || l.Version != "0.3.0" {
		t.Fatalf("lock = %+v", l)
	}
	got, err := e.Inspect(context.Background(), img.Ref)
	if err != nil || got.ID != img.ImageID {
		t.Fatalf("engine has %+v (%v), lock says %s", got, err, img.ImageID)
	}
	// A version override from the environment is what gets built.
	t.Setenv(envVersion, "0.3.0-staging.2")
	t.Cleanup(func() { e.Remove(context.Background(), project+"/app:0.3.0-staging.2") })
	if err := Images(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Inspect(context.Background(), project+"/app:0.3.0-staging.2"); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envVersion, "3.0")
	if err := Images(context.Background()); err == nil || !strings.Contains(err.Error(), "HOIST_VERSION") {
		t.Fatalf("bad override: err = %v", err)
	}
}

func TestImagesNoEngineOptOut(t *testing.T) {
	tempRepo(t)
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	t.Setenv(envNoEngineUp, "1")
	err := Images(context.Background())
	if err == nil {
		t.Fatal("no error without an engine")
	}
	msg := err.Error()
	for _, want := range []string{"no Docker Engine answers", "scripts/engine-up.sh", envNoEngineUp} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
}

func TestImagesBadConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hoist.yaml"), []byte("project: x\nimages:\n  - {name: a, dockerfile: missing}\n"), 0o644)
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
	err := Images(context.Background())
	if err == nil || !strings.Contains(err.Error(), "hoist.yaml:3: image \"a\": Dockerfile missing does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func TestOverridesFromEnvironment(t *testing.T) {
	tempRepo(t)
	t.Setenv(envRegistry, "ghcr.io/acme/tools")
	t.Setenv(envGitHubRepo, "acme/tools")
	t.Setenv(envGitHubAPI, "http://127.0.0.1:1/api")
	s, err := newRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Cfg.Registry; r.Host != "ghcr.io" || r.Repository != "acme/tools" {
		t.Fatalf("registry = %+v", r)
	}
	if r := s.Cfg.Release; r.GitHub != "acme/tools" || r.GitHubAPI != "http://127.0.0.1:1/api" {
		t.Fatalf("release = %+v", r)
	}
	for env, bad := range map[string]string{envRegistry: "https://ghcr.io/x", envGitHubRepo: "acme", "HOIST_PARALLEL": "-3"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, bad)
			if _, err := newRun(context.Background()); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// A password written into HOIST_REGISTRY is refused and never echoed.
	t.Run("credentials in HOIST_REGISTRY", func(t *testing.T) {
		t.Setenv(envRegistry, "bob:hunter2@ghcr.io/acme/tools")
		_, err := newRun(context.Background())
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "HOIST_REGISTRY_PASSWORD") {
			t.Fatalf("err = %v", err)
		}
	})
}

package targets

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/hoistci/hoist/internal/faultproxy"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// releaseRepo is a committed one-image repository on branch staging with a
// bare remote, HOIST_CONFIG pointing at it, and git isolated from the
// machine's config.
func releaseRepo(t *testing.T) (dir, bare string) {
	t.Helper()
	for k, v := range testenv.GitEnv {
		t.Setenv(k, v)
	}
	for k, v := range map[string]string{
		envRef: "", envOverride: "", envDryRun: "", envPR: "", "GITHUB_EVENT_NAME": "", envOutput: "",
		// Release hands the reserved version to its stages as HOIST_VERSION;
		// registering it here restores it after the test.
		envVersion: "",
	} {
		t.Setenv(k, v)
	}
	root := t.TempDir()
	dir, bare = filepath.Join(root, "repo"), filepath.Join(root, "remote.git")
	files := map[string]string{
		"VERSION":                  "v0.3.0\n",
		".gitignore":               "/build/\n",
		"Dockerfile":               "FROM scratch\n",
		"hoist.yaml":               "project: rel\nimages:\n  - {name: app, dockerfile: Dockerfile}\n",
		"docs/CHANGELOGS/0.3.0.md": "# 0.3.0\n\n- first\n",
	}
	testenv.WriteFiles(t, dir, files)
	run(t, root, "git", "init", "-q", "--bare", bare)
	run(t, dir, "git", "init", "-q", "-b", "staging")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "first")
	run(t, dir, "git", "remote", "add", "origin", bare)
	run(t, dir, "git", "push", "-q", "origin", "staging")
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
	return dir, bare
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// stdout runs fn with os.Stdout captured (targets print there).
func stdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	return testenv.Stdout(t, fn)
}

func TestBumpTarget(t *testing.T) {
	dir, _ := releaseRepo(t)
	ctx := context.Background()
	out, err := stdout(t, func() error { return Bump(ctx, "rc") })
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "VERSION")); string(b) != "v0.3.1-rc.1\n" {
		t.Fatalf("VERSION = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "docs", "CHANGELOGS", "0.3.1.md")); err != nil || !strings.Contains(out, "v0.3.0 → v0.3.1-rc.1") {
		t.Fatalf("changelog: %v; output %q", err, out)
	}
	if err := Bump(ctx, "beta"); err == nil || !strings.Contains(err.Error(), "would go back") {
		t.Fatalf("beta after rc: %v", err)
	}
	t.Setenv(envDryRun, "1")
	out, err = stdout(t, func() error { return Bump(ctx, "minor") })
	if err != nil || !strings.Contains(out, "dry run, nothing written: VERSION v0.3.1-rc.1 → v0.4.0") {
		t.Fatalf("dry run: %v, %q", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "VERSION")); string(b) != "v0.3.1-rc.1\n" {
		t.Fatalf("dry run wrote VERSION = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "docs", "CHANGELOGS", "0.4.0.md")); err == nil {
		t.Fatal("dry run created a changelog")
	}
}

func TestReserveTarget(t *testing.T) {
	dir, bare := releaseRepo(t)
	ctx := context.Background()
	output := filepath.Join(t.TempDir(), "github_output")
	t.Setenv(envOutput, output)
	out, err := stdout(t, func() error { return Reserve(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	sha := run(t, dir, "git", "rev-parse", "HEAD")
	if !strings.Contains(out, "reserved 0.3.0-staging.0 at "+sha) {
		t.Fatalf("output %q", out)
	}
	if tags := run(t, dir, "git", "ls-remote", "--tags", bare); tags != sha+"\trefs/tags/0.3.0-staging.0" {
		t.Fatalf("remote tags %q", tags)
	}
	if b, _ := os.ReadFile(output); string(b) != "version=0.3.0-staging.0\n" {
		t.Fatalf("GITHUB_OUTPUT = %q", b)
	}
	t.Setenv(envOverride, "0.3.0-staging.0")
	if err := Reserve(ctx); err != nil {
		t.Fatalf("override at this commit: %v", err)
	}
	run(t, dir, "git", "commit", "-q", "--allow-empty", "-m", "second")
	if err := Reserve(ctx); err == nil || !strings.Contains(err.Error(), "not at this commit") {
		t.Fatalf("override at another commit: %v", err)
	}
}

// withRegistry points the repository's config at an in-process registry,
// commits that, and returns the registry's host.
func withRegistry(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg := filepath.Join(dir, "hoist.yaml")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(b, []byte("registry: {host: "+host+", repository: rel}\n")...), 0o644)
	run(t, dir, "git", "commit", "-q", "-am", "registry")
	return host
}

func TestReleaseTargetDryRun(t *testing.T) {
	dir, bare := releaseRepo(t)
	host := withRegistry(t, dir)
	t.Setenv(envDryRun, "1")
	t.Setenv(envRef, "refs/heads/staging")
	out, err := stdout(t, func() error { return Release(context.Background()) })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Log("\n" + out)
	for _, want := range []string{"release: staging line", "no GitHub release: release.github is not set", "[1/10] Reserve: would write git tag 0.3.0-staging.0", "[3/10] Test\n", "[7/10] Push: would write image tags 0.3.0-staging.0 and staging on " + host + "/rel", "[9/10] Pins: would write ", "[10/10] GitHub prerelease skipped: release.github is not set"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if tags := run(t, t.TempDir(), "git", "ls-remote", "--tags", bare); tags != "" {
		t.Fatalf("dry run created tags: %s", tags)
	}
}

// TestReleaseTargetStagingBuildsReservedVersion runs the staging line with
// the real engine: the tag is reserved on the remote, Images builds that
// very version (the flow hands it over as HOIST_VERSION), and the run stops
// at the first stage this build does not have, before anything is pushed.
func TestReleaseTargetStagingBuildsReservedVersion(t *testing.T) {
	testenv.EachEngine(t, testReleaseTargetStagingBuildsReservedVersion)
}

func testReleaseTargetStagingBuildsReservedVersion(t *testing.T) {
	e := testenv.Engine(t)
	dir, bare := releaseRepo(t)
	project := testenv.Unique("hoistrel")
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY hello /hello\n"), 0o644)
	// The image's test cannot pass (/hello is not a program): the run must
	// stop at Test, after reserving and building, before anything is pushed.
	os.WriteFile(filepath.Join(dir, "hoist.yaml"), []byte("project: "+project+"\nimages:\n  - {name: app, dockerfile: Dockerfile, test: {command: [/hello]}}\n"), 0o644)
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "image")
	withRegistry(t, dir)
	t.Setenv(envRef, "refs/heads/staging")
	t.Setenv(envVersion, "")
	t.Cleanup(func() { e.Remove(context.Background(), project+"/app:0.3.0-staging.0") })
	out, err := stdout(t, func() error { return Release(context.Background()) })
	if err == nil || !strings.HasPrefix(err.Error(), "Test: ") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	sha := run(t, dir, "git", "rev-parse", "HEAD")
	if tags := run(t, dir, "git", "ls-remote", "--tags", bare); tags != sha+"\trefs/tags/0.3.0-staging.0" {
		t.Fatalf("remote tags %q", tags)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if img, ok := l.Find("app"); l.Version != "0.3.0-staging.0" || !ok || img.Ref != project+"/app:0.3.0-staging.0" || len(img.Pushed) != 0 || img.Test == nil || img.Test.Passed {
		t.Fatalf("lock = %+v", l)
	}
}

func TestReleaseMainWithoutStagingBuildTagsNothing(t *testing.T) {
	dir, bare := releaseRepo(t)
	withRegistry(t, dir)
	t.Setenv(envRef, "refs/heads/main")
	run(t, dir, "git", "checkout", "-q", "-b", "main")
	sha := run(t, dir, "git", "rev-parse", "HEAD")
	_, err := stdout(t, func() error { return Release(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "commit "+sha[:12]+" has no staging build of 0.3.0 (there is none): promote only a commit the staging line built and tested") {
		t.Fatalf("err = %v", err)
	}
	if tags := run(t, dir, "git", "ls-remote", "--tags", bare); tags != "" {
		t.Fatalf("tags created after a refused promotion: %s", tags)
	}
}

// TestReleaseInCIWithoutRegistryRefuses: a CI run of a pushing line with no
// registry configured refuses before any write, where it used to push to a
// throw-away local registry and exit 0.
func TestReleaseInCIWithoutRegistryRefuses(t *testing.T) {
	dir, bare := releaseRepo(t)
	t.Setenv("CI", "true")
	for _, ref := range []string{"refs/heads/staging", "refs/heads/main"} {
		t.Run(ref, func(t *testing.T) {
			t.Setenv(envRef, ref)
			if ref == "refs/heads/main" {
				run(t, dir, "git", "checkout", "-q", "-B", "main")
			}
			out, err := stdout(t, func() error { return Release(context.Background()) })
			if err == nil || !strings.Contains(err.Error(), "no registry is configured and this is a CI run: set HOIST_REGISTRY") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\n%s", err, out)
			}
			if tags := run(t, dir, "git", "ls-remote", "--tags", bare); tags != "" {
				t.Fatalf("tags created: %s", tags)
			}
			if _, err := os.Stat(filepath.Join(dir, "build", "hoist", "registry")); err == nil {
				t.Fatal("a local registry was started in CI")
			}
			if _, err := os.Stat(filepath.Join(dir, "build", "hoist", "lock.json")); err == nil {
				t.Fatal("something was built")
			}
		})
	}
}

// TestReleasePreflightFindsARefusingRegistry: with a real distribution
// registry that refuses the run's password, the staging line stops in the
// preflight, before a number is reserved or anything is built.
func TestReleasePreflightFindsARefusingRegistry(t *testing.T) {
	dir, bare := releaseRepo(t)
	reg := regtest.Distribution(t, "ci", "right-password")
	cfg := filepath.Join(dir, "hoist.yaml")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(b, []byte("registry: {host: "+reg.Host+", repository: rel}\n")...), 0o644)
	run(t, dir, "git", "commit", "-q", "-am", "registry")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv(envRegistryUser, "ci")
	t.Setenv(envRegistryPass, "wrong-password")
	t.Setenv(envRef, "refs/heads/staging")
	out, err := stdout(t, func() error { return Release(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "checking push access to "+reg.Host+"/rel/app") || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if strings.Contains(out, "[1/") {
		t.Fatalf("a step ran:\n%s", out)
	}
	if tags := run(t, dir, "git", "ls-remote", "--tags", bare); tags != "" {
		t.Fatalf("a number was reserved: %s", tags)
	}
	if _, err := os.Stat(filepath.Join(dir, "build", "hoist", "lock.json")); err == nil {
		t.Fatal("something was built")
	}
}

// TestReleasePreflightCost: the preflight's registry check is a fixed
// handful of requests whatever the number of images: the ping, one blob
// upload opened and one cancelled.
func TestReleasePreflightCost(t *testing.T) {
	dir, _ := releaseRepo(t)
	reg := regtest.Distribution(t, "", "")
	var mu sync.Mutex
	var seen []string
	proxy := faultproxy.New(reg.Host, func(n int, r *http.Request) faultproxy.Fault {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		return faultproxy.Fault{}
	})
	t.Cleanup(proxy.Close)
	cfg := filepath.Join(dir, "hoist.yaml")
	var imgs strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&imgs, "  - {name: app%d, dockerfile: Dockerfile}\n", i)
	}
	os.WriteFile(cfg, []byte("project: rel\nimages:\n"+imgs.String()+"registry: {host: "+proxy.Host+", repository: rel}\n"), 0o644)
	run(t, dir, "git", "commit", "-q", "-am", "twelve images")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv(envRef, "refs/heads/staging")
	t.Setenv(envDryRun, "1")
	if out, err := stdout(t, func() error { return Release(context.Background()) }); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 3 {
		t.Fatalf("the preflight sent %d requests to the registry for 12 images, want at most 3: %v", len(seen), seen)
	}
	t.Logf("preflight requests: %v", seen)
}

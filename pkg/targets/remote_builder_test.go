package targets

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	bk "github.com/moby/buildkit/client"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/buildkitd"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
)

// startBuildkitd runs the pinned standalone buildkitd (built once from the
// module proxy) on 127.0.0.1 with mutual TLS, stopped at cleanup.
func startBuildkitd(t *testing.T) *buildkitd.Daemon {
	t.Helper()
	testenv.Engine(t) // the same machine facts: root, an engine, runc
	runc := testenv.Binary(t, "runc", "runc")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bin, err := buildkitd.Ensure(ctx, filepath.Join(cache, "hoist", "tools"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hoist-buildkitd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer scancel()
	d, err := buildkitd.Start(sctx, bin, runc, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// TestRemoteBuilder: the 14-entry matrix is built by a real standalone
// buildkitd reached over mutual TLS, comes back into the engine, is tested
// there in containers and pushed to a real registry; the digest gate holds.
// The local base exists only in the engine: the daemon gets those bytes
// from Hoist, as it cannot pull. A wrong certificate and an unreachable
// builder are one line each.
func TestRemoteBuilder(t *testing.T) {
	d := startBuildkitd(t)
	testenv.EachEngine(t, func(t *testing.T) { testRemoteBuilder(t, d) })
}

func testRemoteBuilder(t *testing.T, d *buildkitd.Daemon) {
	e := testenv.Engine(t)
	testenv.Binary(t, "busybox", "busybox-static")
	reg := regtest.Distribution(t, "", "")
	dir := t.TempDir()
	proj := testenv.Unique("hoistremote")
	if _, err := benchutil.Matrix(dir, proj); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "hoist.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("network: none\nregistry:\n  host: " + reg.Host + "\n  repository: org\n")
	f.Close()
	testenv.WriteFiles(t, dir, map[string]string{"VERSION": "1.0.0\n", ".gitignore": "build/\n"})
	for k, v := range testenv.GitEnv {
		t.Setenv(k, v)
	}
	run(t, dir, "git", "init", "-q")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "matrix")
	t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
	t.Setenv("HOIST_VERSION", "1.0.0-staging.1")
	t.Setenv("HOIST_PR", "")
	t.Setenv("GITHUB_EVENT_NAME", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("BUILDKIT_HOST", d.Addr)
	t.Setenv("HOIST_BUILDKIT_CA", d.TLS.CA)
	t.Setenv("HOIST_BUILDKIT_CERT", d.TLS.ClientCert)
	t.Setenv("HOIST_BUILDKIT_KEY", d.TLS.ClientKey)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		l, _ := lock.Read(filepath.Join(dir, "build", "lock.json"))
		if l != nil {
			for _, img := range l.Images {
				e.Remove(context.Background(), img.Ref)
			}
		}
		e.Remove(context.Background(), proj+"/busybox:1")
	})

	var runErr error
	out := capture(t, func() { runErr = Test(ctx) })
	if runErr != nil {
		t.Fatalf("Test through the remote builder: %v\n%s", runErr, out)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 14 {
		t.Fatalf("lock has %d images, want 14", len(l.Images))
	}
	for _, img := range l.Images {
		got, err := e.Inspect(ctx, img.Ref)
		if err != nil || got.ID != img.ImageID || img.Test == nil || !img.Test.Passed {
			t.Fatalf("%s: engine %+v (%v), lock %+v", img.Name, got, err, img)
		}
	}
	// The daemon did the building: its cache holds the steps.
	c, err := bk.New(ctx, d.Addr, bk.WithServerConfig("127.0.0.1", d.TLS.CA), bk.WithCredentials(d.TLS.ClientCert, d.TLS.ClientKey))
	if err != nil {
		t.Fatal(err)
	}
	du, err := c.DiskUsage(ctx)
	c.Close()
	if err != nil || len(du) < 14 {
		t.Fatalf("the remote builder's cache has %d records (%v): the images were not built there", len(du), err)
	}
	if out := capture(t, func() { runErr = Push(ctx) }); runErr != nil {
		t.Fatalf("push: %v\n%s", runErr, out)
	}
	if out := capture(t, func() { runErr = DigestGate(ctx) }); runErr != nil {
		t.Fatalf("digest gate after push: %v\n%s", runErr, out)
	}

	// A CA that did not sign the daemon's certificate.
	other, err := buildkitd.MakeTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_REBUILD", "1") // nothing unchanged: the builder is asked
	t.Setenv("HOIST_BUILDKIT_CA", other.CA)
	capture(t, func() { runErr = Images(ctx) })
	oneLineWith(t, runErr, "builder "+d.Addr+" does not answer", "check builder's ca, cert, key and server_name")
	t.Setenv("HOIST_BUILDKIT_CA", d.TLS.CA)
	t.Setenv("BUILDKIT_HOST", "tcp://127.0.0.1:1")
	capture(t, func() { runErr = Images(ctx) })
	oneLineWith(t, runErr, "builder tcp://127.0.0.1:1 does not answer", "start buildkitd there")
}

func oneLineWith(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one line with %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("err = %v\nwant it to contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("err spans lines: %q", err)
	}
}

// TestRemoteBuilderDropsMidBuild: the daemon dies while a RUN step runs
// (it is fetching from a server this test holds open); Images fails in one
// line naming the builder, and nothing is loaded, locked or tagged.
func TestRemoteBuilderDropsMidBuild(t *testing.T) {
	d := startBuildkitd(t)
	e := testenv.Engine(t)
	base := testenv.BusyboxBase(t, e)
	reached := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-reached:
		default:
			close(reached)
		}
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	dir := t.TempDir()
	proj := testenv.Unique("hoistdrop")
	testenv.WriteFiles(t, dir, map[string]string{
		"hoist.yaml": "project: " + proj + "\nbuild_dir: build\nnetwork: default\nimages:\n  - name: app\n    dockerfile: Dockerfile\n",
		"Dockerfile": "FROM " + base + "\nRUN wget -q -O /got " + srv.URL + "/\n",
		"VERSION":    "1.0.0\n",
	})
	t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
	t.Setenv("HOIST_VERSION", "")
	t.Setenv("BUILDKIT_HOST", d.Addr)
	t.Setenv("HOIST_BUILDKIT_CA", d.TLS.CA)
	t.Setenv("HOIST_BUILDKIT_CERT", d.TLS.ClientCert)
	t.Setenv("HOIST_BUILDKIT_KEY", d.TLS.ClientKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		capture(t, func() { err = Images(ctx) })
		done <- err
	}()
	select {
	case <-reached:
	case err := <-done:
		t.Fatalf("Images ended before its RUN step reached the server: %v", err)
	case <-ctx.Done():
		t.Fatal("the RUN step never reached the server")
	}
	d.Kill()
	err := <-done
	t.Logf("Images: %v", err)
	oneLineWith(t, err, "app", "builder "+d.Addr+" dropped the connection mid-build", "nothing was loaded or tagged")
	if _, ierr := e.Inspect(context.Background(), proj+"/app:1.0.0"); ierr == nil {
		t.Fatal("an image was loaded from a build that did not finish")
	}
	if l, lerr := lock.Read(filepath.Join(dir, "build", "lock.json")); lerr == nil && len(l.Images) > 0 {
		t.Fatalf("the lock records %+v after a failed build", l.Images)
	}
}

// TestRegistryBuildCache: with registry.cache, a build writes its cache to
// NAME:buildcache in the registry (every layer), and a cold machine (a
// fresh buildkitd with nothing in it) reads it: its RUN step is cached.
// A fork/PR build reads it and writes nothing; HOIST_REBUILD ignores it and
// refreshes it. On the engine's classic store the export is inline and the
// build goes on without a cache to read.
func TestRegistryBuildCache(t *testing.T) {
	e := testenv.Engine(t)
	reg := regtest.Distribution(t, "", "")
	base := testenv.BusyboxBase(t, e)
	proj := testenv.Unique("hoistcache")
	cacheRef := reg.Host + "/org/app:buildcache"
	checkout := func(t *testing.T) string {
		dir := t.TempDir()
		testenv.WriteFiles(t, dir, map[string]string{
			"hoist.yaml": "project: " + proj + "\nbuild_dir: build\nnetwork: none\nregistry:\n  host: " + reg.Host + "\n  repository: org\n  cache: true\nimages:\n  - name: app\n    dockerfile: Dockerfile\n",
			"Dockerfile": "FROM " + base + "\nRUN head -c 65536 /dev/urandom > /made\n",
			"VERSION":    "1.0.0\n",
		})
		t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
		return dir
	}
	t.Setenv("HOIST_VERSION", "")
	t.Setenv("HOIST_PR", "")
	t.Setenv("GITHUB_EVENT_NAME", "")
	t.Setenv("HOIST_REBUILD", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Cleanup(func() { e.Remove(context.Background(), proj+"/app:1.0.0") })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// build runs Images in a fresh checkout on daemon d (nil: the engine's
	// BuildKit) and returns the diff_id of the RUN step's layer: random
	// bytes, so the same diff_id means the step came from a cache.
	build := func(t *testing.T, d *buildkitd.Daemon) string {
		t.Helper()
		checkout(t)
		if d != nil {
			t.Setenv("BUILDKIT_HOST", d.Addr)
			t.Setenv("HOIST_BUILDKIT_CA", d.TLS.CA)
			t.Setenv("HOIST_BUILDKIT_CERT", d.TLS.ClientCert)
			t.Setenv("HOIST_BUILDKIT_KEY", d.TLS.ClientKey)
		} else {
			for _, k := range []string{"BUILDKIT_HOST", "HOIST_BUILDKIT_CA", "HOIST_BUILDKIT_CERT", "HOIST_BUILDKIT_KEY"} {
				t.Setenv(k, "")
			}
		}
		e.Remove(ctx, proj+"/app:1.0.0") // not unchanged: built
		var err error
		out := capture(t, func() { err = Images(ctx) })
		if err != nil {
			t.Fatalf("Images: %v\n%s", err, out)
		}
		img, err := e.Inspect(ctx, proj+"/app:1.0.0")
		if err != nil || len(img.DiffIDs) == 0 {
			t.Fatalf("inspecting the build: %+v, %v", img, err)
		}
		return img.DiffIDs[len(img.DiffIDs)-1]
	}
	digest := func(t *testing.T) string {
		t.Helper()
		d, err := crane.Digest(cacheRef, crane.Insecure)
		if err != nil {
			return ""
		}
		return d
	}

	t.Run("engine classic store: inline export, no cache to read", func(t *testing.T) {
		if e.Store != engine.StoreClassic {
			t.Fatalf("the default engine keeps images in %s", e.Store)
		}
		// The build goes on although the cache to read is not there yet
		// (the engine's own local cache may serve the step).
		build(t, nil)
		if digest(t) != "" {
			t.Fatal("the classic store wrote a separate cache manifest; it can export inline only")
		}
	})
	made := build(t, startBuildkitd(t))
	written := digest(t)
	if written == "" {
		t.Fatalf("no cache at %s after a non-PR build", cacheRef)
	}
	// A cold machine: a second daemon with nothing in it.
	if got := build(t, startBuildkitd(t)); got != made {
		t.Fatalf("the cold daemon ran the step again (layer %s, cached %s): the registry cache was not used", got, made)
	}
	// Fork/PR mode reads and writes nothing.
	t.Setenv("HOIST_PR", "1")
	if got := build(t, startBuildkitd(t)); got != made {
		t.Fatalf("the PR build ran the step again (layer %s, cached %s)", got, made)
	}
	// ...and writes nothing, even when its step ran and a write would
	// have changed the cache.
	t.Setenv("HOIST_REBUILD", "1")
	if got := build(t, startBuildkitd(t)); got == made {
		t.Fatal("HOIST_REBUILD in PR mode took the step from the cache")
	}
	if got := digest(t); got != written {
		t.Fatalf("a PR build moved %s from %s to %s", cacheRef, written, got)
	}
	t.Setenv("HOIST_PR", "")
	// HOIST_REBUILD ignores it and refreshes it.
	t.Setenv("HOIST_REBUILD", "1")
	rebuilt := build(t, startBuildkitd(t))
	if rebuilt == made {
		t.Fatal("HOIST_REBUILD took the step from the cache")
	}
	if got := digest(t); got == written || got == "" {
		t.Fatalf("HOIST_REBUILD did not refresh %s (still %s)", cacheRef, got)
	}
	t.Setenv("HOIST_REBUILD", "")
	if got := build(t, startBuildkitd(t)); got != rebuilt {
		t.Fatalf("after the refresh a cold daemon got layer %s, want the rebuilt %s", got, rebuilt)
	}
}

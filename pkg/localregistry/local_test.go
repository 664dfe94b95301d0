package localregistry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var (
	buildDir  string // the program's build, shared by the tests
	buildOnce sync.Once
	built     string
	buildErr  error
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "hoist-registry-program-")
	if err != nil {
		panic(err)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// checkout returns the registry folder of a new checkout, whose registry
// is stopped at the end of the test. The program is built once (into the
// first checkout's folder, as Ensure would) and linked into the others, to
// spare each test a link.
func checkout(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "build", "hoist", "registry")
	buildOnce.Do(func() { built, buildErr = program(context.Background(), buildDir, "", "") })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(built, filepath.Join(dir, "bin", filepath.Base(built))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := Stop(context.Background(), dir); err != nil {
			t.Errorf("stopping %s: %v", dir, err)
		}
	})
	return dir
}

func ensure(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Ensure(testCtx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Host, "127.0.0.1:") {
		t.Fatalf("host %s is not loopback", s.Host)
	}
	return s
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// push writes a random image to host/repo:tag and returns its digest.
func push(t *testing.T, host, repo, tag string) v1.Hash {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, host+"/"+repo+":"+tag), img, remote.WithContext(testCtx(t))); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tags(t *testing.T, host, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.List(r, remote.WithContext(testCtx(t)))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRestartKeepsManifestsAndTags(t *testing.T) {
	dir := checkout(t)
	s := ensure(t, Options{Dir: dir})
	ctx := testCtx(t)
	app := push(t, s.Host, "acme/app", "1.0.0")
	if err := remote.Tag(ref(t, s.Host+"/acme/app:1.0.0").Context().Tag("latest"), mustGet(t, s.Host+"/acme/app:1.0.0"), remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	push(t, s.Host, "acme/app", "gone")
	if err := remote.Delete(ref(t, s.Host+"/acme/app:gone"), remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref(t, s.Host+"/acme/multi:2.0.0"), idx, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()

	// Two restarts: the second replays the journal the first rewrote.
	for i := range 2 {
		if stopped, err := Stop(ctx, dir); err != nil || !stopped {
			t.Fatalf("restart %d: Stop = %v, %v", i, stopped, err)
		}
		if _, err := remote.Head(ref(t, s.Host+"/acme/app:1.0.0"), remote.WithContext(ctx)); err == nil {
			t.Fatalf("restart %d: the registry still answers after Stop", i)
		}
		s2 := ensure(t, Options{Dir: dir})
		if s2.Host != s.Host {
			t.Fatalf("restart %d: registry moved from %s to %s: the recorded port was not reused", i, s.Host, s2.Host)
		}
		if want := []string{"1.0.0", "latest"}; !reflect.DeepEqual(tags(t, s.Host, "acme/app"), want) {
			t.Fatalf("restart %d: acme/app tags %v, want %v", i, tags(t, s.Host, "acme/app"), want)
		}
		for _, r := range []string{"acme/app:1.0.0", "acme/app:latest", "acme/app@" + app.String()} {
			img := mustGet(t, s.Host+"/"+r)
			if d, _ := img.Digest(); d != app {
				t.Fatalf("restart %d: %s is %s, want %s", i, r, d, app)
			}
			if err := validate.Image(img); err != nil {
				t.Fatalf("restart %d: %s: %v", i, r, err)
			}
		}
		got, err := remote.Index(ref(t, s.Host+"/acme/multi:2.0.0"), remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		if d, _ := got.Digest(); d != idxDigest {
			t.Fatalf("restart %d: index is %s, want %s", i, d, idxDigest)
		}
		if err := validate.Index(got); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
	}
}

func mustGet(t *testing.T, r string) v1.Image {
	t.Helper()
	d, err := remote.Get(ref(t, r), remote.WithContext(testCtx(t)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := d.Image()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCheckoutsHaveTheirOwnRegistry(t *testing.T) {
	a, b := checkout(t), checkout(t)
	sa := ensure(t, Options{Dir: a})
	sb := ensure(t, Options{Dir: b})
	if sa.Host == sb.Host || sa.PID == sb.PID {
		t.Fatalf("two checkouts share a registry: %+v and %+v", sa, sb)
	}
	push(t, sa.Host, "acme/app", "1.0.0")
	if _, err := remote.Head(ref(t, sb.Host+"/acme/app:1.0.0"), remote.WithContext(testCtx(t))); err == nil {
		t.Fatal("checkout b's registry serves an image pushed to checkout a's")
	}
	if again := ensure(t, Options{Dir: a}); again.Host != sa.Host || again.PID != sa.PID {
		t.Fatalf("Ensure again on a: %+v, want the running %+v", again, sa)
	}

	// b asked for a's port: that is a's registry, never to be reused.
	port, _ := strconv.Atoi(strings.TrimPrefix(sa.Host, "127.0.0.1:"))
	_, err := Ensure(testCtx(t), Options{Dir: b, Port: port})
	if err == nil || !strings.Contains(err.Error(), "the local registry of "+sa.Dir) || strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("Ensure on b with a's port: %v, want one line naming a's registry", err)
	}

	// A copy of checkout a (its recorded port and identity included) gets a
	// registry of its own.
	c := checkout(t)
	if err := os.MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{portFile, identityFile} {
		body, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c, f), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc := ensure(t, Options{Dir: c})
	if sc.Host == sa.Host {
		t.Fatalf("the copy of checkout a reuses a's registry at %s", sa.Host)
	}
	if got := tags(t, sa.Host, "acme/app"); !reflect.DeepEqual(got, []string{"1.0.0"}) {
		t.Fatalf("a's tags %v after the other checkouts started", got)
	}
}

func TestForeignServerOnRecordedPortIsNotReused(t *testing.T) {
	foreign := httptest.NewServer(ggcr.New(ggcr.Logger(nilLogger())))
	t.Cleanup(foreign.Close)
	fport, _ := strconv.Atoi(foreign.URL[strings.LastIndex(foreign.URL, ":")+1:])
	dir := checkout(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, portFile), []byte(strconv.Itoa(fport)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := ensure(t, Options{Dir: dir})
	if s.Host == host(fport) {
		t.Fatalf("Ensure reused the foreign registry at %s", s.Host)
	}
	if p, _ := readInt(filepath.Join(dir, portFile)); host(p) != s.Host {
		t.Fatalf("recorded port %d, registry at %s", p, s.Host)
	}
	push(t, s.Host, "acme/app", "1")
	if _, err := remote.Head(ref(t, host(fport)+"/acme/app:1"), remote.WithContext(testCtx(t))); err == nil {
		t.Fatal("the image went to the foreign registry")
	}

	// Asked for that port explicitly: one line, and nothing is started.
	other := checkout(t)
	_, err := Ensure(testCtx(t), Options{Dir: other, Port: fport})
	if err == nil || !strings.Contains(err.Error(), "not this checkout's registry") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Ensure on a foreign pinned port: %v", err)
	}
	if st, _ := Status(testCtx(t), other); st.Running {
		t.Fatalf("a registry was started: %v", st)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	ctx := testCtx(t)
	dir := checkout(t)
	if stopped, err := Stop(ctx, dir); err != nil || stopped {
		t.Fatalf("Stop before any start = %v, %v", stopped, err)
	}
	s := ensure(t, Options{Dir: dir})
	st, err := Status(ctx, dir)
	if err != nil || !st.Running || st.Host != s.Host || st.PID != s.PID || st.Dir != s.Dir {
		t.Fatalf("Status = %+v, %v; want running at %+v", st, err, s)
	}
	if !strings.Contains(st.String(), "running at "+s.Host) {
		t.Errorf("Status says %q", st)
	}
	for i, want := range []bool{true, false, false} {
		stopped, err := Stop(ctx, dir)
		if err != nil || stopped != want {
			t.Fatalf("Stop #%d = %v, %v; want %v", i+1, stopped, err, want)
		}
	}
	port, _ := strconv.Atoi(strings.TrimPrefix(s.Host, "127.0.0.1:"))
	if _, err := probe(ctx, port); !errors.Is(err, errNothing) {
		t.Fatalf("after Stop, %s: %v; want nothing listening", s.Host, err)
	}
	if st, err := Status(ctx, dir); err != nil || st.Running || st.Host != s.Host {
		t.Fatalf("Status after Stop = %+v, %v", st, err)
	}
}

func TestKilledRegistryIsRestarted(t *testing.T) {
	ctx := testCtx(t)
	dir := checkout(t)
	s := ensure(t, Options{Dir: dir})
	d := push(t, s.Host, "acme/app", "1.0.0")
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The process is gone once its server lock is free.
	if gone, err := waitUnlocked(ctx, filepath.Join(dir, serverLock), time.Minute); err != nil || !gone {
		t.Fatalf("pid %d still holds its lock after SIGKILL: %v", s.PID, err)
	}
	reap(s.PID)
	s2 := ensure(t, Options{Dir: dir})
	if s2.PID == s.PID || s2.Host != s.Host {
		t.Fatalf("after the kill: %+v, want a new process at %s", s2, s.Host)
	}
	if got, _ := mustGet(t, s.Host+"/acme/app:1.0.0").Digest(); got != d {
		t.Fatalf("acme/app:1.0.0 is %s after the restart, want %s", got, d)
	}
}

func TestConcurrentEnsureStartsOne(t *testing.T) {
	dir := checkout(t)
	var wg sync.WaitGroup
	got := make([]*Server, 3)
	errs := make([]error, 3)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = Ensure(testCtx(t), Options{Dir: dir}) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i].PID != got[0].PID || got[i].Host != got[0].Host {
			t.Fatalf("concurrent Ensure started two registries: %+v and %+v", got[0], got[i])
		}
	}
}

func TestMountAcrossRepositories(t *testing.T) {
	dir := checkout(t)
	s := ensure(t, Options{Dir: dir})
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, s.Host+"/acme/a:1"), img, remote.WithContext(testCtx(t))); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	for _, tc := range []struct {
		name, digest string
		want         int
	}{
		{name: "held blob", digest: ld.String(), want: http.StatusCreated},
		{name: "unknown blob", digest: "sha256:" + strings.Repeat("0", 64), want: http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post("http://"+s.Host+"/v2/acme/b/blobs/uploads/?mount="+tc.digest+"&from=acme/a", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("mount answered %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestJournalSkipsATornLine(t *testing.T) {
	ctx := testCtx(t)
	dir := checkout(t)
	s := ensure(t, Options{Dir: dir})
	d := push(t, s.Host, "acme/app", "1")
	if _, err := Stop(ctx, dir); err != nil {
		t.Fatal(err)
	}
	// A kill in mid-write leaves part of a line.
	f, err := os.OpenFile(filepath.Join(dir, dataDir, journalFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"put","repo":"acme/app","ref":"2","dig`)
	f.Close()
	ensure(t, Options{Dir: dir})
	if got := tags(t, s.Host, "acme/app"); !reflect.DeepEqual(got, []string{"1"}) {
		t.Fatalf("tags %v, want [1]", got)
	}
	if got, _ := mustGet(t, s.Host+"/acme/app:1").Digest(); got != d {
		t.Fatalf("acme/app:1 is %s, want %s", got, d)
	}
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func TestProgramIsReusedUntilHoistChanges(t *testing.T) {
	checkout(t)
	fi, err := os.Stat(built)
	if err != nil {
		t.Fatal(err)
	}
	again, err := program(testCtx(t), buildDir, "", "")
	if err != nil || again != built {
		t.Fatalf("program again = %s, %v; want %s", again, err, built)
	}
	if fi2, err := os.Stat(again); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("the program was built again (%v)", err)
	}
	if want := "hoist-registry-" + programKey(); filepath.Base(built) != want {
		t.Fatalf("program %s, want %s", filepath.Base(built), want)
	}
}

// With a shared programs folder (the tools cache), a fresh checkout of
// the same Hoist runs the program already there: nothing is built or kept
// in the checkout.
func TestProgramSharedByCheckouts(t *testing.T) {
	checkout(t) // builds the program once
	shared := t.TempDir()
	if err := os.Link(built, filepath.Join(shared, filepath.Base(built))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		dir := filepath.Join(t.TempDir(), "build", "hoist", "registry")
		s := ensure(t, Options{Dir: dir, Programs: shared})
		t.Cleanup(func() { Stop(context.Background(), dir) })
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.PID))
		if err != nil || exe != filepath.Join(shared, filepath.Base(built)) {
			t.Errorf("checkout %d runs %s (%v), want the shared program", i, exe, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "bin")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("checkout %d keeps a program of its own (%v)", i, err)
		}
	}
}

// A port asked for after the registry started elsewhere (registry.local_port
// set later): the running one is ended and started there, with its data.
func TestPinnedPortMovesTheRegistry(t *testing.T) {
	dir := checkout(t)
	s := ensure(t, Options{Dir: dir})
	d := push(t, s.Host, "acme/app", "1")
	free := httptest.NewServer(http.NotFoundHandler())
	port, _ := strconv.Atoi(free.URL[strings.LastIndex(free.URL, ":")+1:])
	free.Close() // a port nothing listens on now
	moved := ensure(t, Options{Dir: dir, Port: port})
	if moved.Host != host(port) || moved.PID == s.PID {
		t.Fatalf("after pinning %d: %+v (was %+v)", port, moved, s)
	}
	if _, err := probe(testCtx(t), mustPort(t, s.Host)); !errors.Is(err, errNothing) {
		t.Fatalf("the registry still answers on its old address %s: %v", s.Host, err)
	}
	if got, _ := mustGet(t, moved.Host+"/acme/app:1").Digest(); got != d {
		t.Fatalf("acme/app:1 is %s after the move, want %s", got, d)
	}
}

func mustPort(t *testing.T, h string) int {
	t.Helper()
	p, err := strconv.Atoi(strings.TrimPrefix(h, "127.0.0.1:"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

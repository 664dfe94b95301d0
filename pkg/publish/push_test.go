package publish

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// countingEngine is the real engine, counting exports.
type countingEngine struct {
	*engine.Engine
	saves atomic.Int32
}

func (c *countingEngine) Save(ctx context.Context, refs ...string) (io.ReadCloser, error) {
	c.saves.Add(1)
	return c.Engine.Save(ctx, refs...)
}

// regLog is an in-process registry (go-containerregistry's) that records
// completed blob uploads and mounts.
type regLog struct {
	mu      sync.Mutex
	uploads map[string]int // by digest
	mounts  int
	host    string
}

func (r *regLog) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.uploads {
		n += c
	}
	return n
}

func newRegistry(t *testing.T) *regLog {
	t.Helper()
	rl := &regLog{uploads: map[string]int{}}
	h := ggcrregistry.New(ggcrregistry.Logger(nopLogger()), ggcrregistry.WithReferrersSupport(true))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(rw, req)
		q := req.URL.Query()
		rl.mu.Lock()
		defer rl.mu.Unlock()
		switch {
		case strings.Contains(req.URL.Path, "/blobs/uploads/") && q.Get("digest") != "" && rw.code == http.StatusCreated && req.Method != http.MethodPost:
			rl.uploads[q.Get("digest")]++
		case req.Method == http.MethodPost && q.Get("mount") != "" && q.Get("digest") != "" && rw.code == http.StatusCreated:
			rl.uploads[q.Get("digest")]++
		case req.Method == http.MethodPost && q.Get("mount") != "" && rw.code == http.StatusCreated:
			rl.mounts++
		}
	}))
	t.Cleanup(srv.Close)
	rl.host = strings.TrimPrefix(srv.URL, "http://")
	return rl
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }

type fixture struct {
	e    *countingEngine
	b    *engine.Builder
	base string
	dir  string
	lock string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := testenv.Engine(t)
	b := testenv.Builder(t, e)
	f := &fixture{e: &countingEngine{Engine: e}, b: b, base: testenv.BusyboxBase(t, e), dir: t.TempDir()}
	f.lock = filepath.Join(f.dir, "lock.json")
	return f
}

// build makes an image with one distinct layer of size bytes on the base.
func (f *fixture) build(t *testing.T, name string, size int) lock.Image {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	ref := testenv.Unique("hoist-test/push-"+name+":") + "x"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := imagefix.Build(ctx, f.e.Engine, f.b, f.base, imagefix.Spec{Name: name, Ref: ref, Files: map[string][]byte{"payload": data}}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.e.Remove(context.Background(), ref) })
	return img
}

func client(t *testing.T) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Options{Backoff: registry.DefaultBackoff})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) push(t *testing.T, c *registry.Client, prefix, version string) (*PushResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var v *semver.Version
	if version != "" {
		v = semver.MustParse(version)
	}
	return Push(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: prefix, WorkDir: f.dir, Version: v})
}

// tagDigest returns what repo:tag points at, or "" when absent.
func tagDigest(t *testing.T, c *registry.Client, repo, tag string) string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Head(context.Background(), r.Tag(tag))
	if errors.Is(err, registry.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

func TestPushTagsDedupeAndNothingChanged(t *testing.T) {
	testenv.EachEngine(t, testPushTagsDedupeAndNothingChanged)
}

func testPushTagsDedupeAndNothingChanged(t *testing.T) {
	f := newFixture(t)
	a, b := f.build(t, "a", 64<<10), f.build(t, "b", 64<<10)
	if err := imagefix.WriteLock(f.lock, "1.2.3", a, b); err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/team/app"

	res, err := f.push(t, c, prefix, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.e.saves.Load() != 1 {
		t.Errorf("cold push exported %d times, want once for all images", f.e.saves.Load())
	}
	// Base layer (shared) + a's layer + b's layer + two configs: each once.
	if got := reg.total(); got != 5 {
		t.Errorf("cold push uploaded %d blobs (%v), want 5: the shared base layer once", got, reg.uploads)
	}
	for d, n := range reg.uploads {
		if n != 1 {
			t.Errorf("blob %s uploaded %d times", d, n)
		}
	}
	// (This registry keeps blobs across repositories, so no mount is needed
	// here; the distribution registry test checks the mount.)
	l, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range []lock.Image{a, b} {
		repo := prefix + "/" + img.Name
		want := res.Images[i].Digest
		for _, tag := range []string{"1.2.3", "1.2", "1", "latest"} {
			if got := tagDigest(t, c, repo, tag); got != want {
				t.Errorf("%s:%s = %q, want %s", repo, tag, got, want)
			}
		}
		r, _ := name.NewRepository(repo)
		if _, err := gate.Registry(context.Background(), c, r.Tag("1.2.3"), img); err != nil {
			t.Errorf("the registry does not serve the tested image: %v", err)
		}
		li, _ := l.Find(img.Name)
		if len(li.Pushed) != 5 || li.Pushed[0].Digest != want {
			t.Errorf("lock records pushed %+v, want the digest reference and 4 tags", li.Pushed)
		}
	}

	// Nothing changed: no export, no upload, no tag rewritten.
	before := reg.total()
	res, err = f.push(t, c, prefix, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.e.saves.Load() != 1 || len(res.Exported) != 0 {
		t.Errorf("nothing-changed push exported (%d saves, %v)", f.e.saves.Load(), res.Exported)
	}
	if reg.total() != before {
		t.Errorf("nothing-changed push uploaded %d blobs", reg.total()-before)
	}
	for _, im := range res.Images {
		if len(im.Written) != 0 || len(im.Kept) != 4 {
			t.Errorf("%s: wrote %v kept %v, want all 4 kept", im.Name, im.Written, im.Kept)
		}
	}

	// The cache lost, the release already there: its tags show the tested
	// configs, so nothing is exported or uploaded.
	os.Remove(filepath.Join(f.dir, "push-cache.json"))
	if _, err := f.push(t, c, prefix, ""); err != nil {
		t.Fatal(err)
	}
	if f.e.saves.Load() != 1 || reg.total() != before {
		t.Errorf("push without cache of a present release: %d saves, %d uploads", f.e.saves.Load(), reg.total()-before)
	}

	// The cache lost, the registry has every blob: one export, no upload.
	os.Remove(filepath.Join(f.dir, "push-cache.json"))
	if _, err := f.push(t, c, prefix+"2", ""); err != nil {
		t.Fatal(err)
	}
	if f.e.saves.Load() != 2 {
		t.Errorf("push to a new repository without cache: %d saves, want 2", f.e.saves.Load())
	}
	if reg.total() != before {
		t.Errorf("push to a new repository uploaded %d blobs the registry had", reg.total()-before)
	}
}

func TestPushTagPolicy(t *testing.T) { testenv.EachEngine(t, testPushTagPolicy) }

func testPushTagPolicy(t *testing.T) {
	f := newFixture(t)
	one, two, three := f.build(t, "app", 1024), f.build(t, "app", 2048), f.build(t, "app", 4096)
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/p"
	repo := prefix + "/app"

	steps := []struct {
		name    string
		img     lock.Image
		version string
		wantErr error
		want    map[string]*lock.Image // tag -> image it must point at (nil: absent)
	}{
		{name: "release 1.3.0", img: one, version: "1.3.0", want: map[string]*lock.Image{"1.3.0": &one, "1.3": &one, "1": &one, "latest": &one}},
		{name: "older patch 1.2.9 leaves latest and 1", img: two, version: "1.2.9", want: map[string]*lock.Image{"1.2.9": &two, "1.2": &two, "1": &one, "latest": &one}},
		{name: "prerelease gets only its tag", img: three, version: "2.0.0-rc.1", want: map[string]*lock.Image{"2.0.0-rc.1": &three, "latest": &one, "2": nil}},
		{name: "staging", img: three, version: "2.0.0-staging.3", want: map[string]*lock.Image{"2.0.0-staging.3": &three, "staging": &three}},
		{name: "older staging does not move staging", img: two, version: "2.0.0-staging.2", want: map[string]*lock.Image{"2.0.0-staging.2": &two, "staging": &three}},
		{name: "same digest again is a no-op", img: one, version: "1.3.0", want: map[string]*lock.Image{"1.3.0": &one, "latest": &one}},
		{name: "immutable tag with another digest", img: two, version: "1.3.0", wantErr: ErrTagConflict, want: map[string]*lock.Image{"1.3.0": &one, "latest": &one, "1.3": &one}},
	}
	digests := map[string]string{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := imagefix.WriteLock(f.lock, st.version, st.img); err != nil {
				t.Fatal(err)
			}
			res, err := f.push(t, c, prefix, "")
			if st.wantErr != nil {
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("err = %v, want %v", err, st.wantErr)
				}
				for _, d := range []string{digests[one.ImageID], digests[two.ImageID]} {
					if d == "" || !strings.Contains(err.Error(), d) {
						t.Errorf("error %q does not name digest %q", err, d)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				digests[st.img.ImageID] = res.Images[0].Digest
			}
			for tag, img := range st.want {
				got := tagDigest(t, c, repo, tag)
				want := ""
				if img != nil {
					want = digests[img.ImageID]
				}
				if got != want {
					t.Errorf("%s = %q, want %q", tag, got, want)
				}
			}
		})
	}
}

func TestPushRefusesUntested(t *testing.T) { testenv.EachEngine(t, testPushRefusesUntested) }

func testPushRefusesUntested(t *testing.T) {
	f := newFixture(t)
	good := f.build(t, "good", 512)
	tests := []struct {
		name string
		edit func(*lock.Image)
		want string
	}{
		{name: "never tested", edit: func(i *lock.Image) { i.Test = nil }, want: "has no test result"},
		{name: "failed", edit: func(i *lock.Image) { i.Test = &lock.Test{Passed: false, ExitCode: 3, ImageID: i.ImageID} }, want: "failed its test"},
		{name: "rebuilt after test", edit: func(i *lock.Image) { i.Test = &lock.Test{Passed: true, ImageID: "sha256:0000"} }, want: "rebuilt after its test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			bad.Name = "bad"
			tc.edit(&bad)
			if err := imagefix.WriteLock(f.lock, "1.0.0", good, bad); err != nil {
				t.Fatal(err)
			}
			reg := newRegistry(t)
			_, err := f.push(t, client(t), reg.host+"/p", "")
			if !errors.Is(err, gate.ErrUntested) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad") || !strings.Contains(err.Error(), "run the Test target") {
				t.Fatalf("err = %v, want %q naming bad and the Test target", err, tc.want)
			}
			if reg.total() != 0 {
				t.Errorf("%d blobs uploaded although the push was refused", reg.total())
			}
		})
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }

// noKeys keeps the machine's Docker config out of the tests.
type noKeys struct{}

func (noKeys) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

func TestPushRefusesTamperedImage(t *testing.T) { testenv.EachEngine(t, testPushRefusesTamperedImage) }

func testPushRefusesTamperedImage(t *testing.T) {
	f := newFixture(t)
	tested := f.build(t, "app", 1024)
	// The reference now names another build than the one tested.
	data := make([]byte, 1024)
	rand.Read(data)
	ctx := context.Background()
	if _, err := imagefix.Build(ctx, f.e.Engine, f.b, f.base, imagefix.Spec{Name: "app", Ref: tested.Ref, Files: map[string][]byte{"payload": data}}, false); err != nil {
		t.Fatal(err)
	}
	if err := imagefix.WriteLock(f.lock, "1.0.0", tested); err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t)
	_, err := f.push(t, client(t), reg.host+"/p", "")
	var me *gate.MismatchError
	if !errors.As(err, &me) || len(me.Layers) != 1 {
		t.Fatalf("err = %v, want a digest gate mismatch naming one layer", err)
	}
	if reg.total() != 0 {
		t.Errorf("%d blobs uploaded for a tampered image", reg.total())
	}
}

func TestPushDryRunWritesNothing(t *testing.T) { testenv.EachEngine(t, testPushDryRunWritesNothing) }

func testPushDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	img := f.build(t, "app", 512)
	if err := imagefix.WriteLock(f.lock, "1.0.0-staging.2", img); err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t)
	c := client(t)
	res, err := Push(context.Background(), c, f.e, PushOptions{LockPath: f.lock, Prefix: reg.host + "/p", WorkDir: f.dir, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Images[0].Written, ","); got != "1.0.0-staging.2,staging" {
		t.Errorf("dry run plans %s", got)
	}
	if reg.total() != 0 || f.e.saves.Load() != 0 || tagDigest(t, c, reg.host+"/p/app", "staging") != "" {
		t.Errorf("dry run wrote: %d uploads, %d exports", reg.total(), f.e.saves.Load())
	}
	l, _ := lock.Read(f.lock)
	if len(l.Images[0].Pushed) != 0 {
		t.Errorf("dry run recorded %v in the lock", l.Images[0].Pushed)
	}
}

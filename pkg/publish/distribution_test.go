package publish

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/internal/faultproxy"
	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

var testBackoff = remote.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Steps: 6}

// observer watches a registry's tags during a push and records any moment
// where a floating tag is visible while some image's immutable tag is not,
// or a tag names a manifest the registry cannot fully serve.
type observer struct {
	c        *registry.Client
	repos    []string
	own      string
	floating []string
	mu       sync.Mutex
	bad      []string
	seen     int
}

func (o *observer) check(ctx context.Context) {
	fail := func(f string, a ...any) {
		if ctx.Err() == nil {
			o.fail(f, a...)
		}
	}
	ownVisible := 0
	floatVisible := []string{}
	for _, r := range o.repos {
		repo, _ := name.NewRepository(r)
		tags, err := o.c.Tags(ctx, repo)
		if err != nil {
			continue
		}
		for _, tg := range tags {
			if tg == o.own {
				ownVisible++
			}
			for _, f := range o.floating {
				if tg == f {
					floatVisible = append(floatVisible, r+":"+f)
				}
			}
			if ctx.Err() != nil {
				return
			}
			// Whatever a tag names must be whole: manifest, config, layers.
			img, err := remote.Image(repo.Tag(tg), o.c.Options(ctx)...)
			if err != nil {
				if registry.StatusCode(err) != http.StatusNotFound {
					fail("%s:%s visible but unreadable: %v", r, tg, err)
				}
				continue
			}
			if _, err := img.ConfigFile(); err != nil {
				fail("%s:%s visible but its config is missing: %v", r, tg, err)
			}
			ls, _ := img.Layers()
			for _, l := range ls {
				if _, err := l.Size(); err != nil {
					fail("%s:%s visible but a layer is missing: %v", r, tg, err)
				}
			}
		}
	}
	o.mu.Lock()
	o.seen++
	o.mu.Unlock()
	if len(floatVisible) > 0 && ownVisible < len(o.repos) {
		fail("floating %v visible while only %d of %d images have %s", floatVisible, ownVisible, len(o.repos), o.own)
	}
}

func (o *observer) fail(f string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bad = append(o.bad, sprintf(f, a...))
}

// run samples the registry until ctx ends: it observes, it waits on
// nothing, so a ticker paces it.
func (o *observer) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		o.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func TestPushThroughFaultsIsAllOrNothing(t *testing.T) {
	testenv.EachEngine(t, testPushThroughFaultsIsAllOrNothing)
}

func testPushThroughFaultsIsAllOrNothing(t *testing.T) {
	f := newFixture(t)
	a, b := f.build(t, "api", 256<<10), f.build(t, "web", 256<<10)
	if err := imagefix.WriteLock(f.lock, "4.5.6", a, b); err != nil {
		t.Fatal(err)
	}
	reg := regtest.Distribution(t, "", "")
	direct, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failUploads := true
	proxy := faultproxy.New(reg.Host, func(n int, r *http.Request) faultproxy.Fault {
		mu.Lock()
		defer mu.Unlock()
		if failUploads && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			return faultproxy.Fault{Status: http.StatusInternalServerError}
		}
		switch {
		case !failUploads && n%7 == 0, !failUploads && n%7 == 1 && n > 1:
			return faultproxy.Fault{Status: http.StatusServiceUnavailable} // bursts of two
		case !failUploads && n%11 == 0:
			return faultproxy.Fault{Reset: true}
		case !failUploads && n%5 == 0:
			return faultproxy.Fault{Delay: 150 * time.Millisecond}
		}
		return faultproxy.Fault{}
	})
	defer proxy.Close()
	c, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	repos := []string{reg.Host + "/org/api", reg.Host + "/org/web"}
	obs := &observer{c: direct, repos: repos, own: "4.5.6", floating: []string{"4.5", "4", "latest"}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go obs.run(ctx, &wg)
	t.Cleanup(func() { stop(); wg.Wait() })

	// 1. Blob uploads keep failing: the push fails and no tag is visible.
	_, err = Push(context.Background(), c, f.e, PushOptions{LockPath: f.lock, Prefix: proxy.Host + "/org", WorkDir: f.dir})
	if err == nil {
		t.Fatal("push succeeded although every blob upload failed")
	}
	for _, r := range repos {
		repo, _ := name.NewRepository(r)
		if tags, _ := direct.Tags(context.Background(), repo); len(tags) != 0 {
			t.Fatalf("failed push left tags %v in %s", tags, r)
		}
	}

	// 2. Transient faults: 503 bursts, resets and slow answers. Re-running
	// completes the push.
	mu.Lock()
	failUploads = false
	mu.Unlock()
	before := proxy.Faults()
	res, err := Push(context.Background(), c, f.e, PushOptions{LockPath: f.lock, Prefix: proxy.Host + "/org", WorkDir: f.dir})
	if err != nil {
		t.Fatalf("push through transient faults: %v", err)
	}
	if proxy.Faults() == before {
		t.Fatal("no transient fault was injected: the test proves nothing")
	}
	stop()
	wg.Wait()
	obs.check(context.Background())
	if len(obs.bad) > 0 {
		t.Fatalf("an observer saw a partial release:\n%s", strings.Join(obs.bad, "\n"))
	}
	if obs.seen < 3 {
		t.Fatalf("the observer looked only %d times", obs.seen)
	}
	for i, img := range []string{"api", "web"} {
		for _, tag := range []string{"4.5.6", "4.5", "4", "latest"} {
			if got := tagDigest(t, direct, reg.Host+"/org/"+img, tag); got != res.Images[i].Digest {
				t.Errorf("%s:%s = %q, want %s", img, tag, got, res.Images[i].Digest)
			}
		}
		r, _ := name.NewRepository(reg.Host + "/org/" + img)
		want := a
		if img == "web" {
			want = b
		}
		if _, err := gate.Registry(context.Background(), direct, r.Tag("4.5.6"), want); err != nil {
			t.Errorf("registry gate: %v", err)
		}
	}
	counts, err := reg.Counts()
	if err != nil {
		t.Fatal(err)
	}
	// The shared base layer, two own layers and two configs: uploaded once
	// each; the base mounted into the second repository.
	if counts.Uploads != 5 || counts.Mounts != 1 {
		t.Errorf("registry log: %d uploads, %d mounts; want 5 and 1", counts.Uploads, counts.Mounts)
	}
}

func TestConcurrentPromotionsAgree(t *testing.T) {
	reg := regtest.Distribution(t, "", "")
	c, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	prefix := reg.Host + "/org"
	images := []string{"api", "web", "worker"}
	per := map[string][]string{}
	for _, img := range images {
		per[img] = []string{"7.0.0-staging.0", "7.0.0-staging.1"}
	}
	d := seed(t, c, prefix, per)
	before, _ := reg.Counts()

	const runs = 3
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = Promote(context.Background(), cc, PromoteOptions{From: prefix, Base: "7.0.0", Images: images})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, ErrTagConflict) {
			t.Errorf("promotion %d: %v", i, err)
		}
	}
	for _, img := range images {
		want := d[img]["7.0.0-staging.1"].String()
		for _, tag := range []string{"7.0.0", "7.0", "7", "latest"} {
			if got := tagDigest(t, c, prefix+"/"+img, tag); got != want {
				t.Errorf("%s:%s = %s, want staging.1's %s", img, tag, got, want)
			}
		}
	}
	after, _ := reg.Counts()
	if after.Uploads != before.Uploads {
		t.Errorf("promotions uploaded %d blobs, want none", after.Uploads-before.Uploads)
	}
}

// The distribution registry has no referrers API: attachments live under
// the sha256-<hex> fallback tag, and must travel with a promotion too.
func TestPromoteReferrersFallbackTag(t *testing.T) {
	reg := regtest.Distribution(t, "", "")
	c, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	from, to := reg.Host+"/staging", reg.Host+"/prod"
	d := seed(t, c, from, map[string][]string{"api": {"5.0.0-staging.0"}})
	subject := d["api"]["5.0.0-staging.0"]
	ctx := context.Background()
	src, _ := name.NewRepository(from + "/api")
	desc, err := c.Head(ctx, src.Digest(subject.String()))
	if err != nil {
		t.Fatal(err)
	}
	att := mutate.Subject(mutate.ConfigMediaType(empty.Image, types.MediaType("application/vnd.example.sbom+json")), *desc).(v1.Image)
	attDigest, _ := att.Digest()
	if err := c.Pusher().Push(ctx, src.Digest(attDigest.String()), att); err != nil {
		t.Fatal(err)
	}
	fallback := "sha256-" + subject.Hex
	if tagDigest(t, c, from+"/api", fallback) == "" {
		t.Fatalf("the source has no %s fallback tag: the test proves nothing", fallback)
	}
	if _, err := Promote(ctx, c, PromoteOptions{From: from, To: to, Base: "5.0.0", Images: []string{"api"}}); err != nil {
		t.Fatal(err)
	}
	dst, _ := name.NewRepository(to + "/api")
	idx, err := remote.Referrers(dst.Digest(subject.String()), c.Options(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != attDigest {
		t.Fatalf("referrers in prod: %+v, want the attestation %s", im.Manifests, attDigest)
	}
	counts, _ := reg.Counts()
	if counts.Mounts == 0 {
		t.Errorf("no blob was mounted into prod (registry log: %+v)", counts)
	}
}

// A registry that declines cross-repository mounts (it opens an upload
// instead, as the distribution spec allows) still gets every blob into
// every repository: Push's and Promote's mounts fall back to the bytes.
// The proxy in front of the distribution registry strips the mount from
// each request, so the registry answers as one that declines.
func TestDeclinedMountsGetTheBytes(t *testing.T) {
	f := newFixture(t)
	a, b := f.build(t, "api", 64<<10), f.build(t, "web", 64<<10)
	if err := imagefix.WriteLock(f.lock, "4.5.6-staging.1", a, b); err != nil {
		t.Fatal(err)
	}
	reg := regtest.Distribution(t, "", "")
	var mu sync.Mutex
	declined := 0
	proxy := faultproxy.New(reg.Host, func(_ int, r *http.Request) faultproxy.Fault {
		if q := r.URL.Query(); r.Method == http.MethodPost && q.Get("mount") != "" {
			q.Del("mount")
			q.Del("from")
			r.URL.RawQuery = q.Encode()
			mu.Lock()
			declined++
			mu.Unlock()
		}
		return faultproxy.Fault{}
	})
	defer proxy.Close()
	c, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := Push(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: proxy.Host + "/org", WorkDir: f.dir}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	pushDeclined := declined
	mu.Unlock()
	if pushDeclined == 0 {
		t.Fatal("Push asked for no mount: the shared base should have been mounted into the second repository")
	}
	if _, err := Promote(ctx, c, PromoteOptions{From: proxy.Host + "/org", To: proxy.Host + "/prod", Base: "4.5.6", Images: []string{"api", "web"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	promoteDeclined := declined - pushDeclined
	mu.Unlock()
	if promoteDeclined == 0 {
		t.Fatal("Promote asked for no mount")
	}
	direct, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	for prefix, tag := range map[string]string{"/org/": "4.5.6-staging.1", "/prod/": "4.5.6"} {
		for _, img := range []lock.Image{a, b} {
			r, _ := name.NewRepository(reg.Host + prefix + img.Name)
			if _, err := gate.Registry(ctx, direct, r.Tag(tag), img); err != nil {
				t.Errorf("%s: %v", r, err)
			}
			ri, err := remote.Image(r.Tag(tag), direct.Options(ctx)...)
			if err != nil {
				t.Fatal(err)
			}
			ls, _ := ri.Layers()
			for _, l := range ls {
				d, _ := l.Digest()
				if ok, err := direct.HasBlob(ctx, r, d); !ok || err != nil {
					t.Errorf("%s lacks its layer %s (%v)", r, d, err)
				}
			}
		}
	}
	counts, err := reg.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts.Mounts != 0 {
		t.Errorf("registry log: %d mounts through a proxy declining every one", counts.Mounts)
	}
}

package gate

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// engineHas answers Inspect with the tested image, so these tests are
// about the registry side.
type engineHas map[string]engine.Image

func (e engineHas) Inspect(_ context.Context, ref string) (engine.Image, error) { return e[ref], nil }

func (e engineHas) ConfigDigest(_ context.Context, ref string) (string, error) {
	return e[ref].Config, nil
}

// TestLockResolvesEveryTag: a tag re-pointed at other bytes fails the gate
// even though the digest the lock recorded is intact in the registry;
// pushes the lock recorded to another registry are not checked.
func TestLockResolvesEveryTag(t *testing.T) {
	reg := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	var seen []string // the gate's manifest and blob requests
	counting := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if counting && (strings.Contains(r.URL.Path, "/manifests/") || strings.Contains(r.URL.Path, "/blobs/")) {
			seen = append(seen, r.Method+" "+r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		}
		mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := registry.New(registry.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tested, _ := random.Image(512, 2)
	other, _ := random.Image(512, 2)
	repo, _ := name.NewRepository(host + "/acme/app")
	for _, tag := range []string{"1.0.0", "latest"} {
		if err := c.Pusher().Push(ctx, repo.Tag(tag), tested); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := tested.Digest()
	cfg, _ := tested.ConfigName()
	cf, _ := tested.ConfigFile()
	var diffs []string
	for _, h := range cf.RootFS.DiffIDs {
		diffs = append(diffs, h.String())
	}
	img := lock.Image{Name: "app", Ref: "acme/app:1.0.0", ImageID: cfg.String(), ConfigDigest: cfg.String(), DiffIDs: diffs,
		Test: &lock.Test{Passed: true, ImageID: cfg.String()},
		Pushed: []lock.Pushed{
			{Ref: repo.Digest(d.String()).String(), Digest: d.String()},
			{Ref: repo.Tag("1.0.0").String(), Digest: d.String()},
			{Ref: repo.Tag("latest").String(), Digest: d.String()},
			// An old push to a registry this run does not target.
			{Ref: "old.example:5000/acme/app:0.9.0", Digest: d.String()},
		}}
	path := filepath.Join(t.TempDir(), "lock.json")
	if err := lock.Write(path, &lock.Lock{Images: []lock.Image{img}}); err != nil {
		t.Fatal(err)
	}
	e := engineHas{img.Ref: {ID: cfg.String(), Config: cfg.String(), DiffIDs: diffs}}
	count := func(on bool) { mu.Lock(); counting = on; mu.Unlock() }
	count(true)
	n, err := Lock(ctx, path, e, c, host+"/acme")
	count(false)
	if err != nil || n != 3 {
		t.Fatalf("Lock = %d, %v; want 3 checks (engine, 1.0.0 with its manifest, latest)", n, err)
	}
	// One request per tag, sent together: a GET that resolves 1.0.0 and
	// reads the manifest, a HEAD for latest; no config fetch, no second
	// read of the manifest by digest.
	sort.Strings(seen)
	if got := strings.Join(seen, ", "); got != "GET 1.0.0, HEAD latest" {
		t.Fatalf("the gate's requests: %s; want GET 1.0.0, HEAD latest", got)
	}
	// latest moved to other bytes: the tested manifest is still there.
	if err := c.Pusher().Push(ctx, repo.Tag("latest"), other); err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	_, err = Lock(ctx, path, e, c, host+"/acme")
	if err == nil || !strings.Contains(err.Error(), repo.Tag("latest").String()+" names "+od.String()+", but the tested image was pushed as "+d.String()) {
		t.Fatalf("moved tag: %v", err)
	}
}

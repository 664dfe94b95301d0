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

// TestLockResolvesEveryTag: a tag that never moves, re-pointed at other
// bytes, fails the gate even though the digest the lock recorded is intact
// in the registry, unless it is X.Y.Z following a revision of itself;
// floating tags are not the gate's; pushes the lock recorded to another
// registry are not checked.
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
	if err != nil || n != 2 {
		t.Fatalf("Lock = %d, %v; want 2 checks (engine, 1.0.0 with its manifest)", n, err)
	}
	// One request per image: a GET that resolves 1.0.0 and reads the
	// manifest; latest floats by design and names the same digest, so it
	// costs nothing; no config fetch, no second read of the manifest.
	sort.Strings(seen)
	if got := strings.Join(seen, ", "); got != "GET 1.0.0" {
		t.Fatalf("the gate's requests: %s; want GET 1.0.0", got)
	}
	// latest moved on (a newer release): not the gate's to hold.
	if err := c.Pusher().Push(ctx, repo.Tag("latest"), other); err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(ctx, path, e, c, host+"/acme"); err != nil {
		t.Fatalf("a floating tag that moved on failed the gate: %v", err)
	}
	// 1.0.0 re-pointed at other bytes: the tested manifest is still there.
	if err := c.Pusher().Push(ctx, repo.Tag("1.0.0"), other); err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	_, err = Lock(ctx, path, e, c, host+"/acme")
	if err == nil || !strings.Contains(err.Error(), repo.Tag("1.0.0").String()+" names "+od.String()+", but the tested image was pushed as "+d.String()) {
		t.Fatalf("moved tag: %v", err)
	}
	// The same move made by a rebuild (1.0.0 follows its revision 1.0.0-r1)
	// is the one the tag policy allows.
	if err := c.Pusher().Push(ctx, repo.Tag("1.0.0-r1"), other); err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(ctx, path, e, c, host+"/acme"); err != nil {
		t.Fatalf("1.0.0 moved forward to its revision failed the gate: %v", err)
	}
}

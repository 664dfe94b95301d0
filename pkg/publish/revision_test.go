package publish

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// TestPushRevisions pushes weekly rebuilds of release 1.2.3 as its
// revisions, with the real engine and a registry: 1.2.3-r1 then 1.2.3-r2,
// with 1.2.3, 1.2 and 1 following and latest never moving; a rebuild after
// 1.3.0 leaves 1.3, 1 and latest alone; a revision tag never changes.
func TestPushRevisions(t *testing.T) { testenv.EachEngine(t, testPushRevisions) }

func testPushRevisions(t *testing.T) {
	f := newFixture(t)
	rel, r1, r2, r1b, v130, r3 := f.build(t, "app", 1024), f.build(t, "app", 1100), f.build(t, "app", 1200), f.build(t, "app", 1300), f.build(t, "app", 1400), f.build(t, "app", 1500)
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/p"
	repo := prefix + "/app"

	steps := []struct {
		name    string
		img     lock.Image
		as      string // the tags' version; the lock holds the release's
		lockV   string
		wantErr error
		want    map[string]*lock.Image // tag -> image it must name (nil: absent)
	}{
		{name: "release 1.2.3", img: rel, lockV: "1.2.3", want: map[string]*lock.Image{"1.2.3": &rel, "1.2": &rel, "1": &rel, "latest": &rel}},
		{name: "first rebuild", img: r1, lockV: "1.2.3", as: "1.2.3-r1", want: map[string]*lock.Image{"1.2.3-r1": &r1, "1.2.3": &r1, "1.2": &r1, "1": &r1, "latest": &rel}},
		{name: "second rebuild", img: r2, lockV: "1.2.3", as: "1.2.3-r2", want: map[string]*lock.Image{"1.2.3-r1": &r1, "1.2.3-r2": &r2, "1.2.3": &r2, "1.2": &r2, "1": &r2, "latest": &rel}},
		{name: "a revision is never rewritten", img: r1b, lockV: "1.2.3", as: "1.2.3-r1", wantErr: ErrTagConflict, want: map[string]*lock.Image{"1.2.3-r1": &r1, "1.2.3": &r2, "1.2": &r2, "1": &r2}},
		{name: "an older revision moves no pointer back", img: r1, lockV: "1.2.3", as: "1.2.3-r1", want: map[string]*lock.Image{"1.2.3-r1": &r1, "1.2.3": &r2, "1.2": &r2, "1": &r2, "latest": &rel}},
		{name: "the release pushed again moves nothing", img: rel, lockV: "1.2.3", wantErr: ErrTagConflict, want: map[string]*lock.Image{"1.2.3": &r2, "1.2": &r2, "1": &r2, "latest": &rel}},
		{name: "release 1.3.0", img: v130, lockV: "1.3.0", want: map[string]*lock.Image{"1.3.0": &v130, "1.3": &v130, "1": &v130, "latest": &v130}},
		{name: "rebuild of 1.2.3 after 1.3.0", img: r3, lockV: "1.2.3", as: "1.2.3-r3", want: map[string]*lock.Image{"1.2.3-r3": &r3, "1.2.3": &r3, "1.2": &r3, "1.3": &v130, "1": &v130, "latest": &v130, "1.2.3-r1": &r1, "1.2.3-r2": &r2}},
	}
	digests := map[string]string{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := imagefix.WriteLock(f.lock, st.lockV, st.img); err != nil {
				t.Fatal(err)
			}
			res, err := f.push(t, c, prefix, st.as)
			switch {
			case st.wantErr != nil:
				// No tag moved: the want map below checks every one.
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("err = %v, want %v", err, st.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			default:
				digests[st.img.ImageID] = res.Images[0].Digest
				for _, w := range res.Images[0].Written {
					if w == "latest" && st.as != "" {
						t.Fatalf("a rebuild wrote latest: %v", res.Images[0].Written)
					}
				}
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

// TestPromoteRefusesARebuiltRelease: once 1.2.3 has a revision, its staging
// build is never promoted over it (nothing is written), while the staging
// build of a new version promotes as before.
func TestPromoteRefusesARebuiltRelease(t *testing.T) {
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/org"
	d := seed(t, c, prefix, map[string][]string{
		"api": {"1.2.3-staging.0", "1.2.3-r1", "1.3.0-staging.0"},
		"web": {"1.2.3-staging.0", "1.3.0-staging.0"},
	})
	// 1.2.3 and its floating tags name r1, as the rebuild left them.
	seedTags := func(img string, d string, tags ...string) {
		t.Helper()
		for _, tg := range tags {
			copyTag(t, c, prefix+"/"+img, d, tg)
		}
	}
	seedTags("api", d["api"]["1.2.3-r1"].String(), "1.2.3", "1.2", "1", "latest")
	_, err := promote(t, c, PromoteOptions{From: prefix, Base: "1.2.3", Images: []string{"api", "web"}})
	if !errors.Is(err, ErrRevised) || !strings.Contains(err.Error(), "api has 1.2.3-r1") || !strings.Contains(err.Error(), "no tag was written") {
		t.Fatalf("err = %v", err)
	}
	for _, tg := range []string{"1.2.3", "1.2", "1", "latest"} {
		if got := tagDigest(t, c, prefix+"/api", tg); got != d["api"]["1.2.3-r1"].String() {
			t.Fatalf("api:%s = %s, moved by a refused promotion", tg, got)
		}
		if tg != "latest" && tagDigest(t, c, prefix+"/web", tg) != "" {
			t.Fatalf("web:%s written by a refused promotion", tg)
		}
	}
	plan, err := promote(t, c, PromoteOptions{From: prefix, Base: "1.3.0", Images: []string{"api", "web"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"api", "web"} {
		for _, tg := range []string{"1.3.0", "1.3", "1", "latest"} {
			if got := tagDigest(t, c, prefix+"/"+img, tg); got != d[img]["1.3.0-staging.0"].String() {
				t.Fatalf("%s:%s = %s after promoting 1.3.0 (%v)", img, tg, got, plan)
			}
		}
	}
}

// copyTag points repo:tag at repo@digest.
func copyTag(t *testing.T, c *registry.Client, repo, digest, tag string) {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := c.Get(ctx, r.Digest(digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Pusher().Put(ctx, r.Tag(tag), rawManifest{got.Manifest, got.MediaType}); err != nil {
		t.Fatal(err)
	}
}

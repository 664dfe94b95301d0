package publish

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// TestPrestageThenPush: blobs staged while the images are untested go up
// once and are named by nothing (no manifest, no tag); the push after the
// test then exports nothing and uploads nothing but the manifests, and an
// image that failed its test is still refused.
func TestPrestageThenPush(t *testing.T) { testenv.EachEngine(t, testPrestageThenPush) }

func testPrestageThenPush(t *testing.T) {
	f := newFixture(t)
	a, b := f.build(t, "a", 64<<10), f.build(t, "b", 64<<10)
	untested := func(imgs ...lock.Image) []lock.Image {
		for i := range imgs {
			imgs[i].Test = nil
		}
		return imgs
	}
	if err := imagefix.WriteLock(f.lock, "1.2.3", untested(a, b)...); err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/team/app"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := Prestage(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: prefix, WorkDir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	// The shared base layer and a's and b's layers; configs go with the manifests.
	if n != 3 || reg.total() != 3 {
		t.Fatalf("prestage uploaded %d blobs (registry saw %d: %v), want 3", n, reg.total(), reg.uploads)
	}
	for _, img := range []string{"a", "b"} {
		if tags, err := crane.ListTags(prefix+"/"+img, crane.Insecure); err == nil && len(tags) > 0 {
			t.Fatalf("prestage wrote tags on %s: %v", img, tags)
		}
	}
	// Untested: the push is refused, whatever went up.
	if _, err := f.push(t, c, prefix, ""); err == nil || !strings.Contains(err.Error(), "has no test result") {
		t.Fatalf("push of untested images: %v", err)
	}
	// Tested now: the push exports nothing and uploads the configs only.
	if err := imagefix.WriteLock(f.lock, "1.2.3", a, b); err != nil {
		t.Fatal(err)
	}
	saves := f.e.saves.Load()
	before := reg.total()
	res, err := f.push(t, c, prefix, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.e.saves.Load() != saves || len(res.Exported) != 0 {
		t.Errorf("the push after prestage exported again: %v", res.Exported)
	}
	if got := reg.total() - before; got != 2 {
		t.Errorf("the push after prestage uploaded %d blobs, want the 2 configs", got)
	}
	for d, n := range reg.uploads {
		if n != 1 {
			t.Errorf("blob %s uploaded %d times", d, n)
		}
	}
	// A second prestage finds everything there.
	if n, err := Prestage(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: prefix, WorkDir: f.dir}); err != nil || n != 0 {
		t.Fatalf("prestage again: %d, %v", n, err)
	}
}

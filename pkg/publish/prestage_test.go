package publish

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/dockersave"
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
	st, err := Prestage(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: prefix, WorkDir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	n := st.Blobs
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
	if st, err := Prestage(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: prefix, WorkDir: f.dir}); err != nil || st.Blobs != 0 {
		t.Fatalf("prestage again: %+v, %v", st, err)
	}
}

// TestPrestageFromLayout: given the scan's image layout of the same images,
// the blobs are staged from it with no second engine export on the classic
// store, and the push after the test holds at the registry gate; a layout
// lacking a blob, or a containerd store's images (whose stored compressed
// layers a push keeps), falls back to the engine; a layout blob whose
// content is not its name is refused.
func TestPrestageFromLayout(t *testing.T) { testenv.EachEngine(t, testPrestageFromLayout) }

func testPrestageFromLayout(t *testing.T) {
	f := newFixture(t)
	a, b := f.build(t, "a", 64<<10), f.build(t, "b", 64<<10)
	if err := imagefix.WriteLock(f.lock, "1.2.3", a, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	layout := t.TempDir()
	rc, err := f.e.Save(ctx, a.Ref, b.Ref)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dockersave.WriteLayout(rc, []dockersave.LayoutImage{
		{Name: "a", Ref: a.Ref, ConfigDigest: a.ConfigDigest}, {Name: "b", Ref: b.Ref, ConfigDigest: b.ConfigDigest}}, layout)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	classic := a.ImageID == a.ConfigDigest
	c := client(t)
	stage := func(t *testing.T, dir string) (int, int32, bool, error) {
		t.Helper()
		reg := newRegistry(t)
		released := false
		saves := f.e.saves.Load()
		st, err := Prestage(ctx, c, f.e, PushOptions{LockPath: f.lock, Prefix: reg.host + "/team/app", WorkDir: f.dir,
			Layout: func(context.Context) (string, func()) { return dir, func() { released = true } }})
		if err == nil && st.FromLayout != (saves == f.e.saves.Load()) {
			t.Errorf("prestage says from the layout %v, but the engine exports went %d -> %d", st.FromLayout, saves, f.e.saves.Load())
		}
		if err == nil {
			// The staged blobs make a push that the registry gate accepts.
			res, perr := f.push(t, c, reg.host+"/team/app", "")
			if perr != nil {
				t.Fatalf("push after staging from the layout: %v", perr)
			}
			if len(res.Exported) != 0 {
				t.Errorf("the push after staging exported again: %v", res.Exported)
			}
		}
		return st.Blobs, f.e.saves.Load() - saves, released, err
	}
	n, saves, released, err := stage(t, layout)
	if err != nil || n != 3 || !released {
		t.Fatalf("staging from the layout: %d blobs, %v, released %v; want 3, nil, true", n, err, released)
	}
	if want := map[bool]int32{true: 0, false: 1}[classic]; saves != want {
		t.Errorf("staging from the layout made %d engine exports, want %d (classic store: %v)", saves, want, classic)
	}
	if !classic {
		return
	}
	// A layout lacking b's layer: the engine export, as without one.
	partial := t.TempDir()
	if out, err := exec.Command("cp", "-a", layout+"/.", partial).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := os.Remove(filepath.Join(partial, "blobs", "sha256", strings.TrimPrefix(b.DiffIDs[len(b.DiffIDs)-1], "sha256:"))); err != nil {
		t.Fatal(err)
	}
	if n, saves, _, err := stage(t, partial); err != nil || n != 3 || saves != 1 {
		t.Errorf("staging from a partial layout: %d blobs, %v, %d exports; want 3, nil, 1", n, err, saves)
	}
	// A blob whose bytes are not its name.
	bad := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(a.DiffIDs[len(a.DiffIDs)-1], "sha256:"))
	if err := os.WriteFile(bad, []byte("not the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := stage(t, layout); err == nil || !strings.Contains(err.Error(), "whose content has another digest") {
		t.Errorf("staging from a damaged layout: %v", err)
	}
}

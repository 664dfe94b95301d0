package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/version"
)

// counting wraps the real builder and counts solves.
type counting struct {
	b Builder
	n atomic.Int32
}

func (c *counting) Build(ctx context.Context, r engine.BuildRequest, w io.Writer) (engine.BuildResult, error) {
	c.n.Add(1)
	return c.b.Build(ctx, r, w)
}

type fixture struct {
	e       *engine.Engine
	b       *counting
	dir     string
	project string
	lock    string
}

func newFixture(t *testing.T, template string) *fixture {
	t.Helper()
	e := testenv.Engine(t)
	bb := testenv.Binary(t, "busybox", "busybox-static")
	b := testenv.Builder(t, e)
	f := &fixture{e: e, b: &counting{b: b}, dir: t.TempDir(), project: testenv.Unique("hoisttest")}
	f.lock = filepath.Join(f.dir, "build", "lock.json")
	write := func(name, body string) {
		p := filepath.Join(f.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ctx/app.txt", "hello\n")
	write("demo.tmpl", template)
	write("hoist.yaml", fmt.Sprintf(`project: %s
build_dir: build
bases:
  - ref: %s/busybox:1
    busybox: %s
images:
  - name: demo-{{.runtime}}
    context: ctx
    template: demo.tmpl
    vars: {base: "%s/busybox:1"}
    matrix:
      axes:
        runtime: [cpu, cuda]
`, f.project, f.project, bb, f.project))
	t.Cleanup(func() {
		ctx := context.Background()
		for _, r := range []string{"demo-cpu", "demo-cuda", "busybox"} {
			tag := "1.0.0"
			if r == "busybox" {
				tag = "1"
			}
			e.Remove(ctx, f.project+"/"+r+":"+tag)
		}
	})
	return f
}

func (f *fixture) plan(t *testing.T) *plan.Plan {
	t.Helper()
	cfg, err := config.Load(filepath.Join(f.dir, "hoist.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := version.Parse("1.0.0")
	p, err := plan.Make(cfg, plan.Options{Version: v, Revision: "r1", Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const demoTmpl = "FROM {{.base}}\nCOPY app.txt /app.txt\nRUN echo {{.runtime}} > /runtime\n"

func TestBuildSkipsUnchanged(t *testing.T) { testenv.EachEngine(t, testBuildSkipsUnchanged) }

func testBuildSkipsUnchanged(t *testing.T) {
	f := newFixture(t, demoTmpl)
	ctx := context.Background()
	var out bytes.Buffer
	res, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2, Progress: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := f.b.n.Load(); n != 2 {
		t.Fatalf("first build ran %d solves, want 2", n)
	}
	for _, r := range res {
		if r.State != Built {
			t.Fatalf("%s: %s", r.Image.Name, r.State)
		}
	}
	l, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 2 {
		t.Fatalf("lock has %d images", len(l.Images))
	}
	for _, li := range l.Images {
		img, err := f.e.Inspect(ctx, li.Ref)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := f.e.ConfigDigest(ctx, li.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if li.ImageID != img.ID || li.ConfigDigest != cfg || li.Store != string(f.e.Store) || len(li.DiffIDs) != len(img.DiffIDs) || len(li.DiffIDs) < 2 {
			t.Fatalf("lock entry %+v does not match the engine's image %+v", li, img)
		}
		for _, k := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.created", "org.opencontainers.image.revision", plan.LabelEntry, plan.LabelInputs} {
			if _, ok := img.Labels[k]; !ok {
				t.Errorf("%s lacks label %s", li.Name, k)
			}
		}
	}
	if !strings.Contains(out.String(), "built") {
		t.Errorf("no progress lines:\n%s", out.String())
	}

	// Nothing changed: no solve at all, same image IDs.
	f.b.n.Store(0)
	res, err = Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.b.n.Load(); n != 0 {
		t.Fatalf("unchanged inputs ran %d solves, want 0", n)
	}
	for _, r := range res {
		if r.State != Unchanged {
			t.Fatalf("%s: %s, want unchanged", r.Image.Name, r.State)
		}
	}
	// With the lock gone (a fresh build folder) an unchanged image is
	// still recorded whole: on a containerd store its config digest is
	// then read from the engine, not from the lock.
	before, _ := lock.Read(f.lock)
	os.Remove(f.lock)
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	after, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	for _, li := range before.Images {
		ai, ok := after.Find(li.Name)
		if !ok || ai.ImageID != li.ImageID || ai.ConfigDigest != li.ConfigDigest || ai.Store != li.Store || !ai.Skipped {
			t.Fatalf("after losing the lock, %s is recorded as %+v, want %+v", li.Name, ai, li)
		}
	}

	// A test result on an unchanged image survives the next Images run.
	if err := lock.Update(f.lock, func(l *lock.Lock) error {
		img, _ := l.Find("demo-cpu")
		img.Test = &lock.Test{Passed: true, ImageID: img.ImageID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A context change rebuilds every entry using that context.
	os.WriteFile(filepath.Join(f.dir, "ctx", "app.txt"), []byte("changed\n"), 0o644)
	f.b.n.Store(0)
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	if n := f.b.n.Load(); n != 2 {
		t.Fatalf("changed context ran %d solves, want 2", n)
	}
	l, _ = lock.Read(f.lock)
	if img, _ := l.Find("demo-cpu"); img.Test != nil {
		t.Fatalf("test result kept for a changed image")
	}
	// Only one image asked for: only it is considered.
	f.b.n.Store(0)
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Rebuild: true, Only: []string{"demo-cuda"}}); err != nil {
		t.Fatal(err)
	}
	if n := f.b.n.Load(); n != 1 {
		t.Fatalf("rebuild of one image ran %d solves, want 1", n)
	}
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Only: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `image "nope" is not in the plan`) {
		t.Fatalf("unknown image: err = %v", err)
	}
}

func TestBuildFailureKeepsLock(t *testing.T) { testenv.EachEngine(t, testBuildFailureKeepsLock) }

func testBuildFailureKeepsLock(t *testing.T) {
	f := newFixture(t, "FROM {{.base}}\nRUN test {{.runtime}} = cpu || { echo broken-{{.runtime}}; exit 3; }\n")
	ctx := context.Background()
	before := []byte(`{"schema": 1, "project": "before", "images": []}` + "\n")
	os.MkdirAll(filepath.Dir(f.lock), 0o755)
	os.WriteFile(f.lock, before, 0o644)
	var out bytes.Buffer
	_, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2, Progress: &out})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *BuildError", err)
	}
	if len(be.Failed) != 1 || be.Failed[0].Image.Name != "demo-cuda" {
		t.Fatalf("failed = %+v", be.Failed)
	}
	if !strings.Contains(err.Error(), "1 of 2 images failed to build; first: demo-cuda") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error = %q", err)
	}
	if !strings.Contains(out.String(), "broken-cuda") {
		t.Fatalf("the build log tail is not shown:\n%s", out.String())
	}
	after, _ := os.ReadFile(f.lock)
	if !bytes.Equal(before, after) {
		t.Fatalf("a failed build changed the lock file:\n%s", after)
	}
}

func TestBuildInterrupted(t *testing.T) { testenv.EachEngine(t, testBuildInterrupted) }

func testBuildInterrupted(t *testing.T) {
	f := newFixture(t, "FROM {{.base}}\nRUN sleep 30\n")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	_, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2})
	if err == nil {
		t.Fatal("interrupted build returned no error")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("interrupted build took %s: solves were not stopped", d)
	}
	if _, err := os.Stat(f.lock); !os.IsNotExist(err) {
		t.Fatalf("interrupted build wrote a lock file")
	}
}

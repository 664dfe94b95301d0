package images

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
)

// foreign builds, as anyone with the engine could, an image FROM ref with
// one file added, tagged over ref itself: it inherits ref's labels,
// io.hoist.inputs included.
func foreign(t *testing.T, f *fixture, ref string) engine.Image {
	t.Helper()
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM "+ref+"\nCOPY backdoor /backdoor\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backdoor"), []byte("evil\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.b.b.Build(ctx, engine.BuildRequest{ContextDir: dir, Dockerfile: df, Tags: []string{ref}}, io.Discard); err != nil {
		t.Fatal(err)
	}
	img, err := f.e.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestForeignImageOverTheRefIsRebuilt(t *testing.T) {
	testenv.EachEngine(t, testForeignImageOverTheRefIsRebuilt)
}

func testForeignImageOverTheRefIsRebuilt(t *testing.T) {
	f := newFixture(t, demoTmpl)
	ctx := context.Background()
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	ref := f.project + "/demo-cpu:1.0.0"
	mine, err := f.e.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	evil := foreign(t, f, ref)
	if evil.ID == mine.ID || evil.Labels["io.hoist.inputs"] != mine.Labels["io.hoist.inputs"] {
		t.Fatalf("the foreign image %s does not carry Hoist's inputs label over a new ID", evil.ID)
	}
	f.b.n.Store(0)
	res, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		want := Unchanged
		if r.Image.Name == "demo-cpu" {
			want = Built
		}
		if r.State != want {
			t.Errorf("%s: %s, want %s", r.Image.Name, r.State, want)
		}
	}
	if n := f.b.n.Load(); n != 1 {
		t.Fatalf("%d solves, want 1 (the foreign image's entry)", n)
	}
	now, err := f.e.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if now.ID == evil.ID || !slices.Equal(now.DiffIDs, mine.DiffIDs) {
		t.Fatalf("after the rebuild %s is %s with layers %v; Hoist's own had %v (the foreign one %v)", ref, now.ID, now.DiffIDs, mine.DiffIDs, evil.DiffIDs)
	}
}

func TestForeignBaseOverTheRefIsRemade(t *testing.T) {
	testenv.EachEngine(t, testForeignBaseOverTheRefIsRemade)
}

func testForeignBaseOverTheRefIsRemade(t *testing.T) {
	f := newFixture(t, demoTmpl)
	ctx := context.Background()
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	ref := f.project + "/busybox:1"
	mine, err := f.e.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	evil := foreign(t, f, ref)
	if evil.Labels["io.hoist.inputs"] != mine.Labels["io.hoist.inputs"] {
		t.Fatal("the foreign base does not carry the base's inputs label")
	}
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	now, err := f.e.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if now.ID == evil.ID || !slices.Equal(now.DiffIDs, mine.DiffIDs) {
		t.Fatalf("after Images the base %s is %s with layers %v; Hoist's own had %v (the foreign one %v)", ref, now.ID, now.DiffIDs, mine.DiffIDs, evil.DiffIDs)
	}
}

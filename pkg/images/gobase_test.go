package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/version"
)

// A base from a Go package: compiled for the engine, made once, made again
// (and its images rebuilt) exactly when the program's source changes, and
// a RUN step can execute the program with no shell in the image.
func TestGoBase(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	arch, err := e.Arch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &counting{b: testenv.Builder(t, e)}
	dir := t.TempDir()
	project := testenv.Unique("hoisttest")
	t.Cleanup(func() {
		e.Remove(context.Background(), project+"/app:1.0.0")
		e.Remove(context.Background(), project+"/base:1")
	})
	main := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { os.WriteFile(os.Args[1], []byte(fmt.Sprint(%q)), 0o644) }\n"
	testenv.WriteFiles(t, dir, map[string]string{
		"go.mod":              "module example.com/gobase\n\ngo 1.22\n",
		"tools/stamp/main.go": fmt.Sprintf(main, "v1"),
		"ctx/Dockerfile":      fmt.Sprintf("FROM %s/base:1\nRUN [\"/bin/stamp\", \"/stamped\"]\n", project),
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
build_dir: build
bases:
  - {ref: "%[1]s/base:1", go: {/bin/stamp: ./tools/stamp}}
images:
  - {name: app, context: ctx, dockerfile: ctx/Dockerfile}
`, project),
	})
	mkPlan := func() *plan.Plan {
		cfg, err := config.Load(filepath.Join(dir, "hoist.yaml"))
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
	lockPath := filepath.Join(dir, "build", "lock.json")
	o := func(out *bytes.Buffer) Options {
		return Options{Parallel: 1, Progress: out, GoArch: arch, GoEnv: os.Environ()}
	}
	build := func() string {
		t.Helper()
		var out bytes.Buffer
		if _, err := Build(ctx, e, b, mkPlan(), lockPath, o(&out)); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return out.String()
	}
	out := build()
	if !strings.Contains(out, "base ") || b.n.Load() != 1 {
		t.Fatalf("first run: want the base made and one solve (%d):\n%s", b.n.Load(), out)
	}
	baseID := func() string {
		img, err := e.Inspect(ctx, project+"/base:1")
		if err != nil {
			t.Fatal(err)
		}
		return img.ID
	}
	first := baseID()
	if out := build(); strings.Contains(out, "base ") || b.n.Load() != 1 {
		t.Fatalf("nothing changed, yet the base was made again or the image rebuilt (%d solves):\n%s", b.n.Load(), out)
	}
	if baseID() != first {
		t.Fatal("nothing changed, yet the base is another image")
	}
	os.WriteFile(filepath.Join(dir, "tools/stamp/main.go"), []byte(fmt.Sprintf(main, "v2")), 0o644)
	if out := build(); !strings.Contains(out, "base ") || b.n.Load() != 2 {
		t.Fatalf("the program changed: want the base made again and the image rebuilt (%d solves):\n%s", b.n.Load(), out)
	}
	if baseID() == first {
		t.Fatal("the program changed, yet the base is the same image")
	}
	// Without the engine's architecture there is nothing to compile for.
	var buf bytes.Buffer
	opt := o(&buf)
	opt.GoArch = ""
	if _, err := Build(ctx, e, b, mkPlan(), lockPath, opt); err == nil || !strings.Contains(err.Error(), "no target architecture") {
		t.Fatalf("no architecture: %v", err)
	}
}

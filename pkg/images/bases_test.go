package images

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// TestBuildPlatformsGoBase: a base of Go packages is made for every
// platform an image is built for (the program compiled for each), and an
// image of two platforms FROM it runs its RUN step with that platform's
// program, arm64 under emulation; nothing changed, nothing is made or
// solved again; the program changed, both platforms' bases and images are
// made again.
func TestBuildPlatformsGoBase(t *testing.T) { testenv.EachEngine(t, testBuildPlatformsGoBase) }

func testBuildPlatformsGoBase(t *testing.T) {
	e := testenv.Engine(t)
	testenv.Arm64(t, e)
	ctx := context.Background()
	host, err := e.Platform(ctx)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := e.Arch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{e: e, b: &counting{b: testenv.Builder(t, e)}, dir: t.TempDir(), project: testenv.Unique("hoisttest")}
	f.lock = filepath.Join(f.dir, "build", "lock.json")
	probe, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "internal/testenv/probe/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	base := f.project + "/gobase:1"
	testenv.WriteFiles(t, f.dir, map[string]string{
		"go.mod":         "module example.com/probe\n\ngo 1.22\n",
		"probe/main.go":  string(probe),
		"ctx/Dockerfile": "FROM " + base + "\nRUN [\"/bin/probe\", \"write\", \"/built-on\"]\n",
		"hoist.yaml": "project: " + f.project + `
build_dir: build
bases:
  - {ref: "` + base + `", go: {/bin/probe: ./probe}}
images:
  - name: multi
    context: ctx
    dockerfile: ctx/Dockerfile
    platforms: [linux/amd64, linux/arm64]
`,
	})
	t.Cleanup(func() {
		for _, ref := range []string{"multi:1.0.0", "multi:1.0.0-linux-arm64", "multi:1.0.0-linux-amd64", "gobase:1", "gobase:1-linux-arm64", "gobase:1-linux-amd64"} {
			e.Remove(context.Background(), f.project+"/"+ref)
		}
	})
	opts := func(out *bytes.Buffer) Options {
		return Options{Parallel: 2, Progress: out, GoArch: arch, GoEnv: os.Environ()}
	}
	var out bytes.Buffer
	if _, err := Build(ctx, e, f.b, f.plan(t), f.lock, opts(&out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := f.b.n.Load(); n != 2 || strings.Count(out.String(), "base ") != 2 {
		t.Fatalf("ran %d solves and made %d bases, want 2 and 2:\n%s", n, strings.Count(out.String(), "base "), out.String())
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		ref := base
		if p != host {
			ref += "-" + strings.ReplaceAll(p, "/", "-")
		}
		img, err := e.Inspect(ctx, ref)
		if err != nil {
			t.Fatalf("the %s base: %v", p, err)
		}
		if img.Platform != p {
			t.Errorf("base %s is a %s image, want %s", ref, img.Platform, p)
		}
	}
	l, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	multi, _ := l.Find("multi")
	if len(multi.Platforms) != 2 {
		t.Fatalf("platform records %+v, want two", multi.Platforms)
	}
	for _, p := range multi.Platforms {
		a := strings.Split(p.Platform, "/")[1]
		machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[a]
		got := dockerRun(t, "run", "--rm", "--network", "none", "--platform", p.Platform, p.Ref, "/bin/probe", "cat", "/built-on")
		if got != a+" "+machine {
			t.Errorf("%s: the base's program wrote %q, want %q", p.Platform, got, a+" "+machine)
		}
	}

	// Nothing changed: no base made, no solve.
	out.Reset()
	if _, err := Build(ctx, e, f.b, f.plan(t), f.lock, opts(&out)); err != nil {
		t.Fatal(err)
	}
	if n := f.b.n.Load(); n != 2 || strings.Contains(out.String(), "base ") {
		t.Fatalf("unchanged: %d more solves, or a base made again:\n%s", n-2, out.String())
	}

	// The program changed: both bases made again, both platforms rebuilt.
	main := filepath.Join(f.dir, "probe/main.go")
	if err := os.WriteFile(main, append(probe, []byte("\n// changed\nvar _ = 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if _, err := Build(ctx, e, f.b, f.plan(t), f.lock, opts(&out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := f.b.n.Load(); n != 4 || strings.Count(out.String(), "base ") != 2 {
		t.Fatalf("the program changed: %d more solves and %d bases made, want 2 and 2:\n%s", n-2, strings.Count(out.String(), "base "), out.String())
	}
}

// TestBuildPlatformsHostFilesBase: a base of host files gives another
// platform's files under bases[].platforms (here a static program built
// for each architecture, as Debian's busybox-static:arm64 would be); each
// platform's image is built FROM its own platform's base.
func TestBuildPlatformsHostFilesBase(t *testing.T) {
	testenv.EachEngine(t, testBuildPlatformsHostFilesBase)
}

func testBuildPlatformsHostFilesBase(t *testing.T) {
	e := testenv.Engine(t)
	testenv.Arm64(t, e)
	ctx := context.Background()
	host, err := e.Platform(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if host != "linux/amd64" {
		t.Skip("the host files below are the amd64 program; this engine runs " + host)
	}
	f := &fixture{e: e, b: &counting{b: testenv.Builder(t, e)}, dir: t.TempDir(), project: testenv.Unique("hoisttest")}
	f.lock = filepath.Join(f.dir, "build", "lock.json")
	testenv.Probe(t, filepath.Join(f.dir, "host"), "amd64", "arm64")
	base := f.project + "/files:1"
	testenv.WriteFiles(t, f.dir, map[string]string{
		"host/motd":      "shared\n",
		"ctx/Dockerfile": "FROM " + base + "\nRUN [\"/bin/probe\", \"write\", \"/built-on\"]\n",
		"hoist.yaml": "project: " + f.project + `
build_dir: build
bases:
  - ref: "` + base + `"
    files: {/bin/probe: host/probe-amd64, /etc/motd: host/motd}
    platforms:
      linux/arm64: {files: {/bin/probe: host/probe-arm64}}
images:
  - name: multi
    context: ctx
    dockerfile: ctx/Dockerfile
    platforms: [linux/amd64, linux/arm64]
`,
	})
	t.Cleanup(func() {
		for _, ref := range []string{"multi:1.0.0", "multi:1.0.0-linux-arm64", "files:1", "files:1-linux-arm64"} {
			e.Remove(context.Background(), f.project+"/"+ref)
		}
	})
	var out bytes.Buffer
	if _, err := Build(ctx, e, f.b, f.plan(t), f.lock, Options{Parallel: 2, Progress: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	l, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	multi, _ := l.Find("multi")
	if len(multi.Platforms) != 2 {
		t.Fatalf("platform records %+v, want two", multi.Platforms)
	}
	for _, p := range multi.Platforms {
		a := strings.Split(p.Platform, "/")[1]
		machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[a]
		if got := dockerRun(t, "run", "--rm", "--network", "none", "--platform", p.Platform, p.Ref, "/bin/probe", "cat", "/built-on"); got != a+" "+machine {
			t.Errorf("%s: the base's program wrote %q, want %q", p.Platform, got, a+" "+machine)
		}
		// Files the platform does not replace are the base's.
		if got := dockerRun(t, "run", "--rm", "--network", "none", "--platform", p.Platform, p.Ref, "/bin/probe", "cat", "/etc/motd"); got != "shared" {
			t.Errorf("%s: /etc/motd is %q, want the base's shared file", p.Platform, got)
		}
	}
	if img, err := e.Inspect(ctx, base+"-linux-arm64"); err != nil || img.Platform != "linux/arm64" {
		t.Errorf("the arm64 base: %+v, %v; want a linux/arm64 image", img, err)
	}
}

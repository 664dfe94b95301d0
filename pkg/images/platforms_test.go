package images

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// platformDockerfile copies the probe built for the target's architecture
// and runs it in a RUN step, which for arm64 runs under emulation.
const platformDockerfile = `FROM scratch
ARG TARGETARCH
COPY probe-${TARGETARCH} /probe
RUN ["/probe", "write", "/built-on"]
`

// platformFixture is a repository with one image built for linux/amd64
// and linux/arm64 and one without platforms.
func platformFixture(t *testing.T) *fixture {
	t.Helper()
	e := testenv.Engine(t)
	testenv.Arm64(t, e)
	f := &fixture{e: e, b: &counting{b: testenv.Builder(t, e)}, dir: t.TempDir(), project: testenv.Unique("hoisttest")}
	f.lock = filepath.Join(f.dir, "build", "lock.json")
	testenv.Probe(t, filepath.Join(f.dir, "ctx"), "amd64", "arm64")
	testenv.WriteFiles(t, f.dir, map[string]string{
		"ctx/Dockerfile": platformDockerfile,
		"hoist.yaml": "project: " + f.project + `
build_dir: build
images:
  - name: multi
    context: ctx
    dockerfile: ctx/Dockerfile
    platforms: [linux/amd64, linux/arm64]
  - name: single
    context: ctx
    dockerfile: ctx/Dockerfile
`,
	})
	t.Cleanup(func() {
		for _, ref := range []string{"multi:1.0.0", "multi:1.0.0-linux-arm64", "multi:1.0.0-linux-amd64", "single:1.0.0"} {
			e.Remove(context.Background(), f.project+"/"+ref)
		}
	})
	return f
}

// dockerRun runs the docker CLI against the engine under test (DOCKER_HOST).
func dockerRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestBuildPlatforms(t *testing.T) { testenv.EachEngine(t, testBuildPlatforms) }

func testBuildPlatforms(t *testing.T) {
	f := platformFixture(t)
	ctx := context.Background()
	host, err := f.e.Platform(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2, Progress: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := f.b.n.Load(); n != 3 {
		t.Fatalf("ran %d solves, want 3 (two platforms and one single image)\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "multi linux/arm64") {
		t.Errorf("progress does not name the platform:\n%s", out.String())
	}
	l, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	single, _ := l.Find("single")
	if single.Platforms != nil {
		t.Errorf("an image without platforms got platform records: %+v", single.Platforms)
	}
	multi, _ := l.Find("multi")
	if len(multi.Platforms) != 2 || multi.Platforms[0].Platform != "linux/amd64" || multi.Platforms[1].Platform != "linux/arm64" {
		t.Fatalf("platform records = %+v, want linux/amd64 then linux/arm64", multi.Platforms)
	}
	for _, p := range multi.Platforms {
		img, err := f.e.Inspect(ctx, p.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if img.Platform != p.Platform {
			t.Errorf("%s is a %s image, want %s", p.Ref, img.Platform, p.Platform)
		}
		cfg, err := f.e.ConfigDigest(ctx, p.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if p.ConfigDigest != cfg || p.ImageID != img.ID || len(p.DiffIDs) != len(img.DiffIDs) || len(p.DiffIDs) != 2 {
			t.Errorf("record %+v does not match the engine's image %+v (config %s)", p, img, cfg)
		}
		if inspected := dockerRun(t, "image", "inspect", "-f", "{{.Id}}", p.Ref); inspected != p.ImageID {
			t.Errorf("docker image inspect %s = %s, lock says %s", p.Ref, inspected, p.ImageID)
		}
		wantRef := f.project + "/multi:1.0.0"
		if p.Platform != host {
			wantRef += "-" + strings.ReplaceAll(p.Platform, "/", "-")
		}
		if p.Ref != wantRef {
			t.Errorf("%s image at %s, want %s", p.Platform, p.Ref, wantRef)
		}
		// The RUN step ran on the platform's machine (emulated for arm64).
		arch := strings.Split(p.Platform, "/")[1]
		machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
		got := dockerRun(t, "run", "--rm", "--network", "none", "--platform", p.Platform, p.Ref, "/probe", "cat", "/built-on")
		if got != arch+" "+machine {
			t.Errorf("%s: RUN step wrote %q, want %q", p.Platform, got, arch+" "+machine)
		}
		if p.Platform == host && (multi.ImageID != p.ImageID || multi.ConfigDigest != p.ConfigDigest || multi.Ref != p.Ref) {
			t.Errorf("the entry's own fields %+v are not the engine's platform's image %+v", multi, p)
		}
	}

	if multi.BuildMillis <= 0 {
		t.Errorf("build time %d ms recorded, want the platforms' solves", multi.BuildMillis)
	}

	// Nothing changed: no solve for any platform.
	out.Reset()
	res, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2, Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.b.n.Load(); n != 3 {
		t.Fatalf("an unchanged build ran %d more solves\n%s", n-3, out.String())
	}
	for _, r := range res {
		if r.State != Unchanged {
			t.Errorf("%s: %s, want unchanged", r.Image.Name, r.State)
		}
	}
	again, _ := lock.Read(f.lock)
	m2, _ := again.Find("multi")
	if m2.BuildMillis != multi.BuildMillis {
		t.Errorf("unchanged build time %d ms, want the last solve's %d", m2.BuildMillis, multi.BuildMillis)
	}
	for i, p := range m2.Platforms {
		if !p.Skipped || p.ConfigDigest != multi.Platforms[i].ConfigDigest {
			t.Errorf("unchanged record %+v, was %+v", p, multi.Platforms[i])
		}
	}

	// Another platform list is another build, of the platform asked for.
	cfgPath := filepath.Join(f.dir, "hoist.yaml")
	y, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, bytes.Replace(y, []byte("[linux/amd64, linux/arm64]"), []byte("[linux/arm64]"), 1), 0o644)
	if _, err := Build(ctx, f.e, f.b, f.plan(t), f.lock, Options{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	if n := f.b.n.Load(); n != 4 {
		t.Fatalf("changing the platforms ran %d solves, want 1", n-3)
	}
	l, _ = lock.Read(f.lock)
	m3, _ := l.Find("multi")
	if len(m3.Platforms) != 1 || m3.Platforms[0].Platform != "linux/arm64" || m3.Ref != f.project+"/multi:1.0.0" || m3.Platforms[0].Ref != m3.Ref {
		t.Fatalf("arm64 only: %+v, want its image at the image's own ref", m3)
	}
	if img, _ := f.e.Inspect(ctx, m3.Ref); img.Platform != "linux/arm64" {
		t.Errorf("%s is %s, want linux/arm64", m3.Ref, img.Platform)
	}
}

// TestBuildPlatformsForeignBase: an image built for linux/arm64 FROM a
// local base (made for the engine's platform only) is refused in one line
// naming the base, the line and the platform, on both stores.
func TestBuildPlatformsForeignBase(t *testing.T) {
	testenv.EachEngine(t, testBuildPlatformsForeignBase)
}

func testBuildPlatformsForeignBase(t *testing.T) {
	e := testenv.Engine(t)
	bb := testenv.Binary(t, "busybox", "busybox-static")
	f := &fixture{e: e, b: &counting{b: testenv.Builder(t, e)}, dir: t.TempDir(), project: testenv.Unique("hoisttest")}
	f.lock = filepath.Join(f.dir, "build", "lock.json")
	base := f.project + "/busybox:1"
	testenv.WriteFiles(t, f.dir, map[string]string{
		"ctx/Dockerfile": "FROM " + base + "\nRUN uname -m > /machine\n",
		"hoist.yaml": "project: " + f.project + `
build_dir: build
bases:
  - {ref: "` + base + `", busybox: ` + bb + `}
images:
  - name: onbase
    context: ctx
    dockerfile: ctx/Dockerfile
    platforms: [linux/amd64, linux/arm64]
`,
	})
	t.Cleanup(func() {
		e.Remove(context.Background(), f.project+"/onbase:1.0.0")
		e.Remove(context.Background(), base)
	})
	_, err := Build(context.Background(), e, f.b, f.plan(t), f.lock, Options{Parallel: 2})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a BuildError", err)
	}
	msg := err.Error()
	for _, want := range []string{"onbase: linux/arm64:", "line 1: FROM " + base + " is a linux/amd64 image made on this machine", "COPY app-${TARGETARCH}"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is more than one line: %q", msg)
	}
	if _, err := lock.Read(f.lock); err == nil {
		t.Error("a failed build wrote the lock")
	}
}

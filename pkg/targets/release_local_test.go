package targets

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
)

// TestReleaseLocalLine runs the README's main job on a committed repository:
// the local line through every real stage (reserve in a private repository,
// Images, Test, Scan with the real Trivy, DigestGate, Gate, Push to a local
// distribution registry, Promote), then again, which must converge.
func TestReleaseLocalLine(t *testing.T) { testenv.EachEngine(t, testReleaseLocalLine) }

func testReleaseLocalLine(t *testing.T) {
	e := testenv.Engine(t)
	bb := testenv.Binary(t, "busybox", "busybox-static")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, remote := releaseRepo(t)
	// The local line is what a run outside CI does; the rest of this test
	// still ran testenv's CI rules above.
	t.Setenv("CI", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	db, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), t.TempDir(), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-0001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	project := testenv.Unique("hoistlocal")
	files := map[string]string{
		"ctx/Dockerfile": fmt.Sprintf("FROM %s/busybox:1\nRUN echo local > /which\n", project),
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
bases:
  - {ref: "%[1]s/busybox:1", busybox: %[2]s}
images:
  - name: app
    context: ctx
    dockerfile: ctx/Dockerfile
    test: {command: [sh, -c, "grep -q local /which"]}
scan:
  db_dir: %[3]s
outside: [%[3]s]
registry:
  repository: acme/tools
  local_port: %[4]d
`, project, bb, db, port),
	}
	testenv.WriteFiles(t, dir, files)
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "pipeline")
	t.Cleanup(func() {
		localregistry.Stop(context.Background(), filepath.Join(dir, "build", "hoist", "registry"))
		for _, r := range []string{"/app:0.3.0-staging.0", "/app:0.3.0-staging.1", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})

	out, err := stdout(t, func() error { return Release(ctx) })
	if err != nil {
		t.Fatalf("local line: %v\n%s", err, out)
	}
	if !strings.Contains(out, "release: local line") {
		t.Fatalf("not the local line:\n%s", out)
	}
	// The blobs went up beside Test; Push then wrote manifests and tags.
	if !strings.Contains(out, "blob(s) went up while the images were tested") || strings.Contains(out, "push: exported") {
		t.Errorf("want the blobs staged beside Test and nothing exported at Push:\n%s", out)
	}
	// On the classic store they came out of the scan's export: the images
	// left the engine once for both.
	if classic := e.Store != engine.StoreContainerd; classic != strings.Contains(out, "(read from the scan's export)") {
		t.Errorf("classic store %v, but the blobs staged beside Test say:\n%s", classic, out)
	}
	repo := fmt.Sprintf("127.0.0.1:%d/acme/tools/app", port)
	staged, err := crane.Digest(repo+":0.3.0-staging.0", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"staging", "0.3.0", "0.3", "0", "latest"} {
		d, err := crane.Digest(repo+":"+tag, crane.Insecure)
		if err != nil || d != staged {
			t.Errorf("%s:%s = %s, %v; want the staging build %s", repo, tag, d, err, staged)
		}
	}
	lk, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := lk.Find("app")
	if img == nil || img.Test == nil || !img.Test.Passed || img.Scan == nil || !img.Scan.Passed || len(img.Pushed) == 0 {
		t.Fatalf("lock does not record test, scan and push: %+v", img)
	}
	// Nothing shared was written: the checkout's remote has no tag; the
	// staging number lives in the private reservation repository.
	if tags := run(t, dir, "git", "ls-remote", "--tags", remote); tags != "" {
		t.Fatalf("the local line tagged the checkout's remote: %s", tags)
	}
	private := filepath.Join(dir, "build", "hoist", "reservations.git")
	if tags := run(t, dir, "git", "ls-remote", "--tags", private); !strings.HasSuffix(tags, "refs/tags/0.3.0-staging.0") {
		t.Fatalf("reservation repository tags: %q", tags)
	}

	// Again at the same commit: the same staging build is found complete and
	// already promoted; nothing new is reserved or written.
	out, err = stdout(t, func() error { return Release(ctx) })
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	for _, want := range []string{"0.3.0-staging.0: reserved at this commit", "already promoted to 0.3.0: nothing written", "0 tags written", "go run mage.go registry:stop"} {
		if !strings.Contains(out, want) {
			t.Fatalf("second run does not say %q:\n%s", want, out)
		}
	}
	if tags := run(t, dir, "git", "ls-remote", "--tags", private); strings.Contains(tags, "staging.1") {
		t.Fatalf("a re-run at the same commit reserved a new number: %s", tags)
	}
	// A new commit: the next staging number is built, tested and pushed (its
	// version label makes it other bytes), and 0.3.0, released already, is
	// never rewritten: the run says so and how to release again.
	testenv.WriteFiles(t, dir, map[string]string{"NOTES": "more\n"})
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "more")
	out, err = stdout(t, func() error { return Release(ctx) })
	if err != nil {
		t.Fatalf("third run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "release: not promoted:") || !strings.Contains(out, "bump VERSION") {
		t.Fatalf("third run does not say why it did not promote:\n%s", out)
	}
	if _, err := crane.Digest(repo+":0.3.0-staging.1", crane.Insecure); err != nil {
		t.Fatalf("second staging build not pushed: %v", err)
	}
	if d, _ := crane.Digest(repo+":0.3.0", crane.Insecure); d != staged {
		t.Fatalf("0.3.0 moved to %s", d)
	}
	if d, _ := crane.Digest(repo+":latest", crane.Insecure); d != staged {
		t.Fatalf("latest moved to %s", d)
	}
}

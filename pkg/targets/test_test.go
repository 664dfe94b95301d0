package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/checks"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/ctest"
	"github.com/hoistci/hoist/pkg/lock"
)

// testRepo writes a two-image repository whose hoist.yaml has the given
// checks, tests and cluster sections, and points HOIST_CONFIG at it.
func testRepo(t *testing.T, dir, project, extra string) {
	t.Helper()
	bb := testenv.Binary(t, "busybox", "busybox-static")
	files := map[string]string{
		"VERSION":        "0.4.0\n",
		"ctx/Dockerfile": fmt.Sprintf("FROM %s/busybox:1\nRUN echo hi > /hi\n", project),
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
bases:
  - {ref: "%[1]s/busybox:1", busybox: %[2]s}
images:
  - name: good
    context: ctx
    dockerfile: ctx/Dockerfile
    test: {command: [sh, -c, "cat /hi"]}
  - name: other
    context: ctx
    dockerfile: ctx/Dockerfile
    labels: {which: other}
    test: {command: [sh, -c, "echo other says $WHO; test -z \"$FAIL\""], env: [WHO=me]}
%[3]s`, project, bb, extra),
	}
	testenv.WriteFiles(t, dir, files)
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
}

// captureOut returns what fn prints (targets print to standard output).
func captureOut(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	out, err := testenv.Stdout(t, fn)
	t.Log(out)
	return out, err
}

func TestTestTarget(t *testing.T) { testenv.EachEngine(t, testTestTarget) }

func testTestTarget(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	dir := t.TempDir()
	project := testenv.Unique("hoisttest")
	t.Cleanup(func() {
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})
	// The in-cluster stage has tests of its own (cluster_test.go).
	testRepo(t, dir, project, "checks:\n  - {name: fine, run: [sh, -c, 'echo checked > checked.txt']}\n")

	// Everything passes; Images runs as a dependency.
	out, err := captureOut(t, func() error { return Test(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checked.txt")); err != nil {
		t.Error("the static check did not run in the repository root")
	}
	if !strings.Contains(out, "2 of 2 container tests passed") {
		t.Errorf("no summary in:\n%s", out)
	}
	lockPath := filepath.Join(dir, "build", "hoist", "lock.json")
	l, err := lock.Read(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"good", "other"} {
		img, _ := l.Find(n)
		if img == nil || img.Test == nil || !img.Test.Passed || img.Test.ImageID != img.ImageID {
			t.Fatalf("%s: lock records %+v", n, img)
		}
	}

	// One test fails: the other still runs, the failure is kept with its
	// exit code and log, and the target fails naming it.
	testRepo(t, dir, project, "checks:\n  - {name: fine, run: [true]}\n")
	b, _ := os.ReadFile(filepath.Join(dir, "hoist.yaml"))
	os.WriteFile(filepath.Join(dir, "hoist.yaml"), []byte(strings.Replace(string(b), "env: [WHO=me]", "env: [WHO=me, FAIL=1]", 1)), 0o644)
	_, err = captureOut(t, func() error { return Test(ctx) })
	if !errors.Is(err, ctest.ErrFailed) || !strings.Contains(err.Error(), "other") || strings.Contains(err.Error(), "good") {
		t.Fatalf("got %v, want the failure of other only", err)
	}
	l, _ = lock.Read(lockPath)
	other, _ := l.Find("other")
	good, _ := l.Find("good")
	if other.Test.Passed || other.Test.ExitCode != 1 || !good.Test.Passed {
		t.Errorf("lock: other %+v, good %+v", other.Test, good.Test)
	}
	if log, _ := os.ReadFile(other.Test.Log); !strings.Contains(string(log), "other says me") {
		t.Errorf("log %s: %q", other.Test.Log, log)
	}

	// A failing static check stops everything before the images.
	testRepo(t, dir, project, "checks:\n  - {name: lint, run: [sh, -c, 'echo x.go:1: bad; exit 2']}\n  - {name: never, run: [sh, -c, 'touch never']}\n")
	_, err = captureOut(t, func() error { return Test(ctx) })
	var ce *checks.Error
	if !errors.As(err, &ce) || ce.Name != "lint" || !strings.Contains(err.Error(), "x.go:1: bad") {
		t.Fatalf("got %v, want check lint to fail with its output", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Error("a check after the failing one ran")
	}
}

func TestK3dLoadTarget(t *testing.T) { testenv.EachEngine(t, testK3dLoadTarget) }

func testK3dLoadTarget(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	dir := t.TempDir()
	project := testenv.Unique("hoistload")
	t.Cleanup(func() {
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})
	name, nodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer, cluster.RoleAgent)

	// Not built yet: one clear line.
	testRepo(t, dir, project, "cluster: {name: "+name+"}\n")
	_, err := captureOut(t, func() error { return K3dLoad(ctx) })
	if !errors.Is(err, lock.ErrNoLock) {
		t.Fatalf("before Images: got %v, want the missing lock named", err)
	}
	if err := Images(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := captureOut(t, func() error { return K3dLoad(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2 sent") {
		t.Errorf("output: %s", out)
	}
	l, _ := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
	for _, n := range nodes {
		got, err := standin.Images(ctx, e, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range l.Images {
			if got["docker.io/"+img.Ref] != img.ConfigDigest {
				t.Errorf("node %s: %s = %q, want the config %s", n.Name, img.Ref, got["docker.io/"+img.Ref], img.ConfigDigest)
			}
		}
	}
	out, err = captureOut(t, func() error { return K3dLoad(ctx) })
	if err != nil || !strings.Contains(out, "0 sent") || !strings.Contains(out, "2 already there") {
		t.Errorf("second load: %v\n%s", err, out)
	}

	// An image missing from the engine, and an unknown cluster: one line each.
	e.Remove(ctx, project+"/other:0.4.0")
	_, err = captureOut(t, func() error { return K3dLoad(ctx) })
	if err == nil || !strings.Contains(err.Error(), "run the Images target") || strings.Contains(err.Error(), "\n") {
		t.Errorf("image gone: got %v", err)
	}
	testRepo(t, dir, project, "cluster: {name: "+testenv.Unique("nosuch-")+"}\n")
	if err := Images(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = captureOut(t, func() error { return K3dLoad(ctx) })
	if !errors.Is(err, cluster.ErrNoCluster) || strings.Contains(err.Error(), "\n") {
		t.Errorf("unknown cluster: got %v", err)
	}
}

// TestTestClosingLine: Test ends with one "N passed, M failed" line that CI
// runners read, counting checks and container tests.
func TestTestClosingLine(t *testing.T) { testenv.EachEngine(t, testTestClosingLine) }

func testTestClosingLine(t *testing.T) {
	e := testenv.Engine(t)
	project := testenv.Unique("hoistclose")
	t.Cleanup(func() {
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})
	last := func(out string) string {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	testRepo(t, t.TempDir(), project, "checks:\n  - {name: one, run: [\"true\"]}\n  - {name: two, run: [\"true\"]}\n")
	out, err := captureOut(t, func() error { return Test(context.Background()) })
	if err != nil || last(out) != "test: 4 passed, 0 failed" {
		t.Fatalf("err = %v, closing line %q", err, last(out))
	}
	// A failing check stops the run: the checks before it passed, it failed.
	testRepo(t, t.TempDir(), project, "checks:\n  - {name: one, run: [\"true\"]}\n  - {name: bad, run: [\"false\"]}\n  - {name: three, run: [\"true\"]}\n")
	out, err = captureOut(t, func() error { return Test(context.Background()) })
	if err == nil || last(out) != "test: 1 passed, 1 failed" {
		t.Fatalf("err = %v, closing line %q", err, last(out))
	}
}

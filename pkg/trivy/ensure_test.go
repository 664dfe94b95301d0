package trivy_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/trivy"
)

// userTools is the tools folder users and every test share, so the pinned
// Trivy is built once per machine.
func userTools(t *testing.T) string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "hoist", "tools")
}

func needGo(t *testing.T) {
	t.Helper()
	testenv.Binary(t, "go", "golang-go")
}

// TestEnsureBuildsOnceAndReuses gets the pinned Trivy (building it when this
// machine has none), then again: the second call reuses it.
func TestEnsureBuildsOnceAndReuses(t *testing.T) {
	needGo(t)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	o := trivy.Options{Dir: userTools(t), NoPath: true}
	first, err := trivy.Ensure(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != trivy.Pinned || first.Path != trivy.BinaryPath(o.Dir, trivy.Pinned) {
		t.Fatalf("Ensure = %+v", first)
	}
	var progress bytes.Buffer
	o.Progress = &progress
	second, err := trivy.Ensure(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if second.Built || second.Path != first.Path || progress.Len() != 0 {
		t.Fatalf("second Ensure = %+v, progress %q: want the same binary reused silently", second, progress.String())
	}
	if v, err := trivy.Version(ctx, second.Path); err != nil || v != trivy.Pinned {
		t.Fatalf("trivy --version = %q, %v", v, err)
	}
}

// TestEnsureUsesPathWhenPinned puts the pinned Trivy on PATH: Ensure takes it
// and builds nothing into an empty tools folder.
func TestEnsureUsesPathWhenPinned(t *testing.T) {
	needGo(t)
	ctx := t.Context()
	built, err := trivy.Ensure(ctx, trivy.Options{Dir: userTools(t), NoPath: true})
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(built.Path, filepath.Join(bin, "trivy")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	empty := t.TempDir()
	got, err := trivy.Ensure(ctx, trivy.Options{Dir: empty})
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != filepath.Join(bin, "trivy") || got.Built {
		t.Fatalf("Ensure = %+v, want trivy from PATH", got)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("tools folder got %d entries, want none", len(entries))
	}
}

// TestEnsureConcurrent has two callers build into an empty tools folder at
// once: exactly one builds, both get the same working binary, and no
// temporary file is left behind.
func TestEnsureConcurrent(t *testing.T) {
	needGo(t)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	// The shared build first (on a cold machine: the one long build), so
	// the two builds below only compile Trivy's main package and link.
	if _, err := trivy.Ensure(ctx, trivy.Options{Dir: userTools(t), NoPath: true}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	tools := make([]trivy.Tool, 2)
	errs := make([]error, 2)
	for i := range tools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tools[i], errs[i] = trivy.Ensure(ctx, trivy.Options{Dir: dir, NoPath: true})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if tools[0].Path != tools[1].Path || tools[0].Built == tools[1].Built {
		t.Fatalf("tools %+v: want one build and one reuse of the same path", tools)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		// The binary, its build lock, and the stamp of its version.
		if e.Name() != "trivy-"+trivy.Pinned && e.Name() != "trivy-"+trivy.Pinned+".lock" && e.Name() != "trivy-"+trivy.Pinned+".version" {
			t.Errorf("left behind in the tools folder: %s", e.Name())
		}
	}
}

// TestEnsureWorkerBuildsFromTheModule builds the worker into a fresh tools
// folder from the embedded source and tools module, as a fresh machine does
// (the build cache then holds Trivy's packages), and the result reports
// Trivy's version and runs a command sent to it.
func TestEnsureWorkerBuildsFromTheModule(t *testing.T) {
	needGo(t)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	dir := t.TempDir()
	w, err := trivy.EnsureWorker(ctx, trivy.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Built || w.Version != trivy.Pinned || w.Path != trivy.WorkerPath(dir, trivy.Pinned) {
		t.Fatalf("worker %+v: want one built into %s at %s", w, dir, trivy.Pinned)
	}
	again, err := trivy.EnsureWorker(ctx, trivy.Options{Dir: dir})
	if err != nil || again.Built {
		t.Fatalf("second call: %+v, %v: want the first one reused", again, err)
	}
	// One request on standard input, its answer on file descriptor 3.
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, w.Path)
	cmd.Stdin = strings.NewReader(`{"args":["version"]}` + "\n" + `{"args":["convert","--format","json","--output","` + filepath.Join(dir, "out.json") + `","/no/such/report.json"]}` + "\n")
	cmd.ExtraFiles = []*os.File{wr}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	answers, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v: %s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(string(answers)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "only image and convert are run here") || !strings.Contains(lines[1], "/no/such/report.json") {
		t.Fatalf("answers %q: want a refusal of version, then Trivy's own error for the missing report", answers)
	}
}

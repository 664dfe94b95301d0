package targets

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/faultproxy"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
)

// TestReleaseRebuildLine runs the weekly rebuild for real: the Release
// target with GITHUB_EVENT_NAME=schedule at a released commit, through
// every real stage (fresh bases, Images, Test, Scan with the real Trivy,
// DigestGate, Gate), a real git remote and the real distribution registry.
// Two weekly rebuilds of 0.3.0 give 0.3.0-r1 then 0.3.0-r2, with 0.3.0, 0.3
// and 0 following and latest never moving; a run SIGKILLed after reserving
// r3 is completed by the next under r3; a run that failed after writing r4
// (with bytes no rebuild reproduces) leaves r4 as it is and the next takes
// r5; a dry run writes nothing; after 0.4.0 is released, a rebuild of 0.3.0
// moves 0.3.0 and 0.3 but leaves 0 and latest on 0.4.0. No revision tag
// ever changes.
func TestReleaseRebuildLine(t *testing.T) { testenv.EachEngine(t, testReleaseRebuildLine) }

func testReleaseRebuildLine(t *testing.T) {
	e := testenv.Engine(t)
	bb := testenv.Binary(t, "busybox", "busybox-static")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	reg := regtest.Distribution(t, "", "")
	var mu sync.Mutex
	failPut := "" // a tag whose manifest PUT the registry refuses
	proxy := faultproxy.New(reg.Host, func(n int, r *http.Request) faultproxy.Fault {
		mu.Lock()
		defer mu.Unlock()
		if failPut != "" && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/"+failPut) {
			return faultproxy.Fault{Status: http.StatusBadRequest, Body: `{"errors":[{"code":"TAG_INVALID","message":"refused by the test"}]}`}
		}
		return faultproxy.Fault{}
	})
	t.Cleanup(proxy.Close)
	fail := func(tag string) { mu.Lock(); failPut = tag; mu.Unlock() }

	dir, bare := releaseRepo(t)
	project := testenv.Unique("hoistrebuild")
	db, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFiles(t, dir, map[string]string{
		// Each build (none is cached on the rebuild line) has bytes of its
		// own, as fresh bases give in real life.
		"ctx/Dockerfile": fmt.Sprintf("FROM %s/busybox:1\nRUN cat /proc/sys/kernel/random/uuid > /built\n", project),
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
bases:
  - {ref: "%[1]s/busybox:1", busybox: %[2]s}
images:
  - name: app
    context: ctx
    dockerfile: ctx/Dockerfile
    test: {command: [sh, -c, "test -s /built"]}
scan:
  db_dir: %[3]s
outside: [%[3]s]
registry:
  repository: acme
`, project, bb, db),
	})
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "image")
	run(t, dir, "git", "tag", "v0.3.0")
	run(t, dir, "git", "checkout", "-q", "--detach")
	sha := run(t, dir, "git", "rev-parse", "HEAD")
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "images", "-q", "--filter", "reference="+project+"/*").Output()
		for _, id := range strings.Fields(string(out)) {
			e.Remove(context.Background(), id)
		}
	})
	env := map[string]string{
		"CI": "true", envRegistry: proxy.Host + "/acme", "DOCKER_CONFIG": t.TempDir(), "HOIST_REBUILD": "",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	repo := reg.Host + "/acme/app"
	digest := func(tag string) string {
		t.Helper()
		d, err := crane.Digest(repo+":"+tag, crane.Insecure)
		if err != nil {
			return ""
		}
		return d
	}
	// revisions is every revision tag seen, with its digest: none may move.
	revisions := map[string]string{}
	check := func(t *testing.T, want map[string]string) {
		t.Helper()
		tags, err := crane.ListTags(repo, crane.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			if !strings.Contains(tag, "-r") {
				continue
			}
			d := digest(tag)
			if old, ok := revisions[tag]; ok && old != d {
				t.Fatalf("revision tag %s moved from %s to %s", tag, old, d)
			}
			revisions[tag] = d
		}
		for tag, w := range want {
			if got := digest(tag); got != w {
				t.Errorf("%s:%s = %q, want %q", repo, tag, got, w)
			}
		}
	}
	recorded := func(tag string) bool {
		return run(t, dir, "git", "ls-remote", bare, "refs/hoist/builds/"+tag) != ""
	}
	weekly := func(t *testing.T) (string, error) {
		t.Helper()
		t.Setenv("GITHUB_EVENT_NAME", "schedule")
		t.Setenv(envRef, "refs/heads/main")
		t.Setenv("HOIST_REBUILD", "1")
		return stdout(t, func() error { return Release(ctx) })
	}

	// The release: 0.3.0 with its floating tags.
	t.Setenv(envRef, "refs/tags/v0.3.0")
	if out, err := stdout(t, func() error { return Release(ctx) }); err != nil {
		t.Fatalf("release line: %v\n%s", err, out)
	}
	first := digest("0.3.0")
	check(t, map[string]string{"0.3": first, "0": first, "latest": first})

	// Two weekly rebuilds.
	for i, rev := range []string{"0.3.0-r1", "0.3.0-r2"} {
		out, err := weekly(t)
		if err != nil || !strings.Contains(out, "release: rebuild line") {
			t.Fatalf("rebuild %d: %v\n%s", i+1, err, out)
		}
		d := digest(rev)
		if d == "" || d == first {
			t.Fatalf("%s = %q (the release is %s)", rev, d, first)
		}
		check(t, map[string]string{"0.3.0": d, "0.3": d, "0": d, "latest": first})
		if !recorded(rev) || !strings.Contains(run(t, dir, "git", "ls-remote", "--tags", bare, rev), sha) {
			t.Fatalf("%s: no reservation at %s or no record on the remote", rev, sha)
		}
	}

	// Killed after reserving r3: the next run completes r3.
	out := killedRelease(ctx, t, dir, `[7/9] Push`)
	if !strings.Contains(run(t, dir, "git", "ls-remote", "--tags", bare, "0.3.0-r3"), sha) || recorded("0.3.0-r3") {
		t.Fatalf("the killed run did not leave 0.3.0-r3 reserved and unrecorded:\n%s", out)
	}
	out, err = weekly(t)
	if err != nil || !strings.Contains(out, "0.3.0-r3: reserved at this commit") || !recorded("0.3.0-r3") {
		t.Fatalf("re-run after the kill: %v\n%s", err, out)
	}
	r3 := digest("0.3.0-r3")
	check(t, map[string]string{"0.3.0": r3, "0": r3, "latest": first})

	// Failed after writing r4 but before moving 0.3.0: the re-run's bytes
	// differ, so r4 stays as it is and r5 is published.
	fail("0.3.0")
	if out, err := weekly(t); err == nil {
		t.Fatalf("the refused pointer did not fail the run:\n%s", out)
	}
	fail("")
	r4 := digest("0.3.0-r4")
	if r4 == "" || recorded("0.3.0-r4") {
		t.Fatalf("0.3.0-r4 = %q, recorded %v", r4, recorded("0.3.0-r4"))
	}
	check(t, map[string]string{"0.3.0": r3})
	out, err = weekly(t)
	if err != nil || !strings.Contains(out, "0.3.0-r4 was partly pushed with other bytes") {
		t.Fatalf("re-run after the failure: %v\n%s", err, out)
	}
	r5 := digest("0.3.0-r5")
	check(t, map[string]string{"0.3.0-r4": r4, "0.3.0": r5, "0.3": r5, "0": r5, "latest": first})

	// A dry run writes nothing.
	tagsBefore := run(t, dir, "git", "ls-remote", bare)
	t.Setenv(envDryRun, "1")
	out, err = weekly(t)
	t.Setenv(envDryRun, "")
	if err != nil || !strings.Contains(out, "Reserve: would write git tag 0.3.0-r6") || !strings.Contains(out, "never latest") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if run(t, dir, "git", "ls-remote", bare) != tagsBefore || digest("0.3.0-r6") != "" {
		t.Fatal("the dry run wrote to the remote or the registry")
	}

	// 0.4.0 is released; a rebuild of 0.3.0 then leaves 0 and latest alone.
	run(t, dir, "git", "checkout", "-q", "staging")
	testenv.WriteFiles(t, dir, map[string]string{"VERSION": "v0.4.0\n", "docs/CHANGELOGS/0.4.0.md": "# 0.4.0\n\n- more\n"})
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "0.4.0")
	run(t, dir, "git", "tag", "v0.4.0")
	run(t, dir, "git", "checkout", "-q", "--detach")
	t.Setenv("GITHUB_EVENT_NAME", "")
	t.Setenv("HOIST_REBUILD", "")
	t.Setenv(envRef, "refs/tags/v0.4.0")
	if out, err := stdout(t, func() error { return Release(ctx) }); err != nil {
		t.Fatalf("release 0.4.0: %v\n%s", err, out)
	}
	v040 := digest("0.4.0")
	check(t, map[string]string{"0.4": v040, "0": v040, "latest": v040, "0.3.0": r5})
	run(t, dir, "git", "checkout", "-q", "v0.3.0")
	out, err = weekly(t)
	if err != nil {
		t.Fatalf("rebuild of 0.3.0 after 0.4.0: %v\n%s", err, out)
	}
	r6 := digest("0.3.0-r6")
	check(t, map[string]string{"0.3.0": r6, "0.3": r6, "0.4": v040, "0": v040, "latest": v040})
}

// killedRelease runs the Release target in a child process with this
// test's environment and SIGKILLs it when it prints the line step.
func killedRelease(ctx context.Context, t *testing.T, dir, step string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"=1", "GITHUB_EVENT_NAME=schedule", envRef+"=refs/heads/main", "HOIST_REBUILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var out strings.Builder
	killed := false
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !killed && sc.Text() == step {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			killed = true
		}
	}
	pr.Close()
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the run ended before %q:\n%s", step, out.String())
	}
	return out.String()
}

package targets

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/faultproxy"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// childEnv makes the test binary run one Release target and exit, so the
// kill matrix can SIGKILL a real release process.
const childEnv = "HOIST_TEST_RELEASE_CHILD"

func TestMain(m *testing.M) {
	if target, ok := childTargets[os.Getenv(childEnv)]; ok {
		if err := target(context.Background()); err != nil {
			fmt.Println("release failed:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childTargets are the targets a child process can run, by childEnv's value.
var childTargets = map[string]func(context.Context) error{
	"1": Release, "reserve": Reserve, "plan": Plan, "shard": Shard, "join": Join,
	"cluster:create": Cluster{}.Create, "cluster:delete": Cluster{}.Delete,
}

// killImages is how many images the kill matrix releases: enough that the
// tag writes take several rounds of requests.
const killImages = 22

// TestReleaseKillMatrix SIGKILLs real release processes at every step
// boundary of the staging and main lines and in the middle of their tag
// writes, on a 22-image matrix with a real git remote, a real distribution
// registry and the real engine. After each kill a plain re-run at the same
// commit completes; no immutable tag ever changes digest, and main
// promotes only the staging build of its own HEAD.
func TestReleaseKillMatrix(t *testing.T) { testenv.EachEngine(t, testReleaseKillMatrix) }

func testReleaseKillMatrix(t *testing.T) {
	e := testenv.Engine(t)
	if testing.Short() {
		testenv.Need(t, "the kill matrix runs 20 release processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	reg := regtest.Distribution(t, "", "")
	var mu sync.Mutex
	var hold chan struct{}
	var held chan struct{} // closed when the hold has caught a request
	tagPut := regexp.MustCompile(`/manifests/[^/:@]+$`)
	puts := 0
	proxy := faultproxy.New(reg.Host, func(n int, r *http.Request) faultproxy.Fault {
		mu.Lock()
		defer mu.Unlock()
		if hold == nil || r.Method != http.MethodPut || !tagPut.MatchString(r.URL.Path) || strings.Contains(r.URL.Path, "sha256") {
			return faultproxy.Fault{}
		}
		puts++
		if puts == killImages*2/3 {
			close(held)
			return faultproxy.Fault{Hold: hold}
		}
		return faultproxy.Fault{}
	})
	t.Cleanup(proxy.Close)

	dir, bare := releaseRepo(t)
	tagAt := func(t *testing.T, tag string) string {
		t.Helper()
		out := run(t, dir, "git", "ls-remote", "--tags", bare, "refs/tags/"+tag)
		f := strings.Fields(out)
		if len(f) == 0 {
			t.Fatalf("the remote has no tag %s", tag)
		}
		return f[0]
	}
	m := newSvcMatrix(ctx, t, e, "hoistkill", killImages, "registry:\n  repository: acme\n")
	axis := m.Axis
	testenv.WriteFiles(t, dir, m.Files("test -s /n"))
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "22 images")
	base := []string{
		"CI=true", "HOIST_REGISTRY=" + proxy.Host + "/acme", "HOIST_CONFIG=" + filepath.Join(dir, "hoist.yaml"),
		"HOIST_PARALLEL=8", "DOCKER_CONFIG=" + t.TempDir(), childEnv + "=1",
	}
	// seen is every immutable tag ever observed, with its digest.
	seen := map[string]string{}
	check := func(t *testing.T, version, commit string) {
		t.Helper()
		for _, n := range axis {
			repo := fmt.Sprintf("%s/acme/svc-%s", reg.Host, n)
			tags, err := crane.ListTags(repo, crane.Insecure)
			if err != nil {
				t.Fatalf("listing %s: %v", repo, err)
			}
			for _, tag := range tags {
				if tag == "staging" || tag == "latest" || !strings.Contains(tag, ".") {
					continue
				}
				d, err := crane.Digest(repo+":"+tag, crane.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				key := repo + ":" + tag
				if old, ok := seen[key]; ok && old != d && strings.Count(tag, ".") >= 2 {
					t.Fatalf("immutable tag %s moved from %s to %s", key, old, d)
				}
				seen[key] = d
			}
			if _, ok := seen[repo+":"+version]; !ok {
				t.Fatalf("%s has no tag %s after the re-run", repo, version)
			}
		}
		if commit == "" {
			return
		}
		l, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		if l.Revision != commit {
			t.Fatalf("lock is for %s, HEAD is %s", l.Revision, commit)
		}
	}

	// release runs one child; killAt, when set, is the step header (or
	// "tags") at which it is SIGKILLed.
	release := func(t *testing.T, ref, killAt string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), base...), "GITHUB_REF="+ref)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		pr, pw, _ := os.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if killAt == "tags" {
			mu.Lock()
			hold, held, puts = make(chan struct{}), make(chan struct{}), 0
			mu.Unlock()
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var out strings.Builder
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var heldC chan struct{}
		if killAt == "tags" {
			mu.Lock()
			heldC = held
			mu.Unlock()
		}
		killed := false
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				out.WriteString(l + "\n")
				if killAt != "" && killAt != "tags" && !killed && regexp.MustCompile(`^\[\d+/\d+\] `+regexp.QuoteMeta(killAt)+`$`).MatchString(l) {
					kill()
					killed = true
				}
			case <-heldC:
				kill()
				killed = true
				heldC = nil
				mu.Lock()
				close(hold)
				hold = nil
				mu.Unlock()
			}
		}
		err := cmd.Wait()
		if killAt != "" && !killed {
			t.Fatalf("the run never reached %q:\n%s", killAt, out.String())
		}
		return out.String(), err
	}

	stagingRe := regexp.MustCompile(`reserved (0\.3\.0-staging\.\d+)|(0\.3\.0-staging\.\d+): reserved at this commit`)
	version := func(out string) string {
		m := stagingRe.FindStringSubmatch(out)
		if m == nil {
			return ""
		}
		return m[1] + m[2]
	}
	steps := []string{"Reserve", "Images", "Test", "Scan", "DigestGate", "Gate", "Push", "tags", "Record", "Pins"}
	for i, at := range steps {
		t.Run("staging/kill at "+at, func(t *testing.T) {
			testenv.WriteFiles(t, dir, map[string]string{"svc/round": at + "\n"})
			run(t, dir, "git", "add", ".")
			run(t, dir, "git", "commit", "-q", "-m", "round "+at)
			commit := run(t, dir, "git", "rev-parse", "HEAD")
			if out, err := release(t, "refs/heads/staging", at); err == nil {
				t.Fatalf("the killed run exited 0:\n%s", out)
			}
			out, err := release(t, "refs/heads/staging", "")
			if err != nil {
				t.Fatalf("re-run after a kill at %s: %v\n%s", at, err, out)
			}
			v := version(out)
			if v == "" {
				t.Fatalf("re-run names no staging version:\n%s", out)
			}
			// Killed before Reserve, the number is new; killed after, the
			// re-run completes the very number the killed run reserved.
			if i > 0 && !strings.Contains(out, v+": reserved at this commit") {
				t.Fatalf("the re-run did not reuse the number reserved at this commit:\n%s", out)
			}
			if at := tagAt(t, v); at != commit {
				t.Fatalf("%s points at %s, not HEAD %s", v, at, commit)
			}
			check(t, v, commit)
		})
	}

	// main, fast-forwarded to a staged commit of a new version each time,
	// killed at each step and in the middle of the promotion's tag writes.
	for k, at := range []string{"Promote", "tags", "Pins", "Tag"} {
		t.Run("main/kill at "+at, func(t *testing.T) {
			v := fmt.Sprintf("0.%d.0", 4+k)
			run(t, dir, "git", "checkout", "-q", "staging")
			testenv.WriteFiles(t, dir, map[string]string{"VERSION": v + "\n", "docs/CHANGELOGS/" + v + ".md": "# " + v + "\n\n- more\n"})
			run(t, dir, "git", "add", ".")
			run(t, dir, "git", "commit", "-q", "-m", v)
			if out, err := release(t, "refs/heads/staging", ""); err != nil {
				t.Fatalf("staging %s: %v\n%s", v, err, out)
			}
			head := run(t, dir, "git", "rev-parse", "HEAD")
			staged := v + "-staging.0"
			if k == 0 {
				// The staging line moves on to a commit not meant for main
				// yet (staging.1); main, at the first commit, must promote
				// staging.0, the build of its own HEAD.
				testenv.WriteFiles(t, dir, map[string]string{"svc/next": "not for main\n"})
				run(t, dir, "git", "add", ".")
				run(t, dir, "git", "commit", "-q", "-m", "next")
				if out, err := release(t, "refs/heads/staging", ""); err != nil || !strings.Contains(out, "reserved "+v+"-staging.1") {
					t.Fatalf("staging %s-staging.1: %v\n%s", v, err, out)
				}
			}
			run(t, dir, "git", "checkout", "-q", "-B", "main", head)
			if out, err := release(t, "refs/heads/main", at); err == nil {
				t.Fatalf("the killed run exited 0:\n%s", out)
			}
			out, err := release(t, "refs/heads/main", "")
			if err != nil {
				t.Fatalf("re-run after a kill at %s: %v\n%s", at, err, out)
			}
			for _, n := range axis {
				repo := fmt.Sprintf("%s/acme/svc-%s", reg.Host, n)
				want, _ := crane.Digest(repo+":"+staged, crane.Insecure)
				for _, tag := range []string{v, fmt.Sprintf("0.%d", 4+k), "0", "latest"} {
					if d, err := crane.Digest(repo+":"+tag, crane.Insecure); err != nil || d != want {
						t.Fatalf("%s:%s = %s, %v; want %s's build %s", repo, tag, d, err, staged, want)
					}
				}
			}
			if k == 0 {
				repo := fmt.Sprintf("%s/acme/svc-01", reg.Host)
				other, _ := crane.Digest(repo+":"+v+"-staging.1", crane.Insecure)
				if d, _ := crane.Digest(repo+":"+v, crane.Insecure); d == other {
					t.Fatalf("main promoted %s-staging.1, a build of another commit", v)
				}
			}
			if at := tagAt(t, v); at != head {
				t.Fatalf("%s at %s, HEAD is %s", v, at, head)
			}
			check(t, v, "")
			// And once more: nothing to do.
			out, err = release(t, "refs/heads/main", "")
			if err != nil || !strings.Contains(out, "already promoted: nothing to do") {
				t.Fatalf("main again: %v\n%s", err, out)
			}
		})
	}
}

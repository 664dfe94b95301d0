package targets

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
)

// shardImages is how many images the sharded release has.
const shardImages = 6

// TestShardsJoinAsOneRelease runs the staging line as a CI matrix would:
// a plan job (reserve, plan), K = 3 shard processes each in its own
// checkout of one commit (its own build folder), and the join, against a
// real distribution registry, git remote, engine and Trivy. A commit
// whose one image fails its test in one shard tags nothing, and its
// fragments are refused by the next commit's join; the next commit's
// join tags all images at once, with the same digests and tags as one
// machine running the whole line at that commit.
func TestShardsJoinAsOneRelease(t *testing.T) {
	e := testenv.Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	reg := regtest.Distribution(t, "", "")
	dir, bare := releaseRepo(t)
	m := newSvcMatrix(ctx, t, e, "hoistshard", shardImages, "shards: {threshold: 2, count: 3}\n")
	axis := m.Axis
	commit := func(test, msg string) string {
		testenv.WriteFiles(t, dir, m.Files(test))
		run(t, dir, "git", "add", ".")
		run(t, dir, "git", "commit", "-q", "-m", msg)
		run(t, dir, "git", "push", "-q", "origin", "staging")
		return run(t, dir, "git", "rev-parse", "HEAD")
	}
	root := t.TempDir()
	// checkout is a fresh clone of the remote's staging branch: a runner.
	checkout := func(name string) string {
		d := filepath.Join(root, name)
		run(t, root, "git", "clone", "-q", "-b", "staging", bare, d)
		return d
	}
	// child runs one target in its own process in checkout d.
	child := func(d, target string, env ...string) (string, error) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "CI=true", "GITHUB_REF=refs/heads/staging", "HOIST_CONFIG="+filepath.Join(d, "hoist.yaml"),
			"HOIST_PARALLEL=4", "DOCKER_CONFIG="+filepath.Join(root, "docker"), "HOIST_IMAGES=", "HOIST_SHARD=", "HOIST_FRAGMENTS=", childEnv+"="+target)
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	type entry struct{ Shard, Images string }
	// sharded runs the plan job and the shards of HEAD against repository
	// repo, and returns the folder the fragments were collected in.
	sharded := func(name, repo string) (string, []entry, []error, []string) {
		reg := "HOIST_REGISTRY=" + reg.Host + "/" + repo
		p := checkout(name + "-plan")
		if out, err := child(p, "reserve", reg); err != nil {
			t.Fatalf("reserve: %v\n%s", err, out)
		}
		outputs := filepath.Join(root, name+"-outputs")
		if out, err := child(p, "plan", reg, "GITHUB_OUTPUT="+outputs); err != nil {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(outputs)
		var m struct{ Include []entry }
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "matrix="); ok {
				if err := json.Unmarshal([]byte(v), &m); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !strings.Contains(string(b), "sharded=true\n") || len(m.Include) != 3 {
			t.Fatalf("plan outputs:\n%s", b)
		}
		frags := filepath.Join(root, name+"-artifacts")
		errs := make([]error, len(m.Include))
		outs := make([]string, len(m.Include))
		var wg sync.WaitGroup
		for i, s := range m.Include {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := checkout(fmt.Sprintf("%s-shard-%d", name, i+1))
				out, err := child(d, "shard", reg, "HOIST_SHARD="+s.Shard, "HOIST_IMAGES="+s.Images)
				outs[i] = out
				if err != nil {
					errs[i] = fmt.Errorf("shard %s: %v\n%s", s.Shard, err, out)
					return
				}
				// The workflow uploads each shard's fragment as its own artifact.
				f := filepath.Join(d, "build", "hoist", "shards", fmt.Sprintf("shard-%d-of-3.json", i+1))
				art := filepath.Join(frags, fmt.Sprintf("fragment-%d", i+1))
				os.MkdirAll(art, 0o755)
				b, err := os.ReadFile(f)
				if err == nil {
					err = os.WriteFile(filepath.Join(art, filepath.Base(f)), b, 0o644)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		return frags, m.Include, errs, outs
	}
	// tagsOf lists every image's tags with their digests in repo.
	tagsOf := func(repo string) map[string]string {
		out := map[string]string{}
		for _, n := range axis {
			r := fmt.Sprintf("%s/%s/svc-%s", reg.Host, repo, n)
			tags, err := crane.ListTags(r, crane.Insecure)
			if err != nil {
				continue // never pushed to
			}
			for _, tag := range tags {
				d, err := crane.Digest(r+":"+tag, crane.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				out["svc-"+n+":"+tag] = d
			}
		}
		return out
	}

	// 1. A commit whose svc-02 fails its test: that shard fails, the others
	// push by digest, and the join tags nothing.
	bad := commit(`test -s /n && test "$(cat /n)" != 02`, "svc-02 fails its test")
	badFrags, plan1, errs, outs := sharded("bad", "sharded")
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if !strings.Contains(plan1[i].Images, "svc-02") || !strings.Contains(err.Error(), "svc-02") {
				t.Fatalf("shard %s (%s) failed: %v", plan1[i].Shard, plan1[i].Images, err)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("%d shards failed, want the one with svc-02: %v\n%s", failed, errs, strings.Join(outs, "\n----\n"))
	}
	j := checkout("bad-join")
	out, err := child(j, "join", "HOIST_REGISTRY="+reg.Host+"/sharded", "HOIST_FRAGMENTS="+badFrags)
	if err == nil || !strings.Contains(out, "left no fragment") {
		t.Fatalf("join with a failed shard: %v\n%s", err, out)
	}
	if tags := tagsOf("sharded"); len(tags) != 0 {
		t.Fatalf("a failed shard's release has tags: %v", tags)
	}

	// 2. The fix. A fragment of the bad commit mixed into the good
	// commit's artifacts is refused, and nothing is tagged.
	good := commit("test -s /n", "tests pass")
	frags, _, errs, _ := sharded("good", "sharded")
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	stale := filepath.Join(root, "good-with-stale")
	run(t, root, "cp", "-r", frags, stale)
	old, _ := filepath.Glob(filepath.Join(badFrags, "*", "*.json"))
	if len(old) != 2 {
		t.Fatalf("bad run's fragments: %v", old)
	}
	b, _ := os.ReadFile(old[0])
	// Replacing the good run's fragment of the same shard.
	var shardOf struct {
		Shard struct{ Index int } `json:"shard"`
	}
	json.Unmarshal(b, &shardOf)
	os.WriteFile(filepath.Join(stale, fmt.Sprintf("fragment-%d", shardOf.Shard.Index), filepath.Base(old[0])), b, 0o644)
	j = checkout("good-join")
	out, err = child(j, "join", "HOIST_REGISTRY="+reg.Host+"/sharded", "HOIST_FRAGMENTS="+stale)
	if err == nil || !strings.Contains(out, "was built at commit "+bad[:12]+", this checkout is "+good[:12]) {
		t.Fatalf("join with another commit's fragment: %v\n%s", err, out)
	}
	if tags := tagsOf("sharded"); len(tags) != 0 {
		t.Fatalf("a refused join wrote tags: %v", tags)
	}
	out, err = child(j, "join", "HOIST_REGISTRY="+reg.Host+"/sharded", "HOIST_FRAGMENTS="+frags)
	if err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	t.Log(out)

	// 3. One machine runs the whole line at the same commit (it completes
	// the same reserved number) into another repository: the same tags
	// and digests, and the same record on the remote.
	s := checkout("single")
	out, err = child(s, "1", "HOIST_REGISTRY="+reg.Host+"/single")
	got, want := tagsOf("sharded"), tagsOf("single")
	if err != nil {
		t.Fatalf("single-machine release: %v\n%s\nsharded %v\none machine %v", err, out, got, want)
	}
	if len(want) != 2*shardImages {
		t.Fatalf("single-machine tags: %v", want)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: sharded %q, one machine %q", k, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("sharded tags %v, one machine %v", got, want)
	}
	if !strings.Contains(want["svc-01:staging"], "sha256:") || want["svc-01:0.3.0-staging.1"] != want["svc-01:staging"] {
		t.Fatalf("tags: %v", want)
	}
}

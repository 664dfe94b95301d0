package release

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/githubtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/github"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/publish"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) {
	// Tests run real git in temporary repositories; keep the machine's git
	// config out so results do not depend on it.
	testenv.IsolateGit()
	os.Exit(m.Run())
}

var git = testenv.Git

const token = "ghp_release_test_token"

// fixture is a repository with a bare remote, a checkout on the staging
// branch holding VERSION v1.2.3 and its changelog, and a GitHub stand-in.
type fixture struct {
	bare, work, sha string
	gh              *githubtest.Server
	opts            Options
	ran             []string
	version         string // what UseVersion was told
	failTest        bool
	registryErr     error
	pushed          map[string]bool   // staging builds every image has in the registry
	promoted        map[string]string // image -> staging build promoted to 1.2.3
	moved           map[string]string // image -> the digest its staging tag was moved to
}

// staged stands for a staging build of commit sha that every image has in
// the registry, with its record on the remote, as the staging line leaves it.
func (f *fixture) staged(t *testing.T, tag, sha string) {
	t.Helper()
	git(t, f.work, "push", "-q", "origin", sha+":refs/tags/"+tag)
	f.pushed[tag] = true
	rec := fmt.Sprintf(`{"tag": %q, "commit": %q, "images": {"app": "sha256:%s", "worker": "sha256:%s"}}`, tag, sha, tag, tag)
	if err := (&gitref.Git{Dir: f.work, Remote: "origin"}).PutRecord(context.Background(), tag, sha, []byte(rec)); err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{bare: filepath.Join(root, "remote.git"), work: filepath.Join(root, "work")}
	git(t, root, "init", "-q", "--bare", "-b", "main", f.bare)
	git(t, root, "init", "-q", "-b", "staging", f.work)
	write(t, f.work, "VERSION", "v1.2.3\n")
	write(t, f.work, ".gitignore", "/build/\n")
	write(t, f.work, "docs/CHANGELOGS/1.2.3.md", "# 1.2.3\n\n<!-- template hint -->\n## Added\n\n- Reservation of staging versions\n")
	git(t, f.work, "add", ".")
	git(t, f.work, "commit", "-q", "-m", "1.2.3")
	git(t, f.work, "remote", "add", "origin", f.bare)
	git(t, f.work, "push", "-q", "origin", "staging")
	f.sha = git(t, f.work, "rev-parse", "HEAD")
	f.gh = githubtest.New(t, "acme/widgets", token)
	c, err := github.New(f.gh.URL, "acme/widgets", token)
	if err != nil {
		t.Fatal(err)
	}
	g := &gitref.Git{Dir: f.work, Remote: "origin"}
	lockPath := filepath.Join(f.work, "build", "hoist", "lock.json")
	f.opts = Options{
		VersionFile: filepath.Join(f.work, "VERSION"),
		Changelogs:  filepath.Join(f.work, "docs", "CHANGELOGS"),
		LockPath:    lockPath,
		Git:         g,
		Reserver:    g,
		GitHub:      c,
		Branches:    flow.Branches{Staging: "staging", Main: "main"},
	}
	// The stages record that they ran and write to the lock what the real
	// stages of the same name write, so the flow's ordering, gate and notes
	// are exercised end to end without a registry or an engine.
	rec := func(name string, fn func(l *lock.Lock) error) func(context.Context) error {
		return func(context.Context) error {
			f.ran = append(f.ran, name)
			if fn == nil {
				return nil
			}
			return lock.Update(lockPath, fn)
		}
	}
	v := func() string {
		if f.version != "" {
			return f.version
		}
		return "1.2.3"
	}
	f.promoted = map[string]string{}
	f.opts.Stages = Stages{
		UseVersion: func(v string) { f.version = v },
		Images: rec("Images", func(l *lock.Lock) error {
			l.Version, l.Revision = v(), f.sha
			l.Images = []lock.Image{{Name: "app", ImageID: "sha256:1111"}, {Name: "worker", ImageID: "sha256:2222"}}
			return nil
		}),
		Test: rec("Test", func(l *lock.Lock) error {
			for i := range l.Images {
				l.Images[i].Test = &lock.Test{Passed: !f.failTest || i != 1, ImageID: l.Images[i].ImageID}
			}
			return nil
		}),
		Scan:       rec("Scan", nil),
		DigestGate: rec("DigestGate", nil),
		Push: func(ctx context.Context) (*publish.PushResult, error) {
			res := &publish.PushResult{}
			err := rec("Push", func(l *lock.Lock) error {
				for i := range l.Images {
					img := &l.Images[i]
					repo := "127.0.0.1:5000/acme/" + img.Name
					d := "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
					img.Pushed = append(img.Pushed, lock.Pushed{Ref: repo + "@" + d, Digest: d}, lock.Pushed{Ref: repo + ":" + v(), Digest: d}, lock.Pushed{Ref: repo + ":staging", Digest: d})
					res.Images = append(res.Images, publish.PushedImage{Name: img.Name, Repo: repo, Digest: d, Written: []string{v(), "staging"}})
				}
				return nil
			})(ctx)
			return res, err
		},
		// Promote stands in for the registry: each image has the staging
		// builds in f.pushed, and a promotion is remembered.
		Promote: func(ctx context.Context, cands []string, tested func(context.Context, string) (map[string]string, error), dryRun bool) (*publish.PromotePlan, error) {
			if !dryRun {
				f.ran = append(f.ran, "Promote")
			}
			var chosen string
			for _, c := range cands {
				if f.pushed[c] {
					chosen = c
					break
				}
			}
			if chosen == "" {
				return nil, fmt.Errorf("promoting: no image has %v", cands)
			}
			// As publish.Promote does: the registry's staging tags must name
			// the tested digests.
			want, err := tested(ctx, chosen)
			if err != nil {
				return nil, err
			}
			for _, n := range []string{"app", "worker"} {
				got := "sha256:" + chosen
				if m := f.moved[n]; m != "" {
					got = m
				}
				if want[n] != got {
					return nil, fmt.Errorf("refusing to promote %s: %s names %s, but the tested build is %s: %w", chosen, n, got, want[n], publish.ErrNotTested)
				}
			}
			plan := &publish.PromotePlan{Base: "1.2.3", Staging: chosen}
			for _, n := range []string{"app", "worker"} {
				st := publish.PromoteStep{Name: n, Source: "127.0.0.1:5000/acme/" + n + ":" + chosen, Digest: "sha256:" + chosen, Dest: "127.0.0.1:5000/acme/" + n, Tags: []string{"1.2.3", "1.2", "1", "latest"}}
				switch {
				case f.promoted[n] == chosen:
					st.Kept = st.Tags
				case !dryRun:
					f.promoted[n] = chosen
					st.Written = st.Tags
				}
				plan.Steps = append(plan.Steps, st)
			}
			return plan, nil
		},
		CheckRegistry: func(context.Context) (string, error) {
			if f.registryErr != nil {
				return "", f.registryErr
			}
			return "127.0.0.1:5000/acme", nil
		},
	}
	f.pushed = map[string]bool{}
	f.moved = map[string]string{}
	return f
}

func write(t testing.TB, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) remoteTags(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(git(t, f.work, "ls-remote", "--tags", f.bare), "\n") {
		if fs := strings.Fields(l); len(fs) == 2 {
			out[strings.TrimPrefix(fs[1], "refs/tags/")] = fs[0]
		}
	}
	return out
}

func names(steps []flow.Step) string {
	var s []string
	for _, st := range steps {
		s = append(s, st.Name)
	}
	return strings.Join(s, ",")
}

func TestStagingLine(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Decision.Line != flow.Staging || names(p.Steps) != "Reserve,Images,Test,Scan,DigestGate,Gate,Push,Record,GitHub prerelease" {
		t.Fatalf("line %s, steps %s", p.Decision.Line, names(p.Steps))
	}
	var out bytes.Buffer
	if err := flow.Run(ctx, &out, p.Steps, false); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if f.version != "1.2.3-staging.0" || f.remoteTags(t)["1.2.3-staging.0"] != f.sha {
		t.Fatalf("version %q, remote tags %v", f.version, f.remoteTags(t))
	}
	rel, ok := f.gh.Releases()["1.2.3-staging.0"]
	if !ok || !rel.Prerelease || rel.TargetCommitish != f.sha {
		t.Fatalf("release = %+v (found %v)", rel, ok)
	}
	for _, want := range []string{"- Reservation of staging versions", "docker pull 127.0.0.1:5000/acme/app:1.2.3-staging.0", "docker pull 127.0.0.1:5000/acme/worker@sha256:bbbb", "`1.2.3-staging.0`, `staging`"} {
		if !strings.Contains(rel.Body, want) {
			t.Fatalf("release body lacks %q:\n%s", want, rel.Body)
		}
	}
	if strings.Contains(rel.Body, "template hint") {
		t.Fatalf("HTML comment published:\n%s", rel.Body)
	}
	// A second run at the same commit completes the same build: it reuses
	// the number reserved here and updates the same prerelease.
	f.version = ""
	p, err = Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := flow.Run(ctx, &out, p.Steps, false); err != nil {
		t.Fatal(err)
	}
	if f.version != "1.2.3-staging.0" || len(f.gh.Releases()) != 1 || len(f.remoteTags(t)) != 1 {
		t.Fatalf("second run at the same commit: version %s, releases %v, tags %v", f.version, f.gh.Releases(), f.remoteTags(t))
	}
	// A new commit gets the next number and its own prerelease.
	commitFile(t, f, "README", "more\n")
	f.sha = git(t, f.work, "rev-parse", "HEAD")
	f.version = ""
	p, err = Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := flow.Run(ctx, &out, p.Steps, false); err != nil {
		t.Fatal(err)
	}
	if f.version != "1.2.3-staging.1" || len(f.gh.Releases()) != 2 {
		t.Fatalf("new commit: version %s, releases %v", f.version, f.gh.Releases())
	}
}

// TestStagingOutputs: the staging line hands the version and each image's
// digest reference to later workflow steps.
func TestStagingOutputs(t *testing.T) {
	f := newFixture(t)
	f.opts.Output = filepath.Join(t.TempDir(), "github_output")
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := flow.Run(ctx, &bytes.Buffer{}, p.Steps, false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.opts.Output)
	want := "version=1.2.3-staging.0\n" +
		"digest_app=127.0.0.1:5000/acme/app@sha256:" + strings.Repeat("a", 64) + "\n" +
		"digest_worker=127.0.0.1:5000/acme/worker@sha256:" + strings.Repeat("b", 64) + "\n"
	if string(b) != want {
		t.Fatalf("outputs:\n%s\nwant\n%s", b, want)
	}
}

func TestStagingStopsBeforePushWhenAnImageFails(t *testing.T) {
	f := newFixture(t)
	f.failTest = true
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	err = flow.Run(ctx, &bytes.Buffer{}, p.Steps, false)
	if err == nil || !strings.Contains(err.Error(), "Gate: nothing pushed: 1 of 2 images not fit to ship: worker failed its test") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(strings.Join(f.ran, ","), "Push") || len(f.gh.Releases()) != 0 {
		t.Fatalf("ran %v, releases %v", f.ran, f.gh.Releases())
	}
}

func TestStagingMissingStageStops(t *testing.T) {
	f := newFixture(t)
	f.opts.Stages.Scan = nil
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	err = flow.Run(ctx, &bytes.Buffer{}, p.Steps, false)
	if !errors.Is(err, flow.ErrMissing) || strings.Contains(strings.Join(f.ran, ","), "Push") {
		t.Fatalf("err = %v, ran %v", err, f.ran)
	}
}

func TestStagingOverride(t *testing.T) {
	ctx := context.Background()
	t.Run("absent", func(t *testing.T) {
		f := newFixture(t)
		f.opts.Override = "1.2.3-staging.99"
		p, err := Prepare(ctx, f.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := flow.Run(ctx, &bytes.Buffer{}, p.Steps, false); err != nil {
			t.Fatal(err)
		}
		if f.version != "1.2.3-staging.99" || f.remoteTags(t)["1.2.3-staging.99"] != f.sha {
			t.Fatalf("version %s, tags %v", f.version, f.remoteTags(t))
		}
	})
	t.Run("same commit", func(t *testing.T) {
		f := newFixture(t)
		git(t, f.work, "push", "-q", "origin", f.sha+":refs/tags/1.2.3-staging.7")
		f.opts.Override = "1.2.3-staging.7"
		p, err := Prepare(ctx, f.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := flow.Run(ctx, &bytes.Buffer{}, p.Steps[:1], false); err != nil || f.version != "1.2.3-staging.7" {
			t.Fatalf("err %v, version %s", err, f.version)
		}
	})
	t.Run("other commit", func(t *testing.T) {
		f := newFixture(t)
		git(t, f.work, "commit", "-q", "--allow-empty", "-m", "later")
		other := git(t, f.work, "rev-parse", "HEAD")
		git(t, f.work, "push", "-q", "origin", other+":refs/tags/1.2.3-staging.7")
		git(t, f.work, "reset", "-q", "--hard", f.sha)
		f.opts.Override = "1.2.3-staging.7"
		_, err := Prepare(ctx, f.opts)
		if !errors.Is(err, gitref.ErrElsewhere) || f.ran != nil {
			t.Fatalf("err = %v, ran %v", err, f.ran)
		}
		if f.remoteTags(t)["1.2.3-staging.7"] != other {
			t.Fatal("tag moved")
		}
	})
}

func TestMainLine(t *testing.T) {
	f := newFixture(t)
	f.staged(t, "1.2.3-staging.1", f.sha)
	git(t, f.work, "checkout", "-q", "-b", "main")
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Decision.Line != flow.Main || names(p.Steps) != "Promote,Tag,GitHub release" || p.Staging != "1.2.3-staging.1" {
		t.Fatalf("line %s, steps %s, staging %s", p.Decision.Line, names(p.Steps), p.Staging)
	}
	// The dry run names the staging build, each image's digest and tags.
	var dry bytes.Buffer
	if err := flow.Run(ctx, &dry, p.Steps, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[1/3] Promote: would write\n  127.0.0.1:5000/acme/app:{1.2.3,1.2,1,latest} = sha256:1.2.3-staging.1 (from 127.0.0.1:5000/acme/app:1.2.3-staging.1)", "[2/3] Tag: would write git tag 1.2.3 on "} {
		if !strings.Contains(dry.String(), want) {
			t.Fatalf("dry run lacks %q:\n%s", want, dry.String())
		}
	}
	if err := flow.Run(ctx, &bytes.Buffer{}, p.Steps, false); err != nil {
		t.Fatal(err)
	}
	if f.remoteTags(t)["1.2.3"] != f.sha || f.promoted["app"] != "1.2.3-staging.1" {
		t.Fatalf("tag 1.2.3 not at %s: %v; promoted %v", f.sha, f.remoteTags(t), f.promoted)
	}
	rel := f.gh.Releases()["1.2.3"]
	if rel.Prerelease || !strings.Contains(rel.Body, "Reservation of staging versions") || !strings.Contains(rel.Body, "## Commits in this first release\n\n- 1.2.3 (") || !strings.Contains(rel.Body, "## Contributors") {
		t.Fatalf("release = %+v", rel)
	}
	// Running main again writes nothing, and says so with the digests.
	calls := len(f.gh.Calls())
	f.ran = nil
	p, err = Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 0 || p.Done == "" {
		t.Fatalf("second main run plans %s", names(p.Steps))
	}
	sum := strings.Join(p.Summary(), "\n")
	if !strings.Contains(sum, "already promoted: nothing to do") || !strings.Contains(sum, "sha256:1.2.3-staging.1") {
		t.Fatalf("summary:\n%s", sum)
	}
	for _, c := range f.gh.Calls()[calls:] {
		if !strings.HasPrefix(c, "GET ") {
			t.Fatalf("second main run wrote to GitHub: %s", c)
		}
	}
}

// TestMainPromotesOnlyTheBuildOfHead: staging built A (N=1) and B (N=2);
// main at A promotes 1, never 2; main at a commit with no build is refused
// before any write, naming the builds that exist.
func TestMainPromotesOnlyTheBuildOfHead(t *testing.T) {
	f := newFixture(t)
	a := f.sha
	f.staged(t, "1.2.3-staging.1", a)
	commitFile(t, f, "README", "b\n")
	b := git(t, f.work, "rev-parse", "HEAD")
	f.staged(t, "1.2.3-staging.2", b)
	git(t, f.work, "checkout", "-q", "-b", "main", a)
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Staging != "1.2.3-staging.1" {
		t.Fatalf("main at A promotes %s", p.Staging)
	}
	// A staging tag moved in the registry after the push: nothing promoted.
	f.moved["worker"] = "sha256:cuda"
	if _, err := Prepare(ctx, f.opts); !errors.Is(err, publish.ErrNotTested) || !strings.Contains(err.Error(), "worker names sha256:cuda, but the tested build is sha256:1.2.3-staging.1") {
		t.Fatalf("moved tag: %v", err)
	}
	delete(f.moved, "worker")
	// No record of the build and no lock: no proof, nothing promoted.
	git(t, f.work, "push", "-q", "origin", ":refs/hoist/builds/1.2.3-staging.1")
	if _, err := Prepare(ctx, f.opts); err == nil || !strings.Contains(err.Error(), "no record of what 1.2.3-staging.1 pushed") {
		t.Fatalf("no record: %v", err)
	}
	// main moved to a commit the staging line never built.
	commitFile(t, f, "HOTFIX", "c\n")
	_, err = Prepare(ctx, f.opts)
	for _, want := range []string{"has no staging build of 1.2.3", "1.2.3-staging.2 at " + b[:12], "1.2.3-staging.1 at " + a[:12]} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
	}
	if f.ran != nil || f.remoteTags(t)["1.2.3"] != "" {
		t.Fatalf("something ran or was tagged: %v %v", f.ran, f.remoteTags(t))
	}
}

func TestMainRefusesReleaseTagElsewhere(t *testing.T) {
	f := newFixture(t)
	git(t, f.work, "push", "-q", "origin", f.sha+":refs/tags/1.2.3")
	git(t, f.work, "checkout", "-q", "-b", "main")
	git(t, f.work, "commit", "-q", "--allow-empty", "-m", "later")
	_, err := Prepare(context.Background(), f.opts)
	if !errors.Is(err, gitref.ErrElsewhere) || f.ran != nil {
		t.Fatalf("err = %v", err)
	}
}

func TestReleaseTagLine(t *testing.T) {
	f := newFixture(t)
	git(t, f.work, "tag", "v1.2.3")
	git(t, f.work, "checkout", "-q", "--detach")
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Decision.Line != flow.Release || names(p.Steps) != "Images,Test,Scan,DigestGate,Gate,Push,GitHub release" {
		t.Fatalf("line %s, steps %s", p.Decision.Line, names(p.Steps))
	}
	if err := flow.Run(ctx, &bytes.Buffer{}, p.Steps, false); err != nil {
		t.Fatal(err)
	}
	rel, ok := f.gh.Releases()["v1.2.3"]
	if !ok || rel.Prerelease || !strings.Contains(rel.Body, "docker pull 127.0.0.1:5000/acme/app:1.2.3\n") {
		t.Fatalf("release = %+v", rel)
	}
	if _, ok := f.remoteTags(t)["1.2.3-staging.0"]; ok || f.version != "" {
		t.Fatal("a release build reserved a staging version")
	}
}

func TestVerifyLineNeverPushes(t *testing.T) {
	for _, tt := range []struct {
		name string
		ref  string
		pr   bool
	}{
		{name: "pull request", ref: "refs/pull/3/merge"},
		{name: "fork on staging", ref: "refs/heads/staging", pr: true},
		{name: "feature branch", ref: "refs/heads/feature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			write(t, f.work, "scratch.txt", "a dirty checkout is fine when nothing is published")
			f.opts.Ref, f.opts.PR = tt.ref, tt.pr
			f.opts.GitHub = nil
			p, err := Prepare(context.Background(), f.opts)
			if err != nil {
				t.Fatal(err)
			}
			if p.Decision.Line != flow.Verify || names(p.Steps) != "Images,Test,Scan" {
				t.Fatalf("line %s, steps %s", p.Decision.Line, names(p.Steps))
			}
		})
	}
}

// TestBadInput: each problem is one line, found before anything runs, and
// nothing is tagged.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, f *fixture)
		wantIn string
		is     error
	}{
		{name: "dirty checkout", setup: func(t *testing.T, f *fixture) { write(t, f.work, "docs/CHANGELOGS/1.2.3.md", "edited\n") }, wantIn: "uncommitted change"},
		{name: "untracked file beside the build folder", setup: func(t *testing.T, f *fixture) {
			f.opts.BuildDir = "out/hoist"
			write(t, f.work, "out/hoist/lock.json", "{}")
			write(t, f.work, "out/other.txt", "x")
		}, wantIn: "out/other.txt"},
		{name: "untracked file", setup: func(t *testing.T, f *fixture) { write(t, f.work, "new.go", "package x") }, wantIn: "uncommitted change"},
		{name: "detached checkout", setup: func(t *testing.T, f *fixture) {
			git(t, f.work, "checkout", "-q", "--detach")
			f.opts.Ref = "refs/heads/staging"
		}, wantIn: "HEAD is detached"},
		{name: "wrong branch checked out", setup: func(t *testing.T, f *fixture) { f.opts.Ref = "refs/heads/main" }, wantIn: "the run is for branch main but the checkout is on staging"},
		{name: "missing remote", setup: func(t *testing.T, f *fixture) { git(t, f.work, "remote", "remove", "origin") }, wantIn: "git remote add origin", is: gitref.ErrNoRemote},
		{name: "remote gone", setup: func(t *testing.T, f *fixture) { os.RemoveAll(f.bare) }, wantIn: "does not appear to be a git repository", is: gitref.ErrNoRemote},
		{name: "no git credentials", setup: func(t *testing.T, f *fixture) {
			url := authGitServer(t, f.bare)
			git(t, f.work, "remote", "set-url", "origin", url)
		}, wantIn: "give git credentials", is: gitref.ErrAuth},
		{name: "no GitHub token", setup: func(t *testing.T, f *fixture) {
			f.opts.GitHub, _ = github.New(f.gh.URL, "acme/widgets", "")
		}, wantIn: "set HOIST_GITHUB_TOKEN or GITHUB_TOKEN"},
		{name: "read-only GitHub token", setup: func(t *testing.T, f *fixture) { f.gh.ReadOnly = true }, wantIn: "can read acme/widgets but not write to it"},
		{name: "registry refuses", setup: func(t *testing.T, f *fixture) {
			f.registryErr = errors.New("checking push access to 127.0.0.1:5000/acme/app: registry answered 401")
		}, wantIn: "registry answered 401"},
		{name: "main at a commit with no staging build", setup: func(t *testing.T, f *fixture) {
			git(t, f.work, "checkout", "-q", "-b", "main")
		}, wantIn: "has no staging build of 1.2.3 (there is none)"},
		{name: "malformed VERSION", setup: func(t *testing.T, f *fixture) { commitFile(t, f, "VERSION", "1.2\n") }, wantIn: "MAJOR.MINOR.PATCH"},
		{name: "missing changelog", setup: func(t *testing.T, f *fixture) {
			git(t, f.work, "rm", "-q", "docs/CHANGELOGS/1.2.3.md")
			git(t, f.work, "commit", "-q", "-m", "rm")
		}, wantIn: "1.2.3.md is missing"},
		{name: "override not staging", setup: func(t *testing.T, f *fixture) { f.opts.Override = "1.2.3-rc.1" }, wantIn: "is not X.Y.Z-staging.N"},
		{name: "override of another version", setup: func(t *testing.T, f *fixture) { f.opts.Override = "1.3.0-staging.1" }, wantIn: "is for 1.3.0 but VERSION is 1.2.3"},
		{name: "release tag does not match VERSION", setup: func(t *testing.T, f *fixture) {
			git(t, f.work, "tag", "v1.2.4")
			git(t, f.work, "checkout", "-q", "--detach")
		}, wantIn: "tag v1.2.4 does not match VERSION 1.2.3"},
		{name: "release tag not at HEAD", setup: func(t *testing.T, f *fixture) {
			git(t, f.work, "tag", "v1.2.3")
			git(t, f.work, "commit", "-q", "--allow-empty", "-m", "after the tag")
			git(t, f.work, "checkout", "-q", "--detach")
			f.opts.Ref = "refs/tags/v1.2.3"
		}, wantIn: "is not at tag v1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(t, f)
			_, err := Prepare(context.Background(), f.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), token) {
				t.Fatalf("not one clean line: %q", err)
			}
			if f.ran != nil || len(f.gh.Calls()) > 0 && strings.Contains(strings.Join(f.gh.Calls(), " "), "POST") {
				t.Fatalf("something ran: %v %v", f.ran, f.gh.Calls())
			}
			if _, err := os.Stat(f.bare); err == nil {
				if tags := f.remoteTags(t); len(tags) != 0 {
					t.Fatalf("tags were created: %v", tags)
				}
			}
		})
	}
}

// authGitServer serves bare through real git (git http-backend) behind a
// password the test never gives, and returns its URL.
func authGitServer(t *testing.T, bare string) string {
	out, _ := exec.Command("git", "--exec-path").Output()
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "hoist" || p != "right" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(bare)
}

func commitFile(t *testing.T, f *fixture, name, body string) {
	write(t, f.work, name, body)
	git(t, f.work, "add", name)
	git(t, f.work, "commit", "-q", "-m", "change "+name)
}

// TestBuildFolderIsNotDirt: Hoist's own output, even where .gitignore does
// not cover it, does not stop a release.
func TestBuildFolderIsNotDirt(t *testing.T) {
	f := newFixture(t)
	f.opts.BuildDir = "out/hoist"
	write(t, f.work, "out/hoist/lock.json", "{}")
	if _, err := Prepare(context.Background(), f.opts); err != nil {
		t.Fatal(err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	git(t, f.work, "commit", "-q", "--allow-empty", "-m", "other")
	git(t, f.work, "push", "-q", "origin", "HEAD:refs/tags/1.2.3-staging.4")
	git(t, f.work, "reset", "-q", "--hard", f.sha)
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := flow.Run(ctx, &out, p.Steps, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[1/9] Reserve: would write git tag 1.2.3-staging.5", "Push: would write image tags 1.2.3-staging.5 and staging", "GitHub prerelease 1.2.3-staging.5 on acme/widgets"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if f.ran != nil || len(f.remoteTags(t)) != 1 || len(f.gh.Releases()) != 0 {
		t.Fatalf("dry run wrote: ran %v, tags %v", f.ran, f.remoteTags(t))
	}
}

func TestReserveAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r, err := Reserve(ctx, f.opts, true)
	if err != nil || r.Next != "1.2.3-staging.0" || len(f.remoteTags(t)) != 0 {
		t.Fatalf("dry run: %+v, %v", r, err)
	}
	r, err = Reserve(ctx, f.opts, false)
	if err != nil || r.Tag != "1.2.3-staging.0" || f.remoteTags(t)["1.2.3-staging.0"] != f.sha {
		t.Fatalf("reserve: %+v, %v", r, err)
	}
	// Again at the same commit: the same number, nothing new.
	r, err = Reserve(ctx, f.opts, false)
	if err != nil || r.Tag != "1.2.3-staging.0" || !r.Existing || len(f.remoteTags(t)) != 1 {
		t.Fatalf("reserve again: %+v, %v, tags %v", r, err, f.remoteTags(t))
	}
	git(t, f.work, "checkout", "-q", "--detach")
	if _, err := Reserve(ctx, f.opts, false); err == nil || !strings.Contains(err.Error(), "HEAD is detached") {
		t.Fatalf("detached: %v", err)
	}
}

func TestNotesGolden(t *testing.T) {
	imgs := []lock.Image{
		{Name: "worker", Pushed: []lock.Pushed{
			{Ref: "ghcr.io/acme/widgets/worker@sha256:" + strings.Repeat("b", 64), Digest: "sha256:" + strings.Repeat("b", 64)},
			{Ref: "ghcr.io/acme/widgets/worker:1.2.3", Digest: "sha256:" + strings.Repeat("b", 64)},
			{Ref: "ghcr.io/acme/widgets/worker:latest", Digest: "sha256:" + strings.Repeat("b", 64)},
			{Ref: "ghcr.io/acme/widgets/worker:1.2", Digest: "sha256:" + strings.Repeat("b", 64)},
			{Ref: "ghcr.io/acme/widgets/worker:1.2.2", Digest: "sha256:" + strings.Repeat("c", 64)},
		}},
		{Name: "api", Pushed: []lock.Pushed{
			{Ref: "localhost:5000/acme/api:1.2.3", Digest: "sha256:" + strings.Repeat("a", 64)},
			{Ref: "localhost:5000/acme/api:1", Digest: "sha256:" + strings.Repeat("a", 64)},
		}},
		{Name: "not-pushed"},
	}
	hist := &History{Previous: "1.2.2", Current: "1.2.3", Compare: "https://github.com/acme/widgets", Commits: []gitref.Commit{
		{SHA: strings.Repeat("1", 40), Author: "Ada", Subject: "Reserve staging versions"},
		{SHA: strings.Repeat("2", 40), Author: "Grace", Subject: "Fix the gate"},
		{SHA: strings.Repeat("3", 40), Author: "Ada", Subject: "Docs"},
	}}
	got := Notes("## Added\n\n- Reservation of staging versions\n", "1.2.3", Refs(imgs, "1.2.3"), hist)
	golden := filepath.Join("testdata", "notes.golden.md")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if got != string(want) {
		t.Fatalf("notes differ from %s (go test -update rewrites it):\n%s", golden, got)
	}
	if empty := Notes("", "0.1.0", nil, nil); !strings.Contains(empty, "No release notes were written for 0.1.0") || !strings.Contains(empty, "No image references were recorded") {
		t.Fatalf("empty notes: %q", empty)
	}
}

func TestPublishAgainstGitHub(t *testing.T) {
	gh := githubtest.New(t, "acme/widgets", token)
	ctx := context.Background()
	c, _ := github.New(gh.URL, "acme/widgets", token)
	sha := strings.Repeat("d", 40)
	pub, err := Publish(ctx, c, GitHubRelease{Tag: "1.2.3-staging.1", Commit: sha, Name: "1.2.3-staging.1", Body: "one", Prerelease: true})
	if err != nil || !pub.Created || !strings.HasSuffix(pub.URL, "/releases/tag/1.2.3-staging.1") {
		t.Fatalf("create: %+v, %v", pub, err)
	}
	pub2, err := Publish(ctx, c, GitHubRelease{Tag: "1.2.3-staging.1", Commit: sha, Name: "1.2.3-staging.1", Body: "two", Prerelease: true})
	if err != nil || pub2.Created || pub2.ID != pub.ID {
		t.Fatalf("update: %+v, %v", pub2, err)
	}
	if r := gh.Releases()["1.2.3-staging.1"]; r.Body != "two" || !r.Prerelease {
		t.Fatalf("stored %+v", r)
	}
	calls := strings.Join(gh.Calls(), "\n")
	if !strings.Contains(calls, "POST /repos/acme/widgets/releases") || !strings.Contains(calls, "PATCH /repos/acme/widgets/releases/1") {
		t.Fatalf("calls:\n%s", calls)
	}
	for _, tt := range []struct {
		name, repo, tok string
		status          int
		wantIn          string
	}{
		{name: "bad token", repo: "acme/widgets", tok: "wrong-token-value", status: http.StatusUnauthorized, wantIn: "401 Bad credentials"},
		{name: "no token", repo: "acme/widgets", status: http.StatusUnauthorized, wantIn: "401 Requires authentication"},
		{name: "unknown repository", repo: "acme/nothing", tok: token, status: http.StatusNotFound, wantIn: "check release.github"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := github.New(gh.URL, tt.repo, tt.tok)
			_, err := Publish(ctx, c, GitHubRelease{Tag: "1.2.4", Commit: sha})
			if github.StatusOf(err) != tt.status || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("err = %v, want %d containing %q", err, tt.status, tt.wantIn)
			}
			if tt.tok != "" && strings.Contains(err.Error(), tt.tok) {
				t.Fatalf("token in error: %v", err)
			}
		})
	}
}

// TestPublishRace: another run creates the release between this run's GET
// (404) and POST (422 already_exists); Publish then updates it.
func TestPublishRace(t *testing.T) {
	gh := githubtest.New(t, "acme/widgets", token)
	sha := strings.Repeat("f", 40)
	gh.After = func(method, path string) {
		if method == http.MethodGet && strings.HasSuffix(path, "/releases/tags/2.0.0") {
			gh.After = nil
			gh.CreateRelease("2.0.0", sha)
		}
	}
	c, _ := github.New(gh.URL, "acme/widgets", token)
	pub, err := Publish(context.Background(), c, GitHubRelease{Tag: "2.0.0", Commit: sha, Name: "2.0.0", Body: "mine"})
	if err != nil || pub.Created {
		t.Fatalf("Publish = %+v, %v", pub, err)
	}
	if r := gh.Releases()["2.0.0"]; r.Body != "mine" || len(gh.Releases()) != 1 {
		t.Fatalf("releases %+v", gh.Releases())
	}
	calls := strings.Join(gh.Calls(), ",")
	if want := "GET /repos/acme/widgets/releases/tags/2.0.0,POST /repos/acme/widgets/releases,GET /repos/acme/widgets/releases/tags/2.0.0,PATCH /repos/acme/widgets/releases/1"; calls != want {
		t.Fatalf("calls %s\nwant  %s", calls, want)
	}
}

// TestPublishCancelled: the GitHub client honours ctx.
func TestPublishCancelled(t *testing.T) {
	gh := githubtest.New(t, "acme/widgets", token)
	c, _ := github.New(gh.URL, "acme/widgets", token)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Publish(ctx, c, GitHubRelease{Tag: "1.0.0", Commit: strings.Repeat("e", 40)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestDocsStepTable: docs/release.md's table lists each line's steps as
// lines.go orders them.
func TestDocsStepTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/release.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := Lines()
	for line, steps := range lines {
		row := "| " + string(line) + " | "
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, row) {
				continue
			}
			found = true
			cells := strings.Split(strings.Trim(l, "| "), " | ")
			if got := cells[len(cells)-1]; got != strings.Join(steps, ", ") {
				t.Errorf("docs/release.md, line %s: %q; the code runs %q", line, got, strings.Join(steps, ", "))
			}
		}
		if !found {
			t.Errorf("docs/release.md has no row for the %s line", line)
		}
	}
	if len(lines) != 6 {
		t.Fatalf("lines: %v", lines)
	}
	shards := ShardLines()
	for part, steps := range shards {
		row := "| " + part + " | " + strings.Join(steps, ", ") + " |"
		if !strings.Contains(string(b), row) {
			t.Errorf("docs/release.md lacks the row %q", row)
		}
	}
	if len(shards) != 4 {
		t.Fatalf("shard lines: %v", shards)
	}
}

// TestShardRefusals: shards and the join serve the staging and vX.Y.Z
// lines only, and a staging shard or join never reserves its own number.
func TestShardRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, o := range []Options{{Shard: &Shard{Index: 1, Count: 2}}, {Join: &Join{}}} {
		opts := f.opts
		opts.Shard, opts.Join = o.Shard, o.Join
		_, err := Prepare(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "no staging build is reserved at commit "+f.sha[:12]) {
			t.Fatalf("staging shard with no reservation: %v", err)
		}
		opts.Ref = "refs/heads/main"
		if _, err := Prepare(ctx, opts); err == nil || !strings.Contains(err.Error(), "CI shards build the staging and vX.Y.Z lines, and this run is the main line") {
			t.Fatalf("main-line shard: %v", err)
		}
		opts.Ref, opts.PR = "", true
		if _, err := Prepare(ctx, opts); err == nil || !strings.Contains(err.Error(), "this run is the verify line") {
			t.Fatalf("pull-request shard: %v", err)
		}
	}
	// Reserved at this commit (the plan job's reserve): the shard reuses it.
	git(t, f.work, "push", "-q", "origin", f.sha+":refs/tags/1.2.3-staging.4")
	opts := f.opts
	opts.Shard = &Shard{Index: 2, Count: 3, Images: []string{"app", "worker"}, Dir: t.TempDir()}
	p, err := Prepare(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if names(p.Steps) != "Reserve,Images,Test,Scan,DigestGate,Gate,Push,Fragment" || p.Staging != "1.2.3-staging.4" {
		t.Fatalf("shard steps %s, staging %s", names(p.Steps), p.Staging)
	}
}

package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/publish"
)

// rebuildFixture is the fixture released as 1.2.3 (tag v1.2.3 at f.sha,
// HEAD detached there, as the weekly workflow checks it out) and started
// by the schedule. PushRevision stands for the registry: it refuses a
// revision listed in conflict (a killed run's other bytes) and otherwise
// records what it pushed.
func rebuildFixture(t *testing.T) (*fixture, map[string]bool, *[]string) {
	t.Helper()
	f := newFixture(t)
	git(t, f.work, "tag", "v1.2.3")
	git(t, f.work, "checkout", "-q", "--detach")
	f.opts.Ref, f.opts.Event, f.opts.CI = "refs/heads/main", "schedule", true
	conflict := map[string]bool{}
	var pushed []string
	f.opts.Stages.PushRevision = func(ctx context.Context, rev string) (*publish.PushResult, error) {
		f.ran = append(f.ran, "Push "+rev)
		if conflict[rev] {
			return nil, fmt.Errorf("no tag was written: %w: app: %s names sha256:other", publish.ErrTagConflict, rev)
		}
		pushed = append(pushed, rev)
		res := &publish.PushResult{}
		for i, n := range []string{"app", "worker"} {
			d := "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
			res.Images = append(res.Images, publish.PushedImage{Name: n, Repo: "127.0.0.1:5000/acme/" + n, Digest: d, Written: []string{rev, "1.2.3", "1.2", "1"}})
		}
		return res, nil
	}
	return f, conflict, &pushed
}

func (f *fixture) rebuild(t *testing.T) (*Plan, string) {
	t.Helper()
	ctx := context.Background()
	f.ran = nil
	var out bytes.Buffer
	o := f.opts
	o.Progress = &out
	p, err := Prepare(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := flow.Run(ctx, &out, p.Steps, false); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return p, out.String()
}

func (f *fixture) record(t *testing.T, tag string) string {
	t.Helper()
	b, err := f.opts.Git.Record(context.Background(), tag)
	if errors.Is(err, gitref.ErrNoRecord) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRebuildLine: two weekly rebuilds of 1.2.3 publish 1.2.3-r1, then
// 1.2.3-r2, each reserved as a git tag at the release's commit and
// recorded; no GitHub release is written and nothing is built as another
// version than the release's.
func TestRebuildLine(t *testing.T) {
	f, _, pushed := rebuildFixture(t)
	f.opts.Output = filepath.Join(t.TempDir(), "github_output")
	p, _ := f.rebuild(t)
	if p.Decision.Line != flow.Rebuild || names(p.Steps) != "Images,Test,Scan,DigestGate,Gate,Reserve,Push,Record" {
		t.Fatalf("line %s, steps %s", p.Decision.Line, names(p.Steps))
	}
	if strings.Join(f.ran, ",") != "Images,Test,Scan,DigestGate,Push 1.2.3-r1" || f.version != "" {
		t.Fatalf("ran %v, version handed to the stages %q", f.ran, f.version)
	}
	if tags := f.remoteTags(t); tags["1.2.3-r1"] != f.sha || len(tags) != 1 {
		t.Fatalf("remote tags %v", tags)
	}
	if rec := f.record(t, "1.2.3-r1"); !strings.Contains(rec, `"app": "sha256:aaaa`) || !strings.Contains(rec, `"tag": "1.2.3-r1"`) {
		t.Fatalf("record of 1.2.3-r1: %q", rec)
	}
	sum := strings.Join(p.Summary(), "\n")
	if !strings.Contains(sum, "docker pull 127.0.0.1:5000/acme/app:1.2.3-r1") {
		t.Fatalf("summary:\n%s", sum)
	}
	b, _ := os.ReadFile(f.opts.Output)
	if !strings.HasPrefix(string(b), "version=1.2.3-r1\ndigest_app=127.0.0.1:5000/acme/app@sha256:aaaa") {
		t.Fatalf("outputs:\n%s", b)
	}
	// Next week: the next number, at the same commit.
	f.rebuild(t)
	if tags := f.remoteTags(t); tags["1.2.3-r2"] != f.sha || len(tags) != 2 || f.record(t, "1.2.3-r2") == "" {
		t.Fatalf("remote tags %v", tags)
	}
	if strings.Join(*pushed, ",") != "1.2.3-r1,1.2.3-r2" || len(f.gh.Releases()) != 0 {
		t.Fatalf("pushed %v, releases %v", *pushed, f.gh.Releases())
	}
}

// TestRebuildAfterKillReusesTheRevision: a run killed after reserving
// 1.2.3-r2 (no record) is completed by the next run under the same number;
// when the killed run's tags name other bytes, r2 is left as it is and r3
// is published instead.
func TestRebuildAfterKillReusesTheRevision(t *testing.T) {
	f, conflict, pushed := rebuildFixture(t)
	f.rebuild(t) // r1, recorded
	git(t, f.work, "push", "-q", "origin", f.sha+":refs/tags/1.2.3-r2")
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	var dry bytes.Buffer
	if err := flow.Run(ctx, &dry, p.Steps, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dry.String(), "Reserve: would write git tag 1.2.3-r2 (reserved at this commit by a run that recorded nothing: this run completes it)") {
		t.Fatalf("dry run:\n%s", dry.String())
	}
	_, out := f.rebuild(t)
	if !strings.Contains(out, "1.2.3-r2: reserved at this commit") || f.record(t, "1.2.3-r2") == "" || len(f.remoteTags(t)) != 2 {
		t.Fatalf("out:\n%s\ntags %v", out, f.remoteTags(t))
	}
	// Killed again after reserving r3, and the rebuild gives other bytes
	// than the ones the killed run pushed under r3.
	git(t, f.work, "push", "-q", "origin", f.sha+":refs/tags/1.2.3-r3")
	conflict["1.2.3-r3"] = true
	_, out = f.rebuild(t)
	if strings.Join(f.ran[len(f.ran)-2:], ",") != "Push 1.2.3-r3,Push 1.2.3-r4" || !strings.Contains(out, "1.2.3-r3 was partly pushed with other bytes") {
		t.Fatalf("ran %v\n%s", f.ran, out)
	}
	if f.record(t, "1.2.3-r3") != "" || f.record(t, "1.2.3-r4") == "" || f.remoteTags(t)["1.2.3-r4"] != f.sha {
		t.Fatalf("records: r3 %q, r4 %q; tags %v", f.record(t, "1.2.3-r3"), f.record(t, "1.2.3-r4"), f.remoteTags(t))
	}
	if strings.Join(*pushed, ",") != "1.2.3-r1,1.2.3-r2,1.2.3-r4" {
		t.Fatalf("pushed %v", *pushed)
	}
}

// TestRebuildFailureSpendsNoNumber: a rebuild that fails its test reserves
// and pushes nothing.
func TestRebuildFailureSpendsNoNumber(t *testing.T) {
	f, _, pushed := rebuildFixture(t)
	f.failTest = true
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := flow.Run(ctx, &bytes.Buffer{}, p.Steps, false); err == nil || !strings.HasPrefix(err.Error(), "Gate: ") {
		t.Fatalf("err = %v", err)
	}
	if len(f.remoteTags(t)) != 0 || len(*pushed) != 0 {
		t.Fatalf("tags %v, pushed %v", f.remoteTags(t), *pushed)
	}
}

// TestRebuildDryRunWritesNothing: the plan names the revision and the
// pointers, and nothing is reserved, pushed or recorded.
func TestRebuildDryRunWritesNothing(t *testing.T) {
	f, _, pushed := rebuildFixture(t)
	ctx := context.Background()
	p, err := Prepare(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := flow.Run(ctx, &out, p.Steps, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"[6/8] Reserve: would write git tag 1.2.3-r1 (the next free number now",
		"[7/8] Push: would write image tags 1.2.3-r1, then 1.2.3, 1.2, 1 where they move forward (never latest), on 127.0.0.1:5000/acme",
		"[8/8] Record: would write the digests pushed, as refs/hoist/builds/1.2.3-r1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if f.ran != nil || len(*pushed) != 0 || len(f.remoteTags(t)) != 0 || f.record(t, "1.2.3-r1") != "" {
		t.Fatalf("dry run wrote: ran %v, tags %v", f.ran, f.remoteTags(t))
	}
}

// TestRebuildRefusals: the rebuild line rebuilds only a released commit,
// and only the rebuild line writes revision tags.
func TestRebuildRefusals(t *testing.T) {
	t.Run("not at a release tag", func(t *testing.T) {
		f, _, _ := rebuildFixture(t)
		git(t, f.work, "tag", "-d", "v1.2.3")
		_, err := Prepare(context.Background(), f.opts)
		if err == nil || !strings.Contains(err.Error(), "has no release tag 1.2.3 (or v1.2.3)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("the main line's X.Y.Z tag counts", func(t *testing.T) {
		f, _, _ := rebuildFixture(t)
		git(t, f.work, "tag", "-d", "v1.2.3")
		git(t, f.work, "tag", "1.2.3")
		if _, err := Prepare(context.Background(), f.opts); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a prerelease", func(t *testing.T) {
		f, _, _ := rebuildFixture(t)
		git(t, f.work, "checkout", "-q", "staging")
		commitFile(t, f, "VERSION", "1.2.4-rc.1\n")
		write(t, f.work, "docs/CHANGELOGS/1.2.4.md", "# 1.2.4\n")
		git(t, f.work, "add", ".")
		git(t, f.work, "commit", "-q", "-m", "rc")
		git(t, f.work, "tag", "v1.2.4-rc.1")
		git(t, f.work, "checkout", "-q", "--detach")
		_, err := Prepare(context.Background(), f.opts)
		if err == nil || !strings.Contains(err.Error(), "a prerelease: the rebuild line rebuilds a release") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("VERSION shaped like a revision", func(t *testing.T) {
		f := newFixture(t)
		commitFile(t, f, "VERSION", "1.2.3-r1\n")
		_, err := Prepare(context.Background(), f.opts)
		if err == nil || !strings.Contains(err.Error(), "only the rebuild line writes") || len(f.remoteTags(t)) != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a pull request never rebuilds", func(t *testing.T) {
		f, _, _ := rebuildFixture(t)
		f.opts.PR = true
		p, err := Prepare(context.Background(), f.opts)
		if err != nil || p.Decision.Line != flow.Verify {
			t.Fatalf("line %v, err %v", p, err)
		}
	})
}

// TestMainAfterRebuildWritesNothing: once 1.2.3 has revisions, the main
// line at its commit is done; it never promotes the staging build over them.
func TestMainAfterRebuildWritesNothing(t *testing.T) {
	f := newFixture(t)
	f.staged(t, "1.2.3-staging.1", f.sha)
	git(t, f.work, "push", "-q", "origin", f.sha+":refs/tags/1.2.3")
	git(t, f.work, "checkout", "-q", "-b", "main")
	promote := f.opts.Stages.Promote
	f.opts.Stages.Promote = func(ctx context.Context, cands []string, tested func(context.Context, string) (map[string]string, error), dryRun bool) (*publish.PromotePlan, error) {
		if _, err := promote(ctx, cands, tested, true); err != nil {
			return nil, err
		}
		return &publish.PromotePlan{Base: "1.2.3", Staging: cands[0]}, fmt.Errorf("refusing to promote %s, no tag was written: app has 1.2.3-r2: %w", cands[0], publish.ErrRevised)
	}
	p, err := Prepare(context.Background(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 0 || !strings.Contains(p.Done, "rebuilt since as revisions of 1.2.3: nothing to do") || len(f.promoted) != 0 {
		t.Fatalf("steps %s, done %q, promoted %v", names(p.Steps), p.Done, f.promoted)
	}
	// At a later commit with the same VERSION the refusal stands.
	commitFile(t, f, "README", "later\n")
	if _, err := Prepare(context.Background(), f.opts); err == nil {
		t.Fatal("main at a new commit of a released, rebuilt version was accepted")
	}
}

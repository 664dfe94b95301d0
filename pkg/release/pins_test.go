package release

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/publish"
)

// TestPins: the main line's pins are the promoted digests, in pins.json
// and in a copy of the kustomization whose images: entries are set (other
// keys, entries and comments kept; the checkout's file untouched), and one
// commit on the GitOps branch of a real git remote; the same pins again
// commit nothing, and a branch another writer moved is committed on top.
func TestPins(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bare := filepath.Join(root, "gitops.git")
	git(t, root, "init", "-q", "--bare", "-b", "main", bare)
	kust := filepath.Join(root, "kustomization.yaml")
	const kustSrc = `# the app's overlay
resources:
  - deployment.yaml
images:
  - name: app
    newTag: old # replaced by the digest
  - name: sidecar
    newName: example.com/sidecar
    newTag: "1.0"
`
	if err := os.WriteFile(kust, []byte(kustSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(root, "build")
	os.MkdirAll(build, 0o755)
	const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	r := &Run{Decision: flow.Decision{Line: flow.Main}, Commit: "abc123", Base: "1.2.3",
		Promoted: &publish.PromotePlan{Base: "1.2.3", Staging: "1.2.3-staging.4", Steps: []publish.PromoteStep{
			{Name: "app", Dest: "reg.example/org/app", Digest: d1},
			{Name: "worker", Dest: "reg.example/org/worker", Digest: d2},
		}},
		o: Options{Git: &gitref.Git{Dir: root}, Pins: PinsOptions{
			File: filepath.Join(build, "pins.json"), Kustomization: kust, Remote: bare, Branch: "main", Path: "clusters/prod"}},
	}
	step := r.pinsStep()[0]
	if err := step.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var p Pins
	b, _ := os.ReadFile(filepath.Join(build, "pins.json"))
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != "1.2.3" || p.Line != "main" || p.Images["app"].Ref != "reg.example/org/app@"+d1 || p.Images["worker"].Digest != d2 {
		t.Fatalf("pins.json = %s", b)
	}
	k, _ := os.ReadFile(filepath.Join(build, "kustomization.yaml"))
	for _, want := range []string{"# the app's overlay", "- deployment.yaml", "newName: reg.example/org/app", "digest: " + d1, "name: worker", "newName: example.com/sidecar", `newTag: "1.0"`} {
		if !strings.Contains(string(k), want) {
			t.Errorf("pinned kustomization lacks %q:\n%s", want, k)
		}
	}
	if strings.Contains(string(k), "newTag: old") {
		t.Errorf("app keeps its newTag:\n%s", k)
	}
	if src, _ := os.ReadFile(kust); string(src) != kustSrc {
		t.Fatalf("the checkout's kustomization was edited:\n%s", src)
	}
	commits := func() []string {
		return strings.Fields(git(t, root, "--git-dir", bare, "log", "--format=%H", "main"))
	}
	if n := len(commits()); n != 1 {
		t.Fatalf("%d commits on the GitOps branch, want 1", n)
	}
	if got := git(t, root, "--git-dir", bare, "show", "main:clusters/prod/pins.json"); got != strings.TrimSpace(string(b)) {
		t.Fatalf("committed pins.json = %s", got)
	}
	// The same pins: nothing to commit.
	if err := step.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(commits()); n != 1 {
		t.Fatalf("%d commits after pinning the same digests, want 1", n)
	}
	// Another writer moved the branch; new pins land on top of it.
	other := filepath.Join(root, "other")
	git(t, root, "clone", "-q", bare, other)
	os.WriteFile(filepath.Join(other, "README"), []byte("gitops\n"), 0o644)
	git(t, other, "add", "README")
	git(t, other, "commit", "-q", "-m", "readme")
	git(t, other, "push", "-q", "origin", "HEAD:main")
	r.Promoted.Steps[0].Digest = d2
	if err := step.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(commits()); n != 3 {
		t.Fatalf("%d commits, want 3 (pins, readme, new pins)", n)
	}
	if got := git(t, root, "--git-dir", bare, "show", "main:README"); got != "gitops" {
		t.Fatalf("the other writer's commit was lost: %q", got)
	}
	// Fork/PR runs publish nothing.
	r.o.PR = true
	if err := step.Run(ctx); err == nil || !strings.Contains(err.Error(), "fork/pull-request") {
		t.Fatalf("PR pins: %v", err)
	}
}

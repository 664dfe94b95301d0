package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"gopkg.in/yaml.v3"
)

func repoWorkflows(t *testing.T) []*Workflow {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), ".github", "workflows", "*.yml"))
	// Local actions' steps are held to the same pinning rule.
	actions, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), ".github", "actions", "*", "action.yml"))
	files = append(files, actions...)
	if len(files) == 0 {
		t.Fatal("no workflows found")
	}
	var ws []*Workflow
	for _, f := range files {
		w, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

func TestPinned(t *testing.T) {
	for _, w := range repoWorkflows(t) {
		for _, p := range w.Unpinned() {
			t.Error(p)
		}
	}
}

func TestForkSafe(t *testing.T) {
	prs := 0
	for _, w := range repoWorkflows(t) {
		if w.OnPullRequest() {
			prs++
		}
		for _, p := range w.ForkUnsafe() {
			t.Error(p)
		}
	}
	if prs == 0 {
		t.Fatal("no workflow runs on pull requests")
	}
}

// The checks catch what they are for.
func TestChecksCatch(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.yml")
	os.WriteFile(p, []byte(`on: {pull_request: {}}
jobs:
  a:
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-go@0123456789012345678901234567890123456789 # v5.0.0
      - uses: actions/cache@0123456789012345678901234567890123456789 # v5.0.0
      - run: echo ${{ secrets.TOKEN }}
      - uses: ./local
`), 0o644)
	w, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Unpinned(); len(got) != 1 || !strings.Contains(got[0], "actions/checkout@v4") {
		t.Errorf("unpinned: %q", got)
	}
	got := strings.Join(w.ForkUnsafe(), "\n")
	for _, want := range []string{"names a secret", "actions/cache writes a cache", "setup-go writes its cache"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

// The write-ups' trigger set, across this repository's workflows.
func TestTriggers(t *testing.T) {
	all := map[string]string{}
	for _, w := range repoWorkflows(t) {
		for ev, n := range w.On {
			b, _ := yaml.Marshal(&n)
			all[ev] += string(b)
		}
		if _, ok := w.On["schedule"]; ok {
			if !strings.Contains(string(w.Raw), `HOIST_REBUILD: "1"`) {
				t.Errorf("%s: the scheduled run does not set HOIST_REBUILD", w.Path)
			}
		}
	}
	for ev, want := range map[string][]string{
		"pull_request":      {"paths:"},
		"push":              {"staging", "main", "v*.*.*"},
		"schedule":          {"cron:"},
		"workflow_dispatch": {"rebuild_base", "version_override"},
	} {
		for _, w := range want {
			if !strings.Contains(all[ev], w) {
				t.Errorf("no %s trigger with %q", ev, w)
			}
		}
	}
}

// The scheduled run is the rebuild line: it runs release (which publishes
// X.Y.Z-rN and never moves latest), with fresh bases, at the newest
// release's tag; in this repository's workflows and in the one init writes.
func TestScheduleRunsTheRebuildLine(t *testing.T) {
	ws := repoWorkflows(t)
	w, err := Load(filepath.Join(testenv.RepoRoot(t), "pkg", "initrepo", "files", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	scheduled := 0
	for _, w := range append(ws, w) {
		if _, ok := w.On["schedule"]; !ok {
			continue
		}
		scheduled++
		raw := string(w.Raw)
		for _, want := range []string{"go run mage.go release", "HOIST_REBUILD:", "rebuild_base", `sed -nE 's/^v?([0-9]+\.[0-9]+\.[0-9]+)$/\1/p'`, "git checkout --quiet \"$tag\"", "HOIST_REGISTRY_PASSWORD:"} {
			if !strings.Contains(raw, want) {
				t.Errorf("%s: the scheduled run lacks %q", w.Path, want)
			}
		}
		if strings.Contains(raw, "mage.go test && go run mage.go scan") {
			t.Errorf("%s: the scheduled run only tests and scans; it must publish the revision", w.Path)
		}
	}
	if scheduled != 2 {
		t.Fatalf("%d scheduled workflows, want this repository's and init's", scheduled)
	}
}

// The staging and tag workflows, and the one init writes, run over shards
// when the plan says so: plan (with reserve on staging), a matrix of shard
// jobs uploading their fragments, and a join that needs every shard; else
// one runner.
func TestShardedLines(t *testing.T) {
	initFile := filepath.Join("pkg", "initrepo", "files", "release.yml")
	for _, name := range []string{"publish-staging.yml", "release-tag.yml", initFile} {
		path := filepath.Join(testenv.RepoRoot(t), ".github", "workflows", name)
		if name == initFile {
			path = filepath.Join(testenv.RepoRoot(t), initFile)
		}
		w, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, job := range []string{"plan", "release", "shard", "join"} {
			if _, ok := w.Jobs[job]; !ok {
				t.Errorf("%s: no %s job", name, job)
			}
		}
		raw := string(w.Raw)
		want := []string{
			"run: go run mage.go plan",
			"needs.plan.outputs.sharded != 'true'",
			"matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}",
			"HOIST_SHARD: ${{ matrix.shard }}",
			"HOIST_IMAGES: ${{ matrix.images }}",
			"run: go run mage.go shard",
			"path: build/hoist/shards/",
			"needs: [plan, shard]",
			"HOIST_FRAGMENTS: build/hoist/fragments",
			"run: go run mage.go join",
		}
		switch name {
		case "publish-staging.yml":
			want = append(want, "run: go run mage.go reserve")
		case initFile:
			// One workflow for every line: only staging and tags shard,
			// and the one-runner job also runs when the plan is skipped.
			want = append(want, "run: go run mage.go reserve",
				"if: (github.ref == 'refs/heads/staging' || startsWith(github.ref, 'refs/tags/v')) && github.event_name != 'schedule' && !inputs.rebuild_base",
				"if: ${{ !cancelled() && needs.plan.result != 'failure' && needs.plan.outputs.sharded != 'true' }}")
		}
		for _, s := range want {
			if !strings.Contains(raw, s) {
				t.Errorf("%s lacks %q", name, s)
			}
		}
	}
}

// The job's OIDC token (keyless signing) is granted to the jobs that push
// and to no other: not at the workflow level, not on pull requests, not on
// a job that pushes nothing (plan, join, the main line's promotion).
func TestIDTokenOnlyWherePushing(t *testing.T) {
	want := map[string][]string{
		"publish-staging.yml": {"release", "shard"},
		"release-tag.yml":     {"release", "shard"},
		"weekly-rebuild.yml":  {"release"},
	}
	for _, w := range repoWorkflows(t) {
		for _, p := range w.IDTokenMisplaced(want[filepath.Base(w.Path)]...) {
			t.Error(p)
		}
	}
	init, err := Load(filepath.Join(testenv.RepoRoot(t), "pkg", "initrepo", "files", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range init.IDTokenMisplaced("release", "shard") {
		t.Error(p)
	}
	// The check catches a grant on a job that does not push, and one at
	// the workflow level.
	p := filepath.Join(t.TempDir(), "w.yml")
	os.WriteFile(p, []byte("on: {push: {}}\npermissions: {id-token: write}\njobs:\n  plan:\n    permissions: {id-token: write}\n    steps:\n      - run: go run mage.go plan\n"), 0o644)
	w, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.IDTokenMisplaced(); len(got) != 2 {
		t.Fatalf("misplaced grants found: %q, want the workflow's and plan's", got)
	}
}

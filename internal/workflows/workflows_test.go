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

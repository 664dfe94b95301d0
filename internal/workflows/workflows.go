// Package workflows checks GitHub workflow files for the rules Hoist keeps in
// its own and in the ones `init` writes: third-party actions pinned by commit
// with the version in a comment, and pull-request jobs that name no secret
// and write no cache. actionlint (scripts/actionlint.sh) checks the rest.
package workflows

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Workflow is the part of a workflow file these checks read.
type Workflow struct {
	Path        string
	Raw         []byte
	On          map[string]yaml.Node `yaml:"on"`
	Permissions yaml.Node            `yaml:"permissions"`
	Jobs        map[string]struct {
		Permissions yaml.Node   `yaml:"permissions"`
		Steps       []yaml.Node `yaml:"steps"`
	} `yaml:"jobs"`
}

// pushTargets run Push (and so sign): the lines and the shards.
var pushTargets = regexp.MustCompile(`go run mage\.go (release|shard)\b`)

// IDTokenMisplaced lists grants of `id-token: write` (the job's OIDC token,
// which keyless signing needs) that go beyond the jobs that push: at the
// workflow level, in a pull-request workflow, or on a job that runs no
// pushing target. Pushing jobs named in want must have the grant.
func (w *Workflow) IDTokenMisplaced(want ...string) []string {
	var bad []string
	if grantsIDToken(w.Permissions) {
		bad = append(bad, w.Path+": id-token: write at the workflow level: grant it only on the jobs that push")
	}
	for name, j := range w.Jobs {
		if !grantsIDToken(j.Permissions) {
			continue
		}
		if w.OnPullRequest() {
			bad = append(bad, fmt.Sprintf("%s (job %s): a pull-request workflow grants id-token: write", w.Path, name))
		}
		pushes := false
		for _, st := range j.Steps {
			var s struct {
				Run string `yaml:"run"`
			}
			_ = st.Decode(&s)
			pushes = pushes || pushTargets.MatchString(s.Run)
		}
		if !pushes {
			bad = append(bad, fmt.Sprintf("%s (job %s): grants id-token: write but runs no pushing target", w.Path, name))
		}
	}
	for _, name := range want {
		if j, ok := w.Jobs[name]; !ok || !grantsIDToken(j.Permissions) {
			bad = append(bad, fmt.Sprintf("%s (job %s): pushes but does not grant id-token: write (keyless signing needs it)", w.Path, name))
		}
	}
	return bad
}

func grantsIDToken(n yaml.Node) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value == "write-all"
	case yaml.MappingNode:
		var m map[string]string
		return n.Decode(&m) == nil && m["id-token"] == "write"
	}
	return false
}

// Load reads and parses a workflow file.
func Load(path string) (*Workflow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w := &Workflow{Path: path, Raw: b}
	if err := yaml.Unmarshal(b, w); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return w, nil
}

// OnPullRequest reports whether the workflow runs for pull requests (and so
// for forks' pull requests).
func (w *Workflow) OnPullRequest() bool {
	_, a := w.On["pull_request"]
	_, b := w.On["pull_request_target"]
	return a || b
}

var pinned = regexp.MustCompile(`^\s*-?\s*uses:\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([^\s#]+)\s*(#\s*(\S+))?`)
var sha = regexp.MustCompile(`^[0-9a-f]{40}$`)
var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)

// Unpinned lists each `uses:` of a third-party action that is not pinned
// by a full commit SHA followed by its version as a comment (# vX.Y.Z).
func (w *Workflow) Unpinned() []string {
	var bad []string
	for i, line := range strings.Split(string(w.Raw), "\n") {
		m := pinned.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(m[1], "./") {
			continue
		}
		if !sha.MatchString(m[2]) || !semver.MatchString(m[4]) {
			bad = append(bad, fmt.Sprintf("%s:%d: %s@%s: pin a full commit SHA with `# vX.Y.Z` after it", w.Path, i+1, m[1], m[2]))
		}
	}
	return bad
}

// ForkUnsafe lists what a pull-request job must not do: name a secret, or
// write a cache (actions/cache's save, setup-go's own cache). It returns nil
// for a workflow that does not run on pull requests.
func (w *Workflow) ForkUnsafe() []string {
	if !w.OnPullRequest() {
		return nil
	}
	var bad []string
	for name, j := range w.Jobs {
		for _, st := range j.Steps {
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			_ = enc.Encode(&st)
			text := buf.String()
			where := fmt.Sprintf("%s:%d (job %s)", w.Path, st.Line, name)
			if strings.Contains(text, "secrets.") {
				bad = append(bad, where+": a pull-request step names a secret")
			}
			var s struct {
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
			}
			_ = st.Decode(&s)
			action, _, _ := strings.Cut(s.Uses, "@")
			switch {
			case action == "actions/cache" || action == "actions/cache/save":
				bad = append(bad, where+": "+action+" writes a cache; use actions/cache/restore")
			case action == "actions/setup-go" && s.With["cache"] != "false":
				bad = append(bad, where+": setup-go writes its cache unless `cache: false`")
			}
		}
	}
	return bad
}

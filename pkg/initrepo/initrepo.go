// Package initrepo writes a working Hoist pipeline into a repository that has
// Dockerfiles and no hoist.yaml, the way `goreleaser init` or `skaffold init`
// start a project: hoist.yaml with one image per Dockerfile (a Python ×
// runtime matrix where PYTHON_VERSIONS says so), VERSION when missing,
// magefiles/ importing Hoist's targets, the zero-install mage.go, go.mod when
// missing, and the GitHub workflows. It never overwrites a file.
package initrepo

import (
	"bufio"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

//go:embed files
var files embed.FS

// ErrExists means init found files it would write; it wrote nothing.
var ErrExists = errors.New("files init would write exist already")

// Options tune Init.
type Options struct {
	// Project is the image path prefix (default: the folder's name, made a
	// valid image path component).
	Project string
	// Module is the go.mod module path written when there is no go.mod
	// (default: the project name).
	Module string
	// Hoist is the Hoist module version go.mod requires (e.g. v0.3.0);
	// empty leaves the requirement to `go mod tidy`.
	Hoist string
}

// Result is what Init wrote.
type Result struct {
	Written []string // paths relative to the repository, in writing order
	Images  []string // image names in hoist.yaml
}

// Init writes the pipeline into dir. When any file it would write exists it
// writes nothing and returns ErrExists naming them (VERSION and go.mod are
// kept as they are instead: they belong to the repository).
func Init(dir string, o Options) (Result, error) {
	var res Result
	abs, err := filepath.Abs(dir)
	if err != nil {
		return res, fmt.Errorf("init %s: %w", dir, err)
	}
	if o.Project == "" {
		o.Project = imageName(filepath.Base(abs))
	}
	if !validName.MatchString(o.Project) {
		return res, fmt.Errorf("init %s: project %q is not a valid image path component: use lowercase letters, digits, '.', '_' or '-'", dir, o.Project)
	}
	dfs, err := findDockerfiles(abs)
	if err != nil {
		return res, fmt.Errorf("init %s: looking for Dockerfiles: %w", dir, err)
	}
	if len(dfs) == 0 {
		return res, fmt.Errorf("init %s: no Dockerfile found: init makes one image per Dockerfile (Dockerfile, Dockerfile.NAME, NAME.Dockerfile, Dockerfile.tmpl)", dir)
	}
	pythons := fileExists(filepath.Join(abs, "PYTHON_VERSIONS"))
	yml, names, err := hoistYAML(abs, o.Project, dfs, pythons)
	if err != nil {
		return res, fmt.Errorf("init %s: %w", dir, err)
	}
	out := []file{{"hoist.yaml", yml}}
	for _, f := range []struct{ dst, src string }{
		{"magefiles/magefile.go", "files/magefile.go.txt"},
		{"mage.go", "files/mage.go.txt"},
		{".github/workflows/hoist-ci.yml", "files/ci.yml"},
		{".github/workflows/hoist-release.yml", "files/release.yml"},
		{".github/actions/hoist-setup/action.yml", "files/hoist-setup.yml"},
	} {
		b, err := files.ReadFile(f.src)
		if err != nil {
			return res, err
		}
		out = append(out, file{f.dst, string(b)})
	}
	var exist []string
	for _, f := range out {
		if fileExists(filepath.Join(abs, f.path)) {
			exist = append(exist, f.path)
		}
	}
	if len(exist) > 0 {
		return res, fmt.Errorf("init %s: %w: %s (move them away to start over, or edit hoist.yaml by hand: docs/config.md)", dir, ErrExists, strings.Join(exist, ", "))
	}
	if !fileExists(filepath.Join(abs, "VERSION")) {
		out = append(out, file{"VERSION", "0.1.0\n"})
	}
	if !fileExists(filepath.Join(abs, "go.mod")) {
		out = append(out, file{"go.mod", goMod(o)})
	}
	for _, f := range out {
		p := filepath.Join(abs, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return res, fmt.Errorf("init %s: %w", dir, err)
		}
		// O_EXCL: a file that appeared since the check is still not overwritten.
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return res, fmt.Errorf("init %s: writing %s: %w", dir, f.path, err)
		}
		_, werr := fh.WriteString(f.body)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return res, fmt.Errorf("init %s: writing %s: %w", dir, f.path, werr)
		}
		res.Written = append(res.Written, f.path)
	}
	res.Images = names
	return res, nil
}

type file struct{ path, body string }

func goMod(o Options) string {
	mod := o.Module
	if mod == "" {
		mod = o.Project
	}
	s := "module " + mod + "\n\ngo 1.26\n"
	if o.Hoist != "" {
		s += "\nrequire github.com/hoistci/hoist " + o.Hoist + "\n"
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

var validName = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)

// imageName makes s a valid image path component: lower case, runs of other
// characters turned into one '-'.
func imageName(s string) string {
	s = strings.ToLower(s)
	s = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(s, "-")
	s = strings.Trim(s, "-")
	if s == "" {
		return "app"
	}
	return s
}

// dockerfile is one Dockerfile found, with what init reads from it.
type dockerfile struct {
	rel      string // path relative to the repository, slash-separated
	template bool   // Dockerfile.tmpl: a Go template over the matrix entry
	test     []string
	pyArg    bool // declares ARG PYTHON_VERSION
	runtime  bool // mentions the runtime (ARG RUNTIME or {{.runtime}})
}

func isDockerfile(name string) (ok, tmpl bool) {
	switch {
	case name == "Dockerfile.tmpl" || strings.HasSuffix(name, ".Dockerfile.tmpl"):
		return true, true
	case name == "Dockerfile", strings.HasPrefix(name, "Dockerfile."), strings.HasSuffix(name, ".Dockerfile"):
		return !strings.HasSuffix(name, ".dockerignore"), false
	}
	return false, false
}

func findDockerfiles(root string) ([]dockerfile, error) {
	var out []dockerfile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "vendor" || name == "build") {
				return filepath.SkipDir
			}
			return nil
		}
		ok, tmpl := isDockerfile(name)
		if !ok || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		df := dockerfile{rel: filepath.ToSlash(rel), template: tmpl}
		if err := df.read(p); err != nil {
			return err
		}
		out = append(out, df)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, err
}

var argPython = regexp.MustCompile(`(?im)^\s*ARG\s+PYTHON_VERSION\b`)
var mentionsRuntime = regexp.MustCompile(`(?im)^\s*ARG\s+RUNTIME\b|\{\{[^}]*\.runtime\b`)

func (df *dockerfile) read(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	df.pyArg = argPython.Match(b)
	df.runtime = mentionsRuntime.Match(b)
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if cmd, ok := healthcheck(sc.Text()); ok {
			df.test = cmd
		}
	}
	return nil
}

// healthcheck reads the command of a HEALTHCHECK line: the image's own
// check of itself, which init takes as its test. Exec form (JSON) is taken
// as is; shell form runs with sh -c.
func healthcheck(line string) ([]string, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.EqualFold(f[0], "HEALTHCHECK") {
		return nil, false
	}
	rest := strings.TrimSpace(line[strings.Index(strings.ToUpper(line), "HEALTHCHECK")+len("HEALTHCHECK"):])
	for strings.HasPrefix(rest, "--") {
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			return nil, false
		}
		rest = strings.TrimSpace(rest[i:])
	}
	if !strings.HasPrefix(strings.ToUpper(rest), "CMD") {
		return nil, false // HEALTHCHECK NONE
	}
	rest = strings.TrimSpace(rest[3:])
	var cmd []string
	if strings.HasPrefix(rest, "[") && json.Unmarshal([]byte(rest), &cmd) == nil && len(cmd) > 0 {
		return cmd, true
	}
	if rest == "" {
		return nil, false
	}
	return []string{"sh", "-c", rest}, true
}

// hoistYAML renders hoist.yaml for the Dockerfiles found.
func hoistYAML(root, project string, dfs []dockerfile, pythons bool) (string, []string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `# Hoist's pipeline for this repository, written by init; reference:
# https://github.com/hoistci/hoist/blob/main/docs/config.md
project: %s

# Static checks the Test target runs first, e.g.:
# checks:
#   - {name: unit tests, run: [make, test]}

images:
`, project)
	seen := map[string]int{}
	var names []string
	for _, df := range dfs {
		dir := path.Dir(df.rel)
		base := path.Base(df.rel)
		name := project
		switch {
		case strings.HasPrefix(base, "Dockerfile.") && base != "Dockerfile.tmpl":
			name = strings.TrimPrefix(base, "Dockerfile.")
		case strings.HasSuffix(base, ".Dockerfile"):
			name = strings.TrimSuffix(base, ".Dockerfile")
		case strings.HasSuffix(base, ".Dockerfile.tmpl"):
			name = strings.TrimSuffix(base, ".Dockerfile.tmpl")
		case dir != ".":
			name = path.Base(dir)
		}
		name = imageName(name)
		seen[name]++
		if seen[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, seen[name])
		}
		matrix := pythons && (df.template || df.pyArg)
		runtime := matrix && df.runtime
		full := name
		if runtime {
			full += "-{{.runtime}}"
		}
		if matrix {
			full += "-py{{.python}}"
		}
		names = append(names, full)
		fmt.Fprintf(&b, "  - name: %q\n", full)
		fmt.Fprintf(&b, "    context: %s\n", dir)
		if df.template {
			fmt.Fprintf(&b, "    template: %s\n", df.rel)
		} else {
			fmt.Fprintf(&b, "    dockerfile: %s\n", df.rel)
		}
		if matrix {
			b.WriteString("    matrix:\n      axes:\n        python: {file: PYTHON_VERSIONS}\n")
			if runtime {
				b.WriteString("        runtime: [cpu, cuda]\n")
			}
			if df.pyArg {
				b.WriteString("    args: {PYTHON_VERSION: \"{{.python}}\"")
				if runtime && regexp.MustCompile(`(?im)^\s*ARG\s+RUNTIME\b`).MatchString(readString(filepath.Join(root, df.rel))) {
					b.WriteString(", RUNTIME: \"{{.runtime}}\"")
				}
				b.WriteString("}\n")
			}
		}
		if len(df.test) > 0 {
			q, _ := json.Marshal(df.test)
			fmt.Fprintf(&b, "    # From the Dockerfile's HEALTHCHECK.\n    test: {command: %s}\n", q)
		} else {
			b.WriteString("    # No HEALTHCHECK to take a test from; Push refuses untested images:\n    # test: {command: [/app/selftest]}\n")
		}
	}
	b.WriteString(`
# Where Push sends images; empty: a local registry on 127.0.0.1. In CI the
# workflows set HOIST_REGISTRY=ghcr.io/OWNER/REPO.
registry:
  repository: ` + project + "\n")
	return b.String(), names, nil
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// Package config loads hoist.yaml strictly: an unknown key, a wrong type, a
// duplicate image name, a missing Dockerfile or template and an empty matrix
// axis each give one error naming the file, the line and the fix.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultFile is the config file Hoist looks for in the repository root.
const DefaultFile = "hoist.yaml"

// Config is a repository's pipeline.
type Config struct {
	// Project names the repository; local image references are PROJECT/NAME:VERSION.
	Project string `yaml:"project"`
	// Source is the repository URL for the org.opencontainers.image.source label.
	Source string `yaml:"source"`
	// VersionFile holds the version (default VERSION).
	VersionFile string `yaml:"version_file"`
	// BuildDir holds generated Dockerfiles, logs, reports and the lock file
	// (default build/hoist). It is not committed.
	BuildDir string `yaml:"build_dir"`
	// Parallel bounds concurrent builds, tests and scans (default: core count).
	Parallel int `yaml:"parallel"`
	// Checks are the static checks Test runs first, failing fast.
	Checks []Check `yaml:"checks"`
	// Bases are base images made locally from host files, with no pull.
	Bases []Base `yaml:"bases"`
	// Images to build; one entry may expand to many through its matrix.
	Images   []Image  `yaml:"images"`
	Registry Registry `yaml:"registry"`
	Cluster  Cluster  `yaml:"cluster"`
	Scan     Scan     `yaml:"scan"`
	Release  Release  `yaml:"release"`

	// Dir is the folder holding the config file; relative paths resolve from it.
	Dir string `yaml:"-"`
	// File is the config file's path as given.
	File string `yaml:"-"`
}

// Check is one static check: a command run in the repository root.
type Check struct {
	Name string   `yaml:"name"`
	Run  []string `yaml:"run"`
	Line int      `yaml:"-"`
}

// Base is a base image assembled from host files and imported into the
// engine, for machines that cannot pull.
type Base struct {
	Ref string `yaml:"ref"`
	// Busybox is a host busybox binary (Debian's busybox-static: /bin/busybox);
	// it is placed at /bin/busybox with the usual applets linked to it.
	Busybox string `yaml:"busybox"`
	// Files maps a path in the image to a host path (e.g. /bin/busybox: /bin/busybox).
	Files map[string]string `yaml:"files"`
	// Links maps a path in the image to a symlink target (e.g. /bin/sh: busybox).
	Links map[string]string `yaml:"links"`
	// Dirs are empty folders to create (e.g. /tmp).
	Dirs []string `yaml:"dirs"`
	// Env is the image's environment, KEY=VALUE.
	Env  []string `yaml:"env"`
	Line int      `yaml:"-"`
}

// Image is one image, or a family of images when it has a matrix.
type Image struct {
	// Name is a template over the matrix entry, e.g. demo-{{.runtime}}-py{{.python}}.
	Name string `yaml:"name"`
	// Context is the build context folder (default the repository root).
	Context string `yaml:"context"`
	// Dockerfile is a plain Dockerfile; Template is a Go text/template rendered
	// once per matrix entry. Exactly one is set.
	Dockerfile string `yaml:"dockerfile"`
	Template   string `yaml:"template"`
	// Target is the multi-stage target to build.
	Target string `yaml:"target"`
	// Matrix expands this image into entries.
	Matrix *Matrix `yaml:"matrix"`
	// Args are build arguments; values are templates over the entry.
	Args map[string]string `yaml:"args"`
	// Labels are added to the image; values are templates over the entry.
	Labels map[string]string `yaml:"labels"`
	// Vars are extra template values (e.g. base: hoist/busybox:1).
	Vars map[string]string `yaml:"vars"`
	// Test is the command run inside the image by the Test target.
	Test *ImageTest `yaml:"test"`
	Line int        `yaml:"-"`
}

// ImageTest is the per-image container test.
type ImageTest struct {
	Command []string `yaml:"command"`
	// Network is none (default) or host.
	Network string        `yaml:"network"`
	Timeout time.Duration `yaml:"timeout"`
	Env     []string      `yaml:"env"`
}

// Matrix is a set of axes whose product gives the entries.
type Matrix struct {
	Axes    []Axis              `yaml:"-"`
	Include []map[string]string `yaml:"include"`
	Exclude []map[string]string `yaml:"exclude"`
	Line    int                 `yaml:"-"`
}

// Axis is one matrix dimension: literal values, or a file of one value a line.
type Axis struct {
	Name   string
	Values []string
	File   string // set when the values came from a file
	Line   int
}

// Registry is where Push and Promote write.
type Registry struct {
	// Host is the registry, e.g. ghcr.io. Empty: a local registry on
	// 127.0.0.1 started on demand.
	Host string `yaml:"host"`
	// Repository is the path prefix, e.g. OWNER/REPO; images go to
	// HOST/REPOSITORY/NAME.
	Repository string `yaml:"repository"`
	// Insecure allows plain HTTP (loopback registries).
	Insecure bool `yaml:"insecure"`
	// Promote names another registry/repository to promote into; empty means
	// the same repository.
	PromoteTo string `yaml:"promote_to"`
	// LocalPort pins the port of the on-demand local registry; 0 (the
	// default) lets each checkout pick a free one and record it.
	LocalPort int `yaml:"local_port"`
	Line      int `yaml:"-"`
}

// Cluster is the k3d cluster Test loads images into.
type Cluster struct {
	// Name of the k3d cluster; empty disables the in-cluster stage.
	Name string `yaml:"name"`
	// Config is the k3d config file (default infra/k3d/cluster.yaml).
	Config string `yaml:"config"`
	// Manifests is the folder of Kubernetes manifests applied for tests.
	Manifests string `yaml:"manifests"`
	// Test is the command run once the manifests are ready.
	Test    []string      `yaml:"test"`
	Timeout time.Duration `yaml:"timeout"`
	Line    int           `yaml:"-"`
}

// Scan is the vulnerability policy.
type Scan struct {
	// Severity lists the severities that fail the gate (default HIGH, CRITICAL).
	Severity []string `yaml:"severity"`
	// IgnoreUnfixed skips findings with no fixed version.
	IgnoreUnfixed bool `yaml:"ignore_unfixed"`
	// Ignore lists accepted findings, each with a reason and an expiry.
	Ignore []Ignore `yaml:"ignore"`
	// Scanners are Trivy's scanners (default vuln, secret).
	Scanners []string `yaml:"scanners"`
	// Trivy is the pinned Trivy version.
	Trivy string `yaml:"trivy"`
	// DBDir is an offline vulnerability DB folder; set, Trivy never downloads.
	DBDir string `yaml:"db_dir"`
	// DBRepository is where Trivy downloads its DB from when DBDir is not
	// set, e.g. a mirror (default: Trivy's own, ghcr.io/aquasecurity/trivy-db).
	DBRepository string        `yaml:"db_repository"`
	Timeout      time.Duration `yaml:"timeout"`
	Line         int           `yaml:"-"`
}

// Ignore accepts one finding until it expires.
type Ignore struct {
	ID      string `yaml:"id"`
	Package string `yaml:"package"`
	Reason  string `yaml:"reason"`
	Expires string `yaml:"expires"` // YYYY-MM-DD
	Line    int    `yaml:"-"`
}

// Release is the release flow's settings.
type Release struct {
	// Remote is the git remote tags are reserved on (default origin).
	Remote string `yaml:"remote"`
	// Changelogs is the folder of X.Y.Z.md notes (default docs/CHANGELOGS).
	Changelogs string `yaml:"changelogs"`
	// GitHub is OWNER/REPO for GitHub releases; empty disables them.
	GitHub string `yaml:"github"`
	// GitHubAPI is the API base URL (default https://api.github.com).
	GitHubAPI string `yaml:"github_api"`
	// Reserve is where staging versions are reserved by creating their tag:
	// git (default: a push to Remote) or github (the Git refs API of GitHub).
	Reserve string `yaml:"reserve"`
	// StagingBranch and MainBranch choose the line (defaults staging, main).
	StagingBranch string `yaml:"staging_branch"`
	MainBranch    string `yaml:"main_branch"`
	Line          int    `yaml:"-"`
}

// Error is a config error at a place in the file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: path, Msg: "no such file: create it (see docs/config.md) or pass -config"}
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, filepath.Dir(abs), b)
}

// Parse decodes and validates a config whose relative paths resolve from dir.
func Parse(file, dir string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty config: add an images list (see docs/config.md)"}
		}
		return nil, yamlError(file, err)
	}
	if doc := root.Content; len(doc) > 0 && doc[0].Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: doc[0].Line, Msg: "the config must be a mapping of keys (project, images, …): see docs/config.md"}
	}
	c := &Config{}
	d2 := yaml.NewDecoder(bytes.NewReader(data))
	d2.KnownFields(true)
	if err := d2.Decode(c); err != nil {
		return nil, yamlError(file, err)
	}
	c.File, c.Dir = file, dir
	if err := c.lines(&root); err != nil {
		return nil, err
	}
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)
var notFound = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)

// yamlError turns yaml.v3's messages into one line naming the place and the fix.
func yamlError(file string, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if m := notFound.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown key %q in %s: remove it or fix its spelling (known keys: %s)", m[1], section(m[2]), strings.Join(knownKeys(m[2]), ", "))
	} else if strings.Contains(msg, "cannot unmarshal") {
		msg = strings.Replace(msg, "cannot unmarshal", "wrong type:", 1) + ": see docs/config.md for the expected type"
	}
	return &Error{File: file, Line: line, Msg: msg}
}

func section(typ string) string {
	switch typ {
	case "Config":
		return "the top level"
	case "ImageTest":
		return "an image's test"
	}
	return "a " + strings.ToLower(typ) + " section"
}

// lines records where sections start, for later messages, and reads matrix
// axes in file order (a mapping keeps the order the author wrote).
func (c *Config) lines(root *yaml.Node) error {
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return &Error{File: c.File, Line: doc.Line, Msg: "the config must be a mapping of keys (project, images, …)"}
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "images":
			for j, n := range v.Content {
				if j >= len(c.Images) {
					break
				}
				c.Images[j].Line = n.Line
				if m := mapValue(n, "matrix"); m != nil {
					if err := c.readMatrix(&c.Images[j], m); err != nil {
						return err
					}
				}
			}
		case "bases":
			for j, n := range v.Content {
				if j < len(c.Bases) {
					c.Bases[j].Line = n.Line
				}
			}
		case "checks":
			for j, n := range v.Content {
				if j < len(c.Checks) {
					c.Checks[j].Line = n.Line
				}
			}
		case "registry":
			c.Registry.Line = k.Line
		case "cluster":
			c.Cluster.Line = k.Line
		case "scan":
			c.Scan.Line = k.Line
			if ig := mapValue(v, "ignore"); ig != nil {
				for j, n := range ig.Content {
					if j < len(c.Scan.Ignore) {
						c.Scan.Ignore[j].Line = n.Line
					}
				}
			}
		case "release":
			c.Release.Line = k.Line
		}
	}
	return nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// UnmarshalYAML reads include/exclude; axes are read from the node by lines().
func (m *Matrix) UnmarshalYAML(n *yaml.Node) error {
	var raw struct {
		Axes    yaml.Node           `yaml:"axes"`
		Include []map[string]string `yaml:"include"`
		Exclude []map[string]string `yaml:"exclude"`
	}
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a matrix is a mapping with axes, include and exclude", n.Line)}}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "axes", "include", "exclude":
		default:
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field %s not found in type config.Matrix", n.Content[i].Line, k)}}
		}
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	m.Include, m.Exclude, m.Line = raw.Include, raw.Exclude, n.Line
	return nil
}

func (c *Config) readMatrix(img *Image, n *yaml.Node) error {
	axes := mapValue(n, "axes")
	if axes == nil {
		return &Error{File: c.File, Line: n.Line, Msg: "matrix has no axes: add axes, e.g. axes: {python: {file: PYTHON_VERSIONS}}"}
	}
	if axes.Kind != yaml.MappingNode {
		return &Error{File: c.File, Line: axes.Line, Msg: "matrix axes must be a mapping of axis name to a list of values or {file: PATH}"}
	}
	for i := 0; i+1 < len(axes.Content); i += 2 {
		k, v := axes.Content[i], axes.Content[i+1]
		ax := Axis{Name: k.Value, Line: k.Line}
		switch v.Kind {
		case yaml.SequenceNode:
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return &Error{File: c.File, Line: e.Line, Msg: fmt.Sprintf("axis %q: values must be plain strings", ax.Name)}
				}
				ax.Values = append(ax.Values, e.Value)
			}
		case yaml.MappingNode:
			var f struct {
				File string `yaml:"file"`
			}
			if err := v.Decode(&f); err != nil || f.File == "" || len(v.Content) != 2 {
				return &Error{File: c.File, Line: v.Line, Msg: fmt.Sprintf("axis %q: write a list of values or {file: PATH}", ax.Name)}
			}
			ax.File = f.File
		default:
			return &Error{File: c.File, Line: v.Line, Msg: fmt.Sprintf("axis %q: write a list of values or {file: PATH}", ax.Name)}
		}
		img.Matrix.Axes = append(img.Matrix.Axes, ax)
	}
	return nil
}

func (c *Config) defaults() {
	if c.VersionFile == "" {
		c.VersionFile = "VERSION"
	}
	if c.BuildDir == "" {
		c.BuildDir = filepath.Join("build", "hoist")
	}
	for i := range c.Images {
		if c.Images[i].Context == "" {
			c.Images[i].Context = "."
		}
	}
	if c.Cluster.Name != "" {
		if c.Cluster.Config == "" {
			c.Cluster.Config = "infra/k3d/cluster.yaml"
		}
		if c.Cluster.Manifests == "" {
			c.Cluster.Manifests = "infra/k8s"
		}
	}
	if len(c.Scan.Severity) == 0 {
		c.Scan.Severity = []string{"HIGH", "CRITICAL"}
	}
	if len(c.Scan.Scanners) == 0 {
		c.Scan.Scanners = []string{"vuln", "secret"}
	}
	if c.Scan.Trivy == "" {
		c.Scan.Trivy = "0.58.0"
	}
	if c.Release.Remote == "" {
		c.Release.Remote = "origin"
	}
	if c.Release.Changelogs == "" {
		c.Release.Changelogs = filepath.Join("docs", "CHANGELOGS")
	}
	if c.Release.GitHubAPI == "" {
		c.Release.GitHubAPI = "https://api.github.com"
	}
	if c.Release.StagingBranch == "" {
		c.Release.StagingBranch = "staging"
	}
	if c.Release.MainBranch == "" {
		c.Release.MainBranch = "main"
	}
	if c.Release.Reserve == "" {
		c.Release.Reserve = "git"
	}
}

// Path resolves p (relative to the config's folder) to an absolute path.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

var validName = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)

func (c *Config) validate() error {
	e := func(line int, f string, a ...any) error {
		return &Error{File: c.File, Line: line, Msg: fmt.Sprintf(f, a...)}
	}
	if c.Project == "" {
		return e(1, "project is missing: add `project: NAME` (lowercase; local images are NAME/IMAGE:VERSION)")
	}
	if !validName.MatchString(c.Project) {
		return e(1, "project %q is not a valid image path component: use lowercase letters, digits, '.', '_' or '-'", c.Project)
	}
	if c.Parallel < 0 {
		return e(1, "parallel is %d: use a positive number, or leave it out for the core count", c.Parallel)
	}
	if len(c.Images) == 0 {
		return e(1, "no images: add an images list (see docs/config.md)")
	}
	for _, ch := range c.Checks {
		if ch.Name == "" || len(ch.Run) == 0 {
			return e(ch.Line, "a check needs a name and a run command, e.g. {name: vet, run: [go, vet, ./...]}")
		}
	}
	for _, b := range c.Bases {
		if b.Ref == "" {
			return e(b.Line, "a base needs a ref, e.g. ref: %s/busybox:1", c.Project)
		}
		if len(b.Files) == 0 && b.Busybox == "" {
			return e(b.Line, "base %s has no files: add busybox: /bin/busybox or files: {/IN/IMAGE: /ON/HOST}", b.Ref)
		}
		if b.Busybox != "" {
			if _, err := os.Stat(c.Path(b.Busybox)); err != nil {
				return e(b.Line, "base %s: busybox %s is missing: apt-get install busybox-static, or change the path", b.Ref, b.Busybox)
			}
		}
		for in, host := range b.Files {
			if !strings.HasPrefix(in, "/") {
				return e(b.Line, "base %s: file %q must be an absolute path in the image", b.Ref, in)
			}
			if _, err := os.Stat(c.Path(host)); err != nil {
				return e(b.Line, "base %s: host file %s is missing: install it (e.g. apt-get install busybox-static) or change the path", b.Ref, host)
			}
		}
	}
	seen := map[string]int{}
	for i := range c.Images {
		img := &c.Images[i]
		if img.Name == "" {
			return e(img.Line, "image %d has no name: add name (a template such as demo-{{.runtime}})", i+1)
		}
		if prev, ok := seen[img.Name]; ok {
			return e(img.Line, "duplicate image name %q (first at line %d): give each image its own name", img.Name, prev)
		}
		seen[img.Name] = img.Line
		switch {
		case img.Dockerfile == "" && img.Template == "":
			return e(img.Line, "image %q: set dockerfile (a path) or template (a Dockerfile template)", img.Name)
		case img.Dockerfile != "" && img.Template != "":
			return e(img.Line, "image %q: set dockerfile or template, not both", img.Name)
		case img.Dockerfile != "":
			if _, err := os.Stat(c.Path(img.Dockerfile)); err != nil {
				return e(img.Line, "image %q: Dockerfile %s does not exist: fix the path or create it", img.Name, img.Dockerfile)
			}
		default:
			if _, err := os.Stat(c.Path(img.Template)); err != nil {
				return e(img.Line, "image %q: template %s does not exist: fix the path or create it", img.Name, img.Template)
			}
		}
		if st, err := os.Stat(c.Path(img.Context)); err != nil || !st.IsDir() {
			return e(img.Line, "image %q: context %s is not a folder: fix the path", img.Name, img.Context)
		}
		if img.Matrix != nil {
			if len(img.Matrix.Axes) == 0 {
				return e(img.Matrix.Line, "image %q: matrix has no axes: add at least one", img.Name)
			}
			for _, ax := range img.Matrix.Axes {
				if ax.File == "" && len(ax.Values) == 0 {
					return e(ax.Line, "image %q: axis %q is empty: list at least one value", img.Name, ax.Name)
				}
				if ax.File != "" {
					if _, err := os.Stat(c.Path(ax.File)); err != nil {
						return e(ax.Line, "image %q: axis %q reads %s, which does not exist: create it (one value a line)", img.Name, ax.Name, ax.File)
					}
				}
			}
		} else if strings.Contains(img.Name, "{{") && len(img.Vars) == 0 {
			return e(img.Line, "image %q: the name is a template but the image has no matrix: add a matrix or use a plain name", img.Name)
		}
		if img.Test != nil {
			if len(img.Test.Command) == 0 {
				return e(img.Line, "image %q: test has no command: add command: [sh, -c, ...]", img.Name)
			}
			if n := img.Test.Network; n != "" && n != "none" && n != "host" {
				return e(img.Line, "image %q: test network %q: use none or host", img.Name, n)
			}
		}
	}
	switch c.Release.Reserve {
	case "git":
	case "github":
		if c.Release.GitHub == "" {
			return e(c.Release.Line, "release reserve is github but release.github is not set: add github: OWNER/NAME, or use reserve: git")
		}
	default:
		return e(c.Release.Line, "release reserve %q: use git (a push to the remote) or github (GitHub's Git refs API)", c.Release.Reserve)
	}
	if c.Release.StagingBranch == c.Release.MainBranch {
		return e(c.Release.Line, "release staging_branch and main_branch are both %q: they must differ", c.Release.MainBranch)
	}
	for _, s := range c.Scan.Severity {
		switch s {
		case "UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL":
		default:
			return e(c.Scan.Line, "scan severity %q: use UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL", s)
		}
	}
	for _, s := range c.Scan.Scanners {
		switch s {
		case "vuln", "secret":
		default:
			return e(c.Scan.Line, "scan scanner %q: use vuln and/or secret (the gate reads no other Trivy findings)", s)
		}
	}
	if c.Scan.Timeout < 0 {
		return e(c.Scan.Line, "scan timeout %s: use a positive duration such as 10m", c.Scan.Timeout)
	}
	for _, ig := range c.Scan.Ignore {
		if ig.ID == "" || ig.Reason == "" {
			return e(ig.Line, "a scan ignore entry needs an id and a reason")
		}
		if ig.Expires != "" {
			if _, err := time.Parse("2006-01-02", ig.Expires); err != nil {
				return e(ig.Line, "scan ignore %s: expires %q is not a date: write YYYY-MM-DD", ig.ID, ig.Expires)
			}
		}
	}
	return nil
}

// knownKeys lists the YAML keys of a config type, for "did you mean" help.
func knownKeys(typ string) []string {
	switch typ {
	case "Config":
		return []string{"project", "source", "version_file", "build_dir", "parallel", "checks", "bases", "images", "registry", "cluster", "scan", "release"}
	case "Image":
		return []string{"name", "context", "dockerfile", "template", "target", "matrix", "args", "labels", "vars", "test"}
	case "ImageTest":
		return []string{"command", "network", "timeout", "env"}
	case "Matrix":
		return []string{"axes", "include", "exclude"}
	case "Base":
		return []string{"ref", "busybox", "files", "links", "dirs", "env"}
	case "Check":
		return []string{"name", "run"}
	case "Registry":
		return []string{"host", "repository", "insecure", "promote_to", "local_port"}
	case "Cluster":
		return []string{"name", "config", "manifests", "test", "timeout"}
	case "Scan":
		return []string{"severity", "ignore_unfixed", "ignore", "scanners", "trivy", "db_dir", "db_repository", "timeout"}
	case "Ignore":
		return []string{"id", "package", "reason", "expires"}
	case "Release":
		return []string{"remote", "changelogs", "github", "github_api", "reserve", "staging_branch", "main_branch"}
	}
	return nil
}

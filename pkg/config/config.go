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
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hoistci/hoist/pkg/readlimit"
)

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
	b, err := readlimit.ReadFile(path, "config", readlimit.Config)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: path, Msg: "no such file: create it (see docs/config.md) or set HOIST_CONFIG to the file to use"}
		}
		if errors.Is(err, readlimit.ErrTooLarge) || errors.Is(err, readlimit.ErrNotRegular) {
			return nil, err // the message names the file and the limit
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
	if len(data) > readlimit.Config {
		return nil, &Error{File: file, Msg: fmt.Sprintf("%d bytes, over the limit of %s for a config: split the pipeline (docs/config.md)", len(data), readlimit.Size(readlimit.Config))}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty config: add an images list (see docs/config.md)"}
		}
		// A syntax error: yaml's text already names the line.
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ") + ": fix the YAML syntax"}
	}
	if doc := root.Content; len(doc) > 0 && doc[0].Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: doc[0].Line, Msg: "the config must be a mapping of keys (project, images, …): see docs/config.md"}
	}
	if err := check(file, root.Content[0], reflect.TypeOf(Config{})); err != nil {
		return nil, err
	}
	c := &Config{}
	if err := root.Decode(c); err != nil {
		// check has seen every key and scalar, so this is a shape it missed.
		return nil, &Error{File: file, Msg: fmt.Sprintf("%v: see docs/config.md", strings.ReplaceAll(err.Error(), "\n", ";"))}
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
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
	c.keyLine = map[string]int{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		c.keyLine[k.Value] = k.Line
		switch k.Value {
		case "images":
			for j, n := range v.Content {
				if j >= len(c.Images) {
					break
				}
				c.Images[j].Line = n.Line
				c.Images[j].platformLines = entryLines(mapValue(n, "platforms"))
				if m := mapValue(n, "matrix"); m != nil {
					if err := c.readMatrix(&c.Images[j], m); err != nil {
						return err
					}
				}
			}
		case "platforms":
			c.platformLines = entryLines(v)
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
		case "builder":
			c.Builder.Line = k.Line
		case "pins":
			c.Pins.Line = k.Line
		case "shards":
			c.Shards.Line = k.Line
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
		case "attest":
			c.Attest.Line = k.Line
		case "secrets":
			for j := 0; j+1 < len(v.Content); j += 2 {
				id := v.Content[j].Value
				s := c.Secrets[id]
				s.Line = v.Content[j].Line
				c.Secrets[id] = s
			}
		case "ssh":
			if c.SSH == nil {
				c.SSH = map[string]SSH{}
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				id := v.Content[j].Value
				s := c.SSH[id] // an empty entry (`default:`) is the SSH_AUTH_SOCK agent
				s.Line = v.Content[j].Line
				c.SSH[id] = s
			}
		}
	}
	return nil
}

// entryLines returns the line of each entry of a list node (none for nil).
func entryLines(n *yaml.Node) []int {
	if n == nil {
		return nil
	}
	lines := make([]int, len(n.Content))
	for i, e := range n.Content {
		lines[i] = e.Line
	}
	return lines
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

// UnmarshalYAML reads include/exclude; axes are read from the node by
// lines(), in the order the author wrote them. check has already refused
// unknown keys (matrixKeys).
func (m *Matrix) UnmarshalYAML(n *yaml.Node) error {
	var raw struct {
		Axes    yaml.Node           `yaml:"axes"`
		Include []map[string]string `yaml:"include"`
		Exclude []map[string]string `yaml:"exclude"`
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
	if c.Shards.Threshold == 0 {
		c.Shards.Threshold = DefaultShardThreshold
	}
	if c.Shards.Count == 0 {
		c.Shards.Count = DefaultShardCount
	}
	if c.VersionFile == "" {
		c.VersionFile = "VERSION"
	}
	if c.Network == "" {
		c.Network = NetworkDefault
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
	c.attestDefaults()
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

// NetworkOf is the network img's RUN steps get: its own, else the top level's.
func (c *Config) NetworkOf(img Image) string {
	if img.Network != "" {
		return img.Network
	}
	return c.Network
}

// Path resolves p (relative to the config's folder) to an absolute path.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

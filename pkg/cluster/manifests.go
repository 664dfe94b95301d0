package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"
)

// Object is one Kubernetes object of a manifest, enough to wait for it
// and to know which plan images it runs.
type Object struct {
	Kind, Name, Namespace string
	Images                []string // plan image names it runs, sorted
}

// Resolved is a manifest with its image references replaced by the plan's.
type Resolved struct {
	Data    []byte
	Objects []Object
	Images  []string // plan image names referenced, sorted
}

// Resolve rewrites every `image:` value of a (multi-document) manifest to a
// just-built reference. refs maps each plan image name to its engine
// reference (e.g. toolbox -> hoist/toolbox:1.2.3). A value resolves when it
// is a plan image name, or when its repository is a plan reference's (any
// tag). Anything else is an error naming the file and line: the cluster must
// run what was just built and tested, not whatever a registry holds.
func Resolve(file string, data []byte, refs map[string]string) (Resolved, error) {
	byRepo := map[string]string{}
	for name, ref := range refs {
		if n, err := reference.ParseNormalizedNamed(ref); err == nil {
			byRepo[n.Name()] = name
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var res Resolved
	used := map[string]bool{}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Resolved{}, fmt.Errorf("%s: %v", file, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		root := doc.Content[0]
		mine := map[string]bool{}
		if err := resolveImages(file, root, refs, byRepo, mine); err != nil {
			return Resolved{}, err
		}
		obj := Object{Kind: scalar(root, "kind")}
		for n := range mine {
			used[n] = true
			obj.Images = append(obj.Images, n)
		}
		sort.Strings(obj.Images)
		if md := mapValue(root, "metadata"); md != nil {
			obj.Name, obj.Namespace = scalar(md, "name"), scalar(md, "namespace")
		}
		if obj.Kind == "" || obj.Name == "" {
			return Resolved{}, fmt.Errorf("%s:%d: a manifest object needs kind and metadata.name", file, root.Line)
		}
		res.Objects = append(res.Objects, obj)
		if err := enc.Encode(&doc); err != nil {
			return Resolved{}, fmt.Errorf("%s: %w", file, err)
		}
	}
	if err := enc.Close(); err != nil {
		return Resolved{}, fmt.Errorf("%s: %w", file, err)
	}
	for n := range used {
		res.Images = append(res.Images, n)
	}
	sort.Strings(res.Images)
	res.Data = out.Bytes()
	return res, nil
}

func resolveImages(file string, n *yaml.Node, refs, byRepo map[string]string, used map[string]bool) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "image" && v.Kind == yaml.ScalarNode {
				name, err := planImage(v.Value, refs, byRepo)
				if err != nil {
					return fmt.Errorf("%s:%d: %w", file, v.Line, err)
				}
				used[name] = true
				v.Value, v.Style = refs[name], 0
				continue
			}
			if err := resolveImages(file, v, refs, byRepo, used); err != nil {
				return err
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if err := resolveImages(file, c, refs, byRepo, used); err != nil {
				return err
			}
		}
	}
	return nil
}

func planImage(v string, refs, byRepo map[string]string) (string, error) {
	if _, ok := refs[v]; ok {
		return v, nil
	}
	if n, err := reference.ParseNormalizedNamed(v); err == nil {
		if name, ok := byRepo[n.Name()]; ok {
			return name, nil
		}
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 6 {
		names = append(names[:6], "…")
	}
	return "", fmt.Errorf("image %q is not built by this plan: use an image name from hoist.yaml (%s)", v, strings.Join(names, ", "))
}

func scalar(n *yaml.Node, key string) string {
	if v := mapValue(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
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

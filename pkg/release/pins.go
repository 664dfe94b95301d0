package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/lock"
)

// PinsOptions say where the line's pins go: what a GitOps repository
// deploys, each image as repository@digest.
type PinsOptions struct {
	// File is pins.json (in the build folder); empty: no pins.
	File string
	// Kustomization is the repository's kustomization.yaml to pin, or
	// empty. It is never edited in the checkout: the pinned copy goes
	// beside pins.json and to CommitTo.
	Kustomization string
	// Remote and Branch, when set, get the pins as one commit, under Path.
	Remote, Branch, Path string
}

// Pins are one line's published digests.
type Pins struct {
	Version string         `json:"version"`
	Line    string         `json:"line"`
	Commit  string         `json:"commit"`
	Images  map[string]Pin `json:"images"`
}

// Pin is one image: where it is and the digest to deploy.
type Pin struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Ref        string `json:"ref"` // repository@digest
}

// pinsStep writes the digests the line published to pins.json (and the
// pinned kustomization), and commits them to the GitOps branch when one is
// configured. Fork/PR runs never reach it: their line publishes nothing.
func (r *Run) pinsStep() []flow.Step {
	o := r.o.Pins
	if o.File == "" {
		return nil
	}
	writes := []string{o.File}
	if o.Kustomization != "" {
		writes = append(writes, filepath.Join(filepath.Dir(o.File), "kustomization.yaml")+" (images: of "+o.Kustomization+")")
	}
	if o.Remote != "" {
		writes = append(writes, fmt.Sprintf("one commit to %s of %s under %s/", o.Branch, o.Remote, o.Path))
	}
	return []flow.Step{{Name: "Pins", Writes: writes, Run: func(ctx context.Context) error {
		if r.o.PR {
			return errors.New("pins: fork/pull-request runs publish nothing")
		}
		p, err := r.pins()
		if err != nil {
			return err
		}
		files, err := pinFiles(p, o.Kustomization)
		if err != nil {
			return err
		}
		for name, b := range files {
			if err := lock.WriteFileAtomic(filepath.Join(filepath.Dir(o.File), name), b); err != nil {
				return fmt.Errorf("pins: %w", err)
			}
		}
		r.logf("pins: %d images of %s in %s", len(p.Images), p.Version, o.File)
		if o.Remote == "" {
			return nil
		}
		in := map[string][]byte{}
		for name, b := range files {
			in[path.Join(o.Path, name)] = b
		}
		pushed, err := r.o.Git.CommitFiles(ctx, o.Remote, o.Branch, in, fmt.Sprintf("%s: pin %s (%s line)", o.Path, p.Version, p.Line))
		if err != nil {
			return fmt.Errorf("pins: %w", err)
		}
		if pushed {
			r.logf("pins: committed to %s of %s", o.Branch, o.Remote)
		} else {
			r.logf("pins: %s of %s already pins these digests: nothing committed", o.Branch, o.Remote)
		}
		return nil
	}}}
}

// pins are the digests this run published: the promoted ones on a line
// that promotes, else the pushed ones.
func (r *Run) pins() (Pins, error) {
	p := Pins{Line: string(r.Decision.Line), Commit: r.Commit, Images: map[string]Pin{}}
	switch {
	case r.Promoted != nil:
		p.Version = r.Promoted.Base
		for _, s := range r.Promoted.Steps {
			p.Images[s.Name] = Pin{Repository: s.Dest, Digest: s.Digest, Ref: s.Dest + "@" + s.Digest}
		}
	case r.Pushed != nil:
		p.Version = r.built()
		if r.Decision.Line == flow.Release {
			p.Version = r.Version.String()
		}
		for _, img := range r.Pushed.Images {
			p.Images[img.Name] = Pin{Repository: img.Repo, Digest: img.Digest, Ref: img.Repo + "@" + img.Digest}
		}
	default:
		return p, errors.New("pins: nothing was pushed or promoted to pin")
	}
	return p, nil
}

// pinFiles are pins.json and, with a kustomization, its copy whose
// images: entries name each image's repository and digest (newTag is
// dropped: the digest decides). Other keys and entries stay as written.
func pinFiles(p Pins, kustomization string) (map[string][]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"pins.json": append(b, '\n')}
	if kustomization == "" {
		return files, nil
	}
	src, err := os.ReadFile(kustomization)
	if err != nil {
		return nil, fmt.Errorf("pins: reading the kustomization: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("pins: %s is not a kustomization (a YAML mapping): fix it or drop pins.kustomization", kustomization)
	}
	root := doc.Content[0]
	images := value(root, "images")
	if images == nil {
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "images"}, &yaml.Node{Kind: yaml.SequenceNode})
		images = root.Content[len(root.Content)-1]
	}
	if images.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("pins: %s: images is not a list: fix it", kustomization)
	}
	names := make([]string, 0, len(p.Images))
	for n := range p.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pin := p.Images[n]
		var entry *yaml.Node
		for _, e := range images.Content {
			if v := value(e, "name"); v != nil && v.Value == n {
				entry = e
			}
		}
		if entry == nil {
			entry = &yaml.Node{Kind: yaml.MappingNode}
			set(entry, "name", n)
			images.Content = append(images.Content, entry)
		}
		set(entry, "newName", pin.Repository)
		set(entry, "digest", pin.Digest)
		drop(entry, "newTag")
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	files["kustomization.yaml"] = out.Bytes()
	return files, nil
}

func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func set(m *yaml.Node, key, v string) {
	if n := value(m, key); n != nil {
		n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "", v, nil
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: v})
}

func drop(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

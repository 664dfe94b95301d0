package cluster

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// node builds an inventory: images maps a name to its manifest, blobs are
// the content digests held, config maps a manifest to its config.
func node(images map[string]string, blobs []string, config map[string]string) inventory {
	inv := newInventory()
	for k, v := range images {
		inv.images[k] = v
	}
	for _, b := range blobs {
		inv.blobs[b] = true
	}
	for k, v := range config {
		inv.config[k] = v
	}
	return inv
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestDecide(t *testing.T) {
	const nameA, nameB = "docker.io/p/a:1", "docker.io/p/b:1"
	a := Image{Ref: "p/a:1", ID: "sha256:ca", DiffIDs: []string{"sha256:base", "sha256:la"}}
	b := Image{Ref: "p/b:1", ID: "sha256:cb", DiffIDs: []string{"sha256:base", "sha256:lb"}}
	images, names := []Image{a, b}, []string{nameA, nameB}
	ours := map[string]loaded{ // manifests Hoist wrote before
		"sha256:ma": {Config: "sha256:ca", Layers: []string{"sha256:base", "sha256:la"}},
	}
	tests := []struct {
		name        string
		invs        []inventory
		bad         []error
		known       map[string]loaded
		wantRefs    []string
		wantSkipped []string
		wantBlobs   []string
		wantTargets []int
	}{
		{
			name:        "empty nodes get everything",
			invs:        []inventory{node(nil, nil, nil), node(nil, nil, nil)},
			wantRefs:    []string{"p/a:1", "p/b:1"},
			wantBlobs:   []string{"sha256:base", "sha256:ca", "sha256:cb", "sha256:la", "sha256:lb"},
			wantTargets: []int{0, 1},
		},
		{
			name: "every node current: nothing sent",
			invs: []inventory{
				node(map[string]string{nameA: "sha256:ma", nameB: "sha256:mb"}, nil, map[string]string{"sha256:mb": "sha256:cb"}),
			},
			known:       ours,
			wantSkipped: []string{"p/a:1", "p/b:1"},
			wantBlobs:   []string{},
		},
		{
			name: "only the lacking node is a target, and only its missing blobs go",
			invs: []inventory{
				node(map[string]string{nameA: "sha256:ma", nameB: "sha256:mb"}, nil, map[string]string{"sha256:mb": "sha256:cb"}),
				node(map[string]string{nameA: "sha256:ma"}, []string{"sha256:base"}, nil),
			},
			known:       ours,
			wantRefs:    []string{"p/b:1"},
			wantSkipped: []string{"p/a:1"},
			wantBlobs:   []string{"sha256:cb", "sha256:lb"},
			wantTargets: []int{1},
		},
		{
			name: "a name pointing at another config is not current",
			invs: []inventory{
				node(map[string]string{nameA: "sha256:old"}, []string{"sha256:base", "sha256:la"}, map[string]string{"sha256:old": "sha256:stale"}),
			},
			wantRefs:    []string{"p/a:1", "p/b:1"},
			wantBlobs:   []string{"sha256:ca", "sha256:cb", "sha256:lb"},
			wantTargets: []int{0},
		},
		{
			name:        "a node that could not answer is sent nothing",
			invs:        []inventory{node(nil, nil, nil), node(nil, nil, nil)},
			bad:         []error{errors.New("node down"), nil},
			wantRefs:    []string{"p/a:1", "p/b:1"},
			wantBlobs:   []string{"sha256:base", "sha256:ca", "sha256:cb", "sha256:la", "sha256:lb"},
			wantTargets: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tt.bad
			if bad == nil {
				bad = make([]error, len(tt.invs))
			}
			known := tt.known
			if known == nil {
				known = map[string]loaded{}
			}
			creditKnown(tt.invs, known)
			p := decide(images, names, tt.invs, bad, known)
			nameOf := map[string]string{a.Ref: nameA, b.Ref: nameB}
			for i, s := range p.send {
				if s.Name != nameOf[p.refs[i]] {
					t.Errorf("send[%d] is %s for %s", i, s.Name, p.refs[i])
				}
			}
			if !reflect.DeepEqual(p.refs, tt.wantRefs) || !reflect.DeepEqual(p.skipped, tt.wantSkipped) {
				t.Errorf("sent %v, skipped %v; want %v, %v", p.refs, p.skipped, tt.wantRefs, tt.wantSkipped)
			}
			if got := strings.Join(keys(p.want), ","); got != strings.Join(tt.wantBlobs, ",") {
				t.Errorf("blobs %s, want %v", got, tt.wantBlobs)
			}
			if !reflect.DeepEqual(p.targets, tt.wantTargets) {
				t.Errorf("targets %v, want %v", p.targets, tt.wantTargets)
			}
		})
	}
}

func TestNeedContentAndNeverLoaded(t *testing.T) {
	known := map[string]loaded{"sha256:ma": {Config: "sha256:ca"}}
	invs := []inventory{
		node(map[string]string{"docker.io/p/a:1": "sha256:ma"}, nil, nil),    // ours: the image list suffices
		node(map[string]string{"docker.io/p/a:1": "sha256:other"}, nil, nil), // someone else's manifest
		node(map[string]string{"docker.io/p/x:1": "sha256:other"}, nil, nil), // not a name we load
		node(map[string]string{"docker.io/p/a:1": "sha256:other"}, nil, nil), // could not answer
	}
	bad := []error{nil, nil, nil, errors.New("down")}
	if got := needContent(invs, bad, []string{"docker.io/p/a:1"}, known); !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("needContent = %v, want [1]", got)
	}
	imgs := []Image{{Ref: "p/a:1", ID: "sha256:ca"}, {Ref: "p/b:1", ID: "sha256:cb"}}
	if got := neverLoaded(imgs, known); !reflect.DeepEqual(got, []string{"p/b:1"}) {
		t.Fatalf("neverLoaded = %v, want [p/b:1]", got)
	}
}

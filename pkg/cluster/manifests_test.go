package cluster

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var planRefs = map[string]string{
	"toolbox":         "hoist/toolbox:1.2.3",
	"demo-cpu-py3.12": "hoist/demo-cpu-py3.12:1.2.3",
}

func TestResolveGolden(t *testing.T) {
	tests := []struct {
		file    string
		objects []Object
		images  []string
	}{
		{file: "toolbox.yaml", objects: []Object{{Kind: "Deployment", Name: "hoist-toolbox", Images: []string{"toolbox"}}, {Kind: "Job", Name: "hoist-demo-selftest", Images: []string{"demo-cpu-py3.12"}}}, images: []string{"demo-cpu-py3.12", "toolbox"}},
		{file: "mixed.yaml", objects: []Object{{Kind: "Deployment", Name: "web", Namespace: "demo", Images: []string{"demo-cpu-py3.12"}}, {Kind: "Pod", Name: "check", Images: []string{"toolbox"}}}, images: []string{"demo-cpu-py3.12", "toolbox"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := filepath.Join("testdata", "manifests", tt.file)
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Resolve(in, data, planRefs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Objects, tt.objects) || !reflect.DeepEqual(r.Images, tt.images) {
				t.Errorf("objects %v images %v, want %v %v", r.Objects, r.Images, tt.objects, tt.images)
			}
			golden := filepath.Join("testdata", "manifests", strings.TrimSuffix(tt.file, ".yaml")+".golden")
			if *update {
				os.WriteFile(golden, r.Data, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/cluster -run TestResolveGolden -update)", err)
			}
			if string(want) != string(r.Data) {
				t.Errorf("resolved manifest differs from %s (run with -update if intended):\n%s", golden, r.Data)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, manifest, want string
	}{
		{name: "image not in the plan", manifest: "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - image: nginx:1.25\n", want: `m.yaml:5: image "nginx:1.25" is not built by this plan`},
		{name: "same name, other registry", manifest: "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - image: ghcr.io/hoist/toolbox:1\n", want: `m.yaml:5: image "ghcr.io/hoist/toolbox:1" is not built by this plan`},
		{name: "no kind", manifest: "metadata: {name: p}\n", want: "m.yaml:1: a manifest object needs kind and metadata.name"},
		{name: "broken yaml", manifest: "kind: [\n", want: "m.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve("m.yaml", []byte(tt.manifest), planRefs)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line starting %q", err, tt.want)
			}
		})
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"kind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: toolbox}]}\n",
		"kind: Pod\nmetadata: {name: p}\n---\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{image: hoist/toolbox:x}]}}}\n",
		"image: [1, 2]\n",
		"- a\n- b\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Resolve("f.yaml", []byte(s), planRefs)
		if err != nil {
			return
		}
		// Whatever resolves names only built references.
		again, err := Resolve("f.yaml", r.Data, planRefs)
		if err != nil {
			t.Fatalf("resolved output does not resolve again: %v\n%s", err, r.Data)
		}
		if !reflect.DeepEqual(again.Images, r.Images) {
			t.Fatalf("images %v then %v", r.Images, again.Images)
		}
	})
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte("REF TYPE DIGEST SIZE PLATFORMS LABELS\ndocker.io/a/b:1 application/vnd.docker.distribution.manifest.v2+json sha256:aa 5.9 MiB linux/amd64 -\n"),
		[]byte("DIGEST\tSIZE\tAGE\tLABELS\nsha256:aa\t581B\tLess than a second\tcontainerd.io/gc.ref.content.config=sha256:bb,containerd.io/gc.ref.content.l.0=sha256:cc\n"))
	f.Add([]byte(""), []byte("sha256:\t\t\t="))
	f.Fuzz(func(t *testing.T, images, content []byte) {
		inv := newInventory()
		parseImages(images, &inv)
		parseContent(content, &inv)
		for name, m := range inv.images {
			if name == "" || !strings.HasPrefix(m, "sha256:") {
				t.Fatalf("image %q -> %q", name, m)
			}
		}
		for d := range inv.blobs {
			if !strings.HasPrefix(d, "sha256:") {
				t.Fatalf("blob %q", d)
			}
		}
	})
}

func TestParseInventory(t *testing.T) {
	images := []byte(`REF                      TYPE                                                 DIGEST                                                                  SIZE    PLATFORMS   LABELS 
docker.io/hoistprobe/x:1 application/vnd.docker.distribution.manifest.v2+json sha256:a060ad7f5a32ce11f078460a861a7b54263a104b3f24789837ee70c413f0ee06 5.9 MiB linux/amd64 -      
`)
	content := []byte("DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\t\tLABELS\n" +
		"sha256:64431a9ae5df27697bdda09271da1ebaf4816f93193c883b199e79af44303773\t713B\tLess than a second\tcontainerd.io/gc.ref.snapshot.overlayfs=sha256:a9d6\n" +
		"sha256:a060ad7f5a32ce11f078460a861a7b54263a104b3f24789837ee70c413f0ee06\t581B\tLess than a second\tcontainerd.io/gc.ref.content.config=sha256:64431a9ae5df27697bdda09271da1ebaf4816f93193c883b199e79af44303773,containerd.io/gc.ref.content.l.1=sha256:68ce\n")
	inv := newInventory()
	parseImages(images, &inv)
	parseContent(content, &inv)
	m := inv.images["docker.io/hoistprobe/x:1"]
	if m != "sha256:a060ad7f5a32ce11f078460a861a7b54263a104b3f24789837ee70c413f0ee06" {
		t.Fatalf("manifest %q", m)
	}
	if inv.config[m] != "sha256:64431a9ae5df27697bdda09271da1ebaf4816f93193c883b199e79af44303773" || len(inv.blobs) != 2 {
		t.Fatalf("config %q, blobs %v", inv.config[m], inv.blobs)
	}
}

// The resolved folder is applied whole, so a manifest deleted from the
// source since the last run leaves it too; the others are written again.
func TestResolveDirDropsDeletedManifests(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {a: b}\n"
	}
	for _, f := range []string{"a.yaml", "b.yml"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(cm(strings.TrimSuffix(strings.TrimSuffix(f, ".yaml"), ".yml"))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := resolveDir(src, planRefs, out); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "b.yml")); err != nil {
		t.Fatal(err)
	}
	// A file of another kind in the folder is not Hoist's to remove.
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := resolveDir(src, planRefs, out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	es, _ := os.ReadDir(out)
	for _, e := range es {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"a.yaml", "notes.txt"}) || len(objs) != 1 {
		t.Fatalf("resolved folder holds %v (%d objects), want a.yaml and notes.txt (1 object)", names, len(objs))
	}
}

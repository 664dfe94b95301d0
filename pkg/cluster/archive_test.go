package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	gzip "github.com/klauspost/compress/gzip"

	"github.com/hoistci/hoist/internal/hostile"
	"github.com/hoistci/hoist/pkg/dockersave"
)

type entry struct {
	name string
	data []byte
}

func tarOf(entries ...entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name], _ = io.ReadAll(tr)
	}
}

// Both layouts `docker save` writes (legacy folders with layer.tar, and the
// OCI layout of newer engines) give the same archive: only wanted blobs,
// plus every config, manifest and the index naming the image.
func TestRewriteLayouts(t *testing.T) {
	base, own := []byte("base layer"), bytes.Repeat([]byte("own layer "), 200000) // 2 MB
	defer func(n int64) { smallBlob = n }(smallBlob)
	smallBlob = 1 << 20 // so the own layer goes through a spool file
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digestOf(base) + `","` + digestOf(own) + `"]}}`)
	img := sendImage{Name: "docker.io/hoist/demo:1.2.3", ID: digestOf(cfg), DiffIDs: []string{digestOf(base), digestOf(own)}}
	hex := func(b []byte) string { return strings.TrimPrefix(digestOf(b), "sha256:") }
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	storeManifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` + digestOf(cfg) + `"},"layers":[{"digest":"` + digestOf(gz(base)) + `"},{"digest":"` + digestOf(gz(own)) + `"}]}`)
	absent := "sha256:" + strings.Repeat("ab", 32)
	storeIndex := []byte(`{"schemaVersion":2,"manifests":[{"digest":"` + digestOf(storeManifest) + `","platform":{"os":"linux","architecture":"amd64"}},` +
		`{"digest":"` + absent + `","platform":{"os":"linux","architecture":"arm64"}},` +
		`{"digest":"` + absent + `","platform":{"os":"unknown","architecture":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}`)
	layouts := []struct {
		name  string
		saved []byte
	}{
		{name: "legacy", saved: tarOf(
			entry{"aaa/VERSION", []byte("1.0")}, entry{"aaa/json", []byte("{}")}, entry{"aaa/layer.tar", own},
			entry{"bbb/VERSION", []byte("1.0")}, entry{"bbb/json", []byte("{}")}, entry{"bbb/layer.tar", base},
			entry{hex(cfg) + ".json", cfg},
			entry{"manifest.json", []byte(`[{"Config":"` + hex(cfg) + `.json","RepoTags":["hoist/demo:1.2.3"],"Layers":["bbb/layer.tar","aaa/layer.tar"]}]`)},
			entry{"repositories", []byte("{}")},
		)},
		{name: "oci", saved: tarOf(
			entry{"blobs/sha256/" + hex(base), base}, entry{"blobs/sha256/" + hex(own), own}, entry{"blobs/sha256/" + hex(cfg), cfg},
			entry{"blobs/sha256/" + hex([]byte("manifest")), []byte("manifest")},
			entry{"index.json", []byte("{}")}, entry{"oci-layout", []byte("{}")}, entry{"manifest.json", []byte("[]")},
		)},
		// A containerd store: layers gzipped, under their compressed
		// digests; an index naming an attestation manifest and another
		// platform's manifest whose blobs the engine does not hold.
		{name: "oci from a containerd store", saved: tarOf(
			entry{"blobs/sha256/" + hex(gz(base)), gz(base)}, entry{"blobs/sha256/" + hex(gz(own)), gz(own)},
			entry{"blobs/sha256/" + hex(cfg), cfg}, entry{"blobs/sha256/" + hex(storeManifest), storeManifest},
			entry{"blobs/sha256/" + hex(storeIndex), storeIndex},
			entry{"index.json", storeIndex}, entry{"oci-layout", []byte("{}")},
			entry{"manifest.json", []byte(`[{"Config":"blobs/sha256/` + hex(cfg) + `","RepoTags":["hoist/demo:1.2.3"],"Layers":["blobs/sha256/` + hex(gz(base)) + `","blobs/sha256/` + hex(gz(own)) + `"]}]`)},
		)},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			var out bytes.Buffer
			written := map[string]loaded{}
			// The node has the base already: only the own layer is wanted.
			blobs, n, err := rewrite(context.Background(), &out, []io.Reader{bytes.NewReader(l.saved)}, []sendImage{img}, map[string]bool{digestOf(own): true, img.ID: true}, t.TempDir(), written, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			got := readTar(t, out.Bytes())
			if _, ok := got["blobs/sha256/"+hex(base)]; ok {
				t.Error("the base layer the node has was sent")
			}
			if len(got) != 5 { // own layer, config, manifest, index.json, oci-layout
				t.Errorf("archive holds %d entries, want 5", len(got))
			}
			if !bytes.Equal(got["blobs/sha256/"+hex(own)], own) || !bytes.Equal(got["blobs/sha256/"+hex(cfg)], cfg) {
				t.Error("own layer or config missing")
			}
			var idx dockersave.Index
			if err := json.Unmarshal(got["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
				t.Fatalf("index %s: %v", got["index.json"], err)
			}
			md := idx.Manifests[0].Digest
			if idx.Manifests[0].Annotations["io.containerd.image.name"] != img.Name || idx.Manifests[0].Platform.OS != "linux" {
				t.Errorf("index entry %+v", idx.Manifests[0])
			}
			var m dockersave.Manifest
			json.Unmarshal(got["blobs/sha256/"+strings.TrimPrefix(md, "sha256:")], &m)
			if m.Config.Digest != img.ID || len(m.Layers) != 2 || m.Layers[0].Digest != digestOf(base) || m.Layers[1].Size != int64(len(own)) {
				t.Errorf("manifest %+v", m)
			}
			if written[md].Config != img.ID || blobs != 3 || n != int64(len(own)+len(cfg))+int64(len(got["blobs/sha256/"+strings.TrimPrefix(md, "sha256:")])) {
				t.Errorf("written %v, %d blobs, %d bytes", written, blobs, n)
			}
		})
	}

	t.Run("image changed while loading", func(t *testing.T) {
		saved := tarOf(entry{"blobs/sha256/" + hex(base), base})
		_, _, err := rewrite(context.Background(), io.Discard, []io.Reader{bytes.NewReader(saved)}, []sendImage{img}, nil, t.TempDir(), map[string]loaded{}, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "run Images again") {
			t.Fatalf("got %v", err)
		}
	})
}

func FuzzRewrite(f *testing.F) {
	f.Add(tarOf(entry{"x/layer.tar", []byte("abc")}, entry{"c.json", []byte(`{"os":"linux"}`)}))
	f.Add([]byte("not a tar"))
	f.Add(hostile.SparseSave("x/layer.tar", 1<<40))
	// One spool folder for the whole run (the bound keeps every input's
	// blobs in memory anyway): a folder made and removed per input costs
	// more than the rewrite itself.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, saved []byte) {
		cfg := []byte(`{"os":"linux"}`)
		img := sendImage{Name: "docker.io/a/b:1", ID: digestOf(cfg), DiffIDs: []string{digestOf([]byte("abc"))}}
		// Whatever the input, rewrite fails or writes an archive; it never panics.
		// The bound is what the engine's inspect would allow for a stream
		// of this size.
		rewrite(context.Background(), io.Discard, []io.Reader{bytes.NewReader(saved)}, []sendImage{img}, map[string]bool{img.DiffIDs[0]: true}, dir, map[string]loaded{}, 8*int64(len(saved))+1<<20)
	})
}

// A save stream of a few KiB whose sparse entry claims a terabyte is
// refused before anything is written to the nodes; so is a layer past the
// bound the engine's inspect gives, and a rewrite whose context is done.
func TestRewriteBounded(t *testing.T) {
	layer := bytes.Repeat([]byte("x"), 100000)
	img := sendImage{Name: "docker.io/a/b:1", ID: digestOf([]byte("{}")), DiffIDs: []string{digestOf(layer)}}
	tests := []struct {
		name    string
		saved   []byte
		max     int64
		cancel  bool
		wantErr string
	}{
		{name: "sparse entry of 1 TiB", saved: hostile.SparseSave("x/layer.tar", 1<<40), max: 1 << 20, wantErr: "sparse"},
		{name: "layer past the inspected size", saved: tarOf(entry{"x/layer.tar", layer}), max: 50000, wantErr: "larger than the images"},
		{name: "context done", saved: tarOf(entry{"x/layer.tar", layer}), max: 1 << 20, cancel: true, wantErr: "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			var out bytes.Buffer
			_, sent, err := rewrite(ctx, &out, []io.Reader{bytes.NewReader(tc.saved)}, []sendImage{img}, map[string]bool{img.DiffIDs[0]: true}, t.TempDir(), map[string]loaded{}, tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if sent != 0 {
				t.Errorf("%d bytes sent", sent)
			}
		})
	}
}

// A load saved in parts (one `docker save` each, read in turn): a layer the
// parts share is read from each but sent once, and the index names every
// image of every part.
func TestRewriteSavedInParts(t *testing.T) {
	base := []byte("shared base layer")
	type part struct {
		img   sendImage
		saved []byte
	}
	hex := func(b []byte) string { return strings.TrimPrefix(digestOf(b), "sha256:") }
	var parts []part
	want := map[string]bool{digestOf(base): true}
	for _, name := range []string{"one", "two"} {
		own := []byte("own layer of " + name)
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digestOf(base) + `","` + digestOf(own) + `"]}}`)
		parts = append(parts, part{
			img: sendImage{Name: "docker.io/hoist/" + name + ":1", ID: digestOf(cfg), DiffIDs: []string{digestOf(base), digestOf(own)}},
			saved: tarOf(entry{"blobs/sha256/" + hex(base), base}, entry{"blobs/sha256/" + hex(own), own}, entry{"blobs/sha256/" + hex(cfg), cfg},
				entry{"index.json", []byte("{}")}, entry{"oci-layout", []byte("{}")}),
		})
		want[digestOf(own)], want[digestOf(cfg)] = true, true
	}
	var out bytes.Buffer
	blobs, _, err := rewrite(context.Background(), &out, []io.Reader{bytes.NewReader(parts[0].saved), bytes.NewReader(parts[1].saved)},
		[]sendImage{parts[0].img, parts[1].img}, want, t.TempDir(), map[string]loaded{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// base, two own layers, two configs, two manifests.
	if blobs != 7 {
		t.Errorf("wrote %d blobs, want 7 (the shared layer once)", blobs)
	}
	tr := tar.NewReader(&out)
	seen := map[string]int{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name]++
		if h.Name == "index.json" {
			var idx dockersave.Index
			b, _ := io.ReadAll(tr)
			if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 2 {
				t.Errorf("index %s names %d images, want both parts' 2 (%v)", b, len(idx.Manifests), err)
			}
		}
	}
	if n := seen["blobs/sha256/"+hex(base)]; n != 1 {
		t.Errorf("the shared layer is in the archive %d times, want once", n)
	}
}

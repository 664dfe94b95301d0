package publish

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/hoistci/hoist/internal/hostile"
	"github.com/hoistci/hoist/pkg/lock"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type entry struct {
	name string
	body []byte
}

func tarOf(t testing.TB, es []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestExport(t *testing.T) {
	layer := []byte(strings.Repeat("layer bytes ", 1000))
	config := []byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:` + sum(layer) + `"]}}`)
	other := []byte(`{"other":true}`)
	// A containerd store saves layers as stored (gzip, any level) under
	// their compressed digest, with the manifest naming them.
	var stored bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&stored, gzip.BestSpeed)
	zw.Write(layer)
	zw.Close()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:` + sum(config) + `","size":1},"layers":[{"digest":"sha256:` + sum(stored.Bytes()) + `","size":1}]}`)
	index := []byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:` + sum(manifest) + `","size":1}]}`)
	tests := []struct {
		name       string
		entries    []entry
		wantConfig bool
		wantLayer  bool
		wantErr    string
		// ids are engine image IDs that must name the config (on the
		// classic store the config digest itself does).
		ids []string
	}{
		{name: "classic layout (engines up to 24)", entries: []entry{
			{"abc123/VERSION", []byte("1.0")}, {"abc123/json", []byte("{}")}, {"abc123/layer.tar", layer},
			{sum(config) + ".json", config}, {sum(other) + ".json", other}, {"manifest.json", []byte("[]")},
		}, wantConfig: true, wantLayer: true},
		{name: "OCI layout (engines 25 and later)", entries: []entry{
			{"oci-layout", []byte(`{}`)}, {"blobs/sha256/" + sum(layer), layer}, {"blobs/sha256/" + sum(config), config},
			{"blobs/sha256/" + sum(other), other}, {"index.json", []byte("{}")},
		}, wantConfig: true, wantLayer: true},
		{name: "OCI layout from a containerd store (compressed layers, index)", entries: []entry{
			{"blobs/sha256/" + sum(stored.Bytes()), stored.Bytes()}, {"blobs/sha256/" + sum(config), config},
			{"blobs/sha256/" + sum(manifest), manifest}, {"blobs/sha256/" + sum(index), index},
			{"blobs/sha256/" + sum(other), other}, {"index.json", []byte("{}")}, {"oci-layout", []byte(`{}`)},
		}, wantConfig: true, wantLayer: true, ids: []string{"sha256:" + sum(manifest), "sha256:" + sum(index)}},
		{name: "config whose bytes do not match its name", entries: []entry{
			{sum(config) + ".json", other},
		}, wantErr: "damaged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			id := "sha256:" + sum(config)
			diff := v1.Hash{Algorithm: "sha256", Hex: sum(layer)}
			ex, err := export(context.Background(), bytes.NewReader(tarOf(t, tc.entries)), dir, map[string]bool{id: true}, func(d v1.Hash) bool { return d == diff }, 1<<20)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, eid := range append(tc.ids, id) {
				img := lock.Image{Name: "x", ImageID: eid, ConfigDigest: id}
				if err := ex.check(img); err != nil {
					t.Errorf("check(%s): %v", eid, err)
				}
				img.ConfigDigest = "sha256:" + sum(other)
				if err := ex.check(img); err == nil || !strings.Contains(err.Error(), "damaged") {
					t.Errorf("check(%s) with another config = %v, want refused", eid, err)
				}
			}
			if got := ex.configs[id]; !bytes.Equal(got, config) {
				t.Errorf("config = %q", got)
			}
			if len(ex.configs) != 1 {
				t.Errorf("kept %d configs, want only the wanted one", len(ex.configs))
			}
			b, ok := ex.layers[diff]
			if !ok || len(ex.layers) != 1 {
				t.Fatalf("layers %v, want only %s", ex.layers, diff)
			}
			gz, err := os.ReadFile(b.path)
			if err != nil {
				t.Fatal(err)
			}
			if "sha256:"+sum(gz) != b.Digest.String() || int64(len(gz)) != b.Size {
				t.Errorf("blob %s/%d does not match its file", b.Digest, b.Size)
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(zr)
			if !bytes.Equal(raw, layer) {
				t.Error("compressed layer does not decompress to the layer")
			}
		})
	}
}

// A stream of a few KiB whose sparse entry claims a terabyte is refused
// at once, before any gzip is written; so is a layer past the bound the
// engine's inspect gives, and an export whose context is done.
func TestExportBounded(t *testing.T) {
	layer := bytes.Repeat([]byte("x"), 100000)
	tests := []struct {
		name    string
		stream  []byte
		max     int64
		cancel  bool
		wantErr string
	}{
		{name: "sparse entry of 1 TiB", stream: hostile.SparseSave("blobs/sha256/"+sum(layer), 1<<40), max: 1 << 20, wantErr: "sparse"},
		{name: "sparse legacy layer of 1 TiB", stream: hostile.SparseSave("abc/layer.tar", 1<<40), max: 1 << 20, wantErr: "sparse"},
		{name: "layer past the inspected size", stream: tarOf(t, []entry{{"abc/layer.tar", layer}}), max: 50000, wantErr: "larger than the images"},
		{name: "context done", stream: tarOf(t, []entry{{"abc/layer.tar", layer}}), max: 1 << 20, cancel: true, wantErr: "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			dir := t.TempDir()
			_, err := export(ctx, bytes.NewReader(tc.stream), dir, map[string]bool{}, func(v1.Hash) bool { return true }, tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			left, _ := os.ReadDir(dir)
			if len(left) != 0 {
				t.Errorf("%d files left in the export folder", len(left))
			}
		})
	}
}

func FuzzExport(f *testing.F) {
	f.Add(tarOf(f, []entry{{"a/layer.tar", []byte("x")}, {"blobs/sha256/" + sum([]byte("y")), []byte("y")}}))
	f.Add([]byte("not a tar"))
	f.Add(hostile.SparseSave("a/layer.tar", 1<<40))
	// One folder for the whole run, emptied after each input: a folder
	// made and removed per input costs more than the export itself.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		t.Cleanup(func() {
			left, _ := os.ReadDir(dir)
			for _, e := range left {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		})
		// What the engine's inspect would allow for a stream of this size.
		ex, err := export(context.Background(), bytes.NewReader(b), dir, map[string]bool{}, func(v1.Hash) bool { return true }, 8*int64(len(b))+1<<20)
		if err != nil {
			return
		}
		for d, bl := range ex.layers {
			if bl.DiffID != d || bl.Size <= 0 {
				t.Fatalf("layer %s recorded as %+v", d, bl)
			}
		}
	})
}

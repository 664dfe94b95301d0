package dockersave

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	gzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/hoistci/hoist/internal/hostile"
)

// member is one tar entry of a test stream: a file, or a link when link is set.
type member struct {
	name string
	body string
	link string
	kind byte
}

func tarOf(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg}
		if m.kind != 0 {
			h = &tar.Header{Name: m.name, Mode: 0o777, Typeflag: m.kind, Linkname: m.link}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type got struct {
	Entry
	body string
}

func readAll(t *testing.T, b []byte) ([]got, *Reader) {
	t.Helper()
	r := NewReader(bytes.NewReader(b))
	var out []got
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got{e, string(body)})
	}
}

const (
	hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hexB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestNext(t *testing.T) {
	tests := []struct {
		name    string
		members []member
		want    []Entry // Size is checked against the body read
	}{
		{
			name: "legacy layout (engines up to 24)",
			members: []member{
				{name: "111/", kind: tar.TypeDir},
				{name: "111/VERSION", body: "1.0"},
				{name: "111/json", body: "{}"},
				{name: "111/layer.tar", body: "layer one"},
				{name: "222/layer.tar", kind: tar.TypeSymlink, link: "../111/layer.tar"},
				{name: hexA + ".json", body: `{"os":"linux"}`},
				{name: "manifest.json", body: "[]"},
				{name: "repositories", body: "{}"},
			},
			want: []Entry{
				{Name: "111/VERSION", Kind: Metadata},
				{Name: "111/json", Kind: Metadata},
				{Name: "111/layer.tar", Kind: Layer},
				{Name: hexA + ".json", Kind: Config, Digest: "sha256:" + hexA},
				{Name: "manifest.json", Kind: ManifestJSON},
				{Name: "repositories", Kind: Metadata},
			},
		},
		{
			name: "OCI layout (engines 25 and later)",
			members: []member{
				{name: "blobs/", kind: tar.TypeDir},
				{name: "blobs/sha256/" + hexA, body: "a blob"},
				{name: "./blobs/sha256/" + hexB, body: "another"},
				{name: "index.json", body: "{}"},
				{name: "oci-layout", body: LayoutFile},
				{name: "manifest.json", body: "[]"},
			},
			want: []Entry{
				{Name: "blobs/sha256/" + hexA, Kind: Blob, Digest: "sha256:" + hexA},
				{Name: "blobs/sha256/" + hexB, Kind: Blob, Digest: "sha256:" + hexB},
				{Name: "index.json", Kind: Metadata},
				{Name: "oci-layout", Kind: Metadata},
				{Name: "manifest.json", Kind: ManifestJSON},
			},
		},
		{
			name: "names of no known role",
			members: []member{
				{name: "sub/manifest.json", body: "[]"},
				{name: "sub/" + hexA + ".json", body: "{}"},
				{name: "README", body: "x"},
				{name: "blobs/sha512/" + hexA, body: "x"},
			},
			want: []Entry{
				{Name: "sub/manifest.json", Kind: Metadata},
				{Name: "sub/" + hexA + ".json", Kind: Other},
				{Name: "README", Kind: Other},
				{Name: "blobs/sha512/" + hexA, Kind: Other},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, _ := readAll(t, tarOf(t, tc.members...))
			if len(es) != len(tc.want) {
				t.Fatalf("got %d entries %+v, want %d", len(es), es, len(tc.want))
			}
			for i, w := range tc.want {
				w.Size = int64(len(es[i].body))
				if es[i].Entry != w {
					t.Errorf("entry %d = %+v, want %+v", i, es[i].Entry, w)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	r := NewReader(bytes.NewReader(tarOf(t,
		member{name: "111/layer.tar", body: "layer"},
		member{name: "222/layer.tar", kind: tar.TypeSymlink, link: "../111/layer.tar"},
		member{name: "333/layer.tar", kind: tar.TypeLink, link: "222/layer.tar"},
		member{name: "loop/a", kind: tar.TypeSymlink, link: "b"},
		member{name: "loop/b", kind: tar.TypeSymlink, link: "a"},
	)))
	for {
		if _, err := r.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{name: "a file is itself", path: "111/layer.tar", want: "111/layer.tar"},
		{name: "a symlink is relative to its folder", path: "222/layer.tar", want: "111/layer.tar"},
		{name: "links chain", path: "./333/layer.tar", want: "111/layer.tar"},
		{name: "an unknown path is itself", path: "444/layer.tar", want: "444/layer.tar"},
		{name: "a loop ends", path: "loop/a", want: "loop/a"}, // after an even number of hops
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Resolve(tc.path); got != tc.want {
				t.Errorf("Resolve(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

func TestDecodeManifest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Image
		wantErr bool
	}{
		{
			name: "legacy",
			in:   `[{"Config":"` + hexA + `.json","RepoTags":["hoist/demo:1"],"Layers":["111/layer.tar","222/layer.tar"]}]`,
			want: []Image{{Config: hexA + ".json", RepoTags: []string{"hoist/demo:1"}, Layers: []string{"111/layer.tar", "222/layer.tar"}}},
		},
		{
			name: "OCI, untagged",
			in:   `[{"Config":"blobs/sha256/` + hexA + `","RepoTags":null,"Layers":["blobs/sha256/` + hexB + `"],"LayerSources":{}}]`,
			want: []Image{{Config: "blobs/sha256/" + hexA, Layers: []string{"blobs/sha256/" + hexB}}},
		},
		{name: "empty", in: `[]`, want: []Image{}},
		{name: "not a list", in: `{}`, wantErr: true},
		{name: "truncated", in: `[{"Config":`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeManifest(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Config != w.Config || strings.Join(g.RepoTags, ",") != strings.Join(w.RepoTags, ",") || strings.Join(g.Layers, ",") != strings.Join(w.Layers, ",") {
					t.Errorf("image %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add(tarOf(f,
		member{name: "111/layer.tar", body: "layer"},
		member{name: "222/layer.tar", kind: tar.TypeSymlink, link: "../111/layer.tar"},
		member{name: hexA + ".json", body: "{}"},
		member{name: "manifest.json", body: `[{"Config":"` + hexA + `.json","Layers":["222/layer.tar"]}]`},
	))
	f.Add(tarOf(f,
		member{name: "blobs/sha256/" + hexA, body: "blob"},
		member{name: "index.json", body: "{}"},
		member{name: "oci-layout", body: LayoutFile},
	))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for {
			e, err := r.Next()
			if err != nil {
				return // io.EOF or a damaged stream: either way no panic
			}
			if (e.Kind == Config || e.Kind == Blob) != strings.HasPrefix(e.Digest, "sha256:") {
				t.Fatalf("entry %+v: digest only for configs and blobs", e)
			}
			if e.Kind == ManifestJSON {
				DecodeManifest(r) // may fail; must not panic
			}
			n, err := io.Copy(io.Discard, r)
			if err == nil && e.Kind != ManifestJSON && e.Compression == "" && n != e.Size {
				t.Fatalf("entry %+v: read %d bytes", e, n)
			}
			r.Resolve(e.Name) // ends, whatever the links
		}
	})
}

// TestCompressedBlobs: a containerd store saves layers as stored, gzip or
// zstd; the reader hands them out uncompressed, so hashing what it reads
// gives the diff_id on both stores. Other blobs pass through as they are.
func TestCompressedBlobs(t *testing.T) {
	layer := strings.Repeat("a layer tar, uncompressed ", 1000)
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(layer))
	zw.Close()
	enc, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	enc.Write([]byte(layer))
	enc.Close()
	tests := []struct {
		name, stored, want, compression string
	}{
		{name: "gzip layer", stored: gz.String(), want: layer, compression: Gzip},
		{name: "zstd layer", stored: zs.String(), want: layer, compression: Zstd},
		{name: "uncompressed layer", stored: layer, want: layer},
		{name: "manifest", stored: `{"schemaVersion":2}`, want: `{"schemaVersion":2}`},
		{name: "tiny blob", stored: "x", want: "x"},
		{name: "empty blob", stored: "", want: ""},
		{name: "damaged gzip", stored: gz.String()[:40], compression: Gzip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Two blobs in a row: the second must not see the first's state.
			r := NewReader(bytes.NewReader(tarOf(t,
				member{name: "blobs/sha256/" + hexA, body: tc.stored},
				member{name: "blobs/sha256/" + hexB, body: tc.stored},
			)))
			defer r.Close()
			for i := 0; i < 2; i++ {
				e, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if e.Compression != tc.compression {
					t.Errorf("compression %q, want %q", e.Compression, tc.compression)
				}
				got, err := io.ReadAll(r)
				if tc.name == "damaged gzip" {
					if err == nil {
						t.Fatal("a damaged gzip layer read without error")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Errorf("read %d bytes, want %d", len(got), len(tc.want))
				}
			}
		})
	}
	t.Run("skipped unread", func(t *testing.T) {
		r := NewReader(bytes.NewReader(tarOf(t,
			member{name: "blobs/sha256/" + hexA, body: gz.String()},
			member{name: "manifest.json", body: "[]"},
		)))
		defer r.Close()
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		e, err := r.Next()
		if err != nil || e.Kind != ManifestJSON {
			t.Fatalf("after an unread layer: %+v, %v", e, err)
		}
	})
}

// A sparse entry costs a few hundred bytes to send and claims a terabyte:
// the reader refuses it before handing out a byte.
func TestSparseEntryRefused(t *testing.T) {
	stream := hostile.SparseSave("blobs/sha256/"+strings.Repeat("a", 64), 1<<40)
	r := NewReader(bytes.NewReader(stream))
	defer r.Close()
	_, err := r.Next()
	if err == nil || !strings.Contains(err.Error(), "sparse") {
		n, _ := io.Copy(io.Discard, io.LimitReader(r, 64<<20))
		t.Fatalf("Next = %v; then %d bytes were read from a %d-byte stream", err, n, len(stream))
	}
}

func TestBoundAndContext(t *testing.T) {
	body := strings.Repeat("x", 10000)
	stream := tarOf(t, member{name: "a/layer.tar", body: body}, member{name: "b/layer.tar", body: body})
	tests := []struct {
		name    string
		max     int64
		cancel  bool
		wantErr error
	}{
		{name: "within the bound", max: 20000},
		{name: "an entry's header past the bound", max: 9999, wantErr: ErrTooLarge},
		{name: "the entries together past the bound", max: 15000, wantErr: ErrTooLarge},
		{name: "context done", max: 1 << 20, cancel: true, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			r := NewBoundedReader(ctx, bytes.NewReader(stream), tc.max)
			defer r.Close()
			var err error
			for err == nil {
				if _, err = r.Next(); err == nil {
					_, err = io.Copy(io.Discard, r)
				}
			}
			if tc.wantErr == nil && !errors.Is(err, io.EOF) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	// A compressed layer is bounded by what it uncompresses to.
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	r := NewBoundedReader(context.Background(), bytes.NewReader(tarOf(t, member{name: "blobs/sha256/" + strings.Repeat("b", 64), body: z.String()})), 64<<10)
	defer r.Close()
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, r); !errors.Is(err, ErrTooLarge) || n > 64<<10 {
		t.Fatalf("read %d bytes of a 1 MiB layer under a 64 KiB bound: %v", n, err)
	}
}

func TestBound(t *testing.T) {
	if b := Bound(100<<20, 50<<20); b != 8*(150<<20)+256<<20 {
		t.Errorf("Bound = %d", b)
	}
	if b := Bound(-1); b != MaxStream {
		t.Errorf("Bound(-1) = %d, want MaxStream", b)
	}
	if b := Bound(MaxStream, MaxStream); b != MaxStream {
		t.Errorf("Bound of huge sizes = %d, want MaxStream", b)
	}
}

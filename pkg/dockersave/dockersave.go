// Package dockersave reads the tar stream `docker save` writes, in either of
// its layouts: the legacy one of engines up to 24 (manifest.json, each
// config as <hex>.json at the top, each layer as <id>/layer.tar, often a
// link to another) and the OCI image layout of engines 25 and later
// (oci-layout, index.json and blobs/sha256/<hex>, with a manifest.json
// naming blobs). It names what each entry is and streams its bytes once;
// what to keep, hash or write is the caller's.
package dockersave

import (
	"archive/tar"
	"encoding/json"
	"io"
	"path"
	"strings"
)

// Kind is what an entry of a save stream holds, judged by its name.
type Kind int

const (
	// Other is an entry of no known role.
	Other Kind = iota
	// ManifestJSON is the top-level manifest.json mapping each image to
	// its config and layers (both layouts write it); see DecodeManifest.
	ManifestJSON
	// Metadata is an entry that is not a blob: index.json, oci-layout,
	// repositories, a legacy layer's VERSION and json, or a manifest.json
	// below the top.
	Metadata
	// Config is a legacy <hex>.json at the top: an image config, named by
	// its digest.
	Config
	// Layer is a legacy <id>/layer.tar: an uncompressed layer, named by an
	// ID that is not its digest.
	Layer
	// Blob is an OCI blobs/sha256/<hex>: a layer, config, manifest or
	// index, named by its digest.
	Blob
)

// Entry is one regular file of a save stream.
type Entry struct {
	Name string // cleaned path in the stream
	Kind Kind
	// Digest is what the name says the content's digest is, for a Config
	// or a Blob ("sha256:<hex>", unchecked); empty otherwise.
	Digest string
	Size   int64
}

// Reader reads a save stream entry by entry, like tar.Reader, skipping what
// is not a regular file and remembering links so Resolve can follow them.
type Reader struct {
	tr    *tar.Reader
	links map[string]string // path -> path it links to
}

// NewReader reads the save stream r.
func NewReader(r io.Reader) *Reader {
	return &Reader{tr: tar.NewReader(r), links: map[string]string{}}
}

// Next advances to the next regular file; it returns io.EOF at the end and
// the tar reader's errors as they are, for the caller to say what it read.
func (r *Reader) Next() (Entry, error) {
	for {
		h, err := r.tr.Next()
		if err != nil {
			return Entry{}, err
		}
		name := path.Clean(h.Name)
		switch h.Typeflag {
		case tar.TypeSymlink:
			r.links[name] = path.Clean(path.Join(path.Dir(name), h.Linkname))
		case tar.TypeLink:
			r.links[name] = path.Clean(h.Linkname)
		case tar.TypeReg:
			e := Entry{Name: name, Size: h.Size}
			e.Kind, e.Digest = classify(name)
			return e, nil
		}
	}
}

// Read reads the current entry's bytes.
func (r *Reader) Read(p []byte) (int, error) { return r.tr.Read(p) }

// maxLinks bounds how many links Resolve follows, so a loop ends.
const maxLinks = 8

// Resolve follows the links seen so far from name (a legacy save links a
// layer.tar shared by several images to one copy) and returns the path of
// the entry that holds the bytes, or where the chain stopped.
func (r *Reader) Resolve(name string) string {
	p := path.Clean(name)
	for range maxLinks {
		t, ok := r.links[p]
		if !ok {
			break
		}
		p = t
	}
	return p
}

func classify(name string) (Kind, string) {
	base, dir := path.Base(name), path.Dir(name)
	switch {
	case name == "manifest.json":
		return ManifestJSON, ""
	case isMetadata(base):
		return Metadata, ""
	case base == "layer.tar":
		return Layer, ""
	case dir == "." && strings.HasSuffix(base, ".json"):
		return Config, "sha256:" + strings.TrimSuffix(base, ".json")
	case dir == "blobs/sha256":
		return Blob, "sha256:" + base
	}
	return Other, ""
}

func isMetadata(base string) bool {
	switch base {
	case "manifest.json", "repositories", "index.json", "oci-layout", "VERSION", "json":
		return true
	}
	return false
}

// Image is one entry of manifest.json: an image's config and its layers in
// order, as paths in the stream (pass them to Resolve).
type Image struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// DecodeManifest reads a manifest.json entry.
func DecodeManifest(r io.Reader) ([]Image, error) {
	var m []Image
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

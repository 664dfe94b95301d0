// Package dockersave reads the tar stream `docker save` writes, in either of
// its layouts: the legacy one of engines up to 24 (manifest.json, each
// config as <hex>.json at the top, each layer as <id>/layer.tar, often a
// link to another) and the OCI image layout of engines 25 and later
// (oci-layout, index.json and blobs/sha256/<hex>, with a manifest.json
// naming blobs). It names what each entry is and streams its bytes once,
// layers always uncompressed: a classic store saves them so, a containerd
// store saves them as stored (gzip or zstd), and the reader undoes that, so
// the digest of what it reads is the layer's diff_id on both. What to keep,
// hash or write is the caller's.
package dockersave

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	gzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
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
	// Digest is what the name says the stored content's digest is, for a
	// Config or a Blob ("sha256:<hex>", unchecked); empty otherwise.
	Digest string
	// Size is the stored size. When Compression is set, Read returns the
	// uncompressed bytes, whose size is known only once read.
	Size int64
	// Compression is how a Blob was stored: "" (not compressed), "gzip"
	// or "zstd". Read undoes it.
	Compression string
}

// Compressions a containerd store saves layers in.
const (
	Gzip = "gzip"
	Zstd = "zstd"
)

// Reader reads a save stream entry by entry, like tar.Reader, skipping what
// is not a regular file and remembering links so Resolve can follow them.
//
// What it hands out is bounded: an engine never writes a sparse entry, so
// one (whose header may claim a terabyte of zeros that cost nothing to
// send) is refused, and all the bytes Read returns, layers uncompressed,
// may not exceed the bound the caller derived from the engine's own
// inspect (see Bound). Read stops when the context is done, so every copy
// loop over it does.
type Reader struct {
	ctx   context.Context
	max   int64 // bytes Read may return in all
	read  int64
	tr    *tar.Reader
	links map[string]string // path -> path it links to
	buf   *bufio.Reader     // the current blob, peeked at for its compression
	raw   io.Reader         // the entry as stored
	cur   io.Reader         // what Read reads: the entry, uncompressed
	zr    *gzip.Reader      // reused across gzip blobs
	zd    *zstd.Decoder     // reused across zstd blobs
	open  func() error      // starts decompressing on the first Read
}

// MaxStream bounds a stream read with NewReader, where no engine inspect
// told the images' sizes: no image Hoist builds comes near it.
const MaxStream int64 = 256 << 30

// maxZstdWindow is the largest zstd window a layer may ask for: what
// `zstd --long=27` writes, far past the 8 MiB containerd's writer uses.
const maxZstdWindow int64 = 128 << 20

// ErrTooLarge is returned when a stream holds more than its bound.
var ErrTooLarge = errors.New("the engine's export is larger than the images it holds")

// NewReader reads the save stream r, bounded by MaxStream.
func NewReader(r io.Reader) *Reader {
	return NewBoundedReader(context.Background(), r, MaxStream)
}

// NewBoundedReader reads the save stream r, returning at most max bytes in
// all and stopping when ctx is done.
func NewBoundedReader(ctx context.Context, r io.Reader, max int64) *Reader {
	return &Reader{ctx: ctx, max: max, tr: tar.NewReader(r), links: map[string]string{}}
}

// Bound is the most a `docker save` of images whose sizes the engine's
// inspect gave may hold: their sum (shared layers counted for each) with
// room for tar headers and padding (a layer of many small files grows
// several times over its files' size) and for configs and manifests.
func Bound(sizes ...int64) int64 {
	var sum int64
	for _, s := range sizes {
		if s < 0 || s > MaxStream {
			return MaxStream
		}
		sum += s
		if sum > MaxStream/8 {
			return MaxStream
		}
	}
	return 8*sum + 256<<20
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Next advances to the next regular file; it returns io.EOF at the end and
// the tar reader's errors as they are, for the caller to say what it read.
func (r *Reader) Next() (Entry, error) {
	for {
		h, err := r.tr.Next()
		if err != nil {
			return Entry{}, err
		}
		name := path.Clean(h.Name)
		if sparse(h) {
			return Entry{}, fmt.Errorf("entry %s is a sparse file, which no engine writes: refusing the stream", name)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			r.links[name] = path.Clean(path.Join(path.Dir(name), h.Linkname))
		case tar.TypeLink:
			r.links[name] = path.Clean(h.Linkname)
		case tar.TypeReg:
			if h.Size > r.max-r.read {
				return Entry{}, fmt.Errorf("entry %s claims %d bytes, past the %d the images may hold: %w", name, h.Size, r.max, ErrTooLarge)
			}
			e := Entry{Name: name, Size: h.Size}
			e.Kind, e.Digest = classify(name)
			r.raw, r.cur, r.open = r.tr, r.tr, nil
			if e.Kind == Blob {
				if err := r.sniff(&e); err != nil {
					return Entry{}, err
				}
			}
			return e, nil
		}
	}
}

// sniff looks at a blob's first bytes: a compressed layer is read through
// a decompressor, started on the first Read so skipping it costs nothing.
func (r *Reader) sniff(e *Entry) error {
	if r.buf == nil {
		r.buf = bufio.NewReaderSize(r.tr, 64<<10)
	} else {
		r.buf.Reset(r.tr)
	}
	r.raw, r.cur = r.buf, r.buf
	head, err := r.buf.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		e.Compression = Gzip
		r.open = func() error {
			if r.zr == nil {
				zr, err := gzip.NewReader(r.buf)
				if err != nil {
					return err
				}
				r.zr = zr
			} else if err := r.zr.Reset(r.buf); err != nil {
				return err
			}
			r.zr.Multistream(true)
			r.cur = r.zr
			return nil
		}
	case bytes.HasPrefix(head, zstdMagic):
		e.Compression = Zstd
		r.open = func() error {
			if r.zd == nil {
				// A frame names its own window, up to gigabytes, which
				// the decoder would allocate: no window may exceed what
				// the whole stream may hold, nor zstd's --long=27.
				win := min(r.max, maxZstdWindow)
				win = max(win, zstd.MinWindowSize)
				zd, err := zstd.NewReader(r.buf, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
					zstd.WithDecoderMaxWindow(uint64(win)), zstd.WithDecoderMaxMemory(uint64(win)))
				if err != nil {
					return err
				}
				r.zd = zd
			} else if err := r.zd.Reset(r.buf); err != nil {
				return err
			}
			r.cur = r.zd
			return nil
		}
	}
	if e.Compression != "" {
		e.Size = -1
	}
	return nil
}

// Read reads the current entry's bytes, uncompressed.
func (r *Reader) Read(p []byte) (int, error) {
	if r.open != nil {
		open := r.open
		r.open = nil
		if err := open(); err != nil {
			r.cur = errReader{fmt.Errorf("decompressing a layer: %w", err)}
		}
	}
	if r.cur == nil {
		return 0, io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.read >= r.max {
		return 0, fmt.Errorf("past %d bytes: %w", r.max, ErrTooLarge)
	}
	if rest := r.max - r.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.cur.Read(p)
	r.read += int64(n)
	return n, err
}

// sparse reports whether h is a sparse file, in GNU or PAX form: Go's tar
// reader expands its holes into zeros no stream ever carried.
func sparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// Stored switches the current entry to its bytes as stored (compressed when
// Compression is set), for a caller that keeps the stored form; call it
// before the first Read of the entry. What it returns reads through r, so
// the bound and the context hold for it too.
func (r *Reader) Stored() io.Reader {
	r.open, r.cur = nil, r.raw
	return r
}

// Close releases the decompressors' memory; the stream itself is the
// caller's to close.
func (r *Reader) Close() {
	if r.zd != nil {
		r.zd.Close()
		r.zd = nil
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

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

// DigestOf is the digest a path of a save names (blobs/sha256/<hex>, or a
// legacy <hex>.json config), or "" for any other path.
func DigestOf(p string) string {
	if k, d := classify(path.Clean(p)); k == Blob || k == Config {
		return d
	}
	return ""
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

package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/hoistci/hoist/pkg/dockersave"
	"github.com/hoistci/hoist/pkg/lock"
)

// exported is what one `docker save` stream gave: the configs of the wanted
// images (by config digest), every layer, compressed into files, by
// diff_id, and which config each manifest of the stream names.
type exported struct {
	configs map[string][]byte
	layers  map[v1.Hash]*blob
	// manifests maps a manifest's digest to its config digest, and
	// indexes an index's digest to its manifests' digests: on the
	// containerd store an image ID is one of those.
	manifests map[string]string
	indexes   map[string][]string
}

// maxJSONBlob bounds the blobs read as possible manifests or indexes.
const maxJSONBlob = 4 << 20

// export reads a `docker save` stream (the classic layout of engines up to
// 24 and the OCI layout of 25 and later, with layers uncompressed or, from
// a containerd store, compressed), keeping the config of each image in
// wantConfigs and compressing each layer whose diff_id needLayer wants into
// dir (a gzip layer of a containerd store is kept as stored). A layer whose
// diff_id the stream's name does not say (the classic layout names layers
// by another ID, a containerd store by the compressed digest) is read whole
// to learn it, and dropped if not wanted. At most max bytes are read out
// of the stream, layers uncompressed (dockersave.Bound of the images'
// inspected sizes), and ctx stops every copy.
func export(ctx context.Context, r io.Reader, dir string, wantConfigs map[string]bool, needLayer func(v1.Hash) bool, max int64) (*exported, error) {
	out := &exported{configs: map[string][]byte{}, layers: map[v1.Hash]*blob{}, manifests: map[string]string{}, indexes: map[string][]string{}}
	sr := dockersave.NewBoundedReader(ctx, r, max)
	defer sr.Close()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the engine's export: %w", err)
		}
		switch {
		case (e.Kind == dockersave.Config || e.Kind == dockersave.Blob) && wantConfigs[e.Digest]:
			if err := keepConfig(out, e.Digest, sr); err != nil {
				return nil, err
			}
		case e.Kind == dockersave.Blob && e.Compression == dockersave.Gzip:
			// A containerd store's gzip layer is pushed as stored, as
			// `docker push` does: no second compression.
			if err := keepStored(ctx, out, sr.Stored(), e.Digest, dir, needLayer, max); err != nil {
				return nil, err
			}
		case e.Kind == dockersave.Layer, e.Kind == dockersave.Blob && e.Compression != "":
			if err := compress(out, sr, dir, needLayer); err != nil {
				return nil, err
			}
		case e.Kind == dockersave.Blob:
			// An uncompressed blob is named by its digest, which for a
			// layer is its diff_id; small ones may be manifests.
			d := v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(e.Digest, "sha256:")}
			if needLayer(d) {
				if err := compress(out, sr, dir, needLayer); err != nil {
					return nil, err
				}
			} else if e.Size >= 0 && e.Size <= maxJSONBlob {
				if err := out.learn(e.Digest, sr); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// learn records a manifest's config, or an index's manifests; other
// blobs (layers, configs of other images, attestations) are skipped.
func (out *exported) learn(digest string, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONBlob))
	if err != nil {
		return fmt.Errorf("reading the engine's export: %w", err)
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	if m.Config != nil {
		out.manifests[digest] = m.Config.Digest.String()
	}
	for _, c := range m.Manifests {
		out.indexes[digest] = append(out.indexes[digest], c.Digest.String())
	}
	return nil
}

// names reports whether the engine image id (a config, manifest or index
// digest) names the config cfg in this export.
func (out *exported) names(id, cfg string) bool {
	if id == cfg || out.manifests[id] == cfg {
		return true
	}
	for _, m := range out.indexes[id] {
		if out.manifests[m] == cfg {
			return true
		}
	}
	return false
}

// check proves that the image the engine exported under img's ID has the
// locked config: on the containerd store the ID is a manifest's digest, so
// a lock naming another config is refused here rather than pushed.
func (out *exported) check(img lock.Image) error {
	if !out.names(img.ImageID, img.ConfigDigest) {
		return fmt.Errorf("exporting %s from the engine: image %s does not name the locked config %s: the lock file is damaged: run the Images and Test targets again", img.Name, img.ImageID, img.ConfigDigest)
	}
	return nil
}

func keepConfig(out *exported, id string, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONBlob+1))
	if err == nil && len(b) > maxJSONBlob {
		err = fmt.Errorf("config %s is larger than %d MiB", id, maxJSONBlob>>20)
	}
	if err != nil {
		return fmt.Errorf("reading the engine's export: %w", err)
	}
	sum := sha256.Sum256(b)
	if "sha256:"+hex.EncodeToString(sum[:]) != id {
		return fmt.Errorf("the engine exported a config for %s whose digest differs: the engine's store is damaged", id)
	}
	out.configs[id] = b
	return nil
}

// compress gzips one layer tar into dir, learning its diff_id and digest,
// and keeps it if keep wants that diff_id.
func compress(out *exported, r io.Reader, dir string, keep func(v1.Hash) bool) error {
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("compressing a layer: %w", err)
	}
	diff := sha256.New()
	comp := sha256.New()
	cw := &counter{}
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(f, comp, cw), gzip.DefaultCompression)
	_, err = io.Copy(zw, io.TeeReader(r, diff))
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("compressing a layer: %w", err)
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	if _, dup := out.layers[d]; dup || !keep(d) {
		os.Remove(f.Name())
		return nil
	}
	out.layers[d] = &blob{
		DiffID: d,
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(comp.Sum(nil))},
		Size:   cw.n,
		path:   filepath.Clean(f.Name()),
	}
	return nil
}

// keepStored keeps a gzip layer as stored, learning its diff_id by
// uncompressing it on the way, if keep wants that diff_id. What it
// uncompresses is bounded by max too, and stops with ctx.
func keepStored(ctx context.Context, out *exported, r io.Reader, digest, dir string, keep func(v1.Hash) bool, max int64) error {
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("reading a layer: %w", err)
	}
	comp := sha256.New()
	cw := &counter{}
	tee := io.TeeReader(r, io.MultiWriter(f, comp, cw))
	diff := sha256.New()
	zr, err := gzip.NewReader(tee)
	if err == nil {
		_, err = io.Copy(diff, &bounded{ctx: ctx, r: zr, left: max})
	}
	if err == nil {
		_, err = io.Copy(io.Discard, tee) // whatever follows the gzip stream
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("reading layer %s of the engine's export: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(comp.Sum(nil)); got != digest {
		os.Remove(f.Name())
		return fmt.Errorf("the engine exported layer %s whose digest is %s: the engine's store is damaged", digest, got)
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	if _, dup := out.layers[d]; dup || !keep(d) {
		os.Remove(f.Name())
		return nil
	}
	out.layers[d] = &blob{
		DiffID: d,
		Digest: v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(digest, "sha256:")},
		Size:   cw.n,
		path:   filepath.Clean(f.Name()),
	}
	return nil
}

// bounded reads at most left bytes from r, and nothing once ctx is done.
type bounded struct {
	ctx  context.Context
	r    io.Reader
	left int64
}

func (b *bounded) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.left <= 0 {
		return 0, dockersave.ErrTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

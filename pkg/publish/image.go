package publish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	gzip "github.com/klauspost/compress/gzip"
)

// blob is one compressed layer: its digests, size, and where its bytes are
// on disk when this run has them (empty when the registry already has it).
type blob struct {
	Digest v1.Hash
	DiffID v1.Hash
	Size   int64
	path   string
	// onRead counts uploads: ggcr opens a layer only to upload it.
	onRead func(v1.Hash)
}

// layer is a blob as a go-containerregistry layer.
type layer struct{ b *blob }

func (l layer) Digest() (v1.Hash, error)            { return l.b.Digest, nil }
func (l layer) DiffID() (v1.Hash, error)            { return l.b.DiffID, nil }
func (l layer) Size() (int64, error)                { return l.b.Size, nil }
func (l layer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

func (l layer) Compressed() (io.ReadCloser, error) {
	if l.b.path == "" {
		return nil, fmt.Errorf("layer %s is not in this run's engine export and the registry does not have it: push again", l.b.Digest)
	}
	f, err := os.Open(l.b.path)
	if err != nil {
		return nil, err
	}
	if l.b.onRead != nil {
		l.b.onRead(l.b.Digest)
	}
	return f, nil
}

func (l layer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, rc}, nil
}

// image is an engine image assembled for a registry: the engine's config
// bytes (their digest is the image ID), its layers compressed, and a Docker
// schema 2 manifest over them. Its manifest digest is known before any
// upload, so it can be pushed by digest and tagged later.
type image struct {
	config    []byte
	configDig v1.Hash
	layers    []v1.Layer
	manifest  []byte
	digest    v1.Hash
	mediaType types.MediaType
}

func newImage(config []byte, blobs []*blob) (*image, error) {
	cd, cs, err := v1.SHA256(bytes.NewReader(config))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: cs, Digest: cd},
	}
	img := &image{config: config, configDig: cd, mediaType: types.DockerManifestSchema2}
	for _, b := range blobs {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.DockerLayer, Size: b.Size, Digest: b.Digest})
		img.layers = append(img.layers, layer{b})
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	img.digest, _, err = v1.SHA256(bytes.NewReader(img.manifest))
	return img, err
}

func (i *image) Layers() ([]v1.Layer, error)         { return i.layers, nil }
func (i *image) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }
func (i *image) Size() (int64, error)                { return int64(len(i.manifest)), nil }
func (i *image) ConfigName() (v1.Hash, error)        { return i.configDig, nil }
func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) Digest() (v1.Hash, error)            { return i.digest, nil }
func (i *image) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *image) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.config))
}
func (i *image) Manifest() (*v1.Manifest, error) {
	return v1.ParseManifest(bytes.NewReader(i.manifest))
}
func (i *image) LayerByDiffID(h v1.Hash) (v1.Layer, error) { return i.find(h, true) }
func (i *image) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == i.configDig {
		return configLayer{i}, nil
	}
	return i.find(h, false)
}

func (i *image) find(h v1.Hash, diff bool) (v1.Layer, error) {
	for _, l := range i.layers {
		var got v1.Hash
		if diff {
			got, _ = l.DiffID()
		} else {
			got, _ = l.Digest()
		}
		if got == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer %s in image %s", h, i.digest)
}

// configLayer is the config blob as a layer, for LayerByDigest.
type configLayer struct{ i *image }

func (c configLayer) Digest() (v1.Hash, error)            { return c.i.configDig, nil }
func (c configLayer) DiffID() (v1.Hash, error)            { return c.i.configDig, nil }
func (c configLayer) Size() (int64, error)                { return int64(len(c.i.config)), nil }
func (c configLayer) MediaType() (types.MediaType, error) { return types.DockerConfigJSON, nil }
func (c configLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c.i.config)), nil
}
func (c configLayer) Uncompressed() (io.ReadCloser, error) { return c.Compressed() }

// rawManifest is a manifest to PUT as is (tags, promotion in one repository).
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

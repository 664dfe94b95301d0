package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/hoistci/hoist/pkg/dockersave"
)

// exported is what one `docker save` stream gave: the configs of the wanted
// images (by image ID) and every layer, compressed into files, by diff_id.
type exported struct {
	configs map[string][]byte
	layers  map[v1.Hash]*blob
}

// export reads a `docker save` stream (the classic layout of engines up to
// 24 and the OCI layout of 25 and later), keeping the config of each image
// in wantConfigs and compressing each layer whose diff_id needLayer wants
// (an unknown diff_id is always compressed: the classic layout names layers
// by an ID that is not their diff_id) into dir.
func export(ctx context.Context, r io.Reader, dir string, wantConfigs map[string]bool, needLayer func(v1.Hash) bool) (*exported, error) {
	out := &exported{configs: map[string][]byte{}, layers: map[v1.Hash]*blob{}}
	sr := dockersave.NewReader(r)
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
		case e.Kind == dockersave.Layer:
			if err := compress(out, sr, dir); err != nil {
				return nil, err
			}
		case e.Kind == dockersave.Blob:
			// OCI layout: blobs are named by digest; a layer's digest is
			// its diff_id. Manifests and indexes are small JSON: skip them.
			d := v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(e.Digest, "sha256:")}
			if !needLayer(d) {
				continue
			}
			if err := compress(out, sr, dir); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func keepConfig(out *exported, id string, r io.Reader) error {
	b, err := io.ReadAll(r)
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

// compress gzips one layer tar into dir, learning its diff_id and digest.
func compress(out *exported, r io.Reader, dir string) error {
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
	if _, dup := out.layers[d]; dup {
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

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

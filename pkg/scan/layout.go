package scan

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/lock"
)

// saveLayout exports images from the engine with ONE `docker save` into an
// OCI image layout at dir, each image's manifest annotated with its name, so
// Trivy reads each one as `--input DIR@NAME`. A layer shared by several
// images (the matrix's base) is exported and stored once; scanning with
// `--image-src docker` instead makes the engine export every image whole,
// shared layers again each time, and Trivy copy each export to a temporary
// file first. Layers stay uncompressed: nothing is gzipped.
func saveLayout(ctx context.Context, e Engine, images []lock.Image, dir string) error {
	if strings.Contains(dir, "@") {
		return fmt.Errorf("the image layout folder %s contains '@', which Trivy reads as a separator: use a build folder without it", dir)
	}
	refs := make([]string, len(images))
	for i, img := range images {
		refs[i] = img.Ref
	}
	rc, err := e.Save(ctx, refs...)
	if err != nil {
		return err
	}
	defer rc.Close()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return fmt.Errorf("creating the image layout: %w", err)
	}
	files := map[string]descriptor{} // path in the save stream -> its blob
	links := map[string]string{}     // path -> path it links to
	var manifest []struct {
		Config string
		Layers []string
	}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the engine's export: %w", err)
		}
		name := path.Clean(h.Name)
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), h.Linkname)
			}
			links[name] = path.Clean(target)
		case tar.TypeReg:
			if name == "manifest.json" {
				if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
					return fmt.Errorf("reading the engine's export manifest: %w", err)
				}
				continue
			}
			d, err := writeBlob(blobs, tr)
			if err != nil {
				return err
			}
			files[name] = d
		}
	}
	resolve := func(p string) (descriptor, error) {
		p = path.Clean(p)
		for range 8 {
			if d, ok := files[p]; ok {
				return d, nil
			}
			t, ok := links[p]
			if !ok {
				break
			}
			p = t
		}
		return descriptor{}, fmt.Errorf("the engine's export lacks %s", p)
	}
	byID := map[string]int{}
	for i, img := range images {
		byID[img.ImageID] = i
	}
	var index []descriptor
	for _, m := range manifest {
		cfg, err := resolve(m.Config)
		if err != nil {
			return err
		}
		i, ok := byID[cfg.Digest]
		if !ok {
			continue // another image under one of the tags: never scanned by name
		}
		man := ociManifest{SchemaVersion: 2, MediaType: mediaManifest,
			Config: descriptor{MediaType: mediaConfig, Digest: cfg.Digest, Size: cfg.Size}, Layers: []descriptor{}}
		for _, l := range m.Layers {
			d, err := resolve(l)
			if err != nil {
				return err
			}
			man.Layers = append(man.Layers, descriptor{MediaType: mediaLayer, Digest: d.Digest, Size: d.Size})
		}
		b, _ := json.Marshal(man)
		md, err := writeBlob(blobs, strings.NewReader(string(b)))
		if err != nil {
			return err
		}
		index = append(index, descriptor{MediaType: mediaManifest, Digest: md.Digest, Size: md.Size,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": images[i].Name}})
		delete(byID, cfg.Digest)
	}
	if len(byID) > 0 {
		var missing []string
		for id, i := range byID {
			missing = append(missing, fmt.Sprintf("%s (%s)", images[i].Ref, short(id)))
		}
		return fmt.Errorf("the engine's export lacks %s: run the Images target again", strings.Join(missing, ", "))
	}
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType   string            `json:"mediaType,omitempty"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// writeBlob stores r under its sha256 in blobs (once per content).
func writeBlob(blobs string, r io.Reader) (descriptor, error) {
	f, err := os.CreateTemp(blobs, ".blob-*")
	if err != nil {
		return descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(blobs, sum)); err != nil {
		return descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	return descriptor{Digest: "sha256:" + sum, Size: n}, nil
}

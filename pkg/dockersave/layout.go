package dockersave

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// LayoutImage is one image WriteLayout must find in a save stream.
type LayoutImage struct {
	Name         string // its org.opencontainers.image.ref.name in the layout
	Ref          string // the engine reference, for messages
	ConfigDigest string // how it is found in the stream (sha256:…)
}

// WriteLayout writes the images of one `docker save` stream rc into an
// OCI image layout at dir, each image's manifest annotated with its Name,
// and returns each Name's manifest digest. A layer shared by several
// images is stored once. Layers are written uncompressed, as a classic
// store saves them; a containerd store's compressed layers are
// uncompressed on the way (the Reader does it), so a blob's name is its
// diff_id on both stores. Images are found by config digest (on a
// containerd store the image ID is a manifest's digest, and the manifest
// written here is a new one); another image saved under one of the names
// is left out, and a wanted image missing from the stream is an error.
func WriteLayout(rc io.Reader, images []LayoutImage, dir string) (map[string]string, error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, fmt.Errorf("creating the image layout: %w", err)
	}
	files := map[string]Descriptor{} // path in the save stream -> its blob
	var manifest []Image
	sr := NewReader(rc)
	defer sr.Close()
	for {
		e, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the engine's export: %w", err)
		}
		if e.Kind == ManifestJSON {
			if manifest, err = DecodeManifest(sr); err != nil {
				return nil, fmt.Errorf("reading the engine's export manifest: %w", err)
			}
			continue
		}
		d, err := writeBlob(blobs, sr)
		if err != nil {
			return nil, err
		}
		files[e.Name] = d
	}
	resolve := func(p string) (Descriptor, error) {
		p = sr.Resolve(p)
		if d, ok := files[p]; ok {
			return d, nil
		}
		return Descriptor{}, fmt.Errorf("the engine's export lacks %s", p)
	}
	byConfig := map[string]int{}
	for i, img := range images {
		byConfig[img.ConfigDigest] = i
	}
	digests := map[string]string{}
	var index []Descriptor
	for _, m := range manifest {
		cfg, err := resolve(m.Config)
		if err != nil {
			return nil, err
		}
		i, ok := byConfig[cfg.Digest]
		if !ok {
			continue
		}
		man := Manifest{SchemaVersion: 2, MediaType: MediaOCIManifest,
			Config: Descriptor{MediaType: MediaOCIConfig, Digest: cfg.Digest, Size: cfg.Size}, Layers: []Descriptor{}}
		for _, l := range m.Layers {
			d, err := resolve(l)
			if err != nil {
				return nil, err
			}
			man.Layers = append(man.Layers, Descriptor{MediaType: MediaOCILayer, Digest: d.Digest, Size: d.Size})
		}
		b, _ := json.Marshal(man)
		md, err := writeBlob(blobs, strings.NewReader(string(b)))
		if err != nil {
			return nil, err
		}
		index = append(index, Descriptor{MediaType: MediaOCIManifest, Digest: md.Digest, Size: md.Size,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": images[i].Name}})
		digests[images[i].Name] = md.Digest
		delete(byConfig, cfg.Digest)
	}
	if len(byConfig) > 0 {
		var missing []string
		for id, i := range byConfig {
			missing = append(missing, fmt.Sprintf("%s (%s)", images[i].Ref, shortDigest(id)))
		}
		return nil, fmt.Errorf("the engine's export lacks %s: run the Images target again", strings.Join(missing, ", "))
	}
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaOCIIndex, "manifests": index})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return nil, fmt.Errorf("writing the image layout: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(LayoutFile), 0o644); err != nil {
		return nil, fmt.Errorf("writing the image layout: %w", err)
	}
	return digests, nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// writeBlob stores r under its sha256 in blobs (once per content).
func writeBlob(blobs string, r io.Reader) (Descriptor, error) {
	f, err := os.CreateTemp(blobs, ".blob-*")
	if err != nil {
		return Descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(blobs, sum)); err != nil {
		return Descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	return Descriptor{Digest: "sha256:" + sum, Size: n}, nil
}

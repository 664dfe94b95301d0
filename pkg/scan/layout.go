package scan

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

	"github.com/hoistci/hoist/pkg/dockersave"
	"github.com/hoistci/hoist/pkg/lock"
)

// saveLayout exports images from the engine with ONE `docker save` into an
// OCI image layout at dir, each image's manifest annotated with its name, so
// Trivy reads each one as `--input DIR@NAME`. A layer shared by several
// images (the matrix's base) is exported and stored once; scanning with
// `--image-src docker` instead makes the engine export every image whole,
// shared layers again each time, and Trivy copy each export to a temporary
// file first. Layers are written uncompressed, as a classic store saves
// them; a containerd store's compressed layers are uncompressed on the way
// (dockersave does it), so a blob's name is its diff_id on both stores.
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
	files := map[string]dockersave.Descriptor{} // path in the save stream -> its blob
	var manifest []dockersave.Image
	sr := dockersave.NewReader(rc)
	defer sr.Close()
	for {
		e, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the engine's export: %w", err)
		}
		if e.Kind == dockersave.ManifestJSON {
			if manifest, err = dockersave.DecodeManifest(sr); err != nil {
				return fmt.Errorf("reading the engine's export manifest: %w", err)
			}
			continue
		}
		d, err := writeBlob(blobs, sr)
		if err != nil {
			return err
		}
		files[e.Name] = d
	}
	resolve := func(p string) (dockersave.Descriptor, error) {
		p = sr.Resolve(p)
		if d, ok := files[p]; ok {
			return d, nil
		}
		return dockersave.Descriptor{}, fmt.Errorf("the engine's export lacks %s", p)
	}
	// By config digest: the image ID is the manifest's digest on a
	// containerd store, and the manifest written here is a new one.
	byID := map[string]int{}
	for i, img := range images {
		byID[img.ConfigDigest] = i
	}
	var index []dockersave.Descriptor
	for _, m := range manifest {
		cfg, err := resolve(m.Config)
		if err != nil {
			return err
		}
		i, ok := byID[cfg.Digest]
		if !ok {
			continue // another image under one of the tags: never scanned by name
		}
		man := dockersave.Manifest{SchemaVersion: 2, MediaType: dockersave.MediaOCIManifest,
			Config: dockersave.Descriptor{MediaType: dockersave.MediaOCIConfig, Digest: cfg.Digest, Size: cfg.Size}, Layers: []dockersave.Descriptor{}}
		for _, l := range m.Layers {
			d, err := resolve(l)
			if err != nil {
				return err
			}
			man.Layers = append(man.Layers, dockersave.Descriptor{MediaType: dockersave.MediaOCILayer, Digest: d.Digest, Size: d.Size})
		}
		b, _ := json.Marshal(man)
		md, err := writeBlob(blobs, strings.NewReader(string(b)))
		if err != nil {
			return err
		}
		index = append(index, dockersave.Descriptor{MediaType: dockersave.MediaOCIManifest, Digest: md.Digest, Size: md.Size,
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
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": dockersave.MediaOCIIndex, "manifests": index})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(dockersave.LayoutFile), 0o644)
}

// writeBlob stores r under its sha256 in blobs (once per content).
func writeBlob(blobs string, r io.Reader) (dockersave.Descriptor, error) {
	f, err := os.CreateTemp(blobs, ".blob-*")
	if err != nil {
		return dockersave.Descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return dockersave.Descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(blobs, sum)); err != nil {
		return dockersave.Descriptor{}, fmt.Errorf("writing the image layout: %w", err)
	}
	return dockersave.Descriptor{Digest: "sha256:" + sum, Size: n}, nil
}

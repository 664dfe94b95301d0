package standin

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/docker/docker/client"
	"github.com/hoistci/hoist/pkg/engine"
)

// Layer is the files of one image layer: path -> content. Files under bin/
// are executable.
type Layer map[string][]byte

// MakeImage loads an image made of layers (bottom first) into the engine as
// ref, with no build and no pull, and returns it as the engine sees it. The
// same layers give the same layer digests, so images can share a base.
func MakeImage(ctx context.Context, e *engine.Engine, ref string, layers ...Layer) (engine.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var werr error
	add := func(name string, b []byte) {
		if werr == nil {
			werr = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		}
		if werr == nil {
			_, werr = tw.Write(b)
		}
	}
	var diffIDs, paths []string
	for i, l := range layers {
		lt, err := layerTar(l)
		if err != nil {
			return engine.Image{}, err
		}
		s := sha256.Sum256(lt)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(s[:]))
		p := fmt.Sprintf("l%d.tar", i)
		paths = append(paths, p)
		add(p, lt)
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	add("config.json", cfg)
	mf, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": paths}})
	add("manifest.json", mf)
	if werr == nil {
		werr = tw.Close()
	}
	if werr != nil {
		return engine.Image{}, fmt.Errorf("writing the archive of %s: %w", ref, werr)
	}
	resp, err := e.API.ImageLoad(ctx, &buf, client.ImageLoadWithQuiet(true))
	if err != nil {
		return engine.Image{}, fmt.Errorf("loading %s: %w", ref, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return engine.Image{}, fmt.Errorf("loading %s: %w", ref, err)
	}
	img, err := e.Inspect(ctx, ref)
	// The config digest is known here on either store (on a containerd
	// store the image ID is the manifest's digest).
	s := sha256.Sum256(cfg)
	img.Config = "sha256:" + hex.EncodeToString(s[:])
	return img, err
}

func layerTar(l Layer) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if strings.HasPrefix(n, "bin/") {
			mode = 0o755 // programs, e.g. a static busybox pods run
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(l[n])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(l[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fromLayout reads the items' configs and layers from an OCI image layout
// folder whose blobs are named by their digest and whose layers are stored
// uncompressed, so a layer's name is its diff_id: the scan's export of the
// same images. Every blob is checked against its name on the way, as an
// engine export's is. ok is false, with nothing read, when the folder lacks
// a blob the items need or an item's engine ID is not its config digest (a
// containerd store's, whose stored compressed layers a push keeps as they
// are): the caller then exports from the engine.
func fromLayout(ctx context.Context, layout string, items []*pushItem, dir string) (ex *exported, ok bool, err error) {
	blobPath := func(d string) string {
		return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	var configs []string
	var diffs []v1.Hash
	seen := map[string]bool{}
	for _, it := range items {
		if it.img.ImageID != it.img.ConfigDigest {
			return nil, false, nil
		}
		if !seen[it.img.ConfigDigest] {
			seen[it.img.ConfigDigest] = true
			configs = append(configs, it.img.ConfigDigest)
		}
		for _, d := range it.img.DiffIDs {
			h, err := v1.NewHash(d)
			if err != nil {
				return nil, false, fmt.Errorf("the lock file records layer %q of %s, which is not a digest: run the Images target", d, it.img.Name)
			}
			if !seen[h.String()] {
				seen[h.String()] = true
				diffs = append(diffs, h)
			}
		}
	}
	for _, d := range append(configs, hashStrings(diffs)...) {
		if _, err := os.Stat(blobPath(d)); errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		} else if err != nil {
			return nil, false, fmt.Errorf("reading the scan's image layout: %w", err)
		}
	}
	ex = &exported{configs: map[string][]byte{}, layers: map[v1.Hash]*blob{}, manifests: map[string]string{}, indexes: map[string][]string{}}
	for _, c := range configs {
		f, err := os.Open(blobPath(c))
		if err != nil {
			return nil, false, fmt.Errorf("reading the scan's image layout: %w", err)
		}
		err = keepConfig(ex, c, f)
		f.Close()
		if err != nil {
			return nil, false, err
		}
	}
	// Each layer is compressed on its own core; compress learns the
	// diff_id from the bytes, so a blob whose content is not its name is
	// caught here.
	var mu sync.Mutex
	err = forEach(ctx, runtime.NumCPU(), diffs, func(ctx context.Context, h v1.Hash) error {
		f, err := os.Open(blobPath(h.String()))
		if err != nil {
			return fmt.Errorf("reading the scan's image layout: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("reading the scan's image layout: %w", err)
		}
		one := &exported{layers: map[v1.Hash]*blob{}}
		if err := compress(one, &bounded{ctx: ctx, r: f, left: st.Size() + 1}, dir, func(d v1.Hash) bool { return d == h }); err != nil {
			return err
		}
		b, ok := one.layers[h]
		if !ok {
			return fmt.Errorf("the scan's image layout holds a layer %s whose content has another digest: run the Scan target again", h)
		}
		mu.Lock()
		ex.layers[h] = b
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return ex, true, nil
}

func hashStrings(hs []v1.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

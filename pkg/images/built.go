package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hoistci/hoist/pkg/lock"
)

// builtName is the file, beside the lock, where Hoist records the images it
// built itself. A label is no evidence: anyone may build FROM Hoist's image,
// inherit its io.hoist.inputs label and tag the result over Hoist's
// reference. Only an image whose engine ID equals the ID Hoist recorded for
// the same inputs hash is taken as unchanged.
const builtName = "built.json"

// maxBuilt bounds the record read back: it holds a few hundred bytes per
// image, so anything larger is not Hoist's.
const maxBuilt = 16 << 20

// builtImage is what Hoist built for one inputs hash.
type builtImage struct {
	ImageID      string `json:"image_id"`
	ConfigDigest string `json:"config_digest,omitempty"`
}

// builtRecord is built.json: inputs hash -> the image Hoist made for it.
type builtRecord struct {
	path string
	mu   sync.Mutex
	m    map[string]builtImage
}

func builtPath(lockPath string) string {
	return filepath.Join(filepath.Dir(lockPath), builtName)
}

// readBuilt reads the record; a missing one is empty (everything rebuilds,
// cheaply, from BuildKit's cache), an unreadable one is an error.
func readBuilt(path string) (*builtRecord, error) {
	r := &builtRecord{path: path, m: map[string]builtImage{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBuilt+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxBuilt {
		return nil, fmt.Errorf("reading %s: larger than %d MiB: delete it (images are then rebuilt from the build cache)", path, maxBuilt>>20)
	}
	if err := json.Unmarshal(b, &r.m); err != nil {
		return nil, fmt.Errorf("reading %s: %v: delete it (images are then rebuilt from the build cache)", path, err)
	}
	if r.m == nil {
		r.m = map[string]builtImage{}
	}
	return r, nil
}

// made says whether Hoist itself built id for inputs hash sum.
func (r *builtRecord) made(sum, id string) (builtImage, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.m[sum]
	return b, ok && id != "" && b.ImageID == id
}

func (r *builtRecord) put(sum string, b builtImage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[sum] = b
}

// write stores the record atomically.
func (r *builtRecord) write() error {
	r.mu.Lock()
	b, err := json.MarshalIndent(r.m, "", "  ")
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return fmt.Errorf("recording built images: %w", err)
	}
	if err := lock.WriteFileAtomic(r.path, append(b, '\n')); err != nil {
		return fmt.Errorf("recording built images in %s: %w", r.path, err)
	}
	return nil
}

// keep forgets every hash not in used.
func (r *builtRecord) keep(used map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.m {
		if !used[k] {
			delete(r.m, k)
		}
	}
}

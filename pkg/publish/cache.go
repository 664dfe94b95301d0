package publish

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/lock"
)

// cache remembers, in the build folder, what earlier pushes learned from the
// engine: each image's config bytes and each layer's compressed digest and
// size. With it, an image whose blobs a registry already has is pushed with
// no engine export at all. It is only a hint: a registry that lacks a blob
// sends Push back to the engine, and a config is checked against its digest.
type cache struct {
	path string
	mu   sync.Mutex
	data cacheData
}

type cacheData struct {
	Layers  map[string]cachedLayer `json:"layers"`  // by diff_id
	Configs map[string][]byte      `json:"configs"` // by config digest
}

type cachedLayer struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

func openCache(path string) *cache {
	c := &cache{path: path, data: cacheData{Layers: map[string]cachedLayer{}, Configs: map[string][]byte{}}}
	b, err := os.ReadFile(path)
	if err != nil {
		return c
	}
	var d cacheData
	if json.Unmarshal(b, &d) == nil {
		if d.Layers != nil {
			c.data.Layers = d.Layers
		}
		if d.Configs != nil {
			c.data.Configs = d.Configs
		}
	}
	return c
}

func (c *cache) config(digest string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.data.Configs[digest]
	if !ok {
		return nil, false
	}
	h, _, err := v1.SHA256(bytesReader(b))
	if err != nil || h.String() != digest {
		return nil, false
	}
	return b, true
}

func (c *cache) layer(diffID string) (*blob, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.data.Layers[diffID]
	if !ok {
		return nil, false
	}
	d, err1 := v1.NewHash(l.Digest)
	dd, err2 := v1.NewHash(diffID)
	if err1 != nil || err2 != nil || l.Size <= 0 {
		return nil, false
	}
	return &blob{Digest: d, DiffID: dd, Size: l.Size}, true
}

func (c *cache) put(configs map[string][]byte, layers map[v1.Hash]*blob) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, b := range configs {
		c.data.Configs[id] = b
	}
	for d, b := range layers {
		c.data.Layers[d.String()] = cachedLayer{Digest: b.Digest.String(), Size: b.Size}
	}
}

// save writes the cache; a cache that cannot be written costs only speed.
func (c *cache) save() error {
	c.mu.Lock()
	b, err := json.Marshal(c.data)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dirOf(c.path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return lock.WriteFileAtomic(c.path, b)
}

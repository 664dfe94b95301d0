// Package imagefix builds small real images in the engine for the tests and
// benchmarks of Push, DigestGate and Promote, and records them in a lock
// file as tested.
package imagefix

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
)

// Spec is one image: FROM base, then one COPY (one layer) per file, in
// name order.
type Spec struct {
	Name  string // lock name
	Ref   string // engine reference to tag
	Files map[string][]byte
}

// Build builds s with BuildKit through the engine and returns its lock
// record, marked as tested when tested is set.
func Build(ctx context.Context, e *engine.Engine, b *engine.Builder, base string, s Spec, tested bool) (lock.Image, error) {
	dir, err := os.MkdirTemp("", "hoist-imagefix-")
	if err != nil {
		return lock.Image{}, err
	}
	defer os.RemoveAll(dir)
	var df strings.Builder
	fmt.Fprintf(&df, "FROM %s\n", base)
	names := make([]string, 0, len(s.Files))
	for n := range s.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), s.Files[n], 0o644); err != nil {
			return lock.Image{}, err
		}
		fmt.Fprintf(&df, "COPY %s /data/%s\n", n, n)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		return lock.Image{}, err
	}
	if _, err := b.Build(ctx, engine.BuildRequest{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Tags: []string{s.Ref}}, io.Discard); err != nil {
		return lock.Image{}, fmt.Errorf("building %s: %w", s.Ref, err)
	}
	img, err := Record(ctx, e, s.Name, s.Ref)
	if err != nil {
		return lock.Image{}, err
	}
	if tested {
		img.Test = &lock.Test{Passed: true, At: time.Now().UTC(), ImageID: img.ImageID}
	}
	return img, nil
}

// Record is the lock record of the engine's image ref, as Images writes
// it: the engine's ID, the config digest (read from an export on a
// containerd store), diff_ids, labels and the store.
func Record(ctx context.Context, e *engine.Engine, name, ref string) (lock.Image, error) {
	got, err := e.Inspect(ctx, ref)
	if err != nil {
		return lock.Image{}, err
	}
	cfg, err := e.ConfigDigest(ctx, ref)
	if err != nil {
		return lock.Image{}, err
	}
	return lock.Image{Name: name, Ref: ref, ImageID: got.ID, ConfigDigest: cfg, DiffIDs: got.DiffIDs, Labels: got.Labels, Store: string(got.Store), Built: time.Now().UTC()}, nil
}

// WriteLock writes a lock file at path with version and images.
func WriteLock(path, version string, imgs ...lock.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	l := &lock.Lock{Project: "hoist-test", Version: version, Created: time.Now().UTC()}
	for _, img := range imgs {
		l.Put(img)
	}
	return lock.Write(path, l)
}

package plan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/readlimit"
)

// Hasher computes inputs hashes, hashing each build context once however
// many entries share it.
type Hasher struct {
	Resolve Resolver
	mu      sync.Mutex
	ctxs    map[string]*ctxHash
}

type ctxHash struct {
	once sync.Once
	sum  string
	err  error
}

// Inputs is the hash of everything that goes into building img: the
// Dockerfile, arguments, labels, target, network, platforms (when chosen), the context's files (less
// what the Dockerfile's .dockerignore drops), each named context (a
// folder's files, or an image's ID), the IDs of the images its FROM, COPY
// --from and RUN --mount=from lines name, and the ids of the secrets and
// SSH agents it mounts. A secret's value is never hashed: the hash must not
// become a way to test guesses of it, so a new value alone does not make
// an image changed (HOIST_REBUILD=1 rebuilds).
// The same inputs give the same hash; any change gives another.
func (h *Hasher) Inputs(ctx context.Context, img Image) (string, error) {
	df, err := readlimit.ReadFile(img.Dockerfile, "Dockerfile", readlimit.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("reading Dockerfile of %s: %w", img.Name, err)
	}
	uses, err := ReadDockerfile(df, img.Args)
	if err != nil {
		return "", fmt.Errorf("image %s: reading %s: %w", img.Name, img.Dockerfile, err)
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "hoist-inputs v2\ndockerfile %d\n", len(df))
	sum.Write(df)
	for _, k := range sortedKeys(img.Args) {
		fmt.Fprintf(sum, "arg %q=%q\n", k, img.Args[k])
	}
	for _, k := range sortedKeys(img.Labels) {
		fmt.Fprintf(sum, "label %q=%q\n", k, img.Labels[k])
	}
	fmt.Fprintf(sum, "target %q\nnetwork %q\n", img.Target, img.Network)
	if len(img.Platforms) > 0 {
		// Only when chosen, so an image without platforms keeps its hash.
		fmt.Fprintf(sum, "platforms %q\n", img.Platforms)
	}
	c, err := h.context(img.ContextDir, IgnoreFile(img.ContextDir, img.Dockerfile))
	if err != nil {
		return "", fmt.Errorf("hashing build context of %s: %w", img.Name, err)
	}
	fmt.Fprintf(sum, "context %s\n", c)
	resolve := func(ref string) (string, error) {
		id := ""
		if h.Resolve != nil {
			if id, err = h.Resolve(ctx, ref); err != nil {
				return "", fmt.Errorf("resolving image %s of %s: %w", ref, img.Name, err)
			}
		}
		if id == "" {
			// Not in the engine: the build will pull it, so the reference is
			// all we know; a later run sees the pulled ID and rebuilds once.
			id = "absent"
		}
		return id, nil
	}
	for _, name := range sortedKeys(img.Contexts) {
		src := img.Contexts[name]
		var got string
		if ref, ok := strings.CutPrefix(src, config.ImageContextPrefix); ok {
			got, err = resolve(ref)
		} else {
			got, err = h.context(src, filepath.Join(src, ".dockerignore"))
		}
		if err != nil {
			return "", fmt.Errorf("hashing context %s of %s: %w", name, img.Name, err)
		}
		fmt.Fprintf(sum, "named context %q %s\n", name, got)
	}
	for _, ref := range ids(uses.Sources) {
		if _, ok := img.Contexts[ref]; ok {
			continue // a named context, hashed above
		}
		id, err := resolve(ref)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(sum, "from %q %s\n", ref, id)
	}
	for _, id := range ids(uses.Secrets) {
		fmt.Fprintf(sum, "secret %q\n", id)
	}
	for _, id := range ids(uses.SSH) {
		fmt.Fprintf(sum, "ssh %q\n", id)
	}
	return "sha256:" + hex.EncodeToString(sum.Sum(nil)), nil
}

// PlatformInputs is the inputs hash of one platform's image of a
// multi-platform image whose Inputs are sum: each platform's image carries
// its own, so each is found unchanged (or not) on its own.
func PlatformInputs(sum, platform string) string {
	h := sha256.Sum256([]byte("hoist-platform v1\n" + sum + "\n" + platform + "\n"))
	return "sha256:" + hex.EncodeToString(h[:])
}

// IgnoreFile is the ignore file BuildKit applies to the main context: one
// named after the Dockerfile (Dockerfile.dockerignore, beside it) when it
// exists, else the context's .dockerignore.
func IgnoreFile(contextDir, dockerfile string) string {
	if p := dockerfile + ".dockerignore"; fileExists(p) {
		return p
	}
	return filepath.Join(contextDir, ".dockerignore")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func (h *Hasher) context(dir, ignore string) (string, error) {
	h.mu.Lock()
	if h.ctxs == nil {
		h.ctxs = map[string]*ctxHash{}
	}
	key := dir + "\x00" + ignore
	c, ok := h.ctxs[key]
	if !ok {
		c = &ctxHash{}
		h.ctxs[key] = c
	}
	h.mu.Unlock()
	c.once.Do(func() { c.sum, c.err = hashContext(dir, ignore) })
	return c.sum, c.err
}

// hashContext hashes the files BuildKit would send: every file under dir
// except those the ignore file (when it exists) excludes.
func hashContext(dir, ignore string) (string, error) {
	var pm *patternmatcher.PatternMatcher
	b, err := readlimit.ReadFile(ignore, ".dockerignore", readlimit.Dockerfile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err == nil {
		patterns, err := ignorefile.ReadAll(bytes.NewReader(b))
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", ignore, err)
		}
		if pm, err = patternmatcher.New(patterns); err != nil {
			return "", fmt.Errorf("reading %s: %w", ignore, err)
		}
	}
	sum := sha256.New()
	buf := make([]byte, 64<<10)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if pm != nil {
			skip, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if skip {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			fmt.Fprintf(sum, "dir %q %o\n", rel, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(sum, "link %q %q\n", rel, t)
		case info.Mode().IsRegular():
			fmt.Fprintf(sum, "file %q %o %d\n", rel, info.Mode().Perm(), info.Size())
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(sum, f, buf)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(sum.Sum(nil)), nil
}

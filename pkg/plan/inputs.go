package plan

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
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
// Dockerfile, arguments, labels, target, the context's files (less what
// .dockerignore drops) and the IDs of the base images its FROM lines name.
// The same inputs give the same hash; any change gives another.
func (h *Hasher) Inputs(ctx context.Context, img Image) (string, error) {
	df, err := os.ReadFile(img.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("reading Dockerfile of %s: %w", img.Name, err)
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "hoist-inputs v1\ndockerfile %d\n", len(df))
	sum.Write(df)
	for _, k := range sortedKeys(img.Args) {
		fmt.Fprintf(sum, "arg %q=%q\n", k, img.Args[k])
	}
	for _, k := range sortedKeys(img.Labels) {
		fmt.Fprintf(sum, "label %q=%q\n", k, img.Labels[k])
	}
	fmt.Fprintf(sum, "target %q\n", img.Target)
	c, err := h.context(img.ContextDir)
	if err != nil {
		return "", fmt.Errorf("hashing build context of %s: %w", img.Name, err)
	}
	fmt.Fprintf(sum, "context %s\n", c)
	for _, ref := range FromRefs(df, img.Args) {
		id := ""
		if h.Resolve != nil {
			if id, err = h.Resolve(ctx, ref); err != nil {
				return "", fmt.Errorf("resolving base %s of %s: %w", ref, img.Name, err)
			}
		}
		if id == "" {
			// Not in the engine: the build will pull it, so the reference is
			// all we know; a later run sees the pulled ID and rebuilds once.
			id = "absent"
		}
		fmt.Fprintf(sum, "from %q %s\n", ref, id)
	}
	return "sha256:" + hex.EncodeToString(sum.Sum(nil)), nil
}

func (h *Hasher) context(dir string) (string, error) {
	h.mu.Lock()
	if h.ctxs == nil {
		h.ctxs = map[string]*ctxHash{}
	}
	c, ok := h.ctxs[dir]
	if !ok {
		c = &ctxHash{}
		h.ctxs[dir] = c
	}
	h.mu.Unlock()
	c.once.Do(func() { c.sum, c.err = hashContext(dir) })
	return c.sum, c.err
}

// hashContext hashes the files BuildKit would send: every file under dir
// except those .dockerignore excludes.
func hashContext(dir string) (string, error) {
	var pm *patternmatcher.PatternMatcher
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reading .dockerignore: %w", err)
		}
		if pm, err = patternmatcher.New(patterns); err != nil {
			return "", fmt.Errorf("reading .dockerignore: %w", err)
		}
	}
	sum := sha256.New()
	buf := make([]byte, 64<<10)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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

// FromRefs returns the image references a Dockerfile's FROM lines name,
// leaving out scratch and earlier stages, with ${ARG}s expanded from args
// and the ARG defaults before the first FROM.
func FromRefs(dockerfile []byte, args map[string]string) []string {
	vars := map[string]string{}
	stages := map[string]bool{}
	var refs []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ARG":
			kv := strings.SplitN(f[1], "=", 2)
			if v, ok := args[kv[0]]; ok {
				vars[kv[0]] = v
			} else if len(kv) == 2 {
				vars[kv[0]] = strings.Trim(kv[1], `"'`)
			}
		case "FROM":
			i := 1
			for i < len(f) && strings.HasPrefix(f[i], "--") {
				i++
			}
			if i >= len(f) {
				continue
			}
			ref := os.Expand(f[i], func(k string) string { return vars[k] })
			if ref != "scratch" && !stages[strings.ToLower(ref)] && !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
			}
			if i+2 < len(f) && strings.EqualFold(f[i+1], "AS") {
				stages[strings.ToLower(f[i+2])] = true
			}
		}
	}
	sort.Strings(refs)
	return refs
}

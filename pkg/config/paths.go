package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// resolve is p (relative to the config's folder) with every symlink of
// its existing part followed; the part that does not exist yet (a
// build_dir Hoist will create) is appended as written, cleaned.
func (c *Config) resolve(p string) (string, error) {
	abs, err := filepath.Abs(c.Path(p))
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether path lies in (or is) dir; both are resolved.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// inside refuses a path a key names when, after symlinks, it leaves the
// repository (the folder holding the config) and no folder listed under
// `outside:` holds it. A build must not read /etc through `context:
// ../../etc`, nor a run write outside the checkout through build_dir.
func (c *Config) inside(line int, key, p string) error {
	root, err := filepath.EvalSymlinks(c.Dir)
	if err != nil {
		return &Error{File: c.File, Line: line, Msg: fmt.Sprintf("resolving the repository folder %s: %v", c.Dir, err)}
	}
	got, err := c.resolve(p)
	if err != nil {
		return &Error{File: c.File, Line: line, Msg: fmt.Sprintf("%s %s: %v: fix the path", key, p, err)}
	}
	if within(got, root) {
		return nil
	}
	for _, o := range c.Outside {
		if ok, err := c.resolve(o); err == nil && within(got, ok) {
			return nil
		}
	}
	return &Error{File: c.File, Line: line, Msg: fmt.Sprintf("%s %s resolves to %s, outside the repository %s: move it into the repository, or list the folder holding it under outside: (docs/config.md)", key, p, got, root)}
}

// checkOutside refuses an outside: entry that names no folder, so a typo
// cannot silently allow nothing (or, worse, the filesystem root).
func (c *Config) checkOutside() error {
	for _, o := range c.Outside {
		r, err := c.resolve(o)
		st, serr := os.Stat(r)
		switch {
		case o == "" || err != nil || serr != nil || !st.IsDir():
			return &Error{File: c.File, Line: c.keyLine["outside"], Msg: fmt.Sprintf("outside: %q is not a folder: list existing folders the repository may read from", o)}
		case r == string(filepath.Separator):
			return &Error{File: c.File, Line: c.keyLine["outside"], Msg: "outside: / would allow every path: list the folders the repository needs, e.g. ../shared-base"}
		}
	}
	return nil
}

// checkPaths applies inside to every path hoist.yaml gives that Hoist
// reads into a build or a run, or writes. Host files of bases, secret
// files and SSH keys are outside the repository by design and are not
// checked here (docs/security.md).
func (c *Config) checkPaths() error {
	if err := c.checkOutside(); err != nil {
		return err
	}
	top := func(key, p string) error {
		if p == "" {
			return nil
		}
		return c.inside(c.keyLine[key], key, p)
	}
	for _, kv := range [][2]string{{"version_file", c.VersionFile}, {"build_dir", c.BuildDir}} {
		if err := top(kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, img := range c.Images {
		for _, kv := range [][2]string{{"context", img.Context}, {"dockerfile", img.Dockerfile}, {"template", img.Template}} {
			if kv[1] == "" {
				continue
			}
			if err := c.inside(img.Line, fmt.Sprintf("image %q: %s", img.Name, kv[0]), kv[1]); err != nil {
				return err
			}
		}
		for _, name := range sortedMapKeys(img.Contexts) {
			src := img.Contexts[name]
			if strings.HasPrefix(src, ImageContextPrefix) {
				continue
			}
			if err := c.inside(img.Line, fmt.Sprintf("image %q: context %q", img.Name, name), src); err != nil {
				return err
			}
		}
		if img.Matrix != nil {
			for _, ax := range img.Matrix.Axes {
				if ax.File != "" {
					if err := c.inside(ax.Line, fmt.Sprintf("image %q: axis %q: file", img.Name, ax.Name), ax.File); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, kv := range []struct {
		line   int
		key, p string
	}{
		{c.Scan.Line, "scan: db_dir", c.Scan.DBDir},
		{c.Cluster.Line, "cluster: config", c.Cluster.Config},
		{c.Cluster.Line, "cluster: manifests", c.Cluster.Manifests},
		{c.Release.Line, "release: changelogs", c.Release.Changelogs},
		{c.Pins.Line, "pins: kustomization", c.Pins.Kustomization},
		{c.Attest.Line, "attest: public_key", c.Attest.PublicKey},
		{c.Attest.Line, "attest: keyless: root", c.keylessRoot()},
	} {
		if kv.p == "" {
			continue
		}
		if err := c.inside(kv.line, kv.key, kv.p); err != nil {
			return err
		}
	}
	return nil
}

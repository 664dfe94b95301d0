package shard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/readlimit"
)

// FileName is the fragment file of shard index of count.
func FileName(index, count int) string {
	return fmt.Sprintf("shard-%d-of-%d.json", index, count)
}

// Fragment is one shard's lock, as the join read it.
type Fragment struct {
	Path string
	Lock *lock.Lock
}

func (f Fragment) spec() string { return fmt.Sprintf("%d/%d", f.Lock.Shard.Index, f.Lock.Shard.Count) }

// Read loads every *.json file of dir (and of its folders, where a CI
// system's artifact download puts each artifact) as a fragment. A file
// that is not a whole fragment is refused by name: nothing is joined from
// part of a shard.
func Read(dir string) ([]Fragment, error) {
	var out []Fragment
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir && errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no shard fragments: %s does not exist: download the shards' artifacts there (or set HOIST_FRAGMENTS)", dir)
			}
			return fmt.Errorf("reading shard fragments: %w", err)
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		b, err := readlimit.ReadFile(path, "shard fragment", readlimit.Lock)
		if err != nil {
			return err
		}
		var l lock.Lock
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return fmt.Errorf("shard fragment %s is not a whole fragment (%v): download that shard's artifact again, or re-run the shard", path, err)
		}
		if l.Schema != lock.SchemaVersion || l.Shard == nil || l.Shard.Count < 1 || l.Shard.Index < 1 || l.Shard.Index > l.Shard.Count {
			return fmt.Errorf("shard fragment %s is not a shard's lock (no shard I/K, or schema %d): it was not written by the shard target", path, l.Schema)
		}
		out = append(out, Fragment{Path: path, Lock: &l})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no shard fragments in %s: download the shards' artifacts there (or set HOIST_FRAGMENTS)", dir)
	}
	return out, nil
}

// Want is what the join holds the fragments to.
type Want struct {
	Images   []string // every image of the plan, at this commit
	Commit   string   // HEAD of the joining checkout
	Version  string   // the version being released (the staging one on the staging line)
	Registry string   // HOST/REPOSITORY the shards had to push to
}

// Join checks that the fragments together are one whole release and
// merges them into one lock: one fragment per shard of one plan, every
// image of the plan in exactly one of them, each built at want's commit
// and version, tested, scanned and pushed by digest to want's registry.
// Any doubt refuses the whole join, naming the file and what to do.
func Join(frags []Fragment, want Want) (*lock.Lock, error) {
	sort.Slice(frags, func(i, j int) bool {
		a, b := frags[i].Lock.Shard, frags[j].Lock.Shard
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return frags[i].Path < frags[j].Path
	})
	count := frags[0].Lock.Shard.Count
	bySpec := map[int]Fragment{}
	for _, f := range frags {
		s := f.Lock.Shard
		if s.Count != count {
			return nil, fmt.Errorf("shard fragment %s is shard %s but %s is of %d shards: they come from two plans; join the artifacts of one workflow run", f.Path, f.spec(), frags[0].Path, count)
		}
		if prev, ok := bySpec[s.Index]; ok {
			return nil, fmt.Errorf("shard %s has two fragments, %s and %s (a duplicated artifact, or a shard run twice): keep one", f.spec(), prev.Path, f.Path)
		}
		bySpec[s.Index] = f
		if f.Lock.Revision != want.Commit {
			return nil, fmt.Errorf("shard fragment %s was built at commit %.12s, this checkout is %.12s: shards and the join run at one commit", f.Path, f.Lock.Revision, want.Commit)
		}
		if f.Lock.Version != want.Version {
			return nil, fmt.Errorf("shard fragment %s is version %s, this release is %s: the shards must build the version the plan job reserved", f.Path, f.Lock.Version, want.Version)
		}
	}
	for i := 1; i <= count; i++ {
		if _, ok := bySpec[i]; !ok {
			return nil, fmt.Errorf("shard %d/%d left no fragment: it failed, was killed or its artifact is missing; re-run it, then the join (nothing was tagged)", i, count)
		}
	}
	planned := map[string]bool{}
	for _, n := range want.Images {
		planned[n] = true
	}
	owner := map[string]string{}
	merged := &lock.Lock{Schema: lock.SchemaVersion, Project: frags[0].Lock.Project, Version: want.Version, Revision: want.Commit, Created: time.Now().UTC()}
	for _, f := range frags {
		if f.Lock.Project != merged.Project {
			return nil, fmt.Errorf("shard fragment %s is of project %s, %s of %s: join one repository's shards", f.Path, f.Lock.Project, frags[0].Path, merged.Project)
		}
		given := f.Lock.Shard.Images
		for _, img := range f.Lock.Images {
			if !slices.Contains(given, img.Name) {
				return nil, fmt.Errorf("shard fragment %s holds image %s, which the plan gave another shard: re-run shard %s with the plan's images", f.Path, img.Name, f.spec())
			}
		}
		for _, n := range given {
			if o, ok := owner[n]; ok {
				return nil, fmt.Errorf("image %s is claimed by two shards (%s and %s): a shard ran with another plan's images; run the plan again and every shard", n, o, f.Path)
			}
			owner[n] = f.Path
			if !planned[n] {
				return nil, fmt.Errorf("shard fragment %s holds image %s, which hoist.yaml at %.12s does not define", f.Path, n, want.Commit)
			}
			img, ok := f.Lock.Find(n)
			if !ok {
				return nil, fmt.Errorf("shard %s did not build image %s (%s): re-run that shard", f.spec(), n, f.Path)
			}
			if !pushedByDigest(*img, want.Registry) {
				return nil, fmt.Errorf("shard %s did not push image %s by digest to %s (%s): re-run that shard", f.spec(), n, want.Registry, f.Path)
			}
			merged.Images = append(merged.Images, *img)
		}
	}
	var missing []string
	for _, n := range want.Images {
		if _, ok := owner[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%d image(s) of hoist.yaml are in no shard (%s): the shards ran an older plan; run the plan again and every shard", len(missing), strings.Join(missing, ", "))
	}
	sort.Slice(merged.Images, func(i, j int) bool { return merged.Images[i].Name < merged.Images[j].Name })
	return merged, nil
}

// pushedByDigest: img has a by-digest reference under prefix
// (HOST/REPOSITORY), compared as registry names (docker.io is
// index.docker.io).
func pushedByDigest(img lock.Image, prefix string) bool {
	repo, err := name.NewRepository(prefix+"/"+img.Name, name.Insecure)
	if err != nil {
		return false
	}
	for _, p := range img.Pushed {
		d, err := name.NewDigest(p.Ref, name.Insecure)
		if err == nil && d.DigestStr() == p.Digest && d.Context().Name() == repo.Name() {
			return true
		}
	}
	return false
}

// Write stores l as shard index of count's fragment in dir.
func Write(dir string, l *lock.Lock, index, count int, images []string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("writing the shard fragment: %w", err)
	}
	f := *l
	f.Shard = &lock.Shard{Index: index, Count: count, Images: slices.Sorted(slices.Values(images))}
	f.Images = nil
	for _, img := range l.Images {
		if slices.Contains(images, img.Name) {
			f.Images = append(f.Images, img)
		}
	}
	path := filepath.Join(dir, FileName(index, count))
	return path, lock.Write(path, &f)
}

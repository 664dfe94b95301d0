// Package publish ships tested images: Push sends the images recorded in the
// lock file to a registry (blobs and manifests by digest first, tags last)
// and Promote copies a staging build to its release tags by digest. Both use
// the tag policy of package tags and the digest gate of package gate.
package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/hoistci/hoist/pkg/dockersave"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/tags"
)

// ErrNotTested means a registry tag names a digest other than the one
// tested: it was moved after the push.
var ErrNotTested = errors.New("not the tested image")

// ErrTagConflict means an immutable tag already names another digest.
var ErrTagConflict = errors.New("immutable tag already points at another digest")

// Engine is what Push needs of the Docker Engine.
type Engine interface {
	Inspect(ctx context.Context, ref string) (engine.Image, error)
	ConfigDigest(ctx context.Context, ref string) (string, error)
	Save(ctx context.Context, refs ...string) (io.ReadCloser, error)
}

// PushOptions configure Push.
type PushOptions struct {
	// LockPath is the lock file; its images are pushed and their pushed
	// references recorded in it.
	LockPath string
	// Prefix is HOST/REPOSITORY; image NAME goes to PREFIX/NAME.
	Prefix string
	// Version decides the tags (release, prerelease or staging); nil means
	// the version the lock file records.
	Version *semver.Version
	// WorkDir holds the push cache and temporary layer files (the build folder).
	WorkDir string
	// Progress, when set, receives one line per step.
	Progress io.Writer
	// Parallel bounds concurrent registry work (default 4).
	Parallel int
	// Layout, when set, is asked by Prestage for an OCI image layout
	// folder already holding the images' configs and uncompressed layers
	// by digest (the scan's export, beside which the blobs go up), read
	// instead of a second engine export. It returns "" for none, and
	// release, called once the blobs are read.
	Layout func(ctx context.Context) (dir string, release func())
	// DryRun runs the gate, reads the registry and reports the tags it
	// would write (in Written), writing nothing.
	DryRun bool
	// Attach, when set, attaches proofs to each manifest before tags are
	// written (see Attacher).
	Attach Attacher
	// StageProofs, when set, prepares each image's proofs as soon as its
	// digest is known, attaching nothing (see Attacher).
	StageProofs Attacher
	// DigestOnly pushes manifests by digest and writes no tag (a CI shard:
	// the join tags every shard's images at once, with Tag).
	DigestOnly bool
}

// PushedImage is what Push did for one image.
type PushedImage struct {
	Name     string
	Repo     string
	Digest   string
	Written  []string // tags written
	Kept     []string // tags that already pointed at this digest
	Uploaded int      // blobs uploaded (not mounted, not already there)
}

// PushResult is what Push did.
type PushResult struct {
	Images []PushedImage
	// Exported reports whether the engine had to export (docker save) images.
	Exported []string
}

// one image on its way to the registry.
type pushItem struct {
	img     lock.Image
	repo    name.Repository
	built   *image   // nil until its config and layer digests are known
	present bool     // the registry already has the manifest by digest
	ownOK   bool     // the version's own tag already names it
	tags    []string // the repository's tags before this push
	// platform is set on one platform's image of an image with platforms:
	// pushed by digest, then named by its index, never tagged itself.
	platform string
}

// Push pushes every image in the lock file. It refuses the whole push when
// any image is untested or differs from what was tested. Blobs go up once
// (shared blobs are mounted across repositories), manifests by digest, then
// the post-push digest gate runs on what the registry serves, and only then
// are tags written: immutable ones first (refusing any that names another
// digest), floating ones last and only forward.
func Push(ctx context.Context, c *registry.Client, e Engine, o PushOptions) (*PushResult, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	logf := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "push: "+format+"\n", a...)
		}
	}
	l, err := lock.Read(o.LockPath)
	if err != nil {
		return nil, err
	}
	if len(l.Images) == 0 {
		return nil, fmt.Errorf("%s lists no images: run the Images and Test targets first", o.LockPath)
	}
	if o.Version == nil {
		if o.Version, err = semver.StrictNewVersion(strings.TrimPrefix(l.Version, "v")); err != nil {
			return nil, fmt.Errorf("%s records version %q, which is not SemVer: run the Images target again", o.LockPath, l.Version)
		}
	}
	vtags, err := tags.For(o.Version)
	if err != nil {
		return nil, err
	}
	own := vtags[0].Name
	// A killed push leaves its export folder behind; the checkout's run
	// lock says no other push is using one now.
	if old, _ := filepath.Glob(filepath.Join(o.WorkDir, "push-*")); len(old) > 0 && !o.DryRun {
		for _, d := range old {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				os.RemoveAll(d)
			}
		}
	}

	// 1. The gate on what is in hand: tested, and unchanged since.
	items := make([]*pushItem, len(l.Images))
	errs := gate.EngineAll(ctx, e, l.Images)
	for i, img := range l.Images {
		if errs[i] != nil {
			continue
		}
		repo, err := c.Repository(o.Prefix + "/" + img.Name)
		if err != nil {
			return nil, err
		}
		items[i] = &pushItem{img: img, repo: repo}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("refusing to push: %w", err)
	}
	items, idx := expandPlatforms(items)

	// Credentials and permissions first (the write-up's discovery: 404 is a
	// first push), before any work on the engine.
	repos := make([]name.Repository, len(items))
	for i, it := range items {
		repos[i] = it.repo
	}
	sess, err := c.Session(ctx, repos[0].Registry, nil, repos)
	if err != nil {
		return nil, err
	}
	if err := forEach(ctx, tagJobs, items, func(ctx context.Context, it *pushItem) error {
		var err error
		it.tags, err = sess.Tags(ctx, it.repo)
		return err
	}); err != nil {
		return nil, err
	}
	moveTags(idx)

	if o.DryRun {
		res := &PushResult{}
		for _, it := range dryRunItems(items, idx) {
			plan, err := tags.Plan(o.Version, it.tags)
			if err != nil {
				return nil, err
			}
			pi := PushedImage{Name: it.img.Name, Repo: it.repo.String()}
			for _, t := range plan {
				pi.Written = append(pi.Written, t.Name)
			}
			res.Images = append(res.Images, pi)
			logf("dry run: %s (%s) -> %s:{%s}", it.img.Name, it.img.ImageID, it.repo, strings.Join(pi.Written, ","))
		}
		return res, nil
	}

	// 2. Assemble what the cache knows, and skip manifests already there.
	ch := openCache(filepath.Join(o.WorkDir, "push-cache.json"))
	var uploads counterSet
	for _, it := range items {
		it.built = fromCache(ch, it.img, &uploads)
	}
	if err := checkPresent(ctx, sess, items, own); err != nil {
		return nil, err
	}

	// 3. Which blobs does the registry lack? Where can it mount the rest from?
	pl, err := locate(ctx, c, items)
	if err != nil {
		return nil, err
	}

	// 4. Export from the engine only images with a blob nobody has.
	res := &PushResult{}
	var export []*pushItem
	for _, it := range items {
		if it.present {
			continue
		}
		if it.built == nil || anyMissing(it.built, pl.missing) {
			export = append(export, it)
		}
	}
	if len(export) > 0 {
		// Compressed layers wait here for their upload.
		tmp, err := os.MkdirTemp(o.WorkDir, "push-")
		if err != nil {
			return nil, fmt.Errorf("pushing: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := exportItems(ctx, e, ch, export, tmp, &uploads); err != nil {
			return nil, err
		}
		for _, it := range export {
			res.Exported = append(res.Exported, it.img.Name)
		}
		logf("exported %d image(s) from the engine: %s", len(export), strings.Join(res.Exported, ", "))
		if err := ch.save(); err != nil {
			logf("warning: could not save the push cache (%v): the next push may export again", err)
		}
		// Newly known manifests and blobs: ask the registry again.
		if err := checkPresent(ctx, sess, export, own); err != nil {
			return nil, err
		}
		if pl, err = locate(ctx, c, items); err != nil {
			return nil, err
		}
	}

	// Proofs that need only the digest go up beside the images' blobs.
	stg := startStages(ctx, o, sess, items)
	defer stg.stop()

	// 5. Upload each missing blob once, to the first repository needing it;
	// the others mount it from there.
	if err := placeBlobs(ctx, c, sess, o.Parallel, items, pl); err != nil {
		return nil, err
	}

	// 6. Manifests by digest (configs go up with them).
	if err := forEach(ctx, o.Parallel, items, func(ctx context.Context, it *pushItem) error {
		if it.present {
			return nil
		}
		ref := it.repo.Digest(it.built.digest.String())
		if err := c.Pusher().Push(ctx, ref, it.built); err != nil {
			return c.Explain("pushing "+it.img.Name+" to "+ref.String(), ref.RegistryStr(), err)
		}
		logf("%s: %s", it.img.Name, ref)
		return nil
	}); err != nil {
		return nil, err
	}

	// 6b. Each image with platforms: its index, naming those manifests.
	if err := pushIndexes(ctx, c, sess, idx, own, o.Parallel, logf); err != nil {
		return nil, err
	}

	// 7. The gate on what the registry now serves. A manifest already there
	// was found either by the digest of the manifest we assembled from the
	// tested config (so it is those bytes) or under the version's own tag
	// with the tested config digest checked, so only new ones are read back.
	// Each image's proofs follow its gate (and its staged proofs), before
	// any tag names it.
	if err := forEach(ctx, tagJobs, items, func(ctx context.Context, it *pushItem) error {
		if !it.present {
			if _, err := gate.Registry(ctx, c, it.repo.Digest(it.built.digest.String()), it.img); err != nil {
				return err
			}
		}
		if it.platform != "" {
			return nil // the proofs go on its index
		}
		if err := stg.wait(ctx, it); err != nil {
			return err
		}
		return attach(ctx, o, sess, it)
	}); err != nil {
		return nil, err
	}
	if err := forEach(ctx, tagJobs, idx, func(ctx context.Context, x *indexItem) error {
		if !x.present {
			if _, err := gate.Registry(ctx, c, x.repo.Digest(x.digest.String()), x.img); err != nil {
				return err
			}
		}
		return attachIndex(ctx, o, sess, x)
	}); err != nil {
		return nil, err
	}

	// 8. Tags, last.
	// Each image's tags name its manifest, or for an image with platforms
	// its index.
	var tagged []*pushItem
	var targets []*tagTarget
	uploaded := map[*tagTarget]int{}
	for _, it := range items {
		if it.platform != "" {
			continue
		}
		t := &tagTarget{name: it.img.Name, repo: it.repo, digest: it.built.digest, manifest: rawManifest{it.built.manifest, it.built.mediaType}, existing: it.tags, ownOK: it.ownOK}
		tagged, targets = append(tagged, it), append(targets, t)
		uploaded[t] = uploads.count(it.built)
	}
	for _, x := range idx {
		t := &tagTarget{name: x.img.Name, repo: x.repo, digest: x.digest, manifest: rawManifest{x.manifest, types.OCIImageIndex}, existing: x.tags, ownOK: x.ownOK}
		tagged, targets = append(tagged, &pushItem{img: x.img, repo: x.repo}), append(targets, t)
		for _, c := range x.children {
			uploaded[t] += uploads.count(c.built)
		}
	}
	if !o.DigestOnly {
		if err := writeTags(ctx, sess, o.Version, targets); err != nil {
			return nil, err
		}
	}

	now := time.Now().UTC()
	for i, it := range tagged {
		t := targets[i]
		res.Images = append(res.Images, PushedImage{
			Name: it.img.Name, Repo: it.repo.String(), Digest: t.digest.String(),
			Written: t.written, Kept: t.kept, Uploaded: uploaded[t],
		})
		logf("%s: %s@%s tags %s", it.img.Name, it.repo, t.digest, strings.Join(append(append([]string{}, t.written...), t.kept...), ", "))
	}
	err = lock.UpdateContext(ctx, o.LockPath, func(l *lock.Lock) error {
		for i, it := range tagged {
			img, ok := l.Find(it.img.Name)
			if !ok || img.ImageID != it.img.ImageID {
				continue // rebuilt meanwhile: its record is not ours to extend
			}
			d := targets[i].digest.String()
			refs := []string{it.repo.Digest(d).String()}
			for _, t := range append(append([]string{}, targets[i].written...), targets[i].kept...) {
				refs = append(refs, it.repo.Tag(t).String())
			}
			for _, r := range refs {
				img.Pushed = putPushed(img.Pushed, lock.Pushed{Ref: r, Digest: d, At: now})
			}
		}
		for _, x := range idx {
			img, ok := l.Find(x.img.Name)
			if !ok || img.ImageID != x.img.ImageID {
				continue
			}
			for _, c := range x.children {
				if p, ok := img.FindPlatform(c.platform); ok && p.ImageID == c.img.ImageID {
					p.Manifest = c.built.digest.String()
				}
			}
		}
		return nil
	})
	return res, err
}

// exportItems streams one `docker save` of the given images (by ID, so the
// tested bytes and nothing else) and completes each item from it.
func exportItems(ctx context.Context, e Engine, ch *cache, items []*pushItem, dir string, uploads *counterSet) error {
	ex, err := exportEngine(ctx, e, items, dir)
	if err != nil {
		return err
	}
	return complete(ch, ex, items, uploads)
}

// exportEngine reads the items' configs and layers out of one `docker save`.
func exportEngine(ctx context.Context, e Engine, items []*pushItem, dir string) (*exported, error) {
	ids := make([]string, 0, len(items))
	want := map[string]bool{}
	needDiff := map[v1.Hash]bool{}
	for _, it := range items {
		if !want[it.img.ImageID] {
			ids = append(ids, it.img.ImageID)
		}
		want[it.img.ConfigDigest] = true
		for _, d := range it.img.DiffIDs {
			if h, err := v1.NewHash(d); err == nil {
				needDiff[h] = true
			}
		}
	}
	// The engine's own inspect bounds what its export may hold.
	sizes := make([]int64, 0, len(ids))
	for _, id := range ids {
		img, err := e.Inspect(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("exporting from the engine: %w", err)
		}
		sizes = append(sizes, img.Size)
	}
	rc, err := e.Save(ctx, ids...)
	if err != nil {
		return nil, err
	}
	ex, err := export(ctx, rc, dir, want, func(d v1.Hash) bool { return needDiff[d] }, dockersave.Bound(sizes...))
	if err != nil {
		rc.Close()
		return nil, err
	}
	// Read the end of the stream so the engine finishes cleanly.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		rc.Close()
		return nil, fmt.Errorf("exporting from the engine: %w", err)
	}
	if err := rc.Close(); err != nil {
		return nil, fmt.Errorf("exporting from the engine: %w", err)
	}
	return ex, nil
}

// complete gives each item its image from what an export read.
func complete(ch *cache, ex *exported, items []*pushItem, uploads *counterSet) error {
	ch.put(ex.configs, ex.layers)
	for _, it := range items {
		cfg, ok := ex.configs[it.img.ConfigDigest]
		if !ok {
			return fmt.Errorf("exporting %s (%s) from the engine: its config was not in the export: is the engine's store intact? run the Images target", it.img.Name, it.img.ImageID)
		}
		if err := ex.check(it.img); err != nil {
			return err
		}
		blobs := make([]*blob, len(it.img.DiffIDs))
		for i, d := range it.img.DiffIDs {
			h, _ := v1.NewHash(d)
			b, ok := ex.layers[h]
			if !ok {
				return fmt.Errorf("exporting %s from the engine: layer %s was not in the export: run the Images target", it.img.Name, d)
			}
			nb := *b
			nb.onRead = uploads.add
			blobs[i] = &nb
		}
		built, err := newImage(cfg, blobs)
		if err != nil {
			return err
		}
		it.built = built
	}
	return nil
}

// forEach runs f on each item, at most n at once, and returns the first error.
func forEach[T any](ctx context.Context, n int, items []T, f func(context.Context, T) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, it := range items {
		g.Go(func() error { return f(ctx, it) })
	}
	return g.Wait()
}

func indexes[T any](s []T) []int {
	out := make([]int, len(s))
	for i := range out {
		out[i] = i
	}
	return out
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func dirOf(p string) string { return filepath.Dir(p) }

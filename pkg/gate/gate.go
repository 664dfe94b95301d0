// Package gate is the digest gate: it proves that what is about to be pushed
// (or what a registry now serves) is bit for bit the image that was tested,
// by comparing the config digest and the layer diff_ids recorded in the lock
// file with the image in hand. Those two mean the same bytes on every engine
// store; an engine's image ID does not (on the containerd store it is the
// manifest's digest), so it is only a shortcut where the store says what it
// means.
package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/tags"
)

// ErrUntested means an image has no passing test of its current build.
var ErrUntested = errors.New("image not tested")

// LayerDiff is one layer position whose diff_id differs; an empty Want or
// Got means the layer is missing on that side.
type LayerDiff struct {
	Index     int
	Want, Got string
}

// MismatchError says which image differs from what was tested, where, and how.
type MismatchError struct {
	Image      string // lock name
	Where      string // e.g. "engine image hoist/demo:1.2.3"
	WantConfig string
	GotConfig  string
	Layers     []LayerDiff
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digest gate: %s: %s is not the tested image", e.Image, e.Where)
	if e.WantConfig != e.GotConfig {
		fmt.Fprintf(&b, "; config %s, tested %s", short(e.GotConfig), short(e.WantConfig))
	}
	for _, l := range e.Layers {
		switch {
		case l.Want == "":
			fmt.Fprintf(&b, "; layer %d %s was not tested", l.Index+1, short(l.Got))
		case l.Got == "":
			fmt.Fprintf(&b, "; layer %d %s is missing", l.Index+1, short(l.Want))
		default:
			fmt.Fprintf(&b, "; layer %d is %s, tested %s", l.Index+1, short(l.Got), short(l.Want))
		}
	}
	b.WriteString(": do not push it; run the Images and Test targets again so the lock file records the image in hand")
	return b.String()
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// Compare checks a config digest and diff_ids against the lock's record.
func Compare(img lock.Image, where, gotConfig string, gotDiffIDs []string) error {
	e := &MismatchError{Image: img.Name, Where: where, WantConfig: img.ConfigDigest, GotConfig: gotConfig}
	n := max(len(img.DiffIDs), len(gotDiffIDs))
	for i := 0; i < n; i++ {
		var want, got string
		if i < len(img.DiffIDs) {
			want = img.DiffIDs[i]
		}
		if i < len(gotDiffIDs) {
			got = gotDiffIDs[i]
		}
		if want != got {
			e.Layers = append(e.Layers, LayerDiff{Index: i, Want: want, Got: got})
		}
	}
	if e.WantConfig == e.GotConfig && len(e.Layers) == 0 {
		return nil
	}
	return e
}

// Tested checks that img passed Test and that the test ran on this build.
func Tested(img lock.Image) error {
	switch {
	case img.Test == nil:
		return fmt.Errorf("%s (%s) has no test result: %w: run the Test target", img.Name, short(img.ImageID), ErrUntested)
	case !img.Test.Passed:
		return fmt.Errorf("%s (%s) failed its test (exit %d, log %s): %w: fix it and run the Test target", img.Name, short(img.ImageID), img.Test.ExitCode, img.Test.Log, ErrUntested)
	case img.Test.ImageID != img.ImageID:
		return fmt.Errorf("%s was rebuilt after its test (tested %s, built %s): %w: run the Test target", img.Name, short(img.Test.ImageID), short(img.ImageID), ErrUntested)
	case img.ConfigDigest == "":
		return fmt.Errorf("%s: lock records no config digest: the lock file is damaged: run the Images and Test targets again", img.Name)
	case classic(img) && img.ConfigDigest != img.ImageID:
		return fmt.Errorf("%s: lock records config digest %s but image ID %s: the lock file is damaged: run the Images and Test targets again", img.Name, short(img.ConfigDigest), short(img.ImageID))
	}
	return nil
}

// classic reports whether img was built on the classic store, where the
// image ID is the config digest (locks older than the store field are).
func classic(img lock.Image) bool {
	return img.Store == "" || img.Store == string(engine.StoreClassic)
}

// Inspector finds images in an engine.
type Inspector interface {
	Inspect(ctx context.Context, ref string) (engine.Image, error)
	// ConfigDigest is asked when inspecting does not tell the config
	// digest (the containerd store) and the image is not the one locked.
	ConfigDigest(ctx context.Context, ref string) (string, error)
}

// Engine compares the engine's image at img.Ref (what would be pushed)
// with what was tested.
func Engine(ctx context.Context, e Inspector, img lock.Image) error {
	if err := Tested(img); err != nil {
		return err
	}
	got, err := e.Inspect(ctx, img.Ref)
	if err != nil {
		return fmt.Errorf("digest gate: %s: %w: run the Images target", img.Name, err)
	}
	cfg := got.Config
	if cfg == "" && got.ID == img.ImageID && !classic(img) {
		// The same manifest (or index) digest: it names the locked config.
		cfg = img.ConfigDigest
	}
	if cfg == "" {
		if cfg, err = e.ConfigDigest(ctx, img.Ref); err != nil {
			return fmt.Errorf("digest gate: %s: %w: run the Images target", img.Name, err)
		}
	}
	if err := Compare(img, "engine image "+img.Ref, cfg, got.DiffIDs); err != nil {
		return err
	}
	return enginePlatforms(ctx, e, img)
}

// Registry compares the manifest ref resolves to in a registry (and the
// config it names) with what was tested. It returns the manifest digest.
// It costs one request: a manifest naming the tested config digest names
// the tested diff_ids (the config is content-addressed and a pull checks
// it), so the config is fetched only to explain a mismatch.
func Registry(ctx context.Context, c *registry.Client, ref name.Reference, img lock.Image) (v1.Hash, error) {
	d, err := c.Get(ctx, ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest gate: %s: %w", img.Name, err)
	}
	return d.Digest, manifest(ctx, c, ref, d, img)
}

// manifest checks a fetched manifest against what was tested.
func manifest(ctx context.Context, c *registry.Client, ref name.Reference, d *remote.Descriptor, img lock.Image) error {
	if d.MediaType.IsIndex() && len(img.Platforms) > 0 {
		return index(ctx, c, ref, d, img)
	}
	where := "registry manifest " + ref.String()
	if _, byDigest := ref.(name.Digest); !byDigest {
		where += "@" + d.Digest.String()
	}
	if !d.MediaType.IsImage() {
		return fmt.Errorf("digest gate: %s: %s is a %s, not an image manifest: push single-platform images", img.Name, where, d.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		return fmt.Errorf("digest gate: %s: reading %s: %w", img.Name, where, err)
	}
	if m.Config.Digest.String() == img.ConfigDigest {
		if len(m.Layers) != len(img.DiffIDs) {
			return fmt.Errorf("digest gate: %s: %s lists %d layers but its config %d diff_ids: the manifest is damaged: push again", img.Name, where, len(m.Layers), len(img.DiffIDs))
		}
		return nil
	}
	// Another config: read it to say which layers differ.
	ri, err := d.Image()
	if err != nil {
		return fmt.Errorf("digest gate: %s: reading %s: %w", img.Name, where, err)
	}
	// RawConfigFile checks the bytes against the manifest's config digest.
	raw, err := ri.RawConfigFile()
	if err != nil {
		return fmt.Errorf("digest gate: %s: reading the config of %s: %w", img.Name, where, c.Explain("fetching config", ref.Context().RegistryStr(), err))
	}
	var cf struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		return fmt.Errorf("digest gate: %s: the config of %s is not JSON: %w", img.Name, where, err)
	}
	return Compare(img, where, m.Config.Digest.String(), cf.RootFS.DiffIDs)
}

// Lock runs the gate on every image of the lock file at path: the engine's
// image, and (when c is not nil) every reference already pushed under
// prefix (HOST/REPOSITORY of the registry this run targets; pushes the lock
// recorded elsewhere are not this run's to check). Every tag that never
// moves (X.Y.Z, X.Y.Z-staging.N, X.Y.Z-rN, other prereleases: package
// tags' immutable ones) is resolved, so a tag moved to other bytes fails
// even when the digest it used to name is intact; X.Y.Z passes when it has
// moved forward to a revision of itself, the one move the tag policy
// allows it. Floating tags (X.Y, X, latest, staging) move by design,
// checked when written, and are not the gate's. Each distinct digest's
// manifest is compared with what was tested. An image's requests go out
// at once (one GET per digest through one of its tags, one HEAD per other
// tag), so it costs one round trip whatever the number of tags; images are
// checked a few at a time. It returns how many checks passed and all
// mismatches at once.
func Lock(ctx context.Context, path string, e Inspector, c *registry.Client, prefix string) (int, error) {
	l, err := lock.Read(path)
	if err != nil {
		return 0, err
	}
	if len(l.Images) == 0 {
		return 0, fmt.Errorf("%s lists no images: run the Images and Test targets first", path)
	}
	var (
		mu   sync.Mutex
		n    int
		errs []error
	)
	add := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, lockParallel)
	for _, img := range l.Images {
		add(Engine(ctx, e, img))
		if c == nil {
			continue
		}
		for _, ck := range registryChecks(img, prefix) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					add(ctx.Err())
					return
				}
				add(ck(ctx, c))
			}()
		}
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// lockParallel bounds the gate's requests in flight: every check of an
// image at once, and a few images side by side.
const lockParallel = 16

// registryChecks are img's registry checks under prefix, one per request.
func registryChecks(img lock.Image, prefix string) []func(context.Context, *registry.Client) error {
	var out []func(context.Context, *registry.Client) error
	fetched := map[string]bool{} // digests whose manifest is fetched
	type head struct {
		tag  name.Tag
		want string
	}
	var heads []head
	var byDigest []name.Digest
	for _, p := range img.Pushed {
		if prefix != "" && !strings.HasPrefix(p.Ref, prefix+"/") {
			continue
		}
		ref, err := name.ParseReference(p.Ref)
		if err != nil {
			err = fmt.Errorf("digest gate: %s: lock records pushed reference %q: %w", img.Name, p.Ref, err)
			out = append(out, func(context.Context, *registry.Client) error { return err })
			continue
		}
		tag, ok := ref.(name.Tag)
		if !ok {
			byDigest = append(byDigest, ref.Context().Digest(p.Digest))
			continue
		}
		if floating(tag.TagStr()) {
			byDigest = append(byDigest, ref.Context().Digest(p.Digest))
			continue
		}
		if fetched[p.Digest] {
			heads = append(heads, head{tag, p.Digest})
			continue
		}
		// The first tag of a digest is fetched whole: one request both
		// resolves the tag and reads the manifest.
		fetched[p.Digest] = true
		want := p.Digest
		out = append(out, func(ctx context.Context, c *registry.Client) error {
			d, err := c.Get(ctx, tag)
			if err != nil {
				return fmt.Errorf("digest gate: %s: resolving %s: %w", img.Name, tag, err)
			}
			if d.Digest.String() != want {
				if err := moved(ctx, c, img, tag, d.Digest.String(), want); err != nil {
					return err
				}
				// Moved on to a revision: the tested push is still
				// checked, by its digest.
				_, err := Registry(ctx, c, tag.Context().Digest(want), img)
				return err
			}
			return manifest(ctx, c, tag, d, img)
		})
	}
	for _, h := range heads {
		tag, want := h.tag, h.want
		out = append(out, func(ctx context.Context, c *registry.Client) error {
			d, err := c.Head(ctx, tag)
			if err != nil {
				return fmt.Errorf("digest gate: %s: resolving %s: %w", img.Name, tag, err)
			}
			return moved(ctx, c, img, tag, d.Digest.String(), want)
		})
	}
	for _, ref := range byDigest {
		if fetched[ref.DigestStr()] {
			continue
		}
		fetched[ref.DigestStr()] = true
		out = append(out, func(ctx context.Context, c *registry.Client) error {
			_, err := Registry(ctx, c, ref, img)
			return err
		})
	}
	return out
}

// moved says a tag names other bytes than the tested push. A release's
// X.Y.Z that now names a revision of itself (X.Y.Z-rN, a fresh-bases
// rebuild) has moved as the tag policy allows; only then, on this error
// path, are the repository's tags listed and its revisions resolved.
func moved(ctx context.Context, c *registry.Client, img lock.Image, tag name.Tag, got, want string) error {
	if got == want {
		return nil
	}
	if v, err := semver.StrictNewVersion(tag.TagStr()); err == nil && tags.KindOf(v) == tags.Release {
		if existing, err := c.Tags(ctx, tag.Context()); err == nil {
			for _, t := range existing {
				if base, _, ok := tags.ParseRevision(t); !ok || base.String() != tag.TagStr() {
					continue
				}
				if d, err := c.Head(ctx, tag.Context().Tag(t)); err == nil && d.Digest.String() == got {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("digest gate: %s: %s names %s, but the tested image was pushed as %s: the tag was moved: find who pushed it; do not promote", img.Name, tag, got, want)
}

// floating reports whether a tag is one that moves by design: anything
// that is not a full version (X.Y, X, latest, staging).
func floating(tag string) bool {
	_, err := semver.StrictNewVersion(tag)
	return err != nil
}

// EngineAll runs Engine on every image, a few at once, returning one error
// (or nil) per image. Each image is inspected by its own reference: a
// listing of the engine's images would cost as much as the engine holds.
func EngineAll(ctx context.Context, e Inspector, imgs []lock.Image) []error {
	errs := make([]error, len(imgs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for i, img := range imgs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			errs[i] = Engine(ctx, e, img)
		}()
	}
	wg.Wait()
	return errs
}

// RebuiltLock is the gate for separate test and push machines, as the
// write-up runs it: rebuild writes a fresh build of every image (from the
// build cache) into the lock file at the path it is given, and each image
// of the lock at path must come out bit for bit as tested.
func RebuiltLock(ctx context.Context, path, scratchDir string, rebuild func(ctx context.Context, lockPath string) error) (int, error) {
	tested, err := lock.Read(path)
	if err != nil {
		return 0, err
	}
	fresh := filepath.Join(scratchDir, "rebuilt-lock.json")
	os.Remove(fresh)
	defer os.Remove(fresh)
	if err := rebuild(ctx, fresh); err != nil {
		return 0, fmt.Errorf("digest gate: rebuilding from cache: %w", err)
	}
	again, err := lock.Read(fresh)
	if err != nil {
		return 0, fmt.Errorf("digest gate: rebuilding from cache: %w", err)
	}
	n := 0
	var errs []error
	for _, img := range tested.Images {
		if err := Tested(img); err != nil {
			errs = append(errs, err)
			continue
		}
		got, ok := again.Find(img.Name)
		if !ok {
			errs = append(errs, fmt.Errorf("digest gate: %s was not rebuilt: is it still in hoist.yaml?", img.Name))
			continue
		}
		if err := Compare(img, "rebuilt image "+got.Ref, got.ConfigDigest, got.DiffIDs); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

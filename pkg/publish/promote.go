package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/tags"
	"github.com/hoistci/hoist/pkg/version"
)

// ErrRevised means the release was rebuilt since it was promoted: its
// X.Y.Z names a revision X.Y.Z-rN, and it is never promoted again.
var ErrRevised = errors.New("released version has revisions")

// PromoteOptions configure Promote.
type PromoteOptions struct {
	// From is HOST/REPOSITORY the staging images are in (image NAME at FROM/NAME).
	From string
	// To is HOST/REPOSITORY to promote into; empty means From.
	To string
	// Base is the release X.Y.Z (VERSION without its prerelease).
	Base string
	// Images are the image names to promote; all must have the staging build.
	Images []string
	// Staging are the staging builds that may be promoted (X.Y.Z-staging.N),
	// highest first, chosen by the caller (the main line: those reserved at
	// the commit being released): the first every image has is promoted.
	// Empty: the minimum over images of each one's highest N.
	Staging []string
	// Tested returns the digests the chosen staging build was tested and
	// pushed with (image name -> manifest digest). Each image's staging tag
	// must still name that digest, or nothing is promoted: a tag can be
	// moved in the registry; what was tested cannot. Nil: no proof is
	// asked for (tests of the copying itself).
	Tested func(ctx context.Context, staging string) (map[string]string, error)
	// DryRun plans and prints, and writes nothing.
	DryRun bool
	// LockPath, when set and the lock file exists, gets the promoted
	// references added to the images pushed with the promoted digests.
	LockPath string
	Progress io.Writer
	Parallel int
}

// PromoteStep is the plan for one image.
type PromoteStep struct {
	Name     string
	Source   string // FROM/NAME:X.Y.Z-staging.M
	Digest   string
	Dest     string   // TO/NAME
	Tags     []string // the tags planned
	Written  []string // of Tags, those this run wrote
	Kept     []string // of Tags, those already naming Digest
	SameRepo bool
	Referrer []string // referrer manifests copied along (another repository only)
}

// PromotePlan is what Promote does (or, in a dry run, would do).
type PromotePlan struct {
	Base    string
	Staging string // X.Y.Z-staging.M
	Steps   []PromoteStep
}

// Kept reports whether every planned tag already names its digest: the
// version is promoted and a promotion would write nothing.
func (p *PromotePlan) Kept() bool {
	for _, s := range p.Steps {
		if len(s.Kept) != len(s.Tags) {
			return false
		}
	}
	return len(p.Steps) > 0
}

// Wrote counts the tags this promotion wrote; 0 after a run means the
// version was already promoted.
func (p *PromotePlan) Wrote() int {
	n := 0
	for _, s := range p.Steps {
		n += len(s.Written)
	}
	return n
}

// String prints the plan, one line per image.
func (p *PromotePlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "promote %s -> %s\n", p.Staging, p.Base)
	for _, s := range p.Steps {
		how := "copy by digest (blobs mounted)"
		if s.SameRepo {
			how = "manifest writes only"
		}
		fmt.Fprintf(&b, "  %s %s@%s -> %s:{%s} (%s)\n", s.Name, s.Source, s.Digest, s.Dest, strings.Join(s.Tags, ","), how)
	}
	return b.String()
}

type promoteItem struct {
	step    *PromoteStep
	src     name.Repository
	dst     name.Repository
	srcTags []string
	desc    *v1.Descriptor
	target  *tagTarget
}

// Promote promotes the staging build of o.Base without rebuilding: M is the
// minimum over images of each image's highest X.Y.Z-staging.N, so every
// image has it; each image's X.Y.Z-staging.M is copied by digest to X.Y.Z
// and the floating tags that move forward. In one repository that is
// manifest writes only; into another, blobs are mounted (copied where the
// registry refuses a mount) and referrers (signatures, SBOMs, attestations)
// are copied along. It refuses, before writing any tag, when X.Y.Z exists
// with another digest. Two promotions of the same version at once end with
// the same tags.
func Promote(ctx context.Context, c *registry.Client, o PromoteOptions) (*PromotePlan, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.To == "" {
		o.To = o.From
	}
	base, err := semver.StrictNewVersion(o.Base)
	if err != nil || base.Prerelease() != "" || base.Metadata() != "" {
		return nil, fmt.Errorf("promoting %q: not a release version X.Y.Z: set VERSION to the release", o.Base)
	}
	if len(o.Images) == 0 {
		return nil, errors.New("promoting: no images named: the config lists none")
	}
	items := make([]*promoteItem, len(o.Images))
	for i, n := range o.Images {
		src, err := c.Repository(o.From + "/" + n)
		if err != nil {
			return nil, err
		}
		dst, err := c.Repository(o.To + "/" + n)
		if err != nil {
			return nil, err
		}
		items[i] = &promoteItem{src: src, dst: dst, step: &PromoteStep{Name: n, Dest: dst.String(), SameRepo: src.String() == dst.String()}}
	}

	// One session per registry for the many small requests.
	var srcRepos, dstRepos []name.Repository
	for _, it := range items {
		srcRepos = append(srcRepos, it.src)
		dstRepos = append(dstRepos, it.dst)
	}
	dstS, err := c.Session(ctx, dstRepos[0].Registry, srcRepos, dstRepos)
	if err != nil {
		return nil, err
	}
	srcS, mountS := dstS, dstS
	if srcRepos[0].RegistryStr() != dstRepos[0].RegistryStr() {
		mountS = nil
		if srcS, err = c.Session(ctx, srcRepos[0].Registry, srcRepos, nil); err != nil {
			return nil, err
		}
	}

	// 1. Choose M from the staging tags.
	if err := forEach(ctx, tagJobs, items, func(ctx context.Context, it *promoteItem) error {
		var err error
		it.srcTags, err = srcS.Tags(ctx, it.src)
		return err
	}); err != nil {
		return nil, err
	}
	per := map[string][]string{}
	for _, it := range items {
		per[it.step.Name] = it.srcTags
	}
	// The write-up's rule (every image has M) holds for a chosen build too.
	m, err := tags.PromotionN(o.Base, per)
	if err != nil {
		return nil, fmt.Errorf("promoting %s: %w", o.Base, err)
	}
	staging := version.StagingTag(o.Base, m)
	if len(o.Staging) > 0 {
		var lacking []string
		chosen := ""
		for _, cand := range o.Staging {
			lacking = lacking[:0]
			for _, it := range items {
				if !slices.Contains(it.srcTags, cand) {
					lacking = append(lacking, it.step.Name)
				}
			}
			if len(lacking) == 0 {
				chosen = cand
				break
			}
		}
		if chosen == "" {
			return nil, fmt.Errorf("promoting %s: %d of %d images have no tag %s (%s): run the staging line of this commit again so every image has it", o.Staging[0], len(lacking), len(items), o.Staging[0], strings.Join(lacking, ", "))
		}
		staging = chosen
	}
	plan := &PromotePlan{Base: o.Base, Staging: staging}

	// 2. Resolve each image's staging build to a digest.
	if err := forEach(ctx, tagJobs, items, func(ctx context.Context, it *promoteItem) error {
		ref := it.src.Tag(plan.Staging)
		raw, d, err := srcS.Get(ctx, ref)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("promoting %s: %s has no tag %s (M is the minimum over images of each one's highest staging build): push the staging line again so every image has it", o.Base, it.src, plan.Staging)
			}
			return err
		}
		it.desc = d
		it.step.Source = ref.String()
		it.step.Digest = d.Digest.String()
		it.target = &tagTarget{name: it.step.Name, repo: it.dst, digest: d.Digest, manifest: rawManifest{raw, d.MediaType}}
		return nil
	}); err != nil {
		return nil, err
	}

	// 3. Copy only what was tested: the staging tags must name the digests
	// recorded when the build was tested and pushed.
	if o.Tested != nil {
		want, err := o.Tested(ctx, plan.Staging)
		if err != nil {
			return nil, fmt.Errorf("promoting %s: %w", plan.Staging, err)
		}
		var bad []string
		for _, it := range items {
			switch w := want[it.step.Name]; {
			case w == "":
				bad = append(bad, fmt.Sprintf("%s: no tested digest is recorded for it", it.step.Name))
			case w != it.desc.Digest.String():
				bad = append(bad, fmt.Sprintf("%s: %s names %s, but the tested build is %s", it.step.Name, it.step.Source, it.desc.Digest, w))
			}
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("refusing to promote %s, nothing was written: %s: %w: find who moved the tag; push the staging line of this commit again", plan.Staging, strings.Join(bad, "; "), ErrNotTested)
		}
	}

	// 4. Plan the tags (and check X.Y.Z) without writing anything.
	var mu sync.Mutex
	var conflicts []error
	var revised []string // images where X.Y.Z was rebuilt as a revision
	if err := forEach(ctx, tagJobs, items, func(ctx context.Context, it *promoteItem) error {
		existing := it.srcTags
		if !it.step.SameRepo {
			var err error
			if existing, err = dstS.Tags(ctx, it.dst); err != nil {
				return err
			}
		}
		it.target.existing = existing
		if n, ok := tags.MaxRevision(o.Base, existing); ok {
			mu.Lock()
			revised = append(revised, fmt.Sprintf("%s has %s", it.step.Name, tags.RevisionTag(o.Base, n)))
			mu.Unlock()
		}
		p, err := tags.Plan(base, existing)
		if err != nil {
			return err
		}
		for _, t := range p {
			it.step.Tags = append(it.step.Tags, t.Name)
		}
		if !slices.Contains(existing, o.Base) {
			return nil
		}
		d, err := dstS.Head(ctx, it.dst.Tag(o.Base))
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case err != nil:
			return err
		case d.Digest != it.desc.Digest:
			mu.Lock()
			conflicts = append(conflicts, fmt.Errorf("%s: %s is %s, but %s is %s", it.step.Name, it.dst.Tag(o.Base), d.Digest, it.step.Source, it.desc.Digest))
			mu.Unlock()
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, it := range items {
		plan.Steps = append(plan.Steps, *it.step)
	}
	if len(revised) > 0 {
		// X.Y.Z now names its newest revision: promoting the release again
		// would move it back to the first build's bytes.
		sort.Strings(revised)
		return plan, fmt.Errorf("refusing to promote %s, no tag was written: %s was released and rebuilt since (%s): %w: a released version is never promoted over: bump VERSION to release again", plan.Staging, o.Base, strings.Join(revised, ", "), ErrRevised)
	}
	if len(conflicts) > 0 {
		return plan, fmt.Errorf("refusing to promote %s, no tag was written: %w: a release is never rewritten: bump VERSION to release again", plan.Staging, conflictSummary(conflicts, len(items)))
	}
	if o.DryRun {
		// Which planned tags already name the digest: a promotion with none
		// left to write is done.
		if err := forEach(ctx, tagJobs, items, func(ctx context.Context, it *promoteItem) error {
			for _, t := range it.step.Tags {
				if !slices.Contains(it.target.existing, t) {
					continue
				}
				d, err := dstS.Head(ctx, it.dst.Tag(t))
				if errors.Is(err, registry.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if d.Digest == it.desc.Digest {
					it.step.Kept = append(it.step.Kept, t)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
		plan.Steps = plan.Steps[:0]
		for _, it := range items {
			plan.Steps = append(plan.Steps, *it.step)
		}
		return plan, nil
	}

	// 5. Another repository: the manifest (blobs mounted) and its referrers.
	if err := forEach(ctx, o.Parallel, items, func(ctx context.Context, it *promoteItem) error {
		if it.step.SameRepo {
			return nil
		}
		refs, err := copyManifest(ctx, c, mountS, it.src, it.dst, it.desc.Digest, true)
		it.step.Referrer = refs
		if err != nil {
			return err
		}
		// Tools that predate the referrers API (cosign) attach by tag:
		// sha256-<hex>.sig, .att, .sbom. They travel with the image too.
		prefix := it.desc.Digest.Algorithm + "-" + it.desc.Digest.Hex + "."
		for _, t := range it.srcTags {
			if !strings.HasPrefix(t, prefix) {
				continue
			}
			d, err := c.Head(ctx, it.src.Tag(t))
			if err != nil {
				return err
			}
			if _, err := copyManifest(ctx, c, mountS, it.src, it.dst, d.Digest, false); err != nil {
				return err
			}
			got, err := c.Get(ctx, it.dst.Digest(d.Digest.String()))
			if err != nil {
				return err
			}
			if err := c.Pusher().Put(ctx, it.dst.Tag(t), rawManifest{got.Manifest, got.MediaType}); err != nil {
				return c.Explain("copying "+t+" to "+it.dst.String(), it.dst.RegistryStr(), err)
			}
			it.step.Referrer = append(it.step.Referrer, t)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	// 6. Tags last: X.Y.Z everywhere first, then the floating ones.
	targets := make([]*tagTarget, len(items))
	for i, it := range items {
		targets[i] = it.target
	}
	if err := writeTags(ctx, dstS, base, targets); err != nil {
		return plan, fmt.Errorf("promoting %s: %w", plan.Staging, err)
	}
	plan.Steps = plan.Steps[:0]
	for _, it := range items {
		it.step.Written, it.step.Kept = it.target.written, it.target.kept
		plan.Steps = append(plan.Steps, *it.step)
	}
	if o.LockPath == "" {
		return plan, nil
	}
	return plan, record(ctx, o.LockPath, plan)
}

// record adds the promoted references to the lock's images that were
// pushed with the promoted digests. No lock file (a promotion on another
// machine than the build) is fine.
func record(ctx context.Context, path string, plan *PromotePlan) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	now := time.Now().UTC()
	return lock.UpdateContext(ctx, path, func(l *lock.Lock) error {
		for _, st := range plan.Steps {
			for i := range l.Images {
				img := &l.Images[i]
				ours := false
				for _, p := range img.Pushed {
					ours = ours || p.Digest == st.Digest
				}
				if !ours {
					continue
				}
				for _, t := range st.Tags {
					img.Pushed = putPushed(img.Pushed, lock.Pushed{Ref: st.Dest + ":" + t, Digest: st.Digest, At: now})
				}
			}
		}
		return nil
	})
}

// copyManifest copies src@d to dst by digest and (when withReferrers) the
// manifests referring to it, returning the referrers copied. Within one
// registry (sess is its session) the blobs are mounted with Hoist's own
// requests and the manifests put as they are: go-containerregistry, asked
// to mount from another repository, races with itself (see placeBlobs).
// Across registries go-containerregistry copies the bytes.
func copyManifest(ctx context.Context, c *registry.Client, sess *registry.Session, src, dst name.Repository, d v1.Hash, withReferrers bool) ([]string, error) {
	from := src.Digest(d.String())
	to := dst.Digest(d.String())
	desc, err := c.Get(ctx, from)
	if err != nil {
		return nil, err
	}
	if sess != nil {
		err = mountManifest(ctx, c, sess, src, dst, desc.Manifest, desc.MediaType)
	} else {
		err = pushCopy(ctx, c, desc, from, to)
	}
	if err != nil {
		return nil, err
	}
	if !withReferrers {
		return nil, nil
	}
	idx, err := remote.Referrers(from, c.Options(ctx)...)
	if err != nil {
		if registry.StatusCode(err) == 404 {
			return nil, nil
		}
		return nil, c.Explain("listing referrers of "+from.String(), src.RegistryStr(), err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", from, err)
	}
	var copied []string
	for _, r := range im.Manifests {
		if _, err := copyManifest(ctx, c, sess, src, dst, r.Digest, true); err != nil {
			return copied, fmt.Errorf("copying referrer %s of %s: %w", r.Digest, from, err)
		}
		copied = append(copied, r.Digest.String())
	}
	return copied, nil
}

// pushCopy has go-containerregistry copy desc, read from from, to to.
func pushCopy(ctx context.Context, c *registry.Client, desc *remote.Descriptor, from, to name.Digest) error {
	var t remote.Taggable
	var err error
	switch {
	case desc.MediaType.IsIndex():
		t, err = desc.ImageIndex()
	case desc.MediaType.IsImage():
		t, err = desc.Image()
	default:
		t = desc
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	if err := c.Pusher().Push(ctx, to, t); err != nil {
		return c.Explain("copying "+from.String()+" to "+to.String(), to.RegistryStr(), err)
	}
	return nil
}

// mountManifest copies manifest raw (of type mt) from src to dst in one
// registry: an index's manifests first, a manifest's blobs mounted (or, where
// the registry declines, copied), then raw itself.
func mountManifest(ctx context.Context, c *registry.Client, sess *registry.Session, src, dst name.Repository, raw []byte, mt types.MediaType) error {
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	what := "copying " + src.Digest(d.String()).String() + " to " + dst.String()
	if mt.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := forEach(ctx, tagJobs, im.Manifests, func(ctx context.Context, m v1.Descriptor) error {
			child, err := c.Get(ctx, src.Digest(m.Digest.String()))
			if err != nil {
				return err
			}
			return mountManifest(ctx, c, sess, src, dst, child.Manifest, child.MediaType)
		}); err != nil {
			return err
		}
	} else {
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
		if err := forEach(ctx, tagJobs, blobs, func(ctx context.Context, b v1.Descriptor) error {
			if ok, err := sess.Mount(ctx, dst, src, b.Digest); err != nil || ok {
				return err
			}
			l, err := remote.Layer(src.Digest(b.Digest.String()), c.Options(ctx)...)
			if err != nil {
				return c.Explain("reading blob "+b.Digest.String()+" of "+src.String(), src.RegistryStr(), err)
			}
			if ml, ok := l.(*remote.MountableLayer); ok {
				l = ml.Layer // the mount was declined
			}
			if err := c.Pusher().Upload(ctx, dst, l); err != nil {
				return c.Explain("copying blob "+b.Digest.String()+" to "+dst.String(), dst.RegistryStr(), err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := c.Pusher().Put(ctx, dst.Digest(d.String()), rawManifest{raw, mt}); err != nil {
		return c.Explain(what, dst.RegistryStr(), err)
	}
	return nil
}

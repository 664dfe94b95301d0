package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/tags"
)

// TagOptions configure Tag.
type TagOptions struct {
	LockPath string
	Prefix   string          // HOST/REPOSITORY
	Version  *semver.Version // decides the tags
	Progress io.Writer
	DryRun   bool
}

// Tag writes version's tags for every image of the lock, each already
// pushed by digest under Prefix (by CI shards, with DigestOnly): no engine
// is needed. Every image's manifest is read back and held to what was
// tested before any tag is written; then the tags go out as Push writes
// them (immutable ones checked first, floating ones last and only
// forward), all images' at once, so a missing or changed image leaves no
// tag at all.
func Tag(ctx context.Context, c *registry.Client, o TagOptions) (*PushResult, error) {
	l, err := lock.Read(o.LockPath)
	if err != nil {
		return nil, err
	}
	if len(l.Images) == 0 {
		return nil, fmt.Errorf("%s lists no images: nothing to tag", o.LockPath)
	}
	ts := make([]*tagTarget, len(l.Images))
	repos := make([]name.Repository, len(l.Images))
	for i, img := range l.Images {
		repo, err := c.Repository(o.Prefix + "/" + img.Name)
		if err != nil {
			return nil, err
		}
		d, ok := digestPushed(img, repo)
		if !ok {
			return nil, fmt.Errorf("%s: %s records no push by digest to %s: push it first", img.Name, o.LockPath, repo)
		}
		ts[i], repos[i] = &tagTarget{name: img.Name, repo: repo, digest: d}, repo
	}
	sess, err := c.Session(ctx, repos[0].Registry, nil, repos)
	if err != nil {
		return nil, err
	}
	// The gate on what the registry serves, and each manifest's bytes for
	// its tags; the repository's tags, for the tag policy.
	if err := forEach(ctx, tagJobs, indexes(ts), func(ctx context.Context, i int) error {
		t, img := ts[i], l.Images[i]
		ref := t.repo.Digest(t.digest.String())
		if _, err := gate.Registry(ctx, c, ref, img); err != nil {
			return err
		}
		raw, d, err := sess.Get(ctx, ref)
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("%s: %s is gone from the registry: push it again", img.Name, ref)
		}
		if err != nil {
			return err
		}
		t.manifest = rawManifest{raw, d.MediaType}
		t.existing, err = sess.Tags(ctx, t.repo)
		return err
	}); err != nil {
		return nil, fmt.Errorf("no tag was written: %w", err)
	}
	res := &PushResult{}
	if o.DryRun {
		for _, t := range ts {
			plan, err := tags.Plan(o.Version, t.existing)
			if err != nil {
				return nil, err
			}
			pi := PushedImage{Name: t.name, Repo: t.repo.String(), Digest: t.digest.String()}
			for _, tg := range plan {
				pi.Written = append(pi.Written, tg.Name)
			}
			res.Images = append(res.Images, pi)
		}
		return res, nil
	}
	if err := writeTags(ctx, sess, o.Version, ts); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	for _, t := range ts {
		res.Images = append(res.Images, PushedImage{Name: t.name, Repo: t.repo.String(), Digest: t.digest.String(), Written: t.written, Kept: t.kept})
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "push: %s: %s@%s tags %s\n", t.name, t.repo, t.digest, strings.Join(append(append([]string{}, t.written...), t.kept...), ", "))
		}
	}
	return res, lock.UpdateContext(ctx, o.LockPath, func(cur *lock.Lock) error {
		for i, t := range ts {
			img, ok := cur.Find(t.name)
			if !ok || img.ImageID != l.Images[i].ImageID {
				continue
			}
			for _, tg := range append(append([]string{}, t.written...), t.kept...) {
				img.Pushed = putPushed(img.Pushed, lock.Pushed{Ref: t.repo.Tag(tg).String(), Digest: t.digest.String(), At: now})
			}
		}
		return nil
	})
}

// digestPushed is the manifest digest img was pushed by to repo.
func digestPushed(img lock.Image, repo name.Repository) (v1.Hash, bool) {
	for _, p := range img.Pushed {
		if p.Ref == repo.Digest(p.Digest).String() {
			if h, err := v1.NewHash(p.Digest); err == nil {
				return h, true
			}
		}
	}
	return v1.Hash{}, false
}

package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

// verifyPlatforms holds an image index Verify checked to what the lock
// file says was built and tested. Push attaches the proofs of an image
// with platforms to its index, whose digest names every platform's
// manifest by digest: the signature on the index covers them all. What is
// left to check is that those manifests are the tested ones: the index
// must list exactly the lock's platforms, each by a manifest naming that
// platform's tested config (the digest gate's check of an index), when
// the lock records d, or the tag ref that names it, as pushed; an index
// no lock here records (verified where it is deployed) has its signature
// alone. Problems join rep's. It returns the platforms the index lists
// (none when d is not an index) and whether they were held to the lock.
func (r *Run) verifyPlatforms(ctx context.Context, c *registry.Client, ref string, d name.Digest, l *lock.Lock, rep *attest.Report) ([]string, bool, error) {
	desc, err := c.Get(ctx, d)
	if err != nil {
		return nil, false, err
	}
	if !desc.MediaType.IsIndex() {
		return nil, false, nil
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, false, fmt.Errorf("reading the image index %s: %w", d, err)
	}
	var listed []string
	for _, m := range im.Manifests {
		if m.Platform != nil {
			listed = append(listed, m.Platform.String())
		}
	}
	img := pushedAs(l, ref, d)
	switch {
	case img == nil:
		// Someone else's push (a consumer verifying what it deploys): the
		// signature on the index is all there is to hold it to.
	case len(img.Platforms) == 0:
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: an image index, but %s was built for one platform: push it again", d, img.Name))
	default:
		if _, err := gate.Registry(ctx, c, d, *img); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %s", d, line))
			}
		}
	}
	return listed, img != nil, nil
}

// pushedAs is the lock's image that pushed d (its digest in its
// repository), or that pushed ref, the reference Verify was given, when
// that tag now names d: the tag moved since, and what it names now is held
// to the same records. Nil when neither.
func pushedAs(l *lock.Lock, ref string, d name.Digest) *lock.Image {
	if l == nil {
		return nil
	}
	var byTag *lock.Image
	for i := range l.Images {
		for _, p := range l.Images[i].Pushed {
			pr, err := name.ParseReference(p.Ref, name.Insecure)
			if err != nil || pr.Context().Name() != d.Context().Name() {
				continue
			}
			if p.Digest == d.DigestStr() {
				return &l.Images[i]
			}
			if given, err := name.ParseReference(ref, name.Insecure); err == nil && given.Name() == pr.Name() && byTag == nil {
				byTag = &l.Images[i]
			}
		}
	}
	return byTag
}

// writePlatforms adds an index's platforms to its summary.
func writePlatforms(w io.Writer, platforms []string, held bool) {
	if len(platforms) == 0 {
		return
	}
	how := "held to the lock file's tested records"
	if !held {
		how = "no lock file here records this index: covered by its signature only"
	}
	fmt.Fprintf(w, "  platforms %s: %s\n", strings.Join(platforms, ", "), how)
}

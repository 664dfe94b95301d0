package publish

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/pkg/registry"
)

// seed pushes a random image for each tag given per image and returns the
// digests by image and tag.
func seed(t *testing.T, c *registry.Client, prefix string, perImage map[string][]string) map[string]map[string]v1.Hash {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]v1.Hash{}
	for img, tags := range perImage {
		out[img] = map[string]v1.Hash{}
		repo, err := name.NewRepository(prefix + "/" + img)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags {
			ri, err := random.Image(2048, 2)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Pusher().Push(ctx, repo.Tag(tg), ri); err != nil {
				t.Fatal(err)
			}
			out[img][tg], _ = ri.Digest()
		}
	}
	return out
}

func promote(t *testing.T, c *registry.Client, o PromoteOptions) (*PromotePlan, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Promote(ctx, c, o)
}

func TestPromoteSameRepository(t *testing.T) {
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/org/app"
	d := seed(t, c, prefix, map[string][]string{
		"api": {"1.2.3-staging.0", "1.2.3-staging.1", "1.2.3-staging.2", "1.2.4-staging.9"},
		"web": {"1.2.3-staging.0", "1.2.3-staging.1"},
	})
	// An older release already holds latest; 1.2.3 must move it forward.
	seed(t, c, prefix, map[string][]string{"api": {"1.2.2", "latest"}})
	uploads := reg.total()

	o := PromoteOptions{From: prefix, Base: "1.2.3", Images: []string{"api", "web"}, DryRun: true}
	plan, err := promote(t, c, o)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Staging != "1.2.3-staging.1" {
		t.Fatalf("chose %s, want 1.2.3-staging.1 (the minimum of each image's highest)", plan.Staging)
	}
	if !strings.Contains(plan.String(), "manifest writes only") || tagDigest(t, c, prefix+"/api", "1.2.3") != "" {
		t.Fatalf("dry run wrote or misplanned:\n%s", plan)
	}

	o.DryRun = false
	if _, err := promote(t, c, o); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"api", "web"} {
		want := d[img]["1.2.3-staging.1"].String()
		for _, tag := range []string{"1.2.3", "1.2", "1", "latest"} {
			if got := tagDigest(t, c, prefix+"/"+img, tag); got != want {
				t.Errorf("%s:%s = %s, want %s (staging.1)", img, tag, got, want)
			}
		}
	}
	if reg.total() != uploads {
		t.Errorf("promotion uploaded %d blobs, want none", reg.total()-uploads)
	}
	// Again: a no-op.
	if _, err := promote(t, c, o); err != nil {
		t.Fatalf("promoting again: %v", err)
	}
}

func TestPromoteRefusals(t *testing.T) {
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/org/app"
	seed(t, c, prefix, map[string][]string{
		"api": {"2.0.0-staging.0", "2.0.0"},
		"web": {"2.0.0-staging.0"},
		"cli": {"1.0.0-staging.4"},
	})
	tests := []struct {
		name    string
		images  []string
		base    string
		wantErr string
		is      error
	}{
		{name: "release exists with another digest", images: []string{"api", "web"}, base: "2.0.0", wantErr: "api", is: ErrTagConflict},
		{name: "image without the staging build", images: []string{"web", "cli"}, base: "2.0.0", wantErr: "cli has no 2.0.0-staging.N"},
		{name: "not a release", images: []string{"web"}, base: "2.0.0-rc.1", wantErr: "not a release version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := promote(t, c, PromoteOptions{From: prefix, Base: tc.base, Images: tc.images})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			// Nothing written: web has no release tag, and latest is untouched.
			if got := tagDigest(t, c, prefix+"/web", "2.0.0"); got != "" {
				t.Errorf("web:2.0.0 written (%s) by a refused promotion", got)
			}
			if got := tagDigest(t, c, prefix+"/web", "latest"); got != "" {
				t.Errorf("web:latest written by a refused promotion")
			}
		})
	}
}

func TestPromoteAnotherRepositoryWithReferrers(t *testing.T) {
	reg := newRegistry(t)
	c := client(t)
	from, to := reg.host+"/staging/app", reg.host+"/prod/app"
	d := seed(t, c, from, map[string][]string{"api": {"3.1.0-staging.7"}})
	ctx := context.Background()
	src, _ := name.NewRepository(from + "/api")
	subject := d["api"]["3.1.0-staging.7"]
	desc, err := c.Head(ctx, src.Digest(subject.String()))
	if err != nil {
		t.Fatal(err)
	}
	// An attestation referring to the image (OCI 1.1 subject).
	att := mutate.Subject(mutate.ConfigMediaType(empty.Image, types.MediaType("application/vnd.example.sbom+json")), *desc).(v1.Image)
	attDigest, _ := att.Digest()
	if err := c.Pusher().Push(ctx, src.Digest(attDigest.String()), att); err != nil {
		t.Fatal(err)
	}
	// A signature attached by tag, as cosign does.
	sig, _ := random.Image(256, 1)
	sigTag := "sha256-" + subject.Hex + ".sig"
	if err := c.Pusher().Push(ctx, src.Tag(sigTag), sig); err != nil {
		t.Fatal(err)
	}

	plan, err := promote(t, c, PromoteOptions{From: from, To: to, Base: "3.1.0", Images: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Steps[0].SameRepo {
		t.Fatal("planned as the same repository")
	}
	if got := tagDigest(t, c, to+"/api", "3.1.0"); got != subject.String() {
		t.Fatalf("prod api:3.1.0 = %s, want %s", got, subject)
	}
	dst, _ := name.NewRepository(to + "/api")
	idx, err := remote.Referrers(dst.Digest(subject.String()), c.Options(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	found := false
	for _, m := range im.Manifests {
		found = found || m.Digest == attDigest
	}
	if !found {
		t.Errorf("the attestation %s did not travel: referrers in prod are %+v", attDigest, im.Manifests)
	}
	sigDigest, _ := sig.Digest()
	if got := tagDigest(t, c, to+"/api", sigTag); got != sigDigest.String() {
		t.Errorf("signature tag %s = %q in prod, want %s", sigTag, got, sigDigest)
	}
	// The staging repository is untouched by the release tags.
	if got := tagDigest(t, c, from+"/api", "3.1.0"); got != "" {
		t.Errorf("staging repository got 3.1.0")
	}
	var buf bytes.Buffer
	buf.WriteString(plan.String())
	if !strings.Contains(buf.String(), "blobs mounted") {
		t.Errorf("plan %q does not say blobs are mounted", buf.String())
	}
}

// TestPromoteOnlyWhatWasTested: a staging tag re-pointed in the registry
// at another image's manifest after the push stops the promotion before
// any write, naming image, tag and both digests; an explicit staging build
// every image has is promoted even when a higher one exists.
func TestPromoteOnlyWhatWasTested(t *testing.T) {
	reg := newRegistry(t)
	c := client(t)
	prefix := reg.host + "/org/app"
	d := seed(t, c, prefix, map[string][]string{
		"cpu":  {"0.1.0-staging.0", "0.1.0-staging.1"},
		"cuda": {"0.1.0-staging.0", "0.1.0-staging.1"},
	})
	tested := map[string]string{"cpu": d["cpu"]["0.1.0-staging.0"].String(), "cuda": d["cuda"]["0.1.0-staging.0"].String()}
	proof := func(_ context.Context, staging string) (map[string]string, error) {
		if staging != "0.1.0-staging.0" {
			t.Fatalf("proof asked for %s", staging)
		}
		return tested, nil
	}
	// The cpu image's staging tag now names the cuda image.
	ctx := context.Background()
	cpu, _ := name.NewRepository(prefix + "/cpu")
	cuda, _ := name.NewRepository(prefix + "/cuda")
	desc, err := c.Get(ctx, cuda.Tag("0.1.0-staging.0"))
	if err != nil {
		t.Fatal(err)
	}
	ci, _ := desc.Image()
	if err := c.Pusher().Push(ctx, cpu.Tag("0.1.0-staging.0"), ci); err != nil {
		t.Fatal(err)
	}
	o := PromoteOptions{From: prefix, Base: "0.1.0", Images: []string{"cpu", "cuda"}, Staging: []string{"0.1.0-staging.0"}, Tested: proof}
	_, err = promote(t, c, o)
	want := "cpu: " + prefix + "/cpu:0.1.0-staging.0 names " + d["cuda"]["0.1.0-staging.0"].String() + ", but the tested build is " + tested["cpu"]
	if !errors.Is(err, ErrNotTested) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	for _, img := range []string{"cpu", "cuda"} {
		for _, tag := range []string{"0.1.0", "0.1", "0", "latest"} {
			if got := tagDigest(t, c, prefix+"/"+img, tag); got != "" {
				t.Fatalf("%s:%s written (%s) by a refused promotion", img, tag, got)
			}
		}
	}
	// Put it back: staging.0, not the higher staging.1, is promoted.
	ri, _ := remote.Image(cpu.Digest(tested["cpu"]), c.Options(ctx)...)
	if err := c.Pusher().Push(ctx, cpu.Tag("0.1.0-staging.0"), ri); err != nil {
		t.Fatal(err)
	}
	plan, err := promote(t, c, o)
	if err != nil || plan.Staging != "0.1.0-staging.0" || tagDigest(t, c, prefix+"/cpu", "0.1.0") != tested["cpu"] {
		t.Fatalf("plan %+v, err %v", plan, err)
	}
}

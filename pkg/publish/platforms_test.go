package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dockerclient "github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/lock"
)

// platformsImage builds a FROM-scratch image for linux/amd64 and
// linux/arm64 (a different layer each) and returns its lock record, each
// platform tested.
func (f *fixture) platformsImage(t *testing.T, name string) lock.Image {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /built-for-${TARGETARCH}\n"})
	base := testenv.Unique("hoist-test/push-" + name + ":")
	img := lock.Image{}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		ref := base
		if p != "linux/amd64" {
			ref += "-" + strings.ReplaceAll(p, "/", "-")
		}
		if _, err := f.b.Build(ctx, engine.BuildRequest{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Tags: []string{ref}, Platform: p}, io.Discard); err != nil {
			t.Fatalf("building for %s: %v", p, err)
		}
		t.Cleanup(func() { f.e.Remove(context.Background(), ref) })
		rec, err := imagefix.Record(ctx, f.e.Engine, name, ref)
		if err != nil {
			t.Fatal(err)
		}
		if img.Ref == "" {
			img = rec
		}
		img.Platforms = append(img.Platforms, lock.Platform{Platform: p, Ref: ref, ImageID: rec.ImageID, ConfigDigest: rec.ConfigDigest, DiffIDs: rec.DiffIDs,
			Test: &lock.Test{Passed: true, At: time.Now().UTC(), ImageID: rec.ImageID}})
	}
	img.Test = img.PlatformsTest()
	return img
}

// TestPushPlatforms pushes an image built for two platforms to the CNCF
// distribution registry: each platform's manifest by digest, then one OCI
// index the tags name; pulled back per platform, each names the config
// the lock recorded. An index whose arm64 entry was swapped is refused.
func TestPushPlatforms(t *testing.T) { testenv.EachEngine(t, testPushPlatforms) }

func testPushPlatforms(t *testing.T) {
	f := newFixture(t)
	multi, single := f.platformsImage(t, "multi"), f.build(t, "single", 4<<10)
	// The image's OCI labels become the index's annotations; others do not.
	multi.Labels = map[string]string{"org.opencontainers.image.source": "https://example.invalid/multi", "io.hoist.inputs": "x"}
	if err := imagefix.WriteLock(f.lock, "2.0.0", multi, single); err != nil {
		t.Fatal(err)
	}
	reg := regtest.Distribution(t, "", "")
	c := client(t)
	prefix := reg.Host + "/team"
	res, err := f.push(t, c, prefix, "2.0.0-staging.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo, _ := name.NewRepository(prefix + "/multi")
	d, err := c.Get(ctx, repo.Tag("2.0.0-staging.1"))
	if err != nil {
		t.Fatal(err)
	}
	if d.MediaType != types.OCIImageIndex {
		t.Fatalf("2.0.0 is a %s, want an OCI image index", d.MediaType)
	}
	for _, r := range res.Images {
		if r.Name == "multi" && r.Digest != d.Digest.String() {
			t.Errorf("push reports %s for multi, the tag names %s", r.Digest, d.Digest)
		}
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(d.Manifest, &im); err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index lists %d manifests, want 2", len(im.Manifests))
	}
	if len(im.Annotations) != 1 || im.Annotations["org.opencontainers.image.source"] != "https://example.invalid/multi" {
		t.Errorf("index annotations %v, want the image's org.opencontainers.image.* labels", im.Annotations)
	}
	l, err := lock.Read(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	locked, _ := l.Find("multi")
	for i, p := range locked.Platforms {
		m := im.Manifests[i]
		if m.Platform == nil || m.Platform.OS+"/"+m.Platform.Architecture != p.Platform || m.Digest.String() != p.Manifest {
			t.Errorf("index entry %d %+v, want %s at the manifest the lock records (%s)", i, m, p.Platform, p.Manifest)
		}
		// Pulled back for that platform, it is the tested image.
		ri, err := remote.Image(repo.Tag("2.0.0-staging.1"), append(c.Options(ctx), remote.WithPlatform(*ociPlatform(p.Platform)))...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := ri.ConfigName()
		if cfg.String() != p.ConfigDigest {
			t.Errorf("%s pulled back has config %s, lock records %s", p.Platform, cfg, p.ConfigDigest)
		}
	}
	if len(locked.Pushed) == 0 || locked.Pushed[0].Digest != d.Digest.String() {
		t.Errorf("lock records pushed %+v, want the index %s", locked.Pushed, d.Digest)
	}
	// The engine pulls each platform back from the registry.
	for _, p := range locked.Platforms {
		if out, err := exec.Command("docker", "pull", "-q", "--platform", p.Platform, repo.Tag("2.0.0-staging.1").String()).CombinedOutput(); err != nil {
			t.Fatalf("docker pull --platform %s: %v\n%s", p.Platform, err, out)
		}
		// The containerd store keeps every platform pulled under the
		// index's name and is asked for one; the classic store keeps the
		// last one pulled, named by its config.
		var opts []dockerclient.ImageInspectOption
		if f.e.Store != engine.StoreClassic {
			op := ociPlatform(p.Platform)
			opts = append(opts, dockerclient.ImageInspectWithPlatform(&ocispec.Platform{OS: op.OS, Architecture: op.Architecture, Variant: op.Variant}))
		}
		got, err := f.e.API.ImageInspect(ctx, repo.Tag("2.0.0-staging.1").String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got.Os+"/"+got.Architecture != p.Platform || strings.Join(got.RootFS.Layers, ",") != strings.Join(p.DiffIDs, ",") || (f.e.Store == engine.StoreClassic && got.ID != p.ConfigDigest) {
			t.Errorf("docker pull --platform %s gave a %s/%s image with layers %v (ID %s); lock records %+v", p.Platform, got.Os, got.Architecture, got.RootFS.Layers, got.ID, p)
		}
		f.e.Remove(ctx, repo.Tag("2.0.0-staging.1").String())
	}
	// The digest gate passes on what was pushed.
	if n, err := gate.Lock(ctx, f.lock, f.e, c, prefix); err != nil || n == 0 {
		t.Fatalf("gate after push: %d passed, %v", n, err)
	}

	// Pushing again changes nothing.
	again, err := f.push(t, c, prefix, "2.0.0-staging.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again.Images {
		if len(r.Written) != 0 || r.Uploaded != 0 {
			t.Errorf("second push of %s wrote %v and uploaded %d", r.Name, r.Written, r.Uploaded)
		}
	}

	// Promote copies the index, and both platforms' images, by digest.
	tested := func(context.Context, string) (map[string]string, error) {
		l, err := lock.Read(f.lock)
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, img := range l.Images {
			out[img.Name] = img.Pushed[0].Digest
		}
		return out, nil
	}
	to := reg.Host + "/release"
	if _, err := Promote(ctx, c, PromoteOptions{From: prefix, To: to, Base: "2.0.0", Images: []string{"multi", "single"}, Tested: tested}); err != nil {
		t.Fatal(err)
	}
	rel, _ := name.NewRepository(to + "/multi")
	if got := tagDigest(t, c, rel.String(), "2.0.0"); got != d.Digest.String() {
		t.Fatalf("promoted 2.0.0 names %s, want the index %s", got, d.Digest)
	}
	for _, p := range locked.Platforms {
		ri, err := remote.Image(rel.Tag("2.0.0"), append(c.Options(ctx), remote.WithPlatform(*ociPlatform(p.Platform)))...)
		if err != nil {
			t.Fatalf("promoted %s: %v", p.Platform, err)
		}
		if cfg, _ := ri.ConfigName(); cfg.String() != p.ConfigDigest {
			t.Errorf("promoted %s has config %s, lock records %s", p.Platform, cfg, p.ConfigDigest)
		}
	}

	// A staging build whose index lacks arm64 is not the tested one.
	partial := im
	partial.Manifests = im.Manifests[:1]
	pb, _ := json.Marshal(partial)
	if err := c.Pusher().Push(ctx, repo.Tag("2.0.0-staging.2"), rawManifest{pb, types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	// The other image's staging.2 is its tested manifest.
	srepo, _ := name.NewRepository(prefix + "/single")
	sd, err := c.Get(ctx, srepo.Tag("2.0.0-staging.1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Pusher().Push(ctx, srepo.Tag("2.0.0-staging.2"), rawManifest{sd.Manifest, sd.MediaType}); err != nil {
		t.Fatal(err)
	}
	_, err = Promote(ctx, c, PromoteOptions{From: prefix, To: reg.Host + "/release2", Base: "2.0.0", Images: []string{"multi", "single"}, Staging: []string{"2.0.0-staging.2"}, Tested: tested})
	if !errors.Is(err, ErrNotTested) || !strings.Contains(err.Error(), "multi:") {
		t.Fatalf("promoting an index lacking arm64 = %v, want ErrNotTested naming multi", err)
	}

	// An index whose arm64 entry names the amd64 manifest is refused.
	swapped := im
	swapped.Manifests = append([]v1.Descriptor(nil), im.Manifests...)
	swapped.Manifests[1].Digest, swapped.Manifests[1].Size = im.Manifests[0].Digest, im.Manifests[0].Size
	b, _ := json.Marshal(swapped)
	swd, _, _ := v1.SHA256(bytes.NewReader(b))
	if err := c.Pusher().Push(ctx, repo.Digest(swd.String()), rawManifest{b, types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	_, err = gate.Registry(ctx, c, repo.Digest(swd.String()), *locked)
	var me *gate.MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "multi (linux/arm64)") {
		t.Fatalf("gate on the swapped index = %v, want a mismatch naming multi (linux/arm64)", err)
	}
}

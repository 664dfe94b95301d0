package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/pkg/localregistry"
)

// On the distribution registry (no referrers API): a blob goes up once
// and is mounted into the next repository; a referrer lands in the
// fallback index, which keeps the referrers already there.
func TestSessionArtifacts(t *testing.T) {
	reg := regtest.Distribution(t, "", "")
	c, err := New(Options{Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := name.NewRepository(reg.Host + "/org/a")
	b, _ := name.NewRepository(reg.Host + "/org/b")
	s, err := c.Session(t.Context(), a.Registry, nil, []name.Repository{a, b})
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"rootfs":{"type":"layers"}}`)
	h, err := s.Upload(t.Context(), a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(t.Context(), b, cfg); err != nil {
		t.Fatal(err)
	}
	writes, err := reg.Writes()
	if err != nil {
		t.Fatal(err)
	}
	want := []localregistry.Write{{Blob: true, Repo: "org/a", Ref: h.String()}, {Blob: true, Repo: "org/b", Ref: h.String()}}
	if !slices.Equal(writes, want) {
		t.Fatalf("writes %v, want %v", writes, want)
	}
	if n, _ := reg.Counts(); n.Uploads != 1 || n.Mounts != 1 {
		t.Fatalf("registry log: %d uploads, %d mounts; want 1 and 1", n.Uploads, n.Mounts)
	}
	// The same blob to several repositories at once: one upload, mounts.
	var repos []name.Repository
	for _, p := range []string{"c", "d", "e", "f"} {
		r, _ := name.NewRepository(reg.Host + "/org/" + p)
		repos = append(repos, r)
	}
	s2, err := c.Session(t.Context(), a.Registry, nil, repos)
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	for _, r := range repos {
		g.Go(func() error {
			_, err := s2.Upload(t.Context(), r, []byte("shared by four"))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n, _ := reg.Counts(); n.Uploads != 2 || n.Mounts != 4 {
		t.Fatalf("registry log: %d uploads, %d mounts; want 2 and 4 (one upload, three mounts more)", n.Uploads, n.Mounts)
	}

	subject, _ := v1.NewHash("sha256:" + string(slices.Repeat([]byte("5"), 64)))
	for i, ref := range []name.Reference{a.Tag("one"), a.Tag("two"), a.Tag("two")} {
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config:      v1.Descriptor{MediaType: "application/vnd.example+json", Digest: h, Size: int64(len(cfg))},
			Subject:     &v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: subject, Size: 2},
			Annotations: map[string]string{"n": ref.Identifier()}}
		raw, _ := json.Marshal(m)
		if err := s.PutReferrer(t.Context(), ref, raw, types.OCIManifestSchema1, subject, "application/vnd.example+json"); err != nil {
			t.Fatalf("referrer %d: %v", i, err)
		}
	}
	raw, _, err := s.Get(t.Context(), a.Tag("sha256-"+subject.Hex))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].ArtifactType != "application/vnd.example+json" {
		t.Fatalf("fallback index %s: want the two referrers, once each", raw)
	}
}

// countGets counts the GETs of paths ending in suffix.
type countGets struct {
	inner  http.RoundTripper
	suffix string
	n      atomic.Int32
}

func (c *countGets) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, c.suffix) {
		c.n.Add(1)
	}
	return c.inner.RoundTrip(r)
}

// A referrer prepared ahead (PrepareReferrer, as a push does when it knows
// the digest) is written with the fallback index read once, ahead, and
// still keeps the referrers already there; on a registry with the
// referrers API, asked before the repository has a manifest, nothing is
// written under the fallback tag.
func TestSessionPrepareReferrer(t *testing.T) {
	subject, _ := v1.NewHash("sha256:" + string(slices.Repeat([]byte("6"), 64)))
	fallback := "/manifests/sha256-" + subject.Hex
	put := func(t *testing.T, s *Session, ref name.Tag, cfg v1.Hash, size int, subject v1.Hash) {
		t.Helper()
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config:      v1.Descriptor{MediaType: "application/vnd.example+json", Digest: cfg, Size: int64(size)},
			Subject:     &v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: subject, Size: 2},
			Annotations: map[string]string{"n": ref.Identifier()}}
		raw, _ := json.Marshal(m)
		if err := s.PutReferrer(t.Context(), ref, raw, types.OCIManifestSchema1, subject, "application/vnd.example+json"); err != nil {
			t.Fatal(err)
		}
	}
	session := func(t *testing.T, host string, tr http.RoundTripper) (*Session, name.Repository, v1.Hash, int) {
		t.Helper()
		c, err := New(Options{Keychain: noKeys{}, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		repo, _ := name.NewRepository(host + "/org/a")
		s, err := c.Session(t.Context(), repo.Registry, nil, []name.Repository{repo})
		if err != nil {
			t.Fatal(err)
		}
		cfg := []byte(`{}`)
		h, err := s.Upload(t.Context(), repo, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s, repo, h, len(cfg)
	}
	t.Run("fallback", func(t *testing.T) {
		reg := regtest.Distribution(t, "", "")
		s, repo, cfg, size := session(t, reg.Host, nil)
		put(t, s, repo.Tag("one"), cfg, size, subject)
		ct := &countGets{inner: remote.DefaultTransport, suffix: fallback}
		s2, _, _, _ := session(t, reg.Host, ct)
		s2.PrepareReferrer(t.Context(), repo, subject)
		s2.artifacts.mu.Lock()
		ra := s2.artifacts.ahead[fallbackTag(repo, subject).String()]
		s2.artifacts.mu.Unlock()
		<-ra.done
		if n := ct.n.Load(); n != 1 {
			t.Fatalf("the fallback index was read %d times ahead, want once", n)
		}
		put(t, s2, repo.Tag("two"), cfg, size, subject)
		if n := ct.n.Load(); n != 1 {
			t.Errorf("the fallback index was read %d times, want once (ahead)", n)
		}
		raw, _, err := s2.Get(t.Context(), repo.Tag("sha256-"+subject.Hex))
		if err != nil {
			t.Fatal(err)
		}
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil || len(idx.Manifests) != 2 {
			t.Fatalf("fallback index %s (%v): want both referrers", raw, err)
		}
	})
	t.Run("referrers API", func(t *testing.T) {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
		defer srv.Close()
		host := strings.TrimPrefix(srv.URL, "http://")
		s, repo, cfg, size := session(t, host, nil)
		// As in a push, the subject is in the repository before anything
		// refers to it: the image's manifest, pushed and gated.
		img, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfg, Size: int64(size)}, Layers: []v1.Descriptor{}})
		subject, _, _ := v1.SHA256(bytes.NewReader(img))
		if err := s.Put(t.Context(), repo.Digest(subject.String()), img, types.OCIManifestSchema1); err != nil {
			t.Fatal(err)
		}
		s.PrepareReferrer(t.Context(), repo, subject)
		put(t, s, repo.Tag("one"), cfg, size, subject)
		if _, _, err := s.Get(t.Context(), repo.Tag("sha256-"+subject.Hex)); !errors.Is(err, ErrNotFound) {
			t.Errorf("a fallback tag was written on a registry with the referrers API: %v", err)
		}
	})
}

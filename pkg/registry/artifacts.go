package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Small artifacts (signatures, attestations) through a session: a few KiB
// each and made fresh by every push, so the existence check, the chunked
// upload and the referrers probe that go-containerregistry spends on every
// artifact cost more than the bytes. A blob goes up in two requests, a
// manifest with a subject in one plus, on registries without the
// referrers API, a read and a write of the fallback tag.

// artifacts is what a session's artifact writes learn of the registry:
// whether it serves the referrers API (asked once per session, not once
// per subject), and each blob's first upload (so the other repositories
// mount it rather than uploading it again).
type artifacts struct {
	once sync.Once
	has  bool
	err  error

	mu    sync.Mutex
	blobs map[v1.Hash]*sent // the first upload of each blob
	// ahead holds the fallback indexes read ahead (PrepareReferrer), by
	// fallback tag, each for one later PutReferrer.
	ahead map[string]*readAhead
}

// readAhead is a fallback index read before its referrer is written.
type readAhead struct {
	done chan struct{}
	raw  []byte // nil: no index under the tag
	err  error
}

// sent is a blob's first upload in a session: the uploads of the same
// blob to other repositories wait for it, then mount from repo.
type sent struct {
	repo name.Repository
	done chan struct{}
	ok   bool // set before done is closed
}

// first returns the first upload of h, and whether the caller is making it.
func (a *artifacts) first(h v1.Hash, repo name.Repository) (*sent, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if u, ok := a.blobs[h]; ok {
		return u, false
	}
	if a.blobs == nil {
		a.blobs = map[v1.Hash]*sent{}
	}
	u := &sent{repo: repo, done: make(chan struct{})}
	a.blobs[h] = u
	return u, true
}

// Upload writes blob to repo in one monolithic upload (POST, then PUT
// with the bytes) and returns its digest. It does not ask first whether
// the registry has it: callers upload bytes they just made. A blob this
// session writes to several repositories goes up once: the other writes
// wait for that upload and mount from there (a registry that declines the
// mount takes the upload; a failed first upload leaves each to its own).
func (s *Session) Upload(ctx context.Context, repo name.Repository, blob []byte) (_ v1.Hash, err error) {
	h, _, err := v1.SHA256(bytes.NewReader(blob))
	if err != nil {
		return v1.Hash{}, err
	}
	what := "uploading blob " + h.String() + " to " + repo.String()
	u := s.url(repo, "blobs/uploads/")
	first, mine := s.artifacts.first(h, repo)
	if mine {
		defer func() {
			first.ok = err == nil
			close(first.done)
		}()
	} else {
		select {
		case <-first.done:
		case <-ctx.Done():
			return v1.Hash{}, ctx.Err()
		}
		switch {
		case first.ok && first.repo == repo:
			return h, nil
		case first.ok:
			u = s.mountURL(repo, first.repo, h)
		}
	}
	resp, err := s.do(ctx, http.MethodPost, u, nil, nil, http.StatusAccepted, http.StatusCreated)
	if err != nil {
		return v1.Hash{}, s.c.Explain(what, repo.RegistryStr(), err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return h, nil // mounted
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return v1.Hash{}, fmt.Errorf("%s: the registry sent no upload location", what)
	}
	q := loc.Query()
	q.Set("digest", h.String())
	loc.RawQuery = q.Encode()
	resp, err = s.do(ctx, http.MethodPut, loc.String(), blob, map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return v1.Hash{}, s.c.Explain(what, repo.RegistryStr(), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // to reuse the connection
	resp.Body.Close()
	return h, nil
}

// Mount makes blob d of from, a repository of the session's registry, a
// blob of repo without its bytes travelling, and reports whether the
// registry did. One that declines opens an upload instead, which Mount
// cancels: the caller then uploads the bytes.
func (s *Session) Mount(ctx context.Context, repo, from name.Repository, d v1.Hash) (bool, error) {
	what := "mounting blob " + d.String() + " from " + from.String() + " into " + repo.String()
	u := s.mountURL(repo, from, d)
	resp, err := s.do(ctx, http.MethodPost, u, nil, nil, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return false, s.c.Explain(what, repo.RegistryStr(), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, nil
	}
	if loc, err := resp.Request.URL.Parse(resp.Header.Get("Location")); err == nil && resp.Header.Get("Location") != "" {
		// An upload left open expires by itself; cancelling frees it now.
		if r, err := s.do(ctx, http.MethodDelete, loc.String(), nil, nil, http.StatusNoContent, http.StatusAccepted, http.StatusOK); err == nil {
			r.Body.Close()
		}
	}
	return false, nil
}

// mountURL starts an upload to repo that asks the registry to mount d
// from from instead.
func (s *Session) mountURL(repo, from name.Repository, d v1.Hash) string {
	return s.url(repo, "blobs/uploads/") + "?" + url.Values{"mount": {d.String()}, "from": {from.RepositoryStr()}}.Encode()
}

// PutReferrer writes manifest (of media type mt, with a subject) under
// ref and makes it a referrer of subject: registries with the referrers
// API index it themselves; on the others it is added to the index under
// the fallback tag (sha256-HEX), with artifactType as its artifact type,
// keeping the referrers already there.
func (s *Session) PutReferrer(ctx context.Context, ref name.Reference, manifest []byte, mt types.MediaType, subject v1.Hash, artifactType string) error {
	what := "writing " + ref.String()
	// The subject is in the registry by now, so the question whether the
	// registry has the referrers API (asked once per session) is asked
	// beside the write rather than after it.
	type answer struct {
		has bool
		err error
	}
	probe := make(chan answer, 1)
	go func() {
		has, err := s.hasReferrersAPI(ctx, ref.Context(), subject)
		probe <- answer{has, err}
	}()
	resp, err := s.do(ctx, http.MethodPut, s.url(ref.Context(), "manifests/"+ref.Identifier()), manifest, map[string]string{"Content-Type": string(mt)}, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		<-probe
		return s.c.Explain(what, ref.Context().RegistryStr(), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	a := <-probe
	// A registry that indexed the subject says so in this header (OCI
	// distribution spec 1.1); not all that have the API send it.
	if resp.Header.Get("OCI-Subject") != "" {
		return nil
	}
	if a.err != nil {
		return a.err
	} else if a.has {
		return nil
	}
	return s.addFallback(ctx, ref.Context(), subject, manifest, mt, artifactType)
}

// PrepareReferrer reads ahead, in the background, the index under
// subject's fallback tag in repo, which PutReferrer needs where the
// registry has no referrers API. A push calls it when it knows the digest,
// so the write after the digest gate waits on one read fewer. It writes
// nothing. It does not ask whether the registry has the referrers API:
// before the subject's manifest is there, a registry that has it may
// answer for an unknown repository as one that has not. A read that fails
// is made again by PutReferrer.
func (s *Session) PrepareReferrer(ctx context.Context, repo name.Repository, subject v1.Hash) {
	ra := &readAhead{done: make(chan struct{})}
	tag := fallbackTag(repo, subject)
	s.artifacts.mu.Lock()
	if s.artifacts.ahead == nil {
		s.artifacts.ahead = map[string]*readAhead{}
	}
	if _, ok := s.artifacts.ahead[tag.String()]; ok {
		s.artifacts.mu.Unlock()
		return
	}
	s.artifacts.ahead[tag.String()] = ra
	s.artifacts.mu.Unlock()
	go func() {
		defer close(ra.done)
		ra.raw, _, ra.err = s.Get(ctx, tag)
		if errors.Is(ra.err, ErrNotFound) {
			ra.raw, ra.err = nil, nil
		}
	}()
}

// readFallback is the index under tag: read ahead when PrepareReferrer
// read it (each read ahead serves once), read now otherwise. nil means
// there is none.
func (s *Session) readFallback(ctx context.Context, tag name.Tag) ([]byte, error) {
	s.artifacts.mu.Lock()
	ra := s.artifacts.ahead[tag.String()]
	delete(s.artifacts.ahead, tag.String())
	s.artifacts.mu.Unlock()
	if ra != nil {
		select {
		case <-ra.done:
			if ra.err == nil {
				return ra.raw, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	raw, _, err := s.Get(ctx, tag)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return raw, err
}

func fallbackTag(repo name.Repository, subject v1.Hash) name.Tag {
	return repo.Tag(strings.Replace(subject.String(), ":", "-", 1))
}

// hasReferrersAPI asks the registry, once per session, whether it serves
// the referrers API.
func (s *Session) hasReferrersAPI(ctx context.Context, repo name.Repository, subject v1.Hash) (bool, error) {
	s.artifacts.once.Do(func() {
		resp, err := s.do(ctx, http.MethodGet, s.url(repo, "referrers/"+subject.String()), nil, map[string]string{"Accept": string(types.OCIImageIndex)}, http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusMethodNotAllowed)
		if err != nil {
			s.artifacts.err = s.c.Explain("asking "+repo.RegistryStr()+" for the referrers API", repo.RegistryStr(), err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// 404 also answers a registry that has the API for an unknown
		// subject, so only a reply that is an index counts as the API.
		s.artifacts.has = resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), string(types.OCIImageIndex))
	})
	return s.artifacts.has, s.artifacts.err
}

// addFallback adds the manifest to the index under subject's fallback tag
// in repo, sorted by digest as go-containerregistry writes it.
func (s *Session) addFallback(ctx context.Context, repo name.Repository, subject v1.Hash, manifest []byte, mt types.MediaType, artifactType string) error {
	tag := fallbackTag(repo, subject)
	h, size, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return err
	}
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	raw, err := s.readFallback(ctx, tag)
	switch {
	case raw == nil && err == nil:
	case err != nil:
		return fmt.Errorf("reading the referrers of %s: %w", repo.Digest(subject.String()), err)
	default:
		if err := json.Unmarshal(raw, &im); err != nil || im.SchemaVersion != 2 || im.MediaType != types.OCIImageIndex {
			return fmt.Errorf("reading the referrers of %s: %s is not an OCI image index: delete that tag and push again", repo.Digest(subject.String()), tag)
		}
	}
	for _, d := range im.Manifests {
		if d.Digest == h {
			return nil
		}
	}
	im.Manifests = append(im.Manifests, v1.Descriptor{MediaType: mt, Digest: h, Size: size, ArtifactType: artifactType})
	sort.Slice(im.Manifests, func(i, j int) bool { return im.Manifests[i].Digest.String() < im.Manifests[j].Digest.String() })
	b, err := json.Marshal(im)
	if err != nil {
		return err
	}
	return s.Put(ctx, tag, b, types.OCIImageIndex)
}

package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Session is one authenticated connection to a registry for many
// repositories at once: one ping and one token for all of them, where
// go-containerregistry sets up each repository on its own. Tag work (list,
// look up, write manifests) goes through it: many small requests, for which
// the set-up would cost as much as the work.
type Session struct {
	c      *Client
	reg    name.Registry
	client *http.Client

	artifacts artifacts // what the session's artifact writes know of reg
}

var manifestTypes = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
	string(types.OCIImageIndex), string(types.DockerManifestList),
}, ",")

// Session opens a session on reg for reading the pull repositories and
// reading and writing the push ones.
func (c *Client) Session(ctx context.Context, reg name.Registry, pull, push []name.Repository) (*Session, error) {
	var scopes []string
	seen := map[string]bool{}
	for _, r := range push {
		seen[r.String()] = true
		scopes = append(scopes, r.Scope(transport.PushScope))
	}
	for _, r := range pull {
		if !seen[r.String()] {
			seen[r.String()] = true
			scopes = append(scopes, r.Scope(transport.PullScope))
		}
	}
	auth, err := authn.Resolve(ctx, c.keychain, reg)
	if err != nil {
		return nil, fmt.Errorf("finding credentials for %s: %w", reg, err)
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, c.base, scopes)
	if err != nil {
		return nil, c.Explain("connecting to "+reg.String(), reg.RegistryStr(), err)
	}
	return &Session{c: c, reg: reg, client: &http.Client{Transport: rt}}, nil
}

func (s *Session) url(repo name.Repository, path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", s.reg.Scheme(), s.reg.RegistryStr(), repo.RepositoryStr(), path)
}

func (s *Session) do(ctx context.Context, method, u string, body []byte, hdr map[string]string, ok ...int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// Tags lists repo's tags with the discovery rules of Client.Tags.
func (s *Session) Tags(ctx context.Context, repo name.Repository) ([]string, error) {
	var all []string
	u := s.url(repo, "tags/list?n=1000")
	for u != "" {
		resp, err := s.do(ctx, http.MethodGet, u, nil, nil, http.StatusOK)
		if err != nil {
			if StatusCode(err) == http.StatusNotFound {
				return nil, nil
			}
			return nil, s.c.Explain("listing tags of "+repo.String(), repo.RegistryStr(), err)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		all = append(all, page.Tags...)
		u = next(resp, u)
	}
	return all, nil
}

// next follows a Link: <...>; rel="next" header.
func next(resp *http.Response, cur string) string {
	link := resp.Header.Get("Link")
	if link == "" {
		return ""
	}
	start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if start < 0 || end < start {
		return ""
	}
	base, err := url.Parse(cur)
	if err != nil {
		return ""
	}
	ref, err := url.Parse(link[start+1 : end])
	if err != nil {
		return ""
	}
	return base.ResolveReference(ref).String()
}

// Head looks ref up; a missing one is an error wrapping ErrNotFound.
func (s *Session) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	resp, err := s.do(ctx, http.MethodHead, s.url(ref.Context(), "manifests/"+ref.Identifier()), nil, map[string]string{"Accept": manifestTypes}, http.StatusOK)
	if err != nil {
		return nil, s.c.Explain("looking up "+ref.String(), ref.Context().RegistryStr(), err)
	}
	resp.Body.Close()
	d, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return nil, fmt.Errorf("looking up %s: the registry sent no digest: %w", ref, err)
	}
	return &v1.Descriptor{Digest: d, Size: resp.ContentLength, MediaType: types.MediaType(resp.Header.Get("Content-Type"))}, nil
}

// Get fetches the manifest ref resolves to.
func (s *Session) Get(ctx context.Context, ref name.Reference) ([]byte, *v1.Descriptor, error) {
	resp, err := s.do(ctx, http.MethodGet, s.url(ref.Context(), "manifests/"+ref.Identifier()), nil, map[string]string{"Accept": manifestTypes}, http.StatusOK)
	if err != nil {
		return nil, nil, s.c.Explain("fetching "+ref.String(), ref.Context().RegistryStr(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("fetching %s: %w", ref, err)
	}
	d, size, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	if dig, ok := ref.(name.Digest); ok && dig.DigestStr() != d.String() {
		return nil, nil, fmt.Errorf("fetching %s: the registry sent a manifest of digest %s", ref, d)
	}
	return b, &v1.Descriptor{Digest: d, Size: size, MediaType: types.MediaType(resp.Header.Get("Content-Type"))}, nil
}

// Put writes manifest (of media type mt) under ref.
func (s *Session) Put(ctx context.Context, ref name.Reference, manifest []byte, mt types.MediaType) error {
	resp, err := s.do(ctx, http.MethodPut, s.url(ref.Context(), "manifests/"+ref.Identifier()), manifest, map[string]string{"Content-Type": string(mt)}, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return s.c.Explain("writing "+ref.String(), ref.Context().RegistryStr(), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // to reuse the connection
	resp.Body.Close()
	return nil
}

// CheckPush proves, without leaving anything behind, that the session may
// push to repo: it opens a blob upload (which needs push permission on
// every registry, with basic and with token auth) and cancels it.
func (s *Session) CheckPush(ctx context.Context, repo name.Repository) error {
	resp, err := s.do(ctx, http.MethodPost, s.url(repo, "blobs/uploads/"), nil, nil, http.StatusAccepted)
	if err != nil {
		return s.c.Explain("checking push access to "+repo.String(), repo.RegistryStr(), err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return nil
	}
	// A registry that does not support cancelling lets the upload expire.
	if resp, err := s.do(ctx, http.MethodDelete, u.String(), nil, nil, http.StatusNoContent, http.StatusOK, http.StatusNotFound, http.StatusMethodNotAllowed); err == nil {
		resp.Body.Close()
	}
	return nil
}

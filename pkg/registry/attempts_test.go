package registry

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/internal/faultproxy"
)

// TestOneRetryLayer counts, through the fault proxy, how often one failing
// request reaches the registry: exactly Backoff.Steps times, whichever path
// sent it (go-containerregistry's puller and pusher, a blob upload, the
// tag session, the /v2/ ping), never a product of stacked retry layers.
func TestOneRetryLayer(t *testing.T) {
	ctx := context.Background()
	open := inProcess(t)
	seed, err := New(Options{Backoff: fast, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	seedRepo, _ := seed.Repository(open + "/r/seed")
	if err := seed.Pusher().Push(ctx, seedRepo.Tag("1.0.0"), img); err != nil {
		t.Fatal(err)
	}
	manifest, _ := img.RawManifest()
	mt, _ := img.MediaType()

	ops := []struct {
		name   string
		method string
		path   string // the failing request's path contains this
		run    func(c *Client, repo string) error
	}{
		{name: "ping", method: http.MethodGet, path: "/v2/", run: func(c *Client, repo string) error {
			r, _ := c.Repository(repo)
			_, err := c.Tags(ctx, r)
			return err
		}},
		{name: "tag list", method: http.MethodGet, path: "/tags/list", run: func(c *Client, repo string) error {
			r, _ := c.Repository(repo)
			_, err := c.Tags(ctx, r)
			return err
		}},
		{name: "manifest head", method: http.MethodHead, path: "/manifests/1.0.0", run: func(c *Client, repo string) error {
			r, _ := c.Repository(repo)
			_, err := c.Head(ctx, r.Tag("1.0.0"))
			return err
		}},
		{name: "blob upload start", method: http.MethodPost, path: "/blobs/uploads/", run: uploadNew},
		{name: "blob upload body", method: http.MethodPatch, path: "/blobs/uploads/", run: uploadNew},
		{name: "blob upload commit", method: http.MethodPut, path: "/blobs/uploads/", run: uploadNew},
		{name: "manifest put", method: http.MethodPut, path: "/manifests/2.0.0", run: func(c *Client, repo string) error {
			r, _ := c.Repository(repo)
			return c.Pusher().Push(ctx, r.Tag("2.0.0"), img)
		}},
		{name: "session tag list", method: http.MethodGet, path: "/tags/list", run: func(c *Client, repo string) error {
			r, _ := c.Repository(repo)
			s, err := c.Session(ctx, r.Registry, nil, []name.Repository{r})
			if err != nil {
				return err
			}
			_, err = s.Tags(ctx, r)
			return err
		}},
		{name: "session manifest put", method: http.MethodPut, path: "/manifests/3.0.0", run: func(c *Client, repo string) error {
			r, _ := c.Repository(repo)
			s, err := c.Session(ctx, r.Registry, nil, []name.Repository{r})
			if err != nil {
				return err
			}
			return s.Put(ctx, r.Tag("3.0.0"), manifest, types.MediaType(mt))
		}},
	}
	faults := map[string]faultproxy.Fault{"503": {Status: http.StatusServiceUnavailable}, "dropped connection": {Reset: true}}
	for _, op := range ops {
		for fname, fault := range faults {
			t.Run(op.name+"/"+fname, func(t *testing.T) {
				var mu sync.Mutex
				hits := 0
				p := faultproxy.New(open, func(_ int, r *http.Request) faultproxy.Fault {
					match := r.Method == op.method && strings.Contains(r.URL.Path, op.path)
					if op.path == "/v2/" {
						match = r.Method == op.method && r.URL.Path == "/v2/"
					}
					if !match {
						return faultproxy.Fault{}
					}
					mu.Lock()
					defer mu.Unlock()
					hits++
					return fault
				})
				t.Cleanup(p.Close)
				// net/http itself sends an idempotent request once more when a
				// pooled connection turns out dead; without keep-alives the
				// count is Hoist's layers alone.
				tr := remote.DefaultTransport.(*http.Transport).Clone()
				tr.DisableKeepAlives = true
				c, err := New(Options{Backoff: fast, Keychain: noKeys{}, Transport: tr})
				if err != nil {
					t.Fatal(err)
				}
				repo := p.Host + "/r/seed"
				if op.method != http.MethodGet && op.method != http.MethodHead {
					repo = p.Host + "/r/" + strings.NewReplacer(" ", "-", "/", "-").Replace(t.Name())
					repo = strings.ToLower(repo)
				}
				if err := op.run(c, repo); err == nil {
					t.Fatal("the operation succeeded though every try failed")
				}
				mu.Lock()
				defer mu.Unlock()
				if hits != fast.Steps {
					t.Fatalf("the failing request was sent %d times, want exactly %d (Backoff.Steps)", hits, fast.Steps)
				}
			})
		}
	}
}

// TestUploadRestartsWhenTheSessionIsLost: the one case where a whole blob
// upload starts again is a registry that lost the upload session; the
// failed request itself is not sent again.
func TestUploadRestartsWhenTheSessionIsLost(t *testing.T) {
	open := inProcess(t)
	var mu sync.Mutex
	patches := 0
	p := faultproxy.New(open, func(_ int, r *http.Request) faultproxy.Fault {
		if r.Method != http.MethodPatch {
			return faultproxy.Fault{}
		}
		mu.Lock()
		defer mu.Unlock()
		if patches++; patches == 1 {
			return faultproxy.Fault{Status: http.StatusNotFound, Body: `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"upload lost"}]}`}
		}
		return faultproxy.Fault{}
	})
	t.Cleanup(p.Close)
	c, err := New(Options{Backoff: fast, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := uploadNew(c, p.Host+"/r/lost"); err != nil {
		t.Fatalf("upload after a lost session: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if patches != 2 {
		t.Fatalf("%d PATCH requests, want 2 (one lost, one in a new upload)", patches)
	}
}

// uploadNew uploads one blob of its own: the in-process registry keeps
// blobs across repositories, so a known one would never be uploaded.
func uploadNew(c *Client, repo string) error {
	r, err := c.Repository(repo)
	if err != nil {
		return err
	}
	l, err := random.Layer(256, types.OCILayer)
	if err != nil {
		return err
	}
	return c.Pusher().Upload(context.Background(), r, l)
}

package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/internal/faultproxy"
	"github.com/hoistci/hoist/internal/regtest"
)

var fast = remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 5}

func inProcess(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestTagsDiscovery(t *testing.T) {
	ctx := context.Background()
	open := inProcess(t)
	c, err := New(Options{Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := c.Repository(open + "/org/app")
	img, _ := random.Image(64, 1)
	if err := c.Pusher().Push(ctx, repo.Tag("1.0.0-staging.3"), img); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-Pa55word"
	auth := regtest.Distribution(t, "ci", secret)
	status := func(code int) string {
		p := faultproxy.New(open, func(int, *http.Request) faultproxy.Fault { return faultproxy.Fault{Status: code} })
		t.Cleanup(p.Close)
		return p.Host
	}
	tests := []struct {
		name    string
		repo    string
		host    string // the explicit credentials' host (default: the repo's)
		user    string
		pass    string
		want    []string
		wantErr string
		wantNot string
		wantIs  error
	}{
		{name: "200 lists", repo: open + "/org/app", want: []string{"1.0.0-staging.3"}},
		{name: "404 is a first run", repo: open + "/org/new"},
		{name: "401 without credentials", repo: auth.Host + "/org/app", wantErr: "set HOIST_REGISTRY_USERNAME and HOIST_REGISTRY_PASSWORD", wantIs: ErrAuth},
		{name: "401 with a wrong password", repo: auth.Host + "/org/app", user: "ci", pass: secret + "x", wantErr: "registry " + auth.Host + ` answered 401 to user "ci"`, wantNot: "set HOIST_REGISTRY_USERNAME", wantIs: ErrAuth},
		{name: "401 with credentials for another host", repo: auth.Host + "/org/app", host: "ghcr.io", user: "ci", pass: secret, wantErr: "set HOIST_REGISTRY_USERNAME and HOIST_REGISTRY_PASSWORD", wantIs: ErrAuth},
		{name: "right password, no repository yet", repo: auth.Host + "/org/app", user: "ci", pass: secret},
		{name: "403 names package permissions", repo: status(403) + "/org/app", wantErr: "package", wantIs: ErrAuth},
		{name: "other status fails fast", repo: status(418) + "/org/app", wantErr: "answered 418"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if host == "" {
				host = strings.Split(tc.repo, "/")[0]
			}
			c, err := New(Options{Host: host, Username: tc.user, Password: Secret(tc.pass), Backoff: fast, Keychain: noKeys{}})
			if err != nil {
				t.Fatal(err)
			}
			repo, err := c.Repository(tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := c.Tags(ctx, repo)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the password: %v", err)
				}
				if tc.wantNot != "" && strings.Contains(err.Error(), tc.wantNot) {
					t.Fatalf("err = %v, must not say %q", err, tc.wantNot)
				}
				if time.Since(start) > 5*time.Second {
					t.Errorf("took %s: a refusal must fail fast, not retry", time.Since(start))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("tags = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetriesTransientFaults(t *testing.T) {
	ctx := context.Background()
	open := inProcess(t)
	tests := []struct {
		name string
		rule faultproxy.Rule
	}{
		{name: "503 burst", rule: func(n int, _ *http.Request) faultproxy.Fault {
			if n <= 3 {
				return faultproxy.Fault{Status: 503}
			}
			return faultproxy.Fault{}
		}},
		{name: "429 then fine", rule: func(n int, _ *http.Request) faultproxy.Fault {
			if n == 1 {
				return faultproxy.Fault{Status: 429}
			}
			return faultproxy.Fault{}
		}},
		{name: "dropped connections", rule: func(n int, _ *http.Request) faultproxy.Fault {
			return faultproxy.Fault{Reset: n == 2 || n == 5 || n == 9 || n == 14 || n == 20}
		}},
		{name: "slow answers", rule: func(n int, _ *http.Request) faultproxy.Fault {
			return faultproxy.Fault{Delay: 50 * time.Millisecond}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := faultproxy.New(open, tc.rule)
			defer p.Close()
			c, err := New(Options{Backoff: fast, Keychain: noKeys{}})
			if err != nil {
				t.Fatal(err)
			}
			repo, _ := c.Repository(p.Host + "/r/" + strings.ReplaceAll(tc.name, " ", "-"))
			img, _ := random.Image(1024, 2)
			if err := c.Pusher().Push(ctx, repo.Tag("1.0.0"), img); err != nil {
				t.Fatalf("push through faults: %v", err)
			}
			tags, err := c.Tags(ctx, repo)
			if err != nil || len(tags) != 1 {
				t.Fatalf("tags %v, %v", tags, err)
			}
			if p.Faults() == 0 {
				t.Fatal("no fault was injected: the test proves nothing")
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	o := Options{Username: "u", Password: s}
	for _, out := range []string{s.String(), s.GoString(), sprintf("%v", o), sprintf("%+v", o), sprintf("%#v", o), sprintf("%s", s)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

// noKeys keeps the machine's Docker config out of the tests.
type noKeys struct{}

func (noKeys) Resolve(authnResource) (authenticator, error) { return anonymous, nil }

type (
	authnResource = authn.Resource
	authenticator = authn.Authenticator
)

var anonymous = authn.Anonymous

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }

// An upload whose completing PUT is dropped fails with the upload URL in
// the error, _state token and all; what Hoist reports keeps the URL and
// drops its query.
func TestErrorsRedactUploadTokens(t *testing.T) {
	ctx := context.Background()
	reg := regtest.Distribution(t, "ci", "pw")
	p := faultproxy.New(reg.Host, func(_ int, r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPut || r.Method == http.MethodPatch {
			return faultproxy.Fault{Reset: true}
		}
		return faultproxy.Fault{}
	})
	t.Cleanup(p.Close)
	c, err := New(Options{Host: p.Host, Username: "ci", Password: "pw", Backoff: fast, Keychain: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Repository(p.Host + "/org/app")
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := random.Layer(64, types.DockerLayer)
	raw := c.Pusher().Upload(ctx, repo, layer)
	if raw == nil || !strings.Contains(raw.Error(), "_state=") {
		t.Fatalf("upload error = %v; want one naming the upload URL with its _state token", raw)
	}
	err = c.Explain("uploading a layer to "+repo.String(), repo.RegistryStr(), raw)
	if strings.Contains(err.Error(), "_state") || !strings.Contains(err.Error(), "/blobs/uploads/") {
		t.Fatalf("explained error = %v; want the upload URL without its query", err)
	}
	if !errors.Is(err, raw) {
		t.Errorf("the explained error no longer wraps the registry's")
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		`Put "https://r.example/v2/a/blobs/uploads/u1?_state=SECRET&digest=sha256:ab": EOF`: `Put "https://r.example/v2/a/blobs/uploads/u1?[redacted]": EOF`,
		"GET http://127.0.0.1:5000/v2/a/tags/list?n=1000 failed":                            "GET http://127.0.0.1:5000/v2/a/tags/list?[redacted] failed",
		"no url here? none": "no url here? none",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// Package registry is Hoist's client of OCI registries, a thin layer over
// go-containerregistry: credentials (Docker's config and credential helpers
// plus explicit CI credentials), retries with backoff on 408/429/5xx and
// dropped connections, tag discovery with the write-up's status handling, and
// errors that say what to do. It never prints and never reads the
// environment; secrets given to it never appear in its errors.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the registry has no such manifest, blob or repository.
	ErrNotFound = errors.New("not found in the registry")
	// ErrAuth: the registry refused the credentials (401) or the permission (403).
	ErrAuth = errors.New("registry refused access")
)

// Secret is a string that never prints.
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// Options configure a Client.
type Options struct {
	// Host is the registry the explicit credentials are for (e.g. ghcr.io).
	Host string
	// Username and Password are explicit credentials for Host (CI sets them
	// from secrets). Empty: Docker's config file and credential helpers.
	Username string
	Password Secret
	// Keychain replaces Docker's default keychain (tests).
	Keychain authn.Keychain
	// Insecure allows plain HTTP to hosts that are not loopback.
	Insecure bool
	// Transport is the HTTP transport (default: go-containerregistry's).
	Transport http.RoundTripper
	// Backoff is the schedule of the one retry layer: a request is sent at
	// most Backoff.Steps times. Zero means DefaultBackoff.
	Backoff remote.Backoff
	// Jobs bounds concurrent blob uploads per repository (default 4).
	Jobs int
	// UserAgent names Hoist in the registry's logs.
	UserAgent string
}

// RetryStatusCodes are the answers retried with backoff.
var RetryStatusCodes = []int{
	http.StatusRequestTimeout,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// DefaultBackoff sends a request at most 6 times, waiting 200ms, 400ms, …
// 3.2s between tries plus up to 20% jitter: 6.2s to 7.4s of waiting in all,
// more only when the registry asks for it with Retry-After (up to 10s a
// wait).
var DefaultBackoff = remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 6}

// Client talks to registries. It is safe for concurrent use and reuses
// connections and tokens across calls.
type Client struct {
	o        Options
	keychain authn.Keychain
	base     http.RoundTripper
	opts     []remote.Option
	puller   *remote.Puller
	pusher   *remote.Pusher
}

// New returns a Client.
func New(o Options) (*Client, error) {
	if o.Backoff.Steps == 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Jobs == 0 {
		o.Jobs = 4
	}
	if o.UserAgent == "" {
		o.UserAgent = "hoist"
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	if o.Username != "" || o.Password != "" {
		kc = authn.NewMultiKeychain(explicit{host: o.Host, user: o.Username, pass: string(o.Password)}, kc)
	}
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	rt := &retrying{inner: base, backoff: o.Backoff}
	opts := []remote.Option{
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(kc),
		// go-containerregistry wraps rt in a retry of its own: no status
		// codes for it (rt retried those already), and rt's final errors do
		// not look like dropped connections to it (gaveUp).
		remote.WithRetryStatusCodes(),
		// Whole uploads start again only when the registry lost the upload
		// session (uploadRestart), on the same schedule.
		remote.WithRetryPredicate(uploadRestart),
		remote.WithRetryBackoff(o.Backoff),
		remote.WithJobs(o.Jobs),
		remote.WithUserAgent(o.UserAgent),
	}
	c := &Client{o: o, opts: opts, keychain: kc, base: rt}
	var err error
	if c.puller, err = remote.NewPuller(opts...); err != nil {
		return nil, fmt.Errorf("setting up registry client: %w", err)
	}
	if c.pusher, err = remote.NewPusher(opts...); err != nil {
		return nil, fmt.Errorf("setting up registry client: %w", err)
	}
	return c, nil
}

// explicit answers with the given credentials for one host (any host when
// host is empty), and defers to the next keychain otherwise.
type explicit struct {
	host, user, pass string
}

func (e explicit) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if e.host != "" && r.RegistryStr() != e.host {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: e.user, Password: e.pass}), nil
}

// Options for go-containerregistry calls, with credentials, retries and the
// shared puller and pusher, e.g. for remote.Image.
func (c *Client) Options(ctx context.Context) []remote.Option {
	return append(append([]remote.Option(nil), c.opts...), remote.WithContext(ctx), remote.Reuse(c.puller), remote.Reuse(c.pusher))
}

// Puller and Pusher are the shared go-containerregistry handles.
func (c *Client) Puller() *remote.Puller { return c.puller }
func (c *Client) Pusher() *remote.Pusher { return c.pusher }

// Repository parses HOST/PATH as a repository.
func (c *Client) Repository(s string) (name.Repository, error) {
	var opts []name.Option
	if c.o.Insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%q is not a repository (HOST/PATH): %w", s, err)
	}
	return r, nil
}

// Tags lists a repository's tags, as the write-up's discovery does: 200 is
// parsed; 404 is a first run (no repository yet: no tags, no error); 401 and
// 403 fail with guidance on credentials and package permissions; anything
// else fails fast.
func (c *Client) Tags(ctx context.Context, repo name.Repository) ([]string, error) {
	tags, err := c.puller.List(ctx, repo)
	if err == nil {
		return tags, nil
	}
	if StatusCode(err) == http.StatusNotFound {
		return nil, nil
	}
	return nil, c.Explain("listing tags of "+repo.String(), repo.RegistryStr(), err)
}

// Head returns the descriptor ref resolves to, or an error wrapping
// ErrNotFound.
func (c *Client) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	d, err := c.puller.Head(ctx, ref)
	if err != nil {
		return nil, c.Explain("looking up "+ref.String(), ref.Context().RegistryStr(), err)
	}
	return d, nil
}

// Get fetches the manifest ref resolves to.
func (c *Client) Get(ctx context.Context, ref name.Reference) (*remote.Descriptor, error) {
	d, err := c.puller.Get(ctx, ref)
	if err != nil {
		return nil, c.Explain("fetching "+ref.String(), ref.Context().RegistryStr(), err)
	}
	return d, nil
}

// HasBlob reports whether repo holds the blob d.
func (c *Client) HasBlob(ctx context.Context, repo name.Repository, d v1.Hash) (bool, error) {
	l, err := c.puller.Layer(ctx, repo.Digest(d.String()))
	if err != nil {
		return false, c.Explain("looking up blob "+d.String()+" in "+repo.String(), repo.RegistryStr(), err)
	}
	// Size issues a HEAD on the blob.
	if _, err := l.Size(); err != nil {
		if StatusCode(err) == http.StatusNotFound {
			return false, nil
		}
		return false, c.Explain("looking up blob "+d.String()+" in "+repo.String(), repo.RegistryStr(), err)
	}
	return true, nil
}

// StatusCode returns the HTTP status of a registry error, or 0.
func StatusCode(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// Explain wraps a registry error with what was being done and what to do,
// for a caller with no Client at hand: it cannot tell whether explicit
// credentials were given (Client.Explain can). 404 wraps ErrNotFound; 401
// and 403 wrap ErrAuth with guidance. URLs in the error lose their query
// strings: an upload's _state token never reaches output.
func Explain(doing, host string, err error) error {
	return explain(doing, host, "", false, err)
}

// Explain is the package's Explain knowing whether explicit credentials
// are set for host, so a 401 names the user the registry refused rather
// than asking for credentials that are already there.
func (c *Client) Explain(doing, host string, err error) error {
	user, ok := c.explicitFor(host)
	return explain(doing, host, user, ok, err)
}

// explicitFor returns the explicit user for host, and whether explicit
// credentials apply to it.
func (c *Client) explicitFor(host string) (string, bool) {
	if c.o.Username == "" && c.o.Password == "" {
		return "", false
	}
	if c.o.Host != "" && c.o.Host != host {
		return "", false
	}
	return c.o.Username, true
}

// explain is the one place for the wording of registry errors.
func explain(doing, host, user string, explicitCreds bool, err error) error {
	err = redacted{err}
	switch code := StatusCode(err); code {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", doing, ErrNotFound)
	case http.StatusUnauthorized:
		if explicitCreds {
			return fmt.Errorf("%s: registry %s answered 401 to user %q: %w: HOIST_REGISTRY_USERNAME and HOIST_REGISTRY_PASSWORD are set; check that the password is a current token of that user and that its scope covers this repository (e.g. GHCR write:packages)", doing, host, user, ErrAuth)
		}
		return fmt.Errorf("%s: registry %s answered 401: %w: set HOIST_REGISTRY_USERNAME and HOIST_REGISTRY_PASSWORD, or run docker login %s", doing, host, ErrAuth, host)
	case http.StatusForbidden:
		return fmt.Errorf("%s: registry answered 403: %w: the credentials are valid but lack permission; give the token read and write access to the package (e.g. GHCR packages:write, or grant the repository access in the package settings)", doing, ErrAuth)
	case 0:
		return fmt.Errorf("%s: %w", doing, err)
	default:
		return fmt.Errorf("%s: registry answered %d: %w", doing, code, err)
	}
}

// queryInURL is a URL's query string, as errors quote it.
var queryInURL = regexp.MustCompile(`(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'?]*)\?[^\s"']*`)

// RedactURLs drops the query string of every URL in s: registries put
// upload session tokens (_state) and signed-URL credentials there.
func RedactURLs(s string) string {
	return queryInURL.ReplaceAllString(s, "$1?[redacted]")
}

// redacted is an error whose text has its URLs' query strings dropped;
// errors.Is and As still see the error it wraps.
type redacted struct{ err error }

func (r redacted) Error() string { return RedactURLs(r.err.Error()) }
func (r redacted) Unwrap() error { return r.err }

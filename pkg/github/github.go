// Package github is a small client for the parts of GitHub's REST API that
// Hoist uses: Git references (tag reservation) and releases. The API base
// URL is configurable (GitHub Enterprise, or a test server) and the token is
// passed in; this package never reads the environment and never prints the
// token, not even in errors.
package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultAPI is github.com's API base URL.
const DefaultAPI = "https://api.github.com"

// Client talks to one repository.
type Client struct {
	base  *url.URL
	repo  string // OWNER/NAME
	token string
	http  *http.Client
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client with a 30 s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client for repo (OWNER/NAME) at the API base URL apiURL
// (empty: DefaultAPI). token may be empty for read-only calls on public
// repositories; writes then fail with 401 and say which variable to set.
func New(apiURL, repo, token string, opts ...Option) (*Client, error) {
	if apiURL == "" {
		apiURL = DefaultAPI
	}
	u, err := url.Parse(strings.TrimRight(apiURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("GitHub API URL %q is not an http(s) URL: set release.github_api to e.g. %s", apiURL, DefaultAPI)
	}
	parts := strings.Split(repo, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("GitHub repository %q is not OWNER/NAME: set release.github in hoist.yaml, e.g. github: acme/widgets", repo)
	}
	c := &Client{base: u, repo: repo, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Repo is OWNER/NAME.
func (c *Client) Repo() string { return c.repo }

// HasToken reports whether a token was given.
func (c *Client) HasToken() bool { return c.token != "" }

// APIError is a non-2xx answer, with GitHub's own message.
type APIError struct {
	Method, Path     string
	Status           int
	Message          string
	DocumentationURL string
	Errors           []FieldError
}

// FieldError is one entry of a 422 answer's errors list.
type FieldError struct {
	Resource string `json:"resource"`
	Field    string `json:"field"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	for _, fe := range e.Errors {
		if fe.Code != "" {
			msg += fmt.Sprintf(" (%s %s: %s)", fe.Resource, fe.Field, fe.Code)
		}
	}
	s := fmt.Sprintf("GitHub answered %d %s to %s %s", e.Status, msg, e.Method, e.Path)
	switch e.Status {
	case http.StatusUnauthorized:
		s += ": the token is missing or refused; set HOIST_GITHUB_TOKEN or GITHUB_TOKEN to a valid token"
	case http.StatusForbidden:
		s += ": the token lacks permission; it needs contents: write on the repository"
	case http.StatusNotFound:
		s += ": check release.github (OWNER/NAME) and that the token can see the repository (GitHub answers 404, not 403, to tokens without access)"
	}
	return s
}

// StatusOf returns the HTTP status of an APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Do sends a request to path (below /repos/OWNER/NAME when it starts with
// "./", else from the API root), encoding in as JSON when not nil and
// decoding a 2xx answer into out when not nil.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	if strings.HasPrefix(path, "./") {
		path = "/repos/" + c.repo + path[1:]
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	rel, err := url.Parse(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	u.Path = strings.TrimRight(u.Path, "/") + rel.Path
	u.RawPath = ""
	u.RawQuery = rel.RawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "hoist")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error carries the URL, which never holds the token (it goes in
		// a header), so it is safe to show.
		return fmt.Errorf("%s %s on %s: %w: check release.github_api and the network", method, path, c.base.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var eb struct {
			Message          string       `json:"message"`
			DocumentationURL string       `json:"documentation_url"`
			Errors           []FieldError `json:"errors"`
		}
		if json.Unmarshal(data, &eb) == nil {
			ae.Message, ae.DocumentationURL, ae.Errors = eb.Message, eb.DocumentationURL, eb.Errors
		}
		return ae
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: GitHub's answer is not the JSON expected: %w", method, path, err)
		}
	}
	return nil
}

// CheckPush proves the token may write to the repository (create releases
// and tags) by reading the repository as the token sees it: GitHub answers
// GET /repos/OWNER/NAME with the caller's "permissions" (push: write access).
func (c *Client) CheckPush(ctx context.Context) error {
	if c.token == "" {
		return fmt.Errorf("no GitHub token for %s: set HOIST_GITHUB_TOKEN or GITHUB_TOKEN (contents: write)", c.repo)
	}
	var repo struct {
		Permissions *struct {
			Push bool `json:"push"`
		} `json:"permissions"`
	}
	if err := c.Do(ctx, http.MethodGet, "/repos/"+c.repo, nil, &repo); err != nil {
		return fmt.Errorf("checking the GitHub token's access to %s: %w", c.repo, err)
	}
	if repo.Permissions != nil && !repo.Permissions.Push {
		return fmt.Errorf("the GitHub token can read %s but not write to it: give it contents: write (workflow: permissions: contents: write)", c.repo)
	}
	return nil
}

// WebURL is the repository's page: github.com's for the public API, the
// server's own for GitHub Enterprise (API at https://HOST/api/v3).
func (c *Client) WebURL() string {
	u := *c.base
	switch {
	case u.Host == "api.github.com":
		u.Host, u.Path = "github.com", ""
	default:
		u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3")
	}
	return strings.TrimSuffix(u.String(), "/") + "/" + c.repo
}

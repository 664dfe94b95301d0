package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ErrNoIDToken means the job cannot ask for an OIDC token: its workflow
// does not grant `id-token: write`.
var ErrNoIDToken = errors.New("no OIDC token request URL: grant the job `permissions: id-token: write` in its workflow")

// IDToken asks GitHub Actions' token service for the job's OIDC identity
// token with the given audience, as the actions toolkit's core.getIDToken
// does: GET requestURL&audience=AUD with `Authorization: bearer
// requestToken` (the runner's ACTIONS_ID_TOKEN_REQUEST_URL and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN), answered with {"value": "<JWT>"}.
// Neither the request token nor the answer is ever part of an error.
func IDToken(ctx context.Context, client *http.Client, requestURL, requestToken, audience string) (string, error) {
	if requestURL == "" || requestToken == "" {
		return "", ErrNoIDToken
	}
	u, err := url.Parse(requestURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("the OIDC token request URL is not an http(s) URL: check ACTIONS_ID_TOKEN_REQUEST_URL (the runner sets it)")
	}
	q := u.Query()
	q.Set("audience", audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("asking %s for an OIDC token: %w", u.Host, err)
	}
	req.Header.Set("Authorization", "bearer "+requestToken)
	req.Header.Set("Accept", "application/json")
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// A transport error names the URL, which holds no secret (the
		// request token is a header).
		return "", fmt.Errorf("asking %s for an OIDC token: %w", u.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("asking %s for an OIDC token: it answered %s: check that the job has `permissions: id-token: write`", u.Host, resp.Status)
	}
	var body struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Value == "" {
		return "", fmt.Errorf("asking %s for an OIDC token: the answer holds no token", u.Host)
	}
	return body.Value, nil
}

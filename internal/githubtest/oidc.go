package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OIDC stands in for GitHub Actions' OIDC token service, the one a job
// with `permissions: id-token: write` asks for its identity token. It
// answers as GitHub documents it ("OpenID Connect reference", and the
// token request the actions toolkit's core.getIDToken makes):
//
//   - the token request GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD with
//     `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN` returns
//     {"count": N, "value": "<JWT>"};
//   - /.well-known/openid-configuration and its jwks_uri serve discovery
//     and the RS256 signing key, as token.actions.githubusercontent.com
//     does;
//   - the JWT carries GitHub's claims: iss (this server's URL), aud, sub
//     (repo:OWNER/REPO:ref:REF), and the custom claims (repository, ref,
//     sha, workflow_ref, job_workflow_ref, run_id, run_attempt, …) that
//     Fulcio's github-workflow issuer requires and puts in the
//     certificate.
//
// Fulcio verifies the tokens against this server's keys, as it does
// against GitHub's.
type OIDC struct {
	*httptest.Server
	// RequestURL and RequestToken are what the runner puts in
	// ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	RequestURL   string
	RequestToken string
	// Repo (OWNER/NAME), Workflow (its file under .github/workflows), Ref
	// and SHA are the run the tokens describe.
	Repo, Workflow, Ref, SHA string

	key    *rsa.PrivateKey
	kid    string
	mu     sync.Mutex
	issued []string
}

// NewOIDC starts a token service for runs of workflow in repo on ref,
// closed with the test.
func NewOIDC(t testing.TB, repo, workflow, ref string) *OIDC {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &OIDC{Repo: repo, Workflow: workflow, Ref: ref, SHA: randomHex(20), key: key, kid: randomHex(8), RequestToken: randomHex(24)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", o.discovery)
	mux.HandleFunc("GET /.well-known/jwks", o.jwks)
	mux.HandleFunc("GET /_apis/distributedtask/idtoken", o.token)
	o.Server = httptest.NewServer(mux)
	t.Cleanup(o.Close)
	o.RequestURL = o.URL + "/_apis/distributedtask/idtoken?api-version=2.0"
	return o
}

// Issuer is the tokens' iss, this server's URL (GitHub's is
// https://token.actions.githubusercontent.com).
func (o *OIDC) Issuer() string { return o.URL }

// Identity is the certificate identity Fulcio gives the run: the URI of
// the job's workflow at its ref (https://github.com/ + job_workflow_ref).
func (o *OIDC) Identity() string {
	return "https://github.com/" + o.jobWorkflowRef()
}

// Issued are the tokens handed out so far (for tests that search outputs
// and files for them).
func (o *OIDC) Issued() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.issued...)
}

func (o *OIDC) jobWorkflowRef() string {
	return o.Repo + "/.github/workflows/" + o.Workflow + "@" + o.Ref
}

func (o *OIDC) discovery(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, map[string]any{
		"issuer":                                o.URL,
		"jwks_uri":                              o.URL + "/.well-known/jwks",
		"subject_types_supported":               []string{"public", "pairwise"},
		"response_types_supported":              []string{"id_token"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository", "repository_id", "repository_owner", "repository_owner_id", "run_id", "run_number", "run_attempt", "runner_environment", "actor", "actor_id", "workflow", "workflow_ref", "workflow_sha", "head_ref", "base_ref", "event_name", "ref_type", "ref_protected", "environment", "job_workflow_ref", "job_workflow_sha", "repository_visibility", "enterprise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid"},
	})
}

func (o *OIDC) jwks(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: o.key.Public(), KeyID: o.kid, Algorithm: string(jose.RS256), Use: "sig"}}})
}

// token answers the runner's token request. GitHub answers a missing or
// wrong bearer token with 401, and the audience defaults to the
// repository owner's URL.
func (o *OIDC) token(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || tok != o.RequestToken {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
		return
	}
	owner, _, _ := strings.Cut(o.Repo, "/")
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		aud = "https://github.com/" + owner
	}
	now := time.Now()
	sha := o.SHA
	refType := "branch"
	if strings.HasPrefix(o.Ref, "refs/tags/") {
		refType = "tag"
	}
	claims := map[string]any{
		"jti": randomHex(16), "iss": o.URL, "aud": aud,
		"sub": "repo:" + o.Repo + ":ref:" + o.Ref,
		"iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"ref": o.Ref, "ref_type": refType, "ref_protected": "true", "sha": sha,
		"repository": o.Repo, "repository_id": "123456789", "repository_owner": owner, "repository_owner_id": "98765",
		"repository_visibility": "public", "actor": owner, "actor_id": "98765",
		"run_id": "4242", "run_number": "17", "run_attempt": "1", "runner_environment": "github-hosted",
		"event_name": "push", "head_ref": "", "base_ref": "",
		"workflow":     strings.TrimSuffix(o.Workflow, ".yml"),
		"workflow_ref": o.jobWorkflowRef(), "workflow_sha": sha,
		"job_workflow_ref": o.jobWorkflowRef(), "job_workflow_sha": sha,
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: o.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", o.kid))
	if err != nil {
		reply(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
		return
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		reply(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
		return
	}
	o.mu.Lock()
	o.issued = append(o.issued, raw)
	o.mu.Unlock()
	reply(w, http.StatusOK, map[string]any{"count": len(raw), "value": raw})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/githubtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/settings"
)

// TestKeylessSettingsRefused: with attest.keyless, what cannot sign or
// verify as configured is refused with one line naming what to do, and no
// secret; outside CI nothing is signed, as without a key.
func TestKeylessSettingsRefused(t *testing.T) {
	oidc := githubtest.NewOIDC(t, "acme/app", "ci.yml", "refs/heads/main")
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n"})
	cfg, err := config.Parse("hoist.yaml", dir, []byte(`project: d
images:
  - {name: a, dockerfile: Dockerfile}
attest:
  keyless:
    issuer: https://token.actions.githubusercontent.com
    identity: https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  []string
		want string // "" : no signer, no error
	}{
		{name: "laptop", env: nil},
		{name: "pull request", env: []string{"CI=true", "GITHUB_EVENT_NAME=pull_request"}},
		{name: "CI job without the grant", env: []string{"CI=true"}, want: "grant the job `permissions: id-token: write`"},
		{name: "a key as well", env: []string{"CI=true", "HOIST_SIGNING_KEY=/k/cosign.key", "ACTIONS_ID_TOKEN_REQUEST_URL=" + oidc.RequestURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + oidc.RequestToken}, want: "unset HOIST_SIGNING_KEY, or remove attest.keyless"},
		{name: "request token refused", env: []string{"CI=true", "ACTIONS_ID_TOKEN_REQUEST_URL=" + oidc.RequestURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN=not-the-request-token-8c1d"}, want: "answered 401 Unauthorized: check that the job has `permissions: id-token: write`"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set, err := settings.Read(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			r := &Run{Cfg: cfg, Set: set}
			s, err := r.signer(context.Background())
			if tt.want == "" {
				if s != nil || err != nil {
					t.Fatalf("signer = %v, %v; want none", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "not-the-request-token-8c1d") || strings.Contains(err.Error(), oidc.RequestToken) {
				t.Fatalf("signer error %v; want one line with %q and no token", err, tt.want)
			}
		})
	}
	// Verify needs the root to trust.
	set, err := settings.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Run{Cfg: cfg, Set: set}).verifier()
	if !errors.Is(err, ErrNoVerifyKey) || !strings.Contains(err.Error(), "set attest.keyless.root") {
		t.Fatalf("verifier without a root: %v", err)
	}
}

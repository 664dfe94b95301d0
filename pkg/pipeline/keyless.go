package pipeline

import (
	"context"
	"fmt"

	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/github"
	"github.com/hoistci/hoist/pkg/readlimit"
)

// keylessSigner signs with the CI job's OIDC identity when attest.keyless
// is set: nil (nothing signed) outside CI, as without a key; a pushing CI
// job that may not ask for a token is refused (its images would reach the
// registry unsigned and promotion would refuse them later). A key set as
// well is refused: the policy would not take its signatures.
func (r *Run) keylessSigner(ctx context.Context) (*attest.Signer, error) {
	k := r.Cfg.Attest.Keyless
	if r.Set.SigningKey != "" {
		return nil, fmt.Errorf("HOIST_SIGNING_KEY is set but %s: attest.keyless signs with the CI's OIDC identity: unset HOIST_SIGNING_KEY, or remove attest.keyless to sign with the key", r.Cfg.File)
	}
	if r.Set.IDTokenRequestURL == "" {
		if r.Set.CI && !r.Set.PR {
			return nil, fmt.Errorf("%s sets attest.keyless but this CI job cannot ask for an OIDC token (no ACTIONS_ID_TOKEN_REQUEST_URL): grant the job `permissions: id-token: write`", r.Cfg.File)
		}
		return nil, nil
	}
	token := func(ctx context.Context) (string, error) {
		return github.IDToken(ctx, nil, r.Set.IDTokenRequestURL, string(r.Set.IDTokenRequestToken), attest.Audience)
	}
	s, err := attest.NewKeylessSigner(ctx, attest.Keyless{Fulcio: k.Fulcio, Token: token})
	if err != nil {
		return nil, fmt.Errorf("signing keylessly (attest.keyless): %w", err)
	}
	policy := r.keylessPolicy(nil)
	if ok, err := policy.Matches(s.KeyID()); err != nil || !ok {
		return nil, fmt.Errorf("signing keylessly: this job's identity is %s but %s: attest.keyless wants %s, so Verify and promotion would refuse its proofs: sign from that workflow, or change attest.keyless", s.KeyID(), r.Cfg.File, policy.Wants())
	}
	return s, nil
}

// keylessPolicy is attest.keyless as a policy trusting roots.
func (r *Run) keylessPolicy(roots []byte) attest.KeylessPolicy {
	k := r.Cfg.Attest.Keyless
	return attest.KeylessPolicy{Roots: roots, Issuer: k.Issuer, Identity: k.Identity, IdentityRegexp: k.IdentityRegexp}
}

// keylessVerifier checks certificates for attest.keyless's issuer and
// identity under attest.keyless.root.
func (r *Run) keylessVerifier() (*attest.Verifier, error) {
	k := r.Cfg.Attest.Keyless
	if k.Root == "" {
		return nil, fmt.Errorf("%w: attest.keyless has no root: set attest.keyless.root in %s to the PEM root certificate of the Fulcio that certifies the signatures (for the public one, fulcio_v1.crt.pem of Sigstore's trust root)", ErrNoVerifyKey, r.Cfg.File)
	}
	b, err := readlimit.ReadFile(r.Cfg.Path(k.Root), "Fulcio root", 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: attest.keyless.root: %w", r.Cfg.File, err)
	}
	v, err := attest.NewKeylessVerifier(r.keylessPolicy(b))
	if err != nil {
		return nil, fmt.Errorf("%s: attest.keyless.root %s: %w", r.Cfg.File, k.Root, err)
	}
	return v, nil
}

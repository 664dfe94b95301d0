package attest_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hoistci/hoist/internal/cosign"
	"github.com/hoistci/hoist/internal/fulcio"
	"github.com/hoistci/hoist/internal/githubtest"
	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/github"
)

// keylessSigner asks the token service for tokens, as a GitHub Actions
// job does, and gets a keyless signer certified by the Fulcio at f.
func keylessSigner(t *testing.T, oidc *githubtest.OIDC, f *fulcio.Server, renewBefore time.Duration) *attest.Signer {
	t.Helper()
	token := func(ctx context.Context) (string, error) {
		return github.IDToken(ctx, nil, oidc.RequestURL, oidc.RequestToken, attest.Audience)
	}
	s, err := attest.NewKeylessSigner(t.Context(), attest.Keyless{Fulcio: f.URL, Token: token, RenewBefore: renewBefore})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeylessRealCosignVerifies signs keylessly as a GitHub Actions job
// would: a token from the stand-in of GitHub's token service, a
// certificate from the real Fulcio (ephemeral CA, no CT log), a fresh key.
// The real cosign verifies every attestation and the image signature by
// the certificate's identity and issuer under that Fulcio's root, and
// refuses another identity and another Fulcio's certificate; Hoist's own
// Verify does the same with a keyless policy, and refuses a key-signed
// proof under it. The token is in no output and no attached byte.
func TestKeylessRealCosignVerifies(t *testing.T) {
	bin := cosign.Binary(t)
	oidc := githubtest.NewOIDC(t, "acme/app", "ci.yml", "refs/heads/main")
	ful := fulcio.Start(t, oidc.Issuer())
	other := fulcio.Start(t, oidc.Issuer()) // another CA: its certificates must not count
	signer := keylessSigner(t, oidc, ful, 0)
	stranger := keylessSigner(t, oidc, other, 0)
	if signer.KeyID() != oidc.Identity() {
		t.Fatalf("signer identity %q, want %q", signer.KeyID(), oidc.Identity())
	}
	if !strings.Contains(signer.Describe(), oidc.Issuer()) {
		t.Fatalf("signer describes itself as %q, without the issuer", signer.Describe())
	}
	env := []string{"SIGSTORE_ROOT_FILE=" + ful.RootFile}
	cosignArgs := func(identity string, args ...string) []string {
		return append(args, "--certificate-identity", identity, "--certificate-oidc-issuer", oidc.Issuer(),
			"--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-http-registry")
	}
	policy := attest.KeylessPolicy{Roots: ful.RootPEM, Issuer: oidc.Issuer(), Identity: oidc.Identity()}
	ver, err := attest.NewKeylessVerifier(policy)
	if err != nil {
		t.Fatal(err)
	}
	wrongID := policy
	wrongID.Identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	verWrongID, err := attest.NewKeylessVerifier(wrongID)
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	registries(t, func(t *testing.T, host string) {
		ctx := t.Context()
		img := pushRandom(t, host, "team/keyless")
		payload, sig, err := signer.SignImage(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := attach(t, img, envelopes(t, signer, img, passing(img), true), &attest.ImageSignature{Payload: payload, Sig: sig, Cert: signer.Certificate()})
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"slsaprovenance1", attest.PredicateHoist, "cyclonedx"} {
			out, err := cosign.Run(ctx, bin, env, cosignArgs(oidc.Identity(), "verify-attestation", "--type", typ, img.String())...)
			outputs = append(outputs, out)
			if err != nil {
				t.Fatalf("cosign verify-attestation --type %s: %v\n%s", typ, err, out)
			}
		}
		out, err := cosign.Run(ctx, bin, env, cosignArgs(oidc.Identity(), "verify", img.String())...)
		outputs = append(outputs, out)
		if err != nil {
			t.Fatalf("cosign verify: %v\n%s", err, out)
		}
		if !strings.Contains(out, img.DigestStr()) {
			t.Fatalf("cosign verify did not name the digest:\n%s", out)
		}
		// Another identity of the same repository: cosign refuses both.
		for _, args := range [][]string{
			cosignArgs(wrongID.Identity, "verify-attestation", "--type", "slsaprovenance1", img.String()),
			cosignArgs(wrongID.Identity, "verify", img.String()),
		} {
			out, err := cosign.Run(ctx, bin, env, args...)
			outputs = append(outputs, out)
			if err == nil {
				t.Fatalf("cosign %s accepted identity %s:\n%s", args[0], wrongID.Identity, out)
			}
		}

		// Hoist's Verify: the policy's identity passes, another is refused.
		rep, err := attest.Verify(ctx, nil, img, ver, all)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Err() != nil || len(rep.Proofs) != 3 || rep.Tested == nil || rep.Provenance == nil {
			t.Fatalf("keyless verify: %v, %d proofs", rep.Err(), len(rep.Proofs))
		}
		if err := ver.VerifySignature(ctx, img, &attest.ImageSignature{Payload: payload, Sig: sig, Cert: signer.Certificate()}); err != nil {
			t.Fatalf("keyless image signature: %v", err)
		}
		rep, err = attest.Verify(ctx, nil, img, verWrongID, all)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, rep, "names identity "+oidc.Identity()+", not "+wrongID.Identity)
		outputs = append(outputs, rep.Err().Error())
		// An identity regexp must match the whole identity.
		for re, pass := range map[string]bool{
			`https://github\.com/acme/app/\.github/workflows/ci\.yml@refs/heads/.+`: true,
			`https://github\.com/acme/app/\.github/workflows/ci\.yml`:               false,
		} {
			v, err := attest.NewKeylessVerifier(attest.KeylessPolicy{Roots: ful.RootPEM, Issuer: oidc.Issuer(), IdentityRegexp: re})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := attest.Verify(ctx, nil, img, v, all)
			if err != nil {
				t.Fatal(err)
			}
			if pass && rep.Err() != nil {
				t.Fatalf("identity regexp %s: %v", re, rep.Err())
			}
			if !pass {
				wantRefused(t, rep, "not an identity matching "+re)
			}
		}

		// Certified by another Fulcio: cosign and Verify refuse it.
		img2 := pushRandom(t, host, "team/keyless")
		if _, err := attach(t, img2, envelopes(t, stranger, img2, passing(img2), true), nil); err != nil {
			t.Fatal(err)
		}
		out, err = cosign.Run(ctx, bin, env, cosignArgs(oidc.Identity(), "verify-attestation", "--type", "slsaprovenance1", img2.String())...)
		outputs = append(outputs, out)
		if err == nil {
			t.Fatalf("cosign accepted a certificate of another Fulcio:\n%s", out)
		}
		rep, err = attest.Verify(ctx, nil, img2, ver, all)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, rep, "not issued under the trusted Fulcio root")
		outputs = append(outputs, rep.Err().Error())

		// Signed with a key: a keyless policy does not take it.
		img3 := pushRandom(t, host, "team/keyless")
		fx := newFixture(t, host)
		if _, err := attach(t, img3, envelopes(t, fx.signer, img3, passing(img3), true), nil); err != nil {
			t.Fatal(err)
		}
		rep, err = attest.Verify(ctx, nil, img3, ver, all)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, rep, "carries no certificate")

		// No byte attached holds a token.
		for _, ref := range []name.Reference{got.Att, got.Sig} {
			for _, b := range artifactBytes(t, ref) {
				for _, tok := range append(oidc.Issued(), oidc.RequestToken) {
					if strings.Contains(string(b), tok) {
						t.Fatalf("%s holds an OIDC token", ref)
					}
				}
			}
		}
	})
	for _, out := range outputs {
		for _, tok := range append(oidc.Issued(), oidc.RequestToken) {
			if strings.Contains(out, tok) {
				t.Fatalf("an output holds a token:\n%s", out)
			}
		}
	}
}

// wantRefused checks that the report refuses, one line per problem, each
// attestation for the reason want.
func wantRefused(t *testing.T, rep *attest.Report, want string) {
	t.Helper()
	if rep.Err() == nil {
		t.Fatalf("verify passed; want a refusal naming %q", want)
	}
	named := 0
	for _, p := range rep.Problems {
		if strings.Contains(p, want) {
			named++
		}
		if strings.Contains(p, "\n") {
			t.Fatalf("refusal spans lines: %q", p)
		}
	}
	if named != 3 {
		t.Fatalf("%d refusals name %q, want one per attestation (all: %v)", named, want, rep.Err())
	}
}

// artifactBytes are the manifest, config and layers of ref.
func artifactBytes(t *testing.T, ref name.Reference) [][]byte {
	t.Helper()
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out := [][]byte{m, cfg}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestIDTokenRefusals: the token request without the job's grant, or with
// a request token the service refuses, fails with one line that holds no
// secret.
func TestIDTokenRefusals(t *testing.T) {
	oidc := githubtest.NewOIDC(t, "acme/app", "ci.yml", "refs/heads/main")
	ctx := context.Background()
	if _, err := github.IDToken(ctx, nil, "", "", attest.Audience); err == nil || !strings.Contains(err.Error(), "id-token: write") {
		t.Fatalf("no request URL: %v", err)
	}
	_, err := github.IDToken(ctx, nil, oidc.RequestURL, "wrong-request-token-5b1e", attest.Audience)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-request-token-5b1e") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("refused request token: %v", err)
	}
	if len(oidc.Issued()) != 0 {
		t.Fatal("a token was issued for a refused request")
	}
	// A token for another audience is refused by Fulcio (it wants sigstore).
	ful := fulcio.Start(t, oidc.Issuer())
	tok, err := github.IDToken(ctx, nil, oidc.RequestURL, oidc.RequestToken, "https://github.com/acme")
	if err != nil {
		t.Fatal(err)
	}
	_, err = attest.NewKeylessSigner(ctx, attest.Keyless{Fulcio: ful.URL, Token: func(context.Context) (string, error) { return tok, nil }})
	if err == nil || strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("token for another audience: %v", err)
	}
	t.Logf("refused as: %v", err)
}

// TestKeylessRenewsCertificate: a signer whose certificate is about to
// expire gets a new key certified before it signs again (a push longer
// than a certificate's ten minutes). Here every signature is "about to
// expire", so each carries its own certificate; Verify and the real
// cosign accept them all.
func TestKeylessRenewsCertificate(t *testing.T) {
	bin := cosign.Binary(t)
	oidc := githubtest.NewOIDC(t, "acme/app", "ci.yml", "refs/heads/main")
	ful := fulcio.Start(t, oidc.Issuer())
	signer := keylessSigner(t, oidc, ful, time.Hour)
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
	t.Cleanup(srv.Close)
	img := pushRandom(t, strings.TrimPrefix(srv.URL, "http://"), "team/renewed")
	ctx := t.Context()
	desc, err := remote.Head(img)
	if err != nil {
		t.Fatal(err)
	}
	sub := subject(img)
	prov, err := attest.ProvenanceStatement(sub, attest.Provenance{BuilderID: "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"})
	if err != nil {
		t.Fatal(err)
	}
	tested, err := attest.TestedStatement(sub, passing(img))
	if err != nil {
		t.Fatal(err)
	}
	sbom, err := attest.SBOMStatement(sub, attest.SBOMCycloneDX, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	// The way Push signs: staged statements and the image, then the
	// tested statement.
	st, err := signer.SignAndStage(ctx, session(t, img.Context()), img, *desc, []attest.Unsigned{
		{PredicateType: attest.PredicateProvenance, Statement: prov}, {PredicateType: attest.PredicateCycloneDX, Statement: sbom},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Finish(ctx, st, []attest.Unsigned{{PredicateType: attest.PredicateHoist, Statement: tested}}); err != nil {
		t.Fatal(err)
	}
	// One token for the signer, one for each of the four signatures.
	if n := len(oidc.Issued()); n != 5 {
		t.Fatalf("%d tokens asked for; want 5 (a renewal before each signature)", n)
	}
	m, err := remote.Image(img.Context().Tag(strings.Replace(img.DigestStr(), ":", "-", 1) + ".att"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := m.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]bool{}
	for _, l := range man.Layers {
		certs[l.Annotations["dev.sigstore.cosign/certificate"]] = true
	}
	if len(certs) != 3 || certs[""] {
		t.Fatalf("the three envelopes carry %d distinct certificates; want 3", len(certs))
	}
	v, err := attest.NewKeylessVerifier(attest.KeylessPolicy{Roots: ful.RootPEM, Issuer: oidc.Issuer(), Identity: oidc.Identity()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := attest.Verify(ctx, nil, img, v, all)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err() != nil || len(rep.Proofs) != 3 {
		t.Fatalf("verify: %v, %d proofs", rep.Err(), len(rep.Proofs))
	}
	env := []string{"SIGSTORE_ROOT_FILE=" + ful.RootFile}
	for _, args := range [][]string{
		{"verify-attestation", "--type", attest.PredicateHoist},
		{"verify-attestation", "--type", "slsaprovenance1"},
		{"verify"},
	} {
		args = append(args, "--certificate-identity", oidc.Identity(), "--certificate-oidc-issuer", oidc.Issuer(),
			"--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-http-registry", img.String())
		if out, err := cosign.Run(ctx, bin, env, args...); err != nil {
			t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
		}
	}
}

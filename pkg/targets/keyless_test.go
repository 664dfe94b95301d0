package targets

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/hoistci/hoist/internal/cosign"
	"github.com/hoistci/hoist/internal/fulcio"
	"github.com/hoistci/hoist/internal/githubtest"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/attest"
)

// TestPushSignsKeyless runs Scan, Push, Verify and Promote as a GitHub
// Actions job granted `id-token: write` would, with attest.keyless in
// hoist.yaml: the token from the stand-in of GitHub's token service, the
// certificate from the real Fulcio, the proofs on the distribution
// registry. The real cosign verifies every attestation and the signature
// by identity and issuer under that Fulcio's root. A job of another
// workflow is refused before anything is pushed; Verify and Promote refuse
// another identity and another Fulcio's root, one line each; no token
// appears in any output or file.
func TestPushSignsKeyless(t *testing.T) {
	const user, regSecret = "ci", "Reg-s3cret-keyless-44"
	bin := cosign.Binary(t)
	oidc := githubtest.NewOIDC(t, "acme/app", "ci.yml", "refs/heads/staging")
	ful := fulcio.Start(t, oidc.Issuer())
	reg := regtest.Distribution(t, user, regSecret)
	dir, _ := project(t, "  host: "+reg.Host+"\n  repository: org\n", "2.3.4-staging.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The Fulcio roots the policy may name: this one's, and another
	// Fulcio's (whose certificates must not count).
	other := fulcio.Start(t, oidc.Issuer())
	testenv.WriteFiles(t, dir, map[string]string{"fulcio-root.pem": string(ful.RootPEM), "other-root.pem": string(other.RootPEM)})
	base, err := os.ReadFile(filepath.Join(dir, "hoist.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policy := func(identity, root string) {
		t.Helper()
		y := string(base) + "attest:\n  keyless:\n    issuer: " + oidc.Issuer() + "\n    identity: " + identity + "\n    fulcio: " + ful.URL + "\n    root: " + root + "\n"
		testenv.WriteFiles(t, dir, map[string]string{"hoist.yaml": y})
	}

	db, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), filepath.Join(t.TempDir(), "db"), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + regSecret))
	testenv.WriteFiles(t, dockerConfig, map[string]string{"config.json": `{"auths":{"` + reg.Host + `":{"auth":"` + auth + `"}}}`})
	for k, v := range map[string]string{
		"HOIST_PR": "", "GITHUB_EVENT_NAME": "", "DOCKER_CONFIG": t.TempDir(),
		envRegistryUser: user, envRegistryPass: regSecret,
		"HOIST_TRIVY_DB": db, "HOIST_SIGNING_KEY": "", "HOIST_SIGNING_PASSWORD": "", "HOIST_VERIFY_KEY": "",
		"ACTIONS_ID_TOKEN_REQUEST_URL": oidc.RequestURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": oidc.RequestToken,
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
		"GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/ci.yml@refs/heads/staging",
	} {
		t.Setenv(k, v)
	}
	var all strings.Builder
	step := func(fn func(context.Context) error) (string, error) {
		t.Helper()
		var err error
		out := capture(t, func() { err = fn(ctx) })
		all.WriteString(out)
		if err != nil {
			all.WriteString(err.Error())
		}
		return out, err
	}
	if out, err := step(Scan); err != nil {
		t.Fatalf("scan: %v\n%s", err, out)
	}

	// The policy names another workflow: this job's proofs would not
	// count, so Push refuses before it pushes.
	releaseID := "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/staging"
	policy(releaseID, "fulcio-root.pem")
	_, err = step(Push)
	if err == nil || !strings.Contains(err.Error(), "this job's identity is "+oidc.Identity()) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("push from another workflow: %v", err)
	}
	if l := readLock(t, dir); len(l.Images[0].Pushed) != 0 {
		t.Fatalf("push from another workflow pushed %v", l.Images[0].Pushed)
	}

	policy(oidc.Identity(), "fulcio-root.pem")
	if out, err := step(Push); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	} else if !strings.Contains(out, "signed (certificate for "+oidc.Identity()) {
		t.Errorf("push output does not say who signed:\n%s", out)
	}
	out, err := step(Verify)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("verify:\n%s", out)
	}
	for _, want := range []string{"tested    passed (exit 0", "verified: 3 attestations signed by identity " + oidc.Identity() + " (issuer " + oidc.Issuer() + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	l := readLock(t, dir)
	img := l.Images[0]
	if len(img.Attestations) != 3 || img.Signature == nil || img.Attestations[0].Key != oidc.Identity() {
		t.Fatalf("lock records attestations %+v, signature %+v", img.Attestations, img.Signature)
	}
	digestRef := img.Attestations[0].Subject
	repo := strings.SplitN(digestRef, "@", 2)[0]

	// The real cosign, as a consumer runs it.
	cosignEnv := []string{"DOCKER_CONFIG=" + dockerConfig, "SIGSTORE_ROOT_FILE=" + ful.RootFile}
	keyless := func(identity string, args ...string) []string {
		return append(args, "--certificate-identity", identity, "--certificate-oidc-issuer", oidc.Issuer(),
			"--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-http-registry")
	}
	for _, typ := range []string{"slsaprovenance1", attest.PredicateHoist, "cyclonedx"} {
		out, err := cosign.Run(ctx, bin, cosignEnv, keyless(oidc.Identity(), "verify-attestation", "--type", typ, digestRef)...)
		all.WriteString(out)
		if err != nil {
			t.Fatalf("cosign verify-attestation --type %s %s: %v\n%s", typ, digestRef, err, out)
		}
	}
	out, err = cosign.Run(ctx, bin, cosignEnv, keyless(oidc.Identity(), "verify", repo+":2.3.4-staging.1")...)
	all.WriteString(out)
	if err != nil {
		t.Fatalf("cosign verify: %v\n%s", err, out)
	}
	if out, err := cosign.Run(ctx, bin, cosignEnv, keyless(releaseID, "verify", repo+":2.3.4-staging.1")...); err == nil {
		t.Fatalf("cosign verify accepted identity %s:\n%s", releaseID, out)
	}

	// Another identity, another root: Verify and Promote refuse, and the
	// refused promotion writes no release tag.
	basic := crane.WithAuth(&authn.Basic{Username: user, Password: regSecret})
	for _, tt := range []struct {
		identity, root, want string
	}{
		{identity: releaseID, root: "fulcio-root.pem", want: "its certificate names identity " + oidc.Identity() + ", not " + releaseID},
		{identity: oidc.Identity(), root: "other-root.pem", want: "not issued under the trusted Fulcio root"},
	} {
		policy(tt.identity, tt.root)
		out, err := step(Verify)
		if !errors.Is(err, attest.ErrRefused) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(out, "REFUSED") {
			t.Fatalf("verify under %s, %s: %v\n%s", tt.identity, tt.root, err, out)
		}
		t.Setenv("HOIST_VERSION", "")
		_, err = step(Promote)
		if !errors.Is(err, attest.ErrRefused) || !strings.Contains(err.Error(), "refusing 2.3.4-staging.1, its proofs do not hold") || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("promote under %s, %s: %v", tt.identity, tt.root, err)
		}
		if d, err := crane.Digest(repo+":2.3.4", crane.Insecure, basic); err == nil {
			t.Fatalf("a refused promotion wrote %s:2.3.4 = %s", repo, d)
		}
	}
	// Under the policy the job signed for, it promotes, and cosign
	// verifies the proofs under the release tag.
	policy(oidc.Identity(), "fulcio-root.pem")
	if out, err := step(Promote); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	out, err = cosign.Run(ctx, bin, cosignEnv, keyless(oidc.Identity(), "verify-attestation", "--type", attest.PredicateHoist, repo+":2.3.4")...)
	all.WriteString(out)
	if err != nil {
		t.Fatalf("cosign verify-attestation %s:2.3.4: %v\n%s", repo, err, out)
	}

	// No token anywhere: output, lock file, reports, logs.
	leaks := append(oidc.Issued(), oidc.RequestToken, regSecret)
	if len(leaks) < 4 {
		t.Fatalf("the token service issued %d tokens; the pushes asked for two", len(leaks)-2)
	}
	testenv.NoSecrets(t, all.String(), dir, leaks...)
}

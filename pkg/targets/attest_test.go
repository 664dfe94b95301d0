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
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/lock"
)

// TestPushAttestsAndVerify runs Test, Scan, Push with a signing key and
// Verify on a real project against the distribution registry (no referrers
// API: the fallback tag), then checks with the real cosign that every
// attestation and the signature verify. Verify refuses the image under
// another key, Push refuses a wrong key password before pushing anything,
// and neither password appears in any output, the lock file or any report.
func TestPushAttestsAndVerify(t *testing.T) { testenv.EachEngine(t, testPushAttestsAndVerify) }

func testPushAttestsAndVerify(t *testing.T) {
	const user, regSecret, keySecret = "ci", "Reg-s3cret-hoist-91", "Key-s3cret-hoist-17"
	bin := cosign.Binary(t)
	reg := regtest.Distribution(t, user, regSecret)
	dir, _ := project(t, "  host: "+reg.Host+"\n  repository: org\n", "2.3.4-staging.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	keys := t.TempDir()
	if out, err := cosign.Run(ctx, bin, []string{"COSIGN_PASSWORD=" + keySecret}, "generate-key-pair", "--output-key-prefix", filepath.Join(keys, "cosign")); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
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
		"HOIST_TRIVY_DB": db, "HOIST_SIGNING_KEY": filepath.Join(keys, "cosign.key"),
		"HOIST_VERIFY_KEY":  filepath.Join(keys, "cosign.pub"),
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "2",
		"GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/ci.yml@refs/heads/staging",
	} {
		t.Setenv(k, v)
	}

	var all strings.Builder
	step := func(name string, env map[string]string, fn func(context.Context) error) (string, error) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		var err error
		out := capture(t, func() { err = fn(ctx) })
		all.WriteString(out)
		if err != nil {
			all.WriteString(err.Error())
		}
		return out, err
	}
	// Signing needs the scan's result (it goes into the tested statement).
	_, err = step("push before scan", map[string]string{"HOIST_SIGNING_PASSWORD": keySecret}, Push)
	if err == nil || !strings.Contains(err.Error(), "was not scanned: run the Scan target") {
		t.Fatalf("push before scan: %v", err)
	}
	if out, err := step("scan", nil, Scan); err != nil {
		t.Fatalf("scan: %v\n%s", err, out)
	}
	// An SBOM changed since the scan is refused before anything is pushed.
	sbom := readLock(t, dir).Images[0].Scan.SBOM.Path
	orig, err := os.ReadFile(sbom)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sbom, append(orig, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = step("push, SBOM changed", map[string]string{"HOIST_SIGNING_PASSWORD": keySecret}, Push)
	if err == nil || !strings.Contains(err.Error(), "changed since the scan wrote it") {
		t.Fatalf("push with a changed SBOM: %v", err)
	}
	if l := readLock(t, dir); len(l.Images[0].Pushed) != 0 {
		t.Fatalf("push with a changed SBOM pushed %v", l.Images[0].Pushed)
	}
	if err := os.WriteFile(sbom, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	// A wrong password stops Push before it pushes anything.
	_, err = step("push, wrong key password", map[string]string{"HOIST_SIGNING_PASSWORD": keySecret + "x"}, Push)
	if err == nil || !strings.Contains(err.Error(), "HOIST_SIGNING_PASSWORD does not decrypt the signing key") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("push with a wrong key password: %v", err)
	}
	if l := readLock(t, dir); len(l.Images[0].Pushed) != 0 {
		t.Fatalf("push with a wrong key password pushed %v", l.Images[0].Pushed)
	}
	if out, err := step("push", map[string]string{"HOIST_SIGNING_PASSWORD": keySecret}, Push); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	out, err := step("verify", nil, Verify)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("verify:\n%s", out)
	}
	for _, want := range []string{
		"built by  https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/staging",
		"run       https://github.com/acme/app/actions/runs/4242/attempts/2",
		"commit    git+", "tested    passed (exit 0", "scanned   passed by trivy", "gate      passed", "sbom      cyclonedx", "verified: 3 attestations",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	l := readLock(t, dir)
	img := l.Images[0]
	if len(img.Attestations) != 3 || img.Signature == nil || img.Scan == nil || img.Scan.SBOM == nil {
		t.Fatalf("lock records attestations %+v, signature %+v, scan %+v", img.Attestations, img.Signature, img.Scan)
	}
	digestRef := img.Attestations[0].Subject

	// The real cosign, as a consumer runs it, with the registry login in
	// Docker's config.
	cosignEnv := []string{"DOCKER_CONFIG=" + dockerConfig}
	pub := filepath.Join(keys, "cosign.pub")
	t.Setenv("HOIST_VERIFY_KEY", pub)
	for _, typ := range []string{"slsaprovenance1", attest.PredicateHoist, "cyclonedx"} {
		if out, err := cosign.Run(ctx, bin, cosignEnv, "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--type", typ, digestRef); err != nil {
			t.Fatalf("cosign verify-attestation --type %s %s: %v\n%s", typ, digestRef, err, out)
		}
	}
	tag := strings.SplitN(digestRef, "@", 2)[0] + ":2.3.4-staging.1"
	if out, err := cosign.Run(ctx, bin, cosignEnv, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", tag); err != nil {
		t.Fatalf("cosign verify %s: %v\n%s", tag, err, out)
	}

	// Another key: Verify refuses, one line per attestation.
	_, otherPub, err := attest.GenerateKey([]byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(t.TempDir(), "other.pub")
	if err := os.WriteFile(otherPath, otherPub, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = step("verify, another key", map[string]string{"HOIST_VERIFY_KEY": otherPath}, Verify)
	if !errors.Is(err, attest.ErrRefused) || !strings.Contains(err.Error(), "does not verify with key") || !strings.Contains(out, "REFUSED") {
		t.Fatalf("verify under another key: %v\n%s", err, out)
	}

	// Promote checks the staging build's proofs before it copies: under a
	// key that did not sign them it refuses and writes nothing.
	repo := strings.SplitN(digestRef, "@", 2)[0]
	basic := crane.WithAuth(&authn.Basic{Username: user, Password: regSecret})
	_, err = step("promote, another key", map[string]string{"HOIST_VERIFY_KEY": otherPath, "HOIST_VERSION": ""}, Promote)
	if !errors.Is(err, attest.ErrRefused) || !strings.Contains(err.Error(), "refusing 2.3.4-staging.1, its proofs do not hold") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("promote under another key: %v", err)
	}
	if d, err := crane.Digest(repo+":2.3.4", crane.Insecure, basic); err == nil {
		t.Fatalf("a refused promotion wrote %s:2.3.4 = %s", repo, d)
	}
	// Under the signing key it promotes, and the proofs, attached to the
	// digest, verify under the release tag as well.
	if out, err := step("promote", map[string]string{"HOIST_VERIFY_KEY": pub}, Promote); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	for _, typ := range []string{"slsaprovenance1", attest.PredicateHoist, "cyclonedx"} {
		if out, err := cosign.Run(ctx, bin, cosignEnv, "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--type", typ, repo+":2.3.4"); err != nil {
			t.Fatalf("cosign verify-attestation --type %s %s:2.3.4: %v\n%s", typ, repo, err, out)
		}
	}

	// No secret anywhere: output, lock file, reports, logs.
	testenv.NoSecrets(t, all.String(), filepath.Join(dir, "build"), keySecret, regSecret, auth)
}

func readLock(t *testing.T, dir string) *lock.Lock {
	t.Helper()
	l, err := lock.Read(filepath.Join(dir, "build", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

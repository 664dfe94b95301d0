package targets

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistci/hoist/internal/cosign"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/attest"
)

// rawIndex is an image index to put as it is.
type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error)        { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// TestVerifyPlatformsIndex builds, tests (arm64 under emulation), scans,
// signs and pushes an image for linux/amd64 and linux/arm64 to the
// distribution registry: Verify checks the proofs Push attached to the
// index and holds the index's platforms to the lock's records, and the
// real cosign verifies the index's signature and attestations. When the tag
// is moved to an index whose arm64 entry is the amd64 image, Verify of the
// tag refuses it, naming the platform.
func TestVerifyPlatformsIndex(t *testing.T) {
	const user, regSecret, keySecret = "ci", "Reg-s3cret-hoist-44", "Key-s3cret-hoist-45"
	e := testenv.Engine(t)
	testenv.Arm64(t, e)
	bin := cosign.Binary(t)
	reg := regtest.Distribution(t, user, regSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	dir := t.TempDir()
	proj := testenv.Unique("hoisttest")
	for k, v := range testenv.GitEnv {
		t.Setenv(k, v)
	}
	testenv.Probe(t, dir, "amd64", "arm64")
	testenv.WriteFiles(t, dir, map[string]string{
		"hoist.yaml": "project: " + proj + "\nbuild_dir: build\nregistry:\n  host: " + reg.Host + "\n  repository: org\n" +
			"images:\n  - name: app\n    dockerfile: Dockerfile\n    platforms: [linux/amd64, linux/arm64]\n    test: {command: [/probe, cat, /f]}\n",
		"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY probe-${TARGETARCH} /probe\nCOPY f /f\n",
		"f":          "hello\n",
		"VERSION":    "2.3.4\n",
		".gitignore": "build/\n",
	})
	run(t, dir, "git", "init", "-q")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "app")
	t.Cleanup(func() {
		e.Remove(context.Background(), proj+"/app:2.3.4-staging.1")
		e.Remove(context.Background(), proj+"/app:2.3.4-staging.1-linux-arm64")
	})

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
	for k, v := range map[string]string{
		"HOIST_CONFIG": filepath.Join(dir, "hoist.yaml"), "HOIST_VERSION": "2.3.4-staging.1",
		"HOIST_PR": "", "GITHUB_EVENT_NAME": "", "DOCKER_CONFIG": t.TempDir(),
		envRegistryUser: user, envRegistryPass: regSecret,
		"HOIST_TRIVY_DB": db, "HOIST_SIGNING_KEY": filepath.Join(keys, "cosign.key"), "HOIST_SIGNING_PASSWORD": keySecret,
		"HOIST_VERIFY_KEY":  filepath.Join(keys, "cosign.pub"),
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
		"GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/ci.yml@refs/heads/staging",
	} {
		t.Setenv(k, v)
	}
	for _, step := range []struct {
		name string
		fn   func(context.Context) error
	}{{"test", Test}, {"scan", Scan}, {"push", Push}} {
		var err error
		out := capture(t, func() { err = step.fn(ctx) })
		if err != nil {
			t.Fatalf("%s: %v\n%s", step.name, err, out)
		}
	}
	var err2 error
	out := capture(t, func() { err2 = Verify(ctx) })
	if err2 != nil {
		t.Fatalf("verify: %v\n%s", err2, out)
	}
	for _, want := range []string{"platforms linux/amd64, linux/arm64: held to the lock file's tested records", "tested    passed", "verified: 3 attestations"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	l := readLock(t, dir)
	img := l.Images[0]
	if len(img.Platforms) != 2 {
		t.Fatalf("lock platforms %+v, want two", img.Platforms)
	}
	var indexRef string
	for _, p := range img.Pushed {
		if strings.Contains(p.Ref, "@") {
			indexRef = p.Ref
		}
	}
	repo := strings.SplitN(indexRef, "@", 2)[0]
	tag := repo + ":2.3.4-staging.1"

	// One platform's manifest carries no proofs: the refusal names the
	// index that does.
	arm64, ok := img.FindPlatform("linux/arm64")
	if !ok || arm64.Manifest == "" {
		t.Fatalf("lock records no pushed linux/arm64 manifest: %+v", img.Platforms)
	}
	t.Setenv("HOIST_VERIFY_REF", repo+"@"+arm64.Manifest)
	out = capture(t, func() { err2 = Verify(ctx) })
	if !errors.Is(err2, attest.ErrRefused) || !strings.Contains(err2.Error(), "is the linux/arm64 manifest of app's image index, which carries the proofs: verify "+indexRef) {
		t.Fatalf("verify of one platform's manifest: %v\n%s", err2, out)
	}

	// The real cosign, as a consumer runs it: the signature and each
	// attestation on the index.
	pub := filepath.Join(keys, "cosign.pub")
	dockerConfig := t.TempDir()
	testenv.WriteFiles(t, dockerConfig, map[string]string{"config.json": `{"auths":{"` + reg.Host + `":{"username":"` + user + `","password":"` + regSecret + `"}}}`})
	cosignEnv := []string{"DOCKER_CONFIG=" + dockerConfig}
	if out, err := cosign.Run(ctx, bin, cosignEnv, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", tag); err != nil {
		t.Fatalf("cosign verify %s: %v\n%s", tag, err, out)
	}
	if out, err := cosign.Run(ctx, bin, cosignEnv, "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--type", attest.PredicateHoist, indexRef); err != nil {
		t.Fatalf("cosign verify-attestation %s: %v\n%s", indexRef, err, out)
	}

	// Move the tag to an index whose arm64 entry is the amd64 image.
	basic := crane.WithAuth(&authn.Basic{Username: user, Password: regSecret})
	raw, err := crane.Manifest(indexRef, crane.Insecure, basic)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	ms := idx["manifests"].([]any)
	var amd, arm map[string]any
	for _, m := range ms {
		m := m.(map[string]any)
		switch m["platform"].(map[string]any)["architecture"] {
		case "amd64":
			amd = m
		case "arm64":
			arm = m
		}
	}
	if amd == nil || arm == nil {
		t.Fatalf("pushed index lacks a platform:\n%s", raw)
	}
	arm["digest"], arm["size"] = amd["digest"], amd["size"]
	swapped, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	tagRef, err := name.ParseReference(tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tagRef, rawIndex(swapped), remote.WithAuth(&authn.Basic{Username: user, Password: regSecret}), remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_VERIFY_REF", tag)
	out = capture(t, func() { err2 = Verify(ctx) })
	if !errors.Is(err2, attest.ErrRefused) || !strings.Contains(err2.Error(), "digest gate: app (linux/arm64)") || !strings.Contains(out, "REFUSED") {
		t.Fatalf("verify of a tag moved to an index with a swapped arm64 entry: %v\n%s", err2, out)
	}
	for _, leak := range []string{regSecret, keySecret} {
		if strings.Contains(out, leak) || strings.Contains(err2.Error(), leak) {
			t.Fatal("a secret appears in the output")
		}
	}
}

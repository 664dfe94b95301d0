package attest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/cosign"
	"github.com/hoistci/hoist/pkg/attest"
)

// TestRealCosignVerifies: a key made by the real cosign signs with Hoist,
// and the real cosign verifies every attestation (by type) and the image
// signature Hoist attached, on both registries. A statement signed by
// another key is refused by cosign too.
func TestRealCosignVerifies(t *testing.T) {
	bin := cosign.Binary(t)
	keys := t.TempDir()
	env := []string{"COSIGN_PASSWORD=" + testPassword}
	cmdOut, err := cosign.Run(t.Context(), bin, env, "generate-key-pair", "--output-key-prefix", filepath.Join(keys, "cosign"))
	if err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, cmdOut)
	}
	priv, err := os.ReadFile(filepath.Join(keys, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.LoadSigner(priv, []byte(testPassword))
	if err != nil {
		t.Fatalf("loading cosign's own key: %v", err)
	}
	pub := filepath.Join(keys, "cosign.pub")
	registries(t, func(t *testing.T, host string) {
		ctx := t.Context()
		img := pushRandom(t, host, "team/cosigned")
		payload, sig, err := signer.SignImage(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attach(t, img, envelopes(t, signer, img, passing(img), true), &attest.ImageSignature{Payload: payload, Sig: sig}); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"slsaprovenance1", attest.PredicateHoist, "cyclonedx"} {
			out, err := cosign.Run(ctx, bin, nil, "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--type", typ, img.String())
			if err != nil {
				t.Fatalf("cosign verify-attestation --type %s: %v\n%s", typ, err, out)
			}
		}
		out, err := cosign.Run(ctx, bin, nil, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", img.String())
		if err != nil {
			t.Fatalf("cosign verify: %v\n%s", err, out)
		}
		if !strings.Contains(out, img.DigestStr()) {
			t.Fatalf("cosign verify did not name the digest:\n%s", out)
		}
		if strings.Contains(out, testPassword) {
			t.Fatal("cosign output holds the key password")
		}
		// cosign's other readers see the one manifest as attestations and
		// the signature under their tags.
		out, err = cosign.Run(ctx, bin, nil, "download", "attestation", "--allow-http-registry", img.String())
		if err != nil {
			t.Fatalf("cosign download attestation: %v\n%s", err, out)
		}
		if n := strings.Count(out, `"payloadType":"application/vnd.in-toto+json"`); n != 3 {
			t.Fatalf("cosign download attestation: %d envelopes, want 3:\n%.2000s", n, out)
		}
		out, err = cosign.Run(ctx, bin, nil, "tree", "--allow-http-registry", img.String())
		if err != nil {
			t.Fatalf("cosign tree: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Attestations") || !strings.Contains(out, "Signatures") {
			t.Fatalf("cosign tree lists no attestations or no signatures:\n%s", out)
		}

		// Signed by another key: cosign refuses it as well.
		other := pushRandom(t, host, "team/cosigned")
		otherPriv, _, err := attest.GenerateKey([]byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		stranger, err := attest.LoadSigner(otherPriv, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attach(t, other, envelopes(t, stranger, other, passing(other), false), nil); err != nil {
			t.Fatal(err)
		}
		if out, err := cosign.Run(ctx, bin, nil, "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--type", "slsaprovenance1", other.String()); err == nil {
			t.Fatalf("cosign verified an attestation signed by another key:\n%s", out)
		}
	})
}

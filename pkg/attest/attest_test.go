package attest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/registry"
)

const testPassword = "pw-correct-horse-7f3a"

// registries runs f against go-containerregistry's in-process registry
// (which has the referrers API) and the distribution registry (which has
// none: referrers go through the fallback tag).
func registries(t *testing.T, f func(t *testing.T, host string)) {
	t.Run("referrers-api", func(t *testing.T) {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
		t.Cleanup(srv.Close)
		f(t, strings.TrimPrefix(srv.URL, "http://"))
	})
	t.Run("distribution-fallback-tag", func(t *testing.T) {
		f(t, regtest.Distribution(t, "", "").Host)
	})
}

type fixture struct {
	signer *attest.Signer
	ver    *attest.Verifier
	img    name.Digest
}

func newFixture(t *testing.T, host string) fixture {
	t.Helper()
	priv, pub, err := attest.GenerateKey([]byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(priv, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{signer: s, ver: v, img: pushRandom(t, host, "team/demo")}
}

func pushRandom(t *testing.T, host, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, err := name.NewDigest(host+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// attach attaches to d as Push does, with the descriptor the registry serves.
func attach(t *testing.T, d name.Digest, envs []attest.Envelope, sig *attest.ImageSignature) (*attest.Attached, error) {
	t.Helper()
	desc, err := remote.Head(d)
	if err != nil {
		t.Fatal(err)
	}
	return attest.Attach(t.Context(), session(t, d.Context()), d, *desc, envs, sig)
}

// session opens a registry session for writing to repo, as Push does.
func session(t *testing.T, repo name.Repository) *registry.Session {
	t.Helper()
	c, err := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Session(t.Context(), repo.Registry, nil, []name.Repository{repo})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attIs reports whether the .att tag names the referrer manifest.
func attIs(t *testing.T, got *attest.Attached) bool {
	t.Helper()
	desc, err := remote.Head(got.Att)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String() == got.Referrer
}

func subject(d name.Digest) attest.Subject {
	return attest.Subject{Name: d.Context().Name(), Digest: d.DigestStr()}
}

func passing(d name.Digest) attest.Tested {
	return attest.Tested{
		Image: "demo", ConfigDigest: "sha256:" + strings.Repeat("c", 64),
		Test:       &attest.TestResult{Passed: true, LogSHA256: strings.Repeat("a", 64)},
		Scan:       &attest.ScanResult{Passed: true, Scanner: "trivy 0.58.0", Counts: map[string]int{"HIGH": 0}, Policy: attest.ScanPolicy{Severity: []string{"HIGH", "CRITICAL"}}},
		DigestGate: attest.GateResult{Passed: true, Checked: "config and diff_ids of " + d.DigestStr()},
	}
}

// envelopes signs the three statements about the image about with s.
func envelopes(t *testing.T, s *attest.Signer, about name.Digest, tested attest.Tested, sbom bool) []attest.Envelope {
	t.Helper()
	ctx := context.Background()
	sub := subject(about)
	prov, err := attest.ProvenanceStatement(sub, attest.Provenance{
		BuilderID: "https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main", InvocationID: "https://github.com/o/r/actions/runs/1/attempts/1",
		Dependencies: []attest.Dependency{{URI: "git+https://github.com/o/r@refs/heads/main", Digest: map[string]string{"gitCommit": strings.Repeat("1", 40)}}},
		External:     map[string]any{"name": "demo"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tst, err := attest.TestedStatement(sub, tested)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []struct {
		pt string
		b  []byte
	}{{attest.PredicateProvenance, prov}, {attest.PredicateHoist, tst}}
	if sbom {
		b, err := attest.SBOMStatement(sub, attest.SBOMCycloneDX, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, struct {
			pt string
			b  []byte
		}{attest.PredicateCycloneDX, b})
	}
	var out []attest.Envelope
	for _, st := range stmts {
		env, err := s.Sign(ctx, st.b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, attest.Envelope{PredicateType: st.pt, DSSE: env, Cert: s.Certificate()})
	}
	return out
}

var all = attest.Policy{Require: []string{attest.KindProvenance, attest.KindTested, attest.KindSBOM}}

func TestAttachAndVerify(t *testing.T) {
	registries(t, func(t *testing.T, host string) {
		ctx := t.Context()
		fx := newFixture(t, host)
		payload, sig, err := fx.signer.SignImage(ctx, fx.img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := attach(t, fx.img, envelopes(t, fx.signer, fx.img, passing(fx.img), true), &attest.ImageSignature{Payload: payload, Sig: sig})
		if err != nil {
			t.Fatal(err)
		}
		if got.Referrer == "" || len(got.PredicateType) != 3 || !strings.HasSuffix(got.Att.TagStr(), ".att") {
			t.Fatalf("Attach = %+v", got)
		}
		rep, err := attest.Verify(ctx, nil, fx.img, fx.ver, all)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Fatalf("verify refused a good image: %v", err)
		}
		if rep.Provenance == nil || !strings.Contains(rep.Provenance.Commit, strings.Repeat("1", 40)) || rep.Tested == nil || rep.SBOMFormat != attest.SBOMCycloneDX {
			t.Fatalf("report = %+v", rep)
		}
		if err := fx.ver.VerifyImage(ctx, fx.img, payload, sig); err != nil {
			t.Fatal(err)
		}
		// The fallback tag exactly where the registry has no referrers API.
		tags, err := remote.List(fx.img.Context())
		if err != nil {
			t.Fatal(err)
		}
		fallback := strings.TrimSuffix(got.Att.TagStr(), ".att")
		if hasAPI := !strings.Contains(t.Name(), "fallback"); slices.Contains(tags, fallback) == hasAPI {
			t.Errorf("tags %v: fallback tag %s present %v, with the referrers API %v", tags, fallback, !hasAPI, hasAPI)
		}
		if !attIs(t, got) {
			t.Errorf("the referrer %s is not the manifest under %s", got.Referrer, got.Att)
		}
		// Attaching again (a second push of the same digest) still verifies.
		if _, err := attach(t, fx.img, envelopes(t, fx.signer, fx.img, passing(fx.img), true), nil); err != nil {
			t.Fatal(err)
		}
		rep, err = attest.Verify(ctx, nil, fx.img, fx.ver, all)
		if err != nil || rep.Err() != nil || len(rep.Proofs) != 6 {
			t.Fatalf("after a second attach: %d proofs, %v, %v", len(rep.Proofs), err, rep.Err())
		}
	})
}

// TestStageAttachesNothing: staged proofs are blobs no tag or referrer
// names, until Attach adds the rest and attaches them all.
func TestStageAttachesNothing(t *testing.T) {
	registries(t, func(t *testing.T, host string) {
		ctx := t.Context()
		fx := newFixture(t, host)
		desc, err := remote.Head(fx.img)
		if err != nil {
			t.Fatal(err)
		}
		envs := envelopes(t, fx.signer, fx.img, passing(fx.img), true)
		payload, sig, err := fx.signer.SignImage(ctx, fx.img)
		if err != nil {
			t.Fatal(err)
		}
		sess := session(t, fx.img.Context())
		st, err := attest.Stage(ctx, sess, fx.img, *desc, []attest.Envelope{envs[0], envs[2]}, &attest.ImageSignature{Payload: payload, Sig: sig})
		if err != nil {
			t.Fatal(err)
		}
		tags, err := sess.Tags(ctx, fx.img.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			if strings.HasPrefix(tag, "sha256-") {
				t.Fatalf("staging wrote tag %s", tag)
			}
		}
		rep, err := attest.Verify(ctx, nil, fx.img, fx.ver, all)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Proofs) != 0 || rep.Err() == nil {
			t.Fatalf("staged proofs are visible: %+v", rep.Proofs)
		}
		got, err := st.Attach(ctx, []attest.Envelope{envs[1]})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{envs[0].PredicateType, envs[2].PredicateType, envs[1].PredicateType}; !slices.Equal(got.PredicateType, want) {
			t.Fatalf("attached %v, want %v", got.PredicateType, want)
		}
		rep, err = attest.Verify(ctx, nil, fx.img, fx.ver, all)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Fatalf("verify refused staged and attached proofs: %v", err)
		}
		if err := fx.ver.VerifyImage(ctx, fx.img, payload, sig); err != nil {
			t.Fatal(err)
		}
	})
}

// TestVerifyRefuses: each broken proof is refused with one line naming
// the image and what is wrong.
func TestVerifyRefuses(t *testing.T) {
	registries(t, func(t *testing.T, host string) {
		ctx := t.Context()
		tests := []struct {
			name string
			envs func(fx fixture, other name.Digest) []attest.Envelope
			want string
		}{
			{
				name: "tampered attestation",
				envs: func(fx fixture, _ name.Digest) []attest.Envelope {
					envs := envelopes(t, fx.signer, fx.img, passing(fx.img), true)
					envs[1].DSSE = tamper(t, envs[1].DSSE, `"passed":true`, `"passed":false`)
					return envs
				},
				want: "tested attestation",
			},
			{
				name: "attestation for another digest",
				envs: func(fx fixture, other name.Digest) []attest.Envelope {
					envs := envelopes(t, fx.signer, fx.img, passing(fx.img), true)
					return append(envs[:1], envelopes(t, fx.signer, other, passing(other), false)[1])
				},
				want: "not this image",
			},
			{
				name: "signature by another key",
				envs: func(fx fixture, _ name.Digest) []attest.Envelope {
					priv, _, err := attest.GenerateKey([]byte("other"))
					if err != nil {
						t.Fatal(err)
					}
					other, err := attest.LoadSigner(priv, []byte("other"))
					if err != nil {
						t.Fatal(err)
					}
					return envelopes(t, other, fx.img, passing(fx.img), true)
				},
				want: "does not verify with key",
			},
			{
				name: "missing SBOM with policy requiring it",
				envs: func(fx fixture, _ name.Digest) []attest.Envelope {
					return envelopes(t, fx.signer, fx.img, passing(fx.img), false)
				},
				want: "no sbom attestation",
			},
			{
				name: "tested attestation says the test failed",
				envs: func(fx fixture, _ name.Digest) []attest.Envelope {
					failed := passing(fx.img)
					failed.Test = &attest.TestResult{Passed: false, ExitCode: 3}
					return envelopes(t, fx.signer, fx.img, failed, true)
				},
				want: "test failed (exit 3)",
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fx := newFixture(t, host)
				other := pushRandom(t, host, "team/other")
				if _, err := attach(t, fx.img, tt.envs(fx, other), nil); err != nil {
					t.Fatal(err)
				}
				rep, err := attest.Verify(ctx, nil, fx.img, fx.ver, all)
				if err != nil {
					t.Fatal(err)
				}
				err = rep.Err()
				if !errors.Is(err, attest.ErrRefused) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), fx.img.String()) {
					t.Fatalf("Verify = %v; want a refusal naming %s and containing %q", err, fx.img, tt.want)
				}
				for _, p := range rep.Problems {
					if strings.Contains(p, "\n") {
						t.Errorf("problem spans lines: %q", p)
					}
				}
			})
		}
	})
}

// tamper changes the statement inside an envelope, keeping its signature.
func tamper(t *testing.T, env []byte, from, to string) []byte {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(e["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p), from) {
		t.Fatalf("statement has no %s: %s", from, p)
	}
	e["payload"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(p), from, to, 1)))
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadSignerRefusals(t *testing.T) {
	priv, _, err := attest.GenerateKey([]byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.LoadSigner(priv, []byte("wrong")); !errors.Is(err, attest.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := attest.LoadSigner([]byte("not a key"), nil); err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Fatalf("not PEM: %v", err)
	}
	if _, err := attest.LoadVerifier([]byte("junk")); err == nil {
		t.Fatal("LoadVerifier accepted junk")
	}
}

package publish

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/registry"
)

func TestPushAttachesEachArtifactOnce(t *testing.T) {
	testenv.EachEngine(t, testPushAttachesEachArtifactOnce)
}

// A push with proofs, on the distribution registry (no referrers API, so
// the fallback tag too), with and without staging the proofs that need only
// the digest: the registry's own log shows every blob and every manifest
// reference written once, and every proof written before the first tag of
// the version; the proofs verify. A stage that fails stops the push before
// any tag.
func testPushAttachesEachArtifactOnce(t *testing.T) {
	f := newFixture(t)
	a, b := f.build(t, "api", 64<<10), f.build(t, "web", 64<<10)
	priv, pub, err := attest.GenerateKey([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	statements := func(li lock.Image, d name.Digest) (early, late []attest.Unsigned, err error) {
		sub := attest.Subject{Name: d.Context().Name(), Digest: d.DigestStr()}
		prov, err := attest.ProvenanceStatement(sub, attest.Provenance{BuilderID: "https://hoistci.dev/builders/local"})
		if err != nil {
			return nil, nil, err
		}
		tested, err := attest.TestedStatement(sub, attest.Tested{
			Image: li.Name, ConfigDigest: li.ConfigDigest,
			Test:       &attest.TestResult{Passed: true, LogSHA256: strings.Repeat("3", 64)},
			Scan:       &attest.ScanResult{Passed: true, Scanner: "trivy 0.58.0"},
			DigestGate: attest.GateResult{Passed: true, Checked: d.DigestStr()},
		})
		if err != nil {
			return nil, nil, err
		}
		bom, err := attest.SBOMStatement(sub, attest.SBOMCycloneDX, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`))
		if err != nil {
			return nil, nil, err
		}
		return []attest.Unsigned{{PredicateType: attest.PredicateProvenance, Statement: prov}, {PredicateType: attest.PredicateCycloneDX, Statement: bom}},
			[]attest.Unsigned{{PredicateType: attest.PredicateHoist, Statement: tested}}, nil
	}
	for _, tc := range []struct {
		name              string
		staged, failStage bool
		allEarly          bool // every statement staged, as Push's own attacher does
	}{
		{name: "attached at once"},
		{name: "staged", staged: true},
		{name: "all staged", staged: true, allEarly: true},
		{name: "stage fails", staged: true, failStage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lockPath := filepath.Join(t.TempDir(), "lock.json")
			if err := imagefix.WriteLock(lockPath, "4.5.6", a, b); err != nil {
				t.Fatal(err)
			}
			reg := regtest.Distribution(t, "", "")
			c, err := registry.New(registry.Options{Backoff: testBackoff, Keychain: noKeys{}})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			staged := map[string]*attest.Staged{}
			o := PushOptions{LockPath: lockPath, Prefix: reg.Host + "/org", WorkDir: f.dir}
			o.Attach = func(ctx context.Context, sess *registry.Session, li lock.Image, d name.Digest, desc v1.Descriptor) error {
				early, late, err := statements(li, d)
				if err != nil {
					return err
				}
				mu.Lock()
				st := staged[li.Name]
				mu.Unlock()
				switch {
				case st == nil:
					_, err = s.SignAndAttach(ctx, sess, d, desc, append(early, late...))
				case tc.allEarly:
					_, err = s.Finish(ctx, st, nil)
				default:
					_, err = s.Finish(ctx, st, late)
				}
				return err
			}
			if tc.staged {
				o.StageProofs = func(ctx context.Context, sess *registry.Session, li lock.Image, d name.Digest, desc v1.Descriptor) error {
					if tc.failStage && li.Name == "web" {
						return errors.New("the signing service is away")
					}
					early, late, err := statements(li, d)
					if err != nil {
						return err
					}
					if tc.allEarly {
						early = append(early, late...)
					}
					st, err := s.SignAndStage(ctx, sess, d, desc, early)
					mu.Lock()
					staged[li.Name] = st
					mu.Unlock()
					return err
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := Push(ctx, c, f.e, o)
			writes, werr := reg.Writes()
			if werr != nil {
				t.Fatal(werr)
			}
			if tc.failStage {
				if err == nil || !strings.Contains(err.Error(), "the signing service is away") {
					t.Fatalf("Push with a failing stage = %v", err)
				}
				for _, w := range writes {
					if !w.Blob && !strings.HasPrefix(w.Ref, "sha256:") && !strings.HasPrefix(w.Ref, "sha256-") {
						t.Fatalf("a failed stage let a tag be written: %v", w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			seen := map[localregistry.Write]int{}
			firstTag, lastProof := len(writes), -1
			proofs := 0
			for i, w := range writes {
				seen[w]++
				switch {
				case w.Blob:
				case strings.HasPrefix(w.Ref, "sha256-"): // .att, .sig and the fallback tag
					proofs++
					lastProof = i
				case !strings.HasPrefix(w.Ref, "sha256:"):
					firstTag = min(firstTag, i)
				}
			}
			for w, n := range seen {
				if n > 1 {
					t.Errorf("%s written %d times", w, n)
				}
			}
			if proofs != 2*3 {
				t.Errorf("%d proof manifests written (.att, .sig and fallback tag), want 3 for each of 2 images:\n%v", proofs, writes)
			}
			if lastProof > firstTag {
				t.Errorf("a proof was written after the first tag:\n%v", writes)
			}
			all := attest.Policy{Require: []string{attest.KindProvenance, attest.KindTested, attest.KindSBOM}}
			for _, img := range res.Images {
				d, err := name.NewDigest(img.Repo + "@" + img.Digest)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := attest.Verify(ctx, c.Options(ctx), d, v, all)
				if err != nil {
					t.Fatal(err)
				}
				if err := rep.Err(); err != nil {
					t.Errorf("%s: %v", img.Name, err)
				}
			}
		})
	}
}

package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ErrRefused means an image lacks a required proof, or a proof fails.
var ErrRefused = errors.New("proofs refused")

// maxEnvelope bounds the envelopes of one referrer read from a registry (an
// SBOM of a large image is a few MiB; base64 in the envelope adds a third).
const maxEnvelope = 64 << 20

// Policy says which proofs an image must carry.
type Policy struct {
	// Require lists kinds (KindProvenance, KindTested, KindSBOM) that must
	// be present, signed by the key and about the image.
	Require []string
}

// ValidKinds are the kinds a policy may require.
var ValidKinds = []string{KindProvenance, KindTested, KindSBOM}

// Validate refuses an unknown kind.
func (p Policy) Validate() error {
	for _, k := range p.Require {
		if !slices.Contains(ValidKinds, k) {
			return fmt.Errorf("attestation kind %q: use %s", k, strings.Join(ValidKinds, ", "))
		}
	}
	return nil
}

// Proof is one attestation found on the image.
type Proof struct {
	Kind          string
	PredicateType string
	Referrer      string // the referrer manifest's digest
	Statement     *Parsed
	Err           error // why it does not count (bad signature, another subject)
}

// Report is what Verify found about one image.
type Report struct {
	Image  name.Digest
	Proofs []Proof
	// The verified statements' contents, for output.
	Provenance *ProvenanceSummary
	Tested     *Tested
	SBOMFormat string
	// Problems are refusals, one line each; none means the image passes.
	Problems []string
	// SignedBy is whom the verifier accepts: "key sha256:…", or
	// "identity … (issuer …)".
	SignedBy string
}

// ProvenanceSummary is the part of a provenance statement people read.
type ProvenanceSummary struct {
	BuilderID    string
	InvocationID string
	Commit       string // the git dependency's URI and digest
}

// Err is ErrRefused with the problems, or nil.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRefused, strings.Join(r.Problems, "; "))
}

// Verify reads the image's referrers (the API, or the fallback tag),
// checks every Hoist attestation among them with v, and applies the
// policy. An attestation that fails (a signature that does not verify, a
// statement about another digest) is a problem even when a good one of the
// same kind exists: someone wrote it where only the signer should. A
// registry that cannot be read is an error; refusals are in the report.
func Verify(ctx context.Context, opts []remote.Option, d name.Digest, v *Verifier, p Policy) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	opts = append(append([]remote.Option{}, opts...), remote.WithContext(ctx))
	rep := &Report{Image: d, SignedBy: v.signedBy()}
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil, fmt.Errorf("listing the referrers of %s: %w", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the referrers of %s: %w", d, err)
	}
	for _, desc := range im.Manifests {
		if desc.ArtifactType != MediaTypeDSSE {
			continue
		}
		ref := d.Context().Digest(desc.Digest.String())
		envs, err := readEnvelopes(ref, opts)
		if err != nil {
			return nil, err
		}
		for _, env := range envs {
			rep.Proofs = append(rep.Proofs, open(ctx, v, d, ref, env.dsse, env.cert))
		}
	}
	have := map[string]bool{}
	for _, pr := range rep.Proofs {
		what := pr.Kind
		if what == "" {
			what = pr.PredicateType
		}
		if pr.Err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %s attestation %s: %v", d, what, short(pr.Referrer), pr.Err))
			continue
		}
		if pr.Kind == "" {
			continue // someone else's attestation, verified with our key: not ours to judge
		}
		have[pr.Kind] = true
		if err := rep.read(pr); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %s attestation %s: %v", d, what, short(pr.Referrer), err))
		}
	}
	for _, k := range p.Require {
		if !have[k] {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: no %s attestation signed by %s, and the policy requires one", d, k, v.signedBy()))
		}
	}
	if rep.Tested != nil && !rep.Tested.Passed() {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: the tested attestation says it did not pass: %s", d, strings.Join(rep.Tested.Failures(), ", ")))
	}
	return rep, nil
}

// layerEnvelope is one envelope of a referrer and the certificate its
// layer's annotations carry (keyless signatures).
type layerEnvelope struct {
	dsse []byte
	cert *Certificate
}

// readEnvelopes reads the envelopes of one referrer, one per layer.
func readEnvelopes(ref name.Digest, opts []remote.Option) ([]layerEnvelope, error) {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("reading attestations %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading attestations %s: %w", ref, err)
	}
	var out []layerEnvelope
	total := 0
	for _, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading attestations %s: %w", ref, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("reading attestations %s: %w", ref, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, int64(maxEnvelope-total)+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading attestations %s: %w", ref, err)
		}
		if total += len(b); total > maxEnvelope {
			return nil, fmt.Errorf("attestations %s are larger than %d MiB", ref, maxEnvelope>>20)
		}
		le := layerEnvelope{dsse: b}
		if c := desc.Annotations[annotationCertificate]; c != "" {
			le.cert = &Certificate{Cert: []byte(c), Chain: []byte(desc.Annotations[annotationChain])}
		}
		out = append(out, le)
	}
	return out, nil
}

// open checks one envelope: signature, statement, subject.
func open(ctx context.Context, v *Verifier, d, ref name.Digest, env []byte, cert *Certificate) Proof {
	pr := Proof{Referrer: ref.DigestStr()}
	stmt, err := v.OpenSigned(ctx, env, cert)
	if err != nil {
		if errors.Is(err, ErrBadSignature) && v.Keyless() {
			err = errors.New("its signature does not verify with its certificate's key (changed after signing)")
		} else if errors.Is(err, ErrBadSignature) {
			err = fmt.Errorf("its signature does not verify with key %s (changed after signing, or signed by another key)", v.KeyID())
		}
		pr.Err = err
		// The type is still worth naming; it is not trusted.
		var raw struct {
			Payload []byte `json:"payload"`
		}
		if json.Unmarshal(env, &raw) == nil {
			if p, perr := ParseStatement(raw.Payload); perr == nil {
				pr.PredicateType, pr.Kind = p.PredicateType, KindOf(p.PredicateType)
			}
		}
		return pr
	}
	p, err := ParseStatement(stmt)
	if err != nil {
		pr.Err = err
		return pr
	}
	pr.Statement, pr.PredicateType, pr.Kind = p, p.PredicateType, KindOf(p.PredicateType)
	if !p.About(d.DigestStr()) {
		pr.Err = fmt.Errorf("it is about %s, not this image", strings.Join(p.Digests(), ", "))
	}
	return pr
}

// read fills the report's summaries from a verified statement.
func (r *Report) read(pr Proof) error {
	switch pr.Kind {
	case KindTested:
		var t Tested
		if err := json.Unmarshal(pr.Statement.Predicate, &t); err != nil {
			return fmt.Errorf("reading its predicate: %w", err)
		}
		if r.Tested != nil && r.Tested.Passed() && !t.Passed() || r.Tested == nil {
			r.Tested = &t
		}
	case KindProvenance:
		var pv provenance
		if err := json.Unmarshal(pr.Statement.Predicate, &pv); err != nil {
			return fmt.Errorf("reading its predicate: %w", err)
		}
		s := &ProvenanceSummary{BuilderID: pv.RunDetails.Builder.ID, InvocationID: pv.RunDetails.Metadata.InvocationID}
		for _, dep := range pv.BuildDefinition.ResolvedDependencies {
			if strings.HasPrefix(dep.URI, "git+") {
				s.Commit = dep.URI
				if c := dep.Digest["gitCommit"]; c != "" {
					s.Commit += " " + c
				}
			}
		}
		r.Provenance = s
	case KindSBOM:
		if pr.PredicateType == PredicateSPDX {
			r.SBOMFormat = SBOMSPDX
		} else {
			r.SBOMFormat = SBOMCycloneDX
		}
	}
	return nil
}

func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// Package attest makes the proofs that travel with a pushed image: in-toto
// statements (SLSA provenance v1, Hoist's own "tested and scanned"
// attestation, the SBOM), each signed into a DSSE envelope with a cosign
// key, attached to the image so that cosign verifies them (its `.att` and
// `.sig` tags) and as OCI referrers (the referrers API, or its fallback tag
// where a registry has none), and checked again by Verify.
//
// Envelopes, signatures and key files are the sigstore libraries' and
// go-securesystemslib's; statements are in-toto's attestation types.
package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Predicate types.
const (
	// PredicateProvenance is SLSA provenance v1.
	PredicateProvenance = "https://slsa.dev/provenance/v1"
	// PredicateHoist is Hoist's own attestation: tested, scanned and
	// gated (docs/attestations.md).
	PredicateHoist = "https://hoistci.dev/attestation/tested/v1"
	// PredicateCycloneDX and PredicateSPDX carry an SBOM document.
	PredicateCycloneDX = "https://cyclonedx.org/bom"
	PredicateSPDX      = "https://spdx.dev/Document"
)

// BuildType is the SLSA build type of Hoist's provenance (docs/attestations.md).
const BuildType = "https://hoistci.dev/build/v1"

// PayloadType is the DSSE payload type of an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// Kinds name the attestations in hoist.yaml and output.
const (
	KindProvenance = "provenance"
	KindTested     = "tested"
	KindSBOM       = "sbom"
)

// KindOf names a predicate type's kind ("" for one Hoist does not make).
func KindOf(predicateType string) string {
	switch predicateType {
	case PredicateProvenance:
		return KindProvenance
	case PredicateHoist:
		return KindTested
	case PredicateCycloneDX, PredicateSPDX:
		return KindSBOM
	}
	return ""
}

// Subject is what a statement is about: a pushed manifest.
type Subject struct {
	Name   string // repository, e.g. registry.example/team/demo
	Digest string // sha256:…
}

func (s Subject) descriptor() (*intoto.ResourceDescriptor, error) {
	alg, hex, ok := strings.Cut(s.Digest, ":")
	if !ok || alg != "sha256" || len(hex) != 64 {
		return nil, fmt.Errorf("subject %s: digest %q is not sha256:HEX", s.Name, s.Digest)
	}
	return &intoto.ResourceDescriptor{Name: s.Name, Digest: map[string]string{alg: hex}}, nil
}

// Statement builds an in-toto Statement v1 about sub whose predicate is the
// JSON encoding of predicate (a value, or json.RawMessage for a document
// kept as it is, such as an SBOM), and returns its JSON.
//
// The statement's frame (type, subject, predicate type) is checked by the
// in-toto library's own rules and its subject encoded by it; the predicate
// goes in byte for byte. Decoding a large SBOM into protobuf's Struct and
// encoding it again cost milliseconds per image, on Push's path.
func Statement(sub Subject, predicateType string, predicate any) ([]byte, error) {
	d, err := sub.descriptor()
	if err != nil {
		return nil, err
	}
	raw, ok := predicate.(json.RawMessage)
	if !ok {
		if raw, err = json.Marshal(predicate); err != nil {
			return nil, fmt.Errorf("encoding the %s predicate: %w", predicateType, err)
		}
	}
	if !json.Valid(raw) || !bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{")) {
		return nil, fmt.Errorf("the %s predicate is not a JSON object", predicateType)
	}
	frame := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{d},
		PredicateType: predicateType,
		Predicate:     &structpb.Struct{},
	}
	if err := frame.Validate(); err != nil {
		return nil, fmt.Errorf("statement %s: %w", predicateType, err)
	}
	subject, err := protojson.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("statement %s: %w", predicateType, err)
	}
	typ, _ := json.Marshal(intoto.StatementTypeUri)
	pt, _ := json.Marshal(predicateType)
	var b bytes.Buffer
	b.Grow(len(raw) + len(subject) + 128)
	b.WriteString(`{"_type":`)
	b.Write(typ)
	b.WriteString(`,"subject":[`)
	b.Write(subject)
	b.WriteString(`],"predicateType":`)
	b.Write(pt)
	b.WriteString(`,"predicate":`)
	b.Write(raw)
	b.WriteString("}")
	return b.Bytes(), nil
}

// Dependency is one input of a build, for resolvedDependencies.
type Dependency struct {
	URI    string // e.g. git+https://…@refs/…, or docker-image://REF
	Name   string // optional
	Digest map[string]string
}

// Provenance is what a SLSA provenance statement says about one image.
type Provenance struct {
	// BuilderID is the CI workflow that built it (its URL), or Hoist's
	// local builder id outside CI.
	BuilderID string
	// BuilderVersion is Hoist's version, when known.
	BuilderVersion string
	// InvocationID is the CI run's URL when there is one.
	InvocationID string
	// External are the image's entry in hoist.yaml as planned (name,
	// matrix entry, Dockerfile, target, build arguments, labels).
	External map[string]any
	// Dependencies: the git commit, every base image, the rendered
	// Dockerfile.
	Dependencies []Dependency
	Started      time.Time
	Finished     time.Time
}

// provenance is the SLSA v1 predicate in its JSON form (the schema of
// https://slsa.dev/provenance/v1).
type provenance struct {
	BuildDefinition struct {
		BuildType            string         `json:"buildType"`
		ExternalParameters   map[string]any `json:"externalParameters"`
		ResolvedDependencies []resource     `json:"resolvedDependencies,omitempty"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID      string            `json:"id"`
			Version map[string]string `json:"version,omitempty"`
		} `json:"builder"`
		Metadata struct {
			InvocationID string `json:"invocationId,omitempty"`
			StartedOn    string `json:"startedOn,omitempty"`
			FinishedOn   string `json:"finishedOn,omitempty"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

type resource struct {
	URI    string            `json:"uri,omitempty"`
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
}

// ProvenanceStatement is the SLSA provenance v1 statement about sub.
func ProvenanceStatement(sub Subject, p Provenance) ([]byte, error) {
	if p.BuilderID == "" {
		return nil, fmt.Errorf("provenance of %s: no builder id", sub.Name)
	}
	var pr provenance
	pr.BuildDefinition.BuildType = BuildType
	pr.BuildDefinition.ExternalParameters = p.External
	if pr.BuildDefinition.ExternalParameters == nil {
		pr.BuildDefinition.ExternalParameters = map[string]any{}
	}
	for _, d := range p.Dependencies {
		pr.BuildDefinition.ResolvedDependencies = append(pr.BuildDefinition.ResolvedDependencies, resource(d))
	}
	pr.RunDetails.Builder.ID = p.BuilderID
	if p.BuilderVersion != "" {
		pr.RunDetails.Builder.Version = map[string]string{"hoist": p.BuilderVersion}
	}
	pr.RunDetails.Metadata.InvocationID = p.InvocationID
	if !p.Started.IsZero() {
		pr.RunDetails.Metadata.StartedOn = p.Started.UTC().Format(time.RFC3339)
	}
	if !p.Finished.IsZero() {
		pr.RunDetails.Metadata.FinishedOn = p.Finished.UTC().Format(time.RFC3339)
	}
	return Statement(sub, PredicateProvenance, pr)
}

// Tested is Hoist's own predicate (PredicateHoist): what tested, scanned
// and gated the image, and with what result. docs/attestations.md is its
// reference; fields are only ever added.
type Tested struct {
	Image        string      `json:"image"`
	Entry        string      `json:"entry,omitempty"` // matrix entry, e.g. python=3.12,runtime=cpu
	ConfigDigest string      `json:"configDigest"`
	Revision     string      `json:"revision,omitempty"`
	Test         *TestResult `json:"test"`
	ClusterTest  *TestResult `json:"clusterTest,omitempty"`
	Scan         *ScanResult `json:"scan"`
	DigestGate   GateResult  `json:"digestGate"`
}

// TestResult is one test run of the image.
type TestResult struct {
	Passed    bool   `json:"passed"`
	ExitCode  int    `json:"exitCode"`
	LogSHA256 string `json:"logSha256,omitempty"`
	At        string `json:"at,omitempty"`
}

// ScanResult is the vulnerability scan of the image.
type ScanResult struct {
	Passed  bool           `json:"passed"`
	Scanner string         `json:"scanner"` // e.g. trivy 0.58.0
	DB      string         `json:"db,omitempty"`
	Policy  ScanPolicy     `json:"policy"`
	Counts  map[string]int `json:"counts"` // by severity, every finding
	Ignored []Ignored      `json:"ignored,omitempty"`
	SBOM    *SBOMRef       `json:"sbom,omitempty"`
	At      string         `json:"at,omitempty"`
}

// ScanPolicy is the policy the scan was judged by.
type ScanPolicy struct {
	Severity      []string `json:"severity"`
	IgnoreUnfixed bool     `json:"ignoreUnfixed,omitempty"`
	Scanners      []string `json:"scanners,omitempty"`
}

// Ignored is one finding an ignore entry accepted.
type Ignored struct {
	ID      string `json:"id"`
	Package string `json:"package,omitempty"`
	Reason  string `json:"reason"`
	Expires string `json:"expires,omitempty"`
}

// SBOMRef names the SBOM made by the same scan.
type SBOMRef struct {
	Format string `json:"format"` // cyclonedx or spdx-json
	SHA256 string `json:"sha256"`
}

// GateResult is the digest gate's outcome for the pushed manifest.
type GateResult struct {
	Passed bool `json:"passed"`
	// Checked says what was compared: the tested config digest and
	// diff_ids against the manifest the registry serves.
	Checked string `json:"checked"`
}

// Passed reports whether every recorded check passed.
func (t Tested) Passed() bool {
	ok := t.Test != nil && t.Test.Passed && t.Scan != nil && t.Scan.Passed && t.DigestGate.Passed
	if t.ClusterTest != nil {
		ok = ok && t.ClusterTest.Passed
	}
	return ok
}

// Failures lists what did not pass, for one line of output.
func (t Tested) Failures() []string {
	var out []string
	switch {
	case t.Test == nil:
		out = append(out, "no test result")
	case !t.Test.Passed:
		out = append(out, fmt.Sprintf("test failed (exit %d)", t.Test.ExitCode))
	}
	if t.ClusterTest != nil && !t.ClusterTest.Passed {
		out = append(out, fmt.Sprintf("in-cluster test failed (exit %d)", t.ClusterTest.ExitCode))
	}
	switch {
	case t.Scan == nil:
		out = append(out, "no scan result")
	case !t.Scan.Passed:
		out = append(out, "scan breached the policy")
	}
	if !t.DigestGate.Passed {
		out = append(out, "digest gate did not pass")
	}
	return out
}

// TestedStatement is Hoist's attestation about sub.
func TestedStatement(sub Subject, t Tested) ([]byte, error) {
	return Statement(sub, PredicateHoist, t)
}

// SBOMStatement wraps an SBOM document (CycloneDX or SPDX JSON) as the
// predicate of a statement about sub, unchanged.
func SBOMStatement(sub Subject, format string, doc []byte) ([]byte, error) {
	pt, err := SBOMPredicate(format)
	if err != nil {
		return nil, err
	}
	return Statement(sub, pt, json.RawMessage(doc))
}

// SBOM formats.
const (
	SBOMCycloneDX = "cyclonedx"
	SBOMSPDX      = "spdx-json"
)

// SBOMPredicate is the predicate type for an SBOM format.
func SBOMPredicate(format string) (string, error) {
	switch format {
	case SBOMCycloneDX:
		return PredicateCycloneDX, nil
	case SBOMSPDX:
		return PredicateSPDX, nil
	}
	return "", fmt.Errorf("SBOM format %q: use %s or %s", format, SBOMCycloneDX, SBOMSPDX)
}

// Parsed is a statement as read back: its header and raw predicate.
type Parsed struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// ParseStatement reads an in-toto Statement v1.
func ParseStatement(b []byte) (*Parsed, error) {
	var p Parsed
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	if p.Type != intoto.StatementTypeUri {
		return nil, fmt.Errorf("statement type %q, want %s", p.Type, intoto.StatementTypeUri)
	}
	return &p, nil
}

// About reports whether the statement names digest (sha256:…) as a subject.
func (p *Parsed) About(digest string) bool {
	alg, hex, _ := strings.Cut(digest, ":")
	for _, s := range p.Subject {
		if s.Digest[alg] == hex {
			return true
		}
	}
	return false
}

// Digests lists the subjects' digests, for messages.
func (p *Parsed) Digests() []string {
	var out []string
	for _, s := range p.Subject {
		for alg, h := range s.Digest {
			out = append(out, alg+":"+h)
		}
	}
	sort.Strings(out)
	return out
}

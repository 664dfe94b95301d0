package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/readlimit"
	"github.com/hoistci/hoist/pkg/registry"
	"github.com/hoistci/hoist/pkg/scan"
)

// LocalBuilderID is the provenance's builder id outside CI.
const LocalBuilderID = "https://hoistci.dev/builders/local"

// maxSBOM bounds an SBOM file read for its attestation.
const maxSBOM = 48 << 20

// SBOMFormat is the SBOM format the scan writes, or "" for none.
func (r *Run) SBOMFormat() string {
	if r.Cfg.Attest.SBOM == config.SBOMNone {
		return ""
	}
	return r.Cfg.Attest.SBOM
}

// signer loads the signing key the settings name, or signs keylessly
// when attest.keyless is set; nil when neither can (nothing is signed). A
// wrong password stops the run before anything is pushed.
func (r *Run) signer(ctx context.Context) (*attest.Signer, error) {
	if r.Cfg.Attest.Keyless != nil {
		return r.keylessSigner(ctx)
	}
	if r.Set.SigningKey == "" {
		if r.Set.SigningPassword != "" {
			return nil, errors.New("HOIST_SIGNING_PASSWORD is set but HOIST_SIGNING_KEY is not: set HOIST_SIGNING_KEY to the cosign.key file, or unset the password")
		}
		return nil, nil
	}
	b, err := readlimit.ReadFile(r.Set.SigningKey, "signing key", 64<<10)
	if err != nil {
		return nil, fmt.Errorf("HOIST_SIGNING_KEY: %w", err)
	}
	s, err := attest.LoadSigner(b, []byte(r.Set.SigningPassword))
	if errors.Is(err, attest.ErrWrongPassword) {
		return nil, fmt.Errorf("HOIST_SIGNING_PASSWORD does not decrypt the signing key %s: set the password the key was made with", r.Set.SigningKey)
	}
	if err != nil {
		return nil, fmt.Errorf("HOIST_SIGNING_KEY %s: %w", r.Set.SigningKey, err)
	}
	return s, nil
}

// attacher signs and attaches each pushed image's proofs: stage those that
// need only the digest, attach the rest and everything once the digest gate
// has passed (see publish.Attacher); record writes what was attached into
// the lock file, once for all images (call it when the push is over,
// failed or not). All are nil when no signing key is set.
func (r *Run) attacher(ctx context.Context, c *registry.Client, e *engine.Engine, p *plan.Plan) (stage, attach publish.Attacher, record func(context.Context) error, err error) {
	s, err := r.signer(ctx)
	if s == nil || err != nil {
		return nil, nil, nil, err
	}
	policy, err := scan.PolicyFrom(r.Cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := r.readyToAttest(policy); err != nil {
		return nil, nil, nil, err
	}
	started := time.Now()
	var mu sync.Mutex
	type done struct {
		image, id string
		d         name.Digest
		att       *attest.Attached
	}
	var attached []done
	record = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if len(attached) == 0 {
			return nil
		}
		return lock.UpdateContext(ctx, r.LockPath, func(l *lock.Lock) error {
			now := time.Now().UTC()
			for _, a := range attached {
				img, ok := l.Find(a.image)
				if !ok || img.ImageID != a.id {
					continue // rebuilt meanwhile: its record is not ours to extend
				}
				for _, pt := range a.att.PredicateType {
					img.Attestations = putAttestation(img.Attestations, lock.Attestation{
						Kind: attest.KindOf(pt), PredicateType: pt,
						Subject: a.d.String(), Referrer: a.att.Referrer, Tag: a.att.Att.String(), Key: s.KeyID(), At: now,
					})
				}
				img.Signature = &lock.Signature{Subject: a.d.String(), Tag: a.att.Sig.String(), Key: s.KeyID(), At: now}
			}
			return nil
		})
	}
	// stage signs and uploads every statement and the image signature
	// while the images' blobs go up; attach names them (the manifests of
	// the proofs) once the digest gate on what the registry serves has
	// passed. The tested statement reports that gate: it is signed and
	// uploaded ahead, when its content is already fixed, but nothing names
	// it, so nothing publishes it, unless the gate passes.
	staged := map[string]*attest.Staged{}
	stage = func(ctx context.Context, sess *registry.Session, li lock.Image, d name.Digest, desc v1.Descriptor) error {
		var pi *plan.Image
		for i := range p.Images {
			if p.Images[i].Name == li.Name {
				pi = &p.Images[i]
			}
		}
		if pi == nil {
			return fmt.Errorf("%s is not in the plan: run the Images target again", li.Name)
		}
		sub := attest.Subject{Name: d.Context().Name(), Digest: d.DigestStr()}
		prov, err := r.provenance(ctx, e, p, pi, li, started)
		if err != nil {
			return err
		}
		stmts := map[string][]byte{}
		if stmts[attest.PredicateProvenance], err = attest.ProvenanceStatement(sub, prov); err != nil {
			return err
		}
		if format := r.SBOMFormat(); format != "" {
			doc, err := sbomOf(li, format)
			if err != nil {
				return err
			}
			pt, _ := attest.SBOMPredicate(format)
			if stmts[pt], err = attest.SBOMStatement(sub, format, doc); err != nil {
				return err
			}
		}
		tested, err := r.tested(li, d, policy)
		if err != nil {
			return err
		}
		if stmts[attest.PredicateHoist], err = attest.TestedStatement(sub, tested); err != nil {
			return err
		}
		var unsigned []attest.Unsigned
		for _, pt := range []string{attest.PredicateProvenance, attest.PredicateCycloneDX, attest.PredicateSPDX, attest.PredicateHoist} {
			if st, ok := stmts[pt]; ok {
				unsigned = append(unsigned, attest.Unsigned{PredicateType: pt, Statement: st})
			}
		}
		st, err := s.SignAndStage(ctx, sess, d, desc, unsigned)
		if err != nil {
			return c.Explain("preparing the proofs of "+li.Name, d.RegistryStr(), err)
		}
		mu.Lock()
		staged[li.Name] = st
		mu.Unlock()
		return nil
	}
	attach = func(ctx context.Context, sess *registry.Session, li lock.Image, d name.Digest, desc v1.Descriptor) error {
		mu.Lock()
		st := staged[li.Name]
		mu.Unlock()
		if st == nil {
			if err := stage(ctx, sess, li, d, desc); err != nil {
				return err
			}
			mu.Lock()
			st = staged[li.Name]
			mu.Unlock()
		}
		att, err := s.Finish(ctx, st, nil)
		if err != nil {
			return c.Explain("attaching the proofs of "+li.Name, d.RegistryStr(), err)
		}
		r.logf("attest: %s: signed (%s) and attached %d attestations: %s", li.Name, s.Describe(), len(att.PredicateType), att.Att)
		mu.Lock()
		attached = append(attached, done{image: li.Name, id: li.ImageID, d: d, att: att})
		mu.Unlock()
		return nil
	}
	return stage, attach, record, nil
}

// readyToAttest checks, before anything is pushed, that every image's
// proofs can be made: test and scan results in the lock file, the SBOM as
// the scan wrote it.
func (r *Run) readyToAttest(policy scan.Policy) error {
	l, err := lock.Read(r.LockPath)
	if err != nil {
		return err
	}
	var errs []error
	for _, li := range l.Images {
		if _, err := r.tested(li, name.Digest{}, policy); err != nil {
			errs = append(errs, err)
			continue
		}
		if format := r.SBOMFormat(); format != "" {
			if _, err := sbomOf(li, format); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("refusing to push signed images: %w", err)
	}
	return nil
}

// putAttestation keeps one record per subject and kind: the latest.
func putAttestation(list []lock.Attestation, a lock.Attestation) []lock.Attestation {
	for i := range list {
		if list[i].Subject == a.Subject && list[i].PredicateType == a.PredicateType {
			list[i] = a
			return list
		}
	}
	return append(list, a)
}

// provenance gathers what the SLSA provenance says about one image: the
// commit, every base image by digest, the rendered Dockerfile by digest,
// the image's entry as planned and its build arguments.
func (r *Run) provenance(ctx context.Context, e *engine.Engine, p *plan.Plan, pi *plan.Image, li lock.Image, started time.Time) (attest.Provenance, error) {
	pv := attest.Provenance{
		BuilderID: r.Set.CIBuilderID, InvocationID: r.Set.CIRunURL,
		Started: started, Finished: time.Now(),
	}
	if pv.BuilderID == "" {
		pv.BuilderID = LocalBuilderID
	}
	rev := li.Labels["org.opencontainers.image.revision"]
	if rev == "" {
		rev = p.Revision
	}
	if rev != "" {
		src := p.Source
		if src == "" {
			src = "file://" + r.Cfg.Dir
		}
		pv.Dependencies = append(pv.Dependencies, attest.Dependency{URI: "git+" + src, Digest: map[string]string{"gitCommit": rev}})
	}
	df, err := readlimit.ReadFile(pi.Dockerfile, "Dockerfile", readlimit.Dockerfile)
	if err != nil {
		return pv, fmt.Errorf("reading the Dockerfile of %s for its provenance: %w", li.Name, err)
	}
	sum := sha256.Sum256(df)
	pv.Dependencies = append(pv.Dependencies, attest.Dependency{URI: "file:" + r.Rel(pi.Dockerfile), Name: "Dockerfile", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}})
	uses, err := plan.ReadDockerfile(df, pi.Args)
	if err != nil {
		return pv, fmt.Errorf("reading the Dockerfile of %s for its provenance: %w", li.Name, err)
	}
	seen := map[string]bool{}
	var bases []string
	for _, u := range uses.Sources {
		ref := u.Name
		if c, ok := pi.Contexts[ref]; ok {
			img, isImage := strings.CutPrefix(c, config.ImageContextPrefix)
			if !isImage {
				continue // a folder: part of the build context, not a base
			}
			ref = img
		}
		if !seen[ref] {
			seen[ref] = true
			bases = append(bases, ref)
		}
	}
	sort.Strings(bases)
	for _, ref := range bases {
		img, err := e.Inspect(ctx, ref)
		if err != nil {
			return pv, fmt.Errorf("resolving the base image %s of %s for its provenance: %w", ref, li.Name, err)
		}
		d := img.ID
		for _, rd := range img.RepoDigests {
			if _, h, ok := strings.Cut(rd, "@"); ok {
				d = h // the registry's digest, when it came from one
				break
			}
		}
		alg, h, _ := strings.Cut(d, ":")
		pv.Dependencies = append(pv.Dependencies, attest.Dependency{URI: "docker-image://" + ref, Digest: map[string]string{alg: h}})
	}
	ext := map[string]any{
		"image":      pi.Name,
		"dockerfile": r.Rel(pi.Dockerfile),
		"buildArgs":  nonNil(pi.Args),
		"labels":     nonNil(pi.Labels),
	}
	if len(pi.Entry) > 0 {
		ext["entry"] = pi.Entry.String()
	}
	if pi.Target != "" {
		ext["target"] = pi.Target
	}
	if pi.Network != "" {
		ext["network"] = pi.Network
	}
	if len(pi.Contexts) > 0 {
		ctxs := map[string]string{}
		for k, v := range pi.Contexts {
			if strings.HasPrefix(v, config.ImageContextPrefix) {
				ctxs[k] = v
			} else {
				ctxs[k] = r.Rel(v)
			}
		}
		ext["contexts"] = ctxs
	}
	pv.External = ext
	return pv, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// tested is Hoist's attestation of one image from the lock file: Push has
// refused an untested or changed image before it gets here, and the digest
// gate has checked the manifest the registry serves.
func (r *Run) tested(li lock.Image, d name.Digest, policy scan.Policy) (attest.Tested, error) {
	t := attest.Tested{
		Image: li.Name, Entry: li.Labels[plan.LabelEntry], ConfigDigest: li.ConfigDigest,
		Revision:   li.Labels["org.opencontainers.image.revision"],
		DigestGate: attest.GateResult{Passed: true, Checked: fmt.Sprintf("config %s and %d layer diff_ids of the tested image against %s as the registry serves it", li.ConfigDigest, len(li.DiffIDs), d.DigestStr())},
	}
	var err error
	if t.Test, err = testResult(li.Test); err != nil {
		return t, fmt.Errorf("%s: %w", li.Name, err)
	}
	if li.Cluster != nil {
		if t.ClusterTest, err = testResult(li.Cluster); err != nil {
			return t, fmt.Errorf("%s: in-cluster test: %w", li.Name, err)
		}
	}
	if li.Scan == nil {
		return t, fmt.Errorf("%s was not scanned: run the Scan target before Push (its result goes into the signed attestation)", li.Name)
	}
	if li.Scan.ImageID != "" && li.Scan.ImageID != li.ImageID {
		return t, fmt.Errorf("%s was scanned as %s but is now %s: run the Scan target again", li.Name, li.Scan.ImageID, li.ImageID)
	}
	s := &attest.ScanResult{
		Passed: li.Scan.Passed, Scanner: li.Scan.Scanner, DB: li.Scan.DB, At: li.Scan.At.UTC().Format(time.RFC3339),
		Policy: attest.ScanPolicy{Severity: policy.Severity, IgnoreUnfixed: policy.IgnoreUnfixed, Scanners: policy.Scanners},
		Counts: map[string]int{},
	}
	if len(li.Scan.Reports) > 0 {
		b, err := readlimit.ReadFile(li.Scan.Reports[0], "Trivy report", readlimit.Lock)
		if err != nil {
			return t, fmt.Errorf("%s: reading its scan report: %w: run the Scan target again", li.Name, err)
		}
		rep, err := scan.ParseReport(b)
		if err != nil {
			return t, fmt.Errorf("%s: %s: %w", li.Name, li.Scan.Reports[0], err)
		}
		for _, f := range rep.Findings() {
			s.Counts[f.Severity]++
		}
	}
	for _, f := range li.Scan.Findings {
		if f.Ignored == "" {
			continue
		}
		ig := attest.Ignored{ID: f.ID, Package: f.Package, Reason: f.Ignored}
		for _, pi := range policy.Ignore {
			if pi.ID == f.ID && (pi.Package == "" || pi.Package == f.Package) && !pi.Expires.IsZero() {
				ig.Expires = pi.Expires.Format("2006-01-02")
			}
		}
		s.Ignored = append(s.Ignored, ig)
	}
	if li.Scan.SBOM != nil {
		s.SBOM = &attest.SBOMRef{Format: li.Scan.SBOM.Format, SHA256: li.Scan.SBOM.SHA256}
	}
	t.Scan = s
	return t, nil
}

func testResult(lt *lock.Test) (*attest.TestResult, error) {
	if lt == nil {
		return nil, errors.New("no test result in the lock file: run the Test target")
	}
	tr := &attest.TestResult{Passed: lt.Passed, ExitCode: lt.ExitCode, At: lt.At.UTC().Format(time.RFC3339)}
	if lt.Log != "" {
		f, err := os.Open(lt.Log)
		if err != nil {
			return nil, fmt.Errorf("reading the test log %s: %w: run the Test target again", lt.Log, err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return nil, fmt.Errorf("reading the test log %s: %w", lt.Log, err)
		}
		tr.LogSHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return tr, nil
}

// sbomOf reads the image's SBOM as the scan recorded it, refusing a file
// that changed since.
func sbomOf(li lock.Image, format string) ([]byte, error) {
	if li.Scan == nil || li.Scan.SBOM == nil {
		return nil, fmt.Errorf("%s has no SBOM (attest.sbom is %s): run the Scan target again", li.Name, format)
	}
	if li.Scan.SBOM.Format != format {
		return nil, fmt.Errorf("%s's SBOM is %s but attest.sbom is %s: run the Scan target again", li.Name, li.Scan.SBOM.Format, format)
	}
	b, err := readlimit.ReadFile(li.Scan.SBOM.Path, "SBOM", maxSBOM)
	if err != nil {
		return nil, fmt.Errorf("%s: reading its SBOM: %w: run the Scan target again", li.Name, err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != li.Scan.SBOM.SHA256 {
		return nil, fmt.Errorf("%s: the SBOM %s changed since the scan wrote it: run the Scan target again", li.Name, filepath.Base(li.Scan.SBOM.Path))
	}
	return b, nil
}

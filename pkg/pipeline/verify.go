package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/readlimit"
	"github.com/hoistci/hoist/pkg/registry"
)

// ErrNoVerifyKey means Verify has no public key to check with.
var ErrNoVerifyKey = errors.New("no public key to verify with")

// verifier loads the public key: HOIST_VERIFY_KEY, else attest.public_key;
// with attest.keyless, the keyless policy (HOIST_VERIFY_KEY still wins).
func (r *Run) verifier() (*attest.Verifier, error) {
	if r.Cfg.Attest.Keyless != nil && r.Set.VerifyKey == "" {
		return r.keylessVerifier()
	}
	path, from := r.Set.VerifyKey, "HOIST_VERIFY_KEY"
	if path == "" && r.Cfg.Attest.PublicKey != "" {
		path, from = r.Cfg.Path(r.Cfg.Attest.PublicKey), r.Cfg.File+": attest.public_key"
	}
	if path == "" {
		return nil, fmt.Errorf("%w: set attest.public_key in %s to the cosign.pub of the signing key (or HOIST_VERIFY_KEY)", ErrNoVerifyKey, r.Cfg.File)
	}
	b, err := readlimit.ReadFile(path, "public key", 64<<10)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	v, err := attest.LoadVerifier(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", from, path, err)
	}
	return v, nil
}

// Verify checks the proofs of the images the settings name (or, by
// default, of every image the lock file records as pushed, by digest) and
// writes a summary per image to out: who built it, from which commit, what
// tested and scanned it and with what result. It returns
// attest.ErrRefused, one line per problem, when a required proof is
// missing or fails.
func (r *Run) Verify(ctx context.Context, out io.Writer) ([]*attest.Report, error) {
	v, err := r.verifier()
	if err != nil {
		return nil, err
	}
	refs, c, err := r.verifyTargets(ctx)
	if err != nil {
		return nil, err
	}
	policy := attest.Policy{Require: r.Cfg.Attest.Require}
	// What was built and tested, to hold an index's platforms to (none
	// when verifying references with no lock file here).
	l, _ := lock.Read(r.LockPath)
	var reports []*attest.Report
	var problems []string
	for _, ref := range refs {
		d, err := r.digestOf(ctx, c, ref)
		if err != nil {
			return reports, err
		}
		rep, err := attest.Verify(ctx, c.Options(ctx), d, v, policy)
		if err != nil {
			return reports, c.Explain("verifying "+d.String(), d.RegistryStr(), err)
		}
		if len(rep.Proofs) == 0 && len(rep.Problems) > 0 {
			rep.Problems = append([]string{noProofs(l, d)}, rep.Problems...)
		}
		platforms, held, err := r.verifyPlatforms(ctx, c, ref, d, l, rep)
		if err != nil {
			return reports, err
		}
		reports = append(reports, rep)
		writeReport(out, rep)
		writePlatforms(out, platforms, held)
		problems = append(problems, rep.Problems...)
	}
	if len(problems) > 0 {
		return reports, fmt.Errorf("%w: %s", attest.ErrRefused, strings.Join(problems, "; "))
	}
	return reports, nil
}

// noProofs explains an image with no attestation at all: one platform of
// an image with platforms carries none, its index does (named when the
// lock file records d as one).
func noProofs(l *lock.Lock, d name.Digest) string {
	if l != nil {
		for _, img := range l.Images {
			for _, p := range img.Platforms {
				if p.Manifest != d.DigestStr() {
					continue
				}
				for _, pu := range img.Pushed {
					if at := strings.Index(pu.Ref, "@"); at >= 0 {
						return fmt.Sprintf("%s is the %s manifest of %s's image index, which carries the proofs: verify %s", d, p.Platform, img.Name, d.Context().Digest(pu.Ref[at+1:]))
					}
				}
			}
		}
	}
	return fmt.Sprintf("%s has no attestation of any kind: verify the digest its tag names (an image with platforms carries its proofs on its index, not on each platform's manifest)", d)
}

// verifyTargets are the settings' references, else the lock's pushed
// digests (one per image).
func (r *Run) verifyTargets(ctx context.Context) ([]string, *registry.Client, error) {
	if len(r.Set.VerifyRefs) > 0 {
		c, err := registry.New(registry.Options{
			Host: r.Cfg.Registry.Host, Username: r.Set.RegistryUser, Password: registry.Secret(r.Set.RegistryPassword),
			Insecure: r.Cfg.Registry.Insecure,
		})
		return r.Set.VerifyRefs, c, err
	}
	l, err := lock.Read(r.LockPath)
	if err != nil {
		return nil, nil, err
	}
	var refs []string
	for _, img := range l.Images {
		if len(r.Set.Images) > 0 && !slices.Contains(r.Set.Images, img.Name) {
			continue
		}
		for _, p := range img.Pushed {
			if strings.Contains(p.Ref, "@") {
				refs = append(refs, p.Ref)
				break
			}
		}
	}
	if len(refs) == 0 {
		return nil, nil, fmt.Errorf("%s records no pushed image: run the Push target, or name images with HOIST_VERIFY_REF", r.Rel(r.LockPath))
	}
	c, _, err := r.Registry(ctx)
	return refs, c, err
}

// digestOf resolves a reference to the manifest digest it names now.
func (r *Run) digestOf(ctx context.Context, c *registry.Client, s string) (name.Digest, error) {
	var opts []name.Option
	if r.Cfg.Registry.Insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("HOIST_VERIFY_REF %q is not an image reference: write REPO@sha256:… or REPO:TAG", s)
	}
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	desc, err := c.Head(ctx, ref)
	if err != nil {
		return name.Digest{}, err
	}
	return ref.Context().Digest(desc.Digest.String()), nil
}

// writeReport prints what the proofs say, a few lines per image.
func writeReport(w io.Writer, rep *attest.Report) {
	fmt.Fprintf(w, "%s\n", rep.Image)
	if p := rep.Provenance; p != nil {
		fmt.Fprintf(w, "  built by  %s\n", p.BuilderID)
		if p.InvocationID != "" {
			fmt.Fprintf(w, "  run       %s\n", p.InvocationID)
		}
		if p.Commit != "" {
			fmt.Fprintf(w, "  commit    %s\n", p.Commit)
		}
	}
	if t := rep.Tested; t != nil {
		if t.Test != nil {
			fmt.Fprintf(w, "  tested    %s (exit %d, log sha256 %s)\n", passFail(t.Test.Passed), t.Test.ExitCode, shortHex(t.Test.LogSHA256))
		}
		if t.ClusterTest != nil {
			fmt.Fprintf(w, "  cluster   %s (exit %d)\n", passFail(t.ClusterTest.Passed), t.ClusterTest.ExitCode)
		}
		if s := t.Scan; s != nil {
			fmt.Fprintf(w, "  scanned   %s by %s, %s; blocking on %s; findings %s", passFail(s.Passed), s.Scanner, s.DB, strings.Join(s.Policy.Severity, ","), counts(s.Counts))
			if len(s.Ignored) > 0 {
				fmt.Fprintf(w, "; %d ignored", len(s.Ignored))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  gate      %s\n", passFail(t.DigestGate.Passed))
	}
	if rep.SBOMFormat != "" {
		fmt.Fprintf(w, "  sbom      %s\n", rep.SBOMFormat)
	}
	if len(rep.Problems) == 0 {
		fmt.Fprintf(w, "  verified: %d attestations signed by %s\n", len(rep.Proofs), rep.SignedBy)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  REFUSED: %s\n", p)
	}
}

func passFail(ok bool) string {
	if ok {
		return "passed"
	}
	return "FAILED"
}

func shortHex(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func counts(m map[string]int) string {
	var parts []string
	for _, sev := range []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"} {
		if m[sev] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[sev], sev))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/pkg/attest"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/registry"
)

// attestPush times a cold Push into a fresh registry without attestations,
// then a cold Push into another fresh registry signing and attaching, per
// image, what the Push target attaches: provenance, the tested statement
// and a CycloneDX SBOM (a synthetic one of sbomKiB), each in a signed DSSE
// envelope in cosign's tags and as OCI referrers, plus cosign's image
// signature, and recording them in the lock file.
// The requests each sent are counted by kind (counts, without and with).
func (b *bench) attestPush(ctx context.Context, round int, sbomKiB int) (plain, attested time.Duration, counts [2]map[string]int, err error) {
	priv, _, err := attest.GenerateKey([]byte("bench"))
	if err != nil {
		return 0, 0, counts, err
	}
	signer, err := attest.LoadSigner(priv, []byte("bench"))
	if err != nil {
		return 0, 0, counts, err
	}
	sbom := syntheticSBOM(sbomKiB)
	for _, with := range []bool{false, true} {
		reg, err := b.attestRegistry(ctx, fmt.Sprintf("attest-%d-%v", round, with))
		if err != nil {
			return 0, 0, counts, err
		}
		work := filepath.Join(b.tmp, fmt.Sprintf("attest-work-%d-%v", round, with))
		os.MkdirAll(work, 0o755)
		lockPath := filepath.Join(work, "lock.json")
		if err := imagefix.WriteLock(lockPath, "1.2.3", b.imgs...); err != nil {
			reg.Close()
			return 0, 0, counts, err
		}
		ct := newCounting(remote.DefaultTransport)
		c, err := registry.New(registry.Options{Keychain: noKeys{}, Transport: ct})
		if err != nil {
			reg.Close()
			return 0, 0, counts, err
		}
		o := publish.PushOptions{LockPath: lockPath, Prefix: reg.Host + "/bench", WorkDir: work}
		record := func() error { return nil }
		if with {
			o.StageProofs, o.Attach, record = attacher(signer, lockPath, sbom)
		}
		start := time.Now()
		ct.keep, ct.t0 = traceTo != "", start
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		monoStart := float64(ts.Sec) + float64(ts.Nsec)/1e9
		_, err = publish.Push(ctx, c, b.e, o)
		if err == nil {
			err = record()
		}
		d := time.Since(start)
		if ct.keep {
			os.WriteFile(fmt.Sprintf("%s-%d-%v.txt", traceTo, round, with), []byte(fmt.Sprintf("# mono start %.6f\n", monoStart)+strings.Join(ct.trace, "\n")+"\n"), 0o644)
		}
		reg.Close()
		if err != nil {
			return 0, 0, counts, err
		}
		if with {
			attested, counts[1] = d, ct.reset()
		} else {
			plain, counts[0] = d, ct.reset()
		}
	}
	return plain, attested, counts, nil
}

// traceTo is the -trace flag.
var traceTo string

// attestOn is the -registry flag: the registry -attest pushes to.
var attestOn = "distribution"

// closer is a registry the attest bench started.
type closer struct {
	Host  string
	close func()
}

func (c closer) Close() { c.close() }

// attestRegistry starts a fresh registry of the -registry kind: Debian's
// distribution registry (no referrers API: cosign's tags and the fallback
// tag), or a checkout's local registry (go-containerregistry's, with the
// referrers API, the default with no registry configured).
func (b *bench) attestRegistry(ctx context.Context, name string) (closer, error) {
	switch attestOn {
	case "distribution":
		reg, err := b.registry(ctx, name)
		if err != nil {
			return closer{}, err
		}
		return closer{reg.Host, func() { reg.Close() }}, nil
	case "local":
		dir := filepath.Join(b.tmp, name, "build", "hoist", "registry")
		reg, err := localregistry.Ensure(ctx, localregistry.Options{Dir: dir})
		if err != nil {
			return closer{}, err
		}
		return closer{reg.Host, func() { localregistry.Stop(context.Background(), dir) }}, nil
	}
	return closer{}, fmt.Errorf("-registry %q: use distribution or local", attestOn)
}

// attacher makes, per image, the statements the Push target makes and
// signs and attaches them as it does (stage: provenance, SBOM and the
// image signature as soon as the digest is known; attach: the tested
// statement after the gate, and every manifest), recording them in the
// lock file once at the end (record).
func attacher(s *attest.Signer, lockPath string, sbom []byte) (stage, attach publish.Attacher, record func() error) {
	var mu sync.Mutex
	var attached []lock.Attestation
	staged := map[string]*attest.Staged{}
	stage = func(ctx context.Context, sess *registry.Session, li lock.Image, d name.Digest, desc v1.Descriptor) error {
		sub := attest.Subject{Name: d.Context().Name(), Digest: d.DigestStr()}
		prov, err := attest.ProvenanceStatement(sub, attest.Provenance{
			BuilderID: "https://hoistci.dev/builders/local",
			External:  map[string]any{"image": li.Name, "buildArgs": map[string]string{"PYTHON_VERSION": "3.12"}},
			Dependencies: []attest.Dependency{
				{URI: "git+https://example.invalid/bench", Digest: map[string]string{"gitCommit": strings.Repeat("1", 40)}},
				{URI: "file:build/bench.Dockerfile", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}},
			},
		})
		if err != nil {
			return err
		}
		bom, err := attest.SBOMStatement(sub, attest.SBOMCycloneDX, sbom)
		if err != nil {
			return err
		}
		// As Push does: the tested statement's content is fixed before
		// the gate, so it is signed and uploaded here; attach names it.
		tested, err := attest.TestedStatement(sub, attest.Tested{
			Image: li.Name, ConfigDigest: li.ConfigDigest,
			Test:       &attest.TestResult{Passed: true, LogSHA256: strings.Repeat("3", 64)},
			Scan:       &attest.ScanResult{Passed: true, Scanner: "trivy 0.58.0", Counts: map[string]int{"LOW": 2}},
			DigestGate: attest.GateResult{Passed: true, Checked: "bench"},
		})
		if err != nil {
			return err
		}
		st, err := s.SignAndStage(ctx, sess, d, desc, []attest.Unsigned{
			{PredicateType: attest.PredicateProvenance, Statement: prov},
			{PredicateType: attest.PredicateCycloneDX, Statement: bom},
			{PredicateType: attest.PredicateHoist, Statement: tested},
		})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		staged[li.Name] = st
		return nil
	}
	attach = func(ctx context.Context, sess *registry.Session, li lock.Image, d name.Digest, desc v1.Descriptor) error {
		mu.Lock()
		st := staged[li.Name]
		mu.Unlock()
		if st == nil { // not staged (an index, whose digest came late)
			if err := stage(ctx, sess, li, d, desc); err != nil {
				return err
			}
			st = staged[li.Name]
		}
		att, err := s.Finish(ctx, st, nil)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, pt := range att.PredicateType {
			attached = append(attached, lock.Attestation{Kind: attest.KindOf(pt), PredicateType: pt, Subject: d.String(), Referrer: att.Referrer, Tag: att.Att.String(), Key: s.KeyID(), At: time.Now().UTC()})
		}
		return nil
	}
	record = func() error {
		return lock.Update(lockPath, func(l *lock.Lock) error {
			for _, a := range attached {
				repo, _, _ := strings.Cut(a.Subject, "@")
				for i := range l.Images {
					if strings.HasSuffix(repo, "/"+l.Images[i].Name) {
						l.Images[i].Attestations = append(l.Images[i].Attestations, a)
					}
				}
			}
			return nil
		})
	}
	return stage, attach, record
}

// syntheticSBOM is a CycloneDX document of about kib KiB.
func syntheticSBOM(kib int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[`)
	for i := 0; sb.Len() < kib<<10; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"type":"library","name":"pkg%d","version":"1.%d.0","purl":"pkg:deb/debian/pkg%d@1.%d.0?distro=debian-12"}`, i, i, i, i)
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

// runAttest builds the matrix and compares cold Push with and without
// attestations, alternating, over rounds.
func runAttest(ctx context.Context, rounds, sbomKiB int) error {
	b, done, err := setup(ctx)
	if err != nil {
		return err
	}
	defer done()
	var plain, with, ratio []float64
	var counts [2]map[string]int
	for r := 0; r < rounds; r++ {
		p, a, cs, err := b.attestPush(ctx, r, sbomKiB)
		if err != nil {
			return err
		}
		counts = cs
		plain, with, ratio = append(plain, p.Seconds()), append(with, a.Seconds()), append(ratio, a.Seconds()/p.Seconds())
		fmt.Printf("round %d: Push %.2fs, Push with attestations %.2fs (%.3fx)\n", r+1, p.Seconds(), a.Seconds(), ratio[r])
	}
	fmt.Printf("%s registry, %d images, %d rounds, SBOM %d KiB each: median Push %.2fs, with every attestation %.2fs, ratio %.3fx (median of round ratios %.3fx)\n",
		attestOn, len(b.imgs), rounds, sbomKiB, medianF(plain), medianF(with), medianF(with)/medianF(plain), medianF(ratio))
	fmt.Printf("\nrequests sent in the last round, by kind:\n%s", countTable(counts[0], counts[1]))
	return nil
}

func medianF(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

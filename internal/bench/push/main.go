// Command push measures Push and Promote against the anchor tools in the
// same run, on the 14-image matrix (a ~4 MiB distinct layer each on a shared
// busybox base) and loopback distribution registries:
//
//   - cold Push vs a `docker push` loop (each into a fresh registry);
//   - nothing-changed Push vs the `docker push` loop repeated;
//   - Promote of 14 images × 4 tags vs a `crane copy` loop over the same
//     tags (each on an identically seeded registry), with the blob uploads
//     counted from the registry's access log;
//   - cold and nothing-changed Push into the checkout's local registry
//     (localregistry.Ensure, the default with no registry configured) vs
//     the same Push into a distribution registry;
//   - with -attest, only cold Push signing and attaching every attestation
//     vs cold Push without (attest.go).
//
// Run: go run ./internal/bench/push [-rounds 3] [-attest]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/images"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/registry"
)

func main() {
	rounds := flag.Int("rounds", 3, "measurements of each kind; the median is reported")
	attestOnly := flag.Bool("attest", false, "only measure Push with attestations against Push without")
	sbomKiB := flag.Int("sbom-kib", 64, "size of each image's SBOM with -attest")
	flag.StringVar(&attestOn, "registry", attestOn, "with -attest, the registry pushed to: distribution (Debian's, no referrers API) or local (a checkout's, go-containerregistry's with the referrers API)")
	flag.StringVar(&traceTo, "trace", "", "with -attest, write each push's requests (start and end in ms, kind, path) to TRACE-ROUND-ATTESTED.txt, headed by its start in CLOCK_MONOTONIC seconds to line up with `perf record -k mono`")
	flag.Parse()
	if *attestOnly {
		if err := runAttest(context.Background(), *rounds, *sbomKiB); err != nil {
			fmt.Fprintln(os.Stderr, "bench push:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench push:", err)
		os.Exit(1)
	}
}

type bench struct {
	e       *engine.Engine
	tmp     string
	lock    string
	imgs    []lock.Image
	crane   string
	cleanup []string // engine references to remove at the end
}

// setup connects to the engine and builds the matrix; done cleans up.
func setup(ctx context.Context) (*bench, func(), error) {
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "hoist-bench-push-")
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	b := &bench{e: e, tmp: tmp, lock: filepath.Join(tmp, "lock.json")}
	done := func() {
		for _, ref := range b.cleanup {
			e.Remove(context.Background(), ref)
		}
		os.RemoveAll(tmp)
		e.Close()
	}
	fmt.Println("building the 14-entry matrix (a distinct ~4 MiB layer each on a shared busybox base) with the Images flow...")
	if err := b.build(ctx); err != nil {
		done()
		return nil, nil, err
	}
	return b, done, nil
}

func run(ctx context.Context, rounds int) error {
	b, done, err := setup(ctx)
	if err != nil {
		return err
	}
	defer done()
	tmp := b.tmp
	n := len(b.imgs)
	fmt.Println("building crane from go-containerregistry v0.20.6 (module cache)...")
	if b.crane, err = benchutil.Crane(ctx, tmp); err != nil {
		return err
	}

	var dockerCold, dockerAgain, hoistCold, hoistAgain, crane, promote, localCold, localAgain []time.Duration
	var promoteUploads, craneUploads, hoistAgainSaves int
	for r := 0; r < rounds; r++ {
		dc, da, err := b.dockerPush(ctx, r)
		if err != nil {
			return err
		}
		hc, ha, saves, err := b.hoistPush(ctx, r)
		if err != nil {
			return err
		}
		pt, pu, err := b.promote(ctx, r)
		if err != nil {
			return err
		}
		ct, cu, err := b.craneCopy(ctx, r)
		if err != nil {
			return err
		}
		lc, la, err := b.localPush(ctx, r)
		if err != nil {
			return err
		}
		localCold, localAgain = append(localCold, lc), append(localAgain, la)
		dockerCold, dockerAgain = append(dockerCold, dc), append(dockerAgain, da)
		hoistCold, hoistAgain = append(hoistCold, hc), append(hoistAgain, ha)
		promote, crane = append(promote, pt), append(crane, ct)
		promoteUploads += pu
		craneUploads += cu
		hoistAgainSaves += saves
		fmt.Printf("round %d: docker push %v / %v, Push %v / %v, crane copy %v, Promote %v, Push into the local registry %v / %v\n", r+1, dc, da, hc, ha, ct, pt, lc, la)
	}
	fmt.Printf("\n%d images, %d rounds, medians (%d cores, %s)\n", n, rounds, runtime.NumCPU(), runtime.Version())
	fmt.Printf("| what | anchor | Hoist | ratio | target |\n|---|---|---|---|---|\n")
	row := func(what string, anchor, hoist []time.Duration, target string) {
		a, h := median(anchor), median(hoist)
		fmt.Printf("| %s | %.2f s | %.2f s | %.2fx | %s |\n", what, a.Seconds(), h.Seconds(), h.Seconds()/a.Seconds(), target)
	}
	row("cold push (vs `docker push` loop, fresh registry)", dockerCold, hoistCold, "<= 1.0x")
	row("nothing changed (vs `docker push` loop again)", dockerAgain, hoistAgain, "<= 0.3x")
	row(fmt.Sprintf("promote %d images x 4 tags (vs `crane copy` loop)", n), crane, promote, "<= 0.2x")
	row("cold Push into the local registry (vs into distribution)", hoistCold, localCold, "<= 1.0x")
	row("nothing changed, local registry (vs into distribution)", hoistAgain, localAgain, "<= 1.0x")
	fmt.Printf("\nblob uploads during Promote: %d (crane copy loop: %d); engine exports during nothing-changed Push: %d\n", promoteUploads, craneUploads, hoistAgainSaves)
	return nil
}

// build makes the shared 14-entry matrix (benchutil) with the Images flow
// and marks every image tested in the lock file.
func (b *bench) build(ctx context.Context) error {
	dir := filepath.Join(b.tmp, "repo")
	cfg, err := benchutil.Matrix(dir, fmt.Sprintf("hoistbench%d", time.Now().UnixNano()%1e6))
	if err != nil {
		return err
	}
	p, err := benchutil.Plan(cfg)
	if err != nil {
		return err
	}
	bld, err := b.e.Builder(ctx, engine.Remote{})
	if err != nil {
		return err
	}
	defer bld.Close()
	b.cleanup = append(b.cleanup, p.Bases[0].Ref)
	for _, img := range p.Images {
		b.cleanup = append(b.cleanup, img.Ref)
	}
	if _, err := images.Build(ctx, b.e, bld, p, b.lock, images.Options{Parallel: 4}); err != nil {
		return err
	}
	l, err := lock.Read(b.lock)
	if err != nil {
		return err
	}
	for _, img := range l.Images {
		img.Test = &lock.Test{Passed: true, ImageID: img.ImageID, At: time.Now().UTC()}
		b.imgs = append(b.imgs, img)
	}
	return nil
}

func (b *bench) registry(ctx context.Context, name string) (*localregistry.Server, error) {
	return localregistry.Start(ctx, localregistry.Options{Dir: filepath.Join(b.tmp, name)})
}

func docker(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "docker", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %v: %v\n%s", args, err, out)
	}
	return nil
}

// dockerPush times a `docker push` loop into a fresh registry, then again.
func (b *bench) dockerPush(ctx context.Context, round int) (time.Duration, time.Duration, error) {
	reg, err := b.registry(ctx, fmt.Sprintf("docker-%d", round))
	if err != nil {
		return 0, 0, err
	}
	defer reg.Close()
	var refs []string
	for _, img := range b.imgs {
		ref := fmt.Sprintf("%s/bench/%s:1.2.3", reg.Host, img.Name)
		if err := docker(ctx, "tag", img.ImageID, ref); err != nil {
			return 0, 0, err
		}
		refs = append(refs, ref)
	}
	defer func() {
		for _, r := range refs {
			docker(context.Background(), "rmi", r)
		}
	}()
	loop := func() (time.Duration, error) {
		start := time.Now()
		for _, r := range refs {
			if err := docker(ctx, "push", r); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	cold, err := loop()
	if err != nil {
		return 0, 0, err
	}
	again, err := loop()
	return cold, again, err
}

type countingEngine struct {
	*engine.Engine
	saves int
}

func (c *countingEngine) Save(ctx context.Context, refs ...string) (io.ReadCloser, error) {
	c.saves++
	return c.Engine.Save(ctx, refs...)
}

func client() (*registry.Client, error) {
	return registry.New(registry.Options{Keychain: noKeys{}})
}

// hoistPush times a cold Push (fresh registry, no push cache), then again.
func (b *bench) hoistPush(ctx context.Context, round int) (time.Duration, time.Duration, int, error) {
	reg, err := b.registry(ctx, fmt.Sprintf("hoist-%d", round))
	if err != nil {
		return 0, 0, 0, err
	}
	defer reg.Close()
	return b.pushTo(ctx, reg.Host, fmt.Sprintf("work-%d", round))
}

// localPush times the same into a fresh local registry of a checkout (its
// start, and the build of its program, are not timed).
func (b *bench) localPush(ctx context.Context, round int) (time.Duration, time.Duration, error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("local-%d", round), "build", "hoist", "registry")
	reg, err := localregistry.Ensure(ctx, localregistry.Options{Dir: dir})
	if err != nil {
		return 0, 0, err
	}
	defer localregistry.Stop(context.Background(), dir)
	cold, again, _, err := b.pushTo(ctx, reg.Host, fmt.Sprintf("local-work-%d", round))
	return cold, again, err
}

// pushTo times a cold Push into host (no push cache), then again, and
// counts the engine exports of the second.
func (b *bench) pushTo(ctx context.Context, host, name string) (time.Duration, time.Duration, int, error) {
	work := filepath.Join(b.tmp, name)
	os.MkdirAll(work, 0o755)
	if err := imagefix.WriteLock(filepath.Join(work, "lock.json"), "1.2.3", b.imgs...); err != nil {
		return 0, 0, 0, err
	}
	c, err := client()
	if err != nil {
		return 0, 0, 0, err
	}
	ce := &countingEngine{Engine: b.e}
	o := publish.PushOptions{LockPath: filepath.Join(work, "lock.json"), Prefix: host + "/bench", WorkDir: work}
	start := time.Now()
	if _, err := publish.Push(ctx, c, ce, o); err != nil {
		return 0, 0, 0, err
	}
	cold := time.Since(start)
	ce.saves = 0
	c, _ = client() // a new process would start with no connections
	start = time.Now()
	if _, err := publish.Push(ctx, c, ce, o); err != nil {
		return 0, 0, 0, err
	}
	return cold, time.Since(start), ce.saves, nil
}

// seedStaging pushes the images as 1.2.3-staging.1 into a fresh registry.
func (b *bench) seedStaging(ctx context.Context, name string) (*localregistry.Server, error) {
	reg, err := b.registry(ctx, name)
	if err != nil {
		return nil, err
	}
	work := filepath.Join(b.tmp, name+"-work")
	os.MkdirAll(work, 0o755)
	if err := imagefix.WriteLock(filepath.Join(work, "lock.json"), "1.2.3-staging.1", b.imgs...); err != nil {
		reg.Close()
		return nil, err
	}
	c, err := client()
	if err != nil {
		reg.Close()
		return nil, err
	}
	if _, err := publish.Push(ctx, c, b.e, publish.PushOptions{LockPath: filepath.Join(work, "lock.json"), Prefix: reg.Host + "/bench", WorkDir: work, Version: semver.MustParse("1.2.3-staging.1")}); err != nil {
		reg.Close()
		return nil, err
	}
	return reg, nil
}

func (b *bench) promote(ctx context.Context, round int) (time.Duration, int, error) {
	reg, err := b.seedStaging(ctx, fmt.Sprintf("promote-%d", round))
	if err != nil {
		return 0, 0, err
	}
	defer reg.Close()
	before, err := reg.Counts()
	if err != nil {
		return 0, 0, err
	}
	c, err := client()
	if err != nil {
		return 0, 0, err
	}
	o := publish.PromoteOptions{From: reg.Host + "/bench", Base: "1.2.3"}
	for _, img := range b.imgs {
		o.Images = append(o.Images, img.Name)
	}
	start := time.Now()
	plan, err := publish.Promote(ctx, c, o)
	if err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	if len(plan.Steps) != len(b.imgs) || len(plan.Steps[0].Tags) != 4 {
		return 0, 0, fmt.Errorf("promotion plan %v: want %d images x 4 tags", plan, len(b.imgs))
	}
	after, err := reg.Counts()
	return d, after.Uploads - before.Uploads, err
}

func (b *bench) craneCopy(ctx context.Context, round int) (time.Duration, int, error) {
	reg, err := b.seedStaging(ctx, fmt.Sprintf("crane-%d", round))
	if err != nil {
		return 0, 0, err
	}
	defer reg.Close()
	before, err := reg.Counts()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	for _, img := range b.imgs {
		src := fmt.Sprintf("%s/bench/%s:1.2.3-staging.1", reg.Host, img.Name)
		for _, tag := range []string{"1.2.3", "1.2", "1", "latest"} {
			cmd := exec.CommandContext(ctx, b.crane, "copy", "--insecure", src, fmt.Sprintf("%s/bench/%s:%s", reg.Host, img.Name, tag))
			cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+b.tmp)
			if out, err := cmd.CombinedOutput(); err != nil {
				return 0, 0, fmt.Errorf("crane copy: %v\n%s", err, out)
			}
		}
	}
	d := time.Since(start)
	after, err := reg.Counts()
	return d, after.Uploads - before.Uploads, err
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// noKeys keeps the machine's Docker config out of the measurement.
type noKeys struct{}

func (noKeys) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

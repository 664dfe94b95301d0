// Command platforms measures the 14-image matrix built for linux/amd64 and
// linux/arm64 (arm64 RUN steps under emulation) against the anchor tools in
// the same run, on one engine and loopback distribution registries:
//
//   - Images cold (no cache) and with nothing changed, against `docker
//     buildx bake` building the same 28 platform images in one BuildKit
//     session (bake --no-cache, then bake again);
//   - Push of the 14 images (28 manifests by digest, then 14 indexes and
//     their tags), cold and again, against a `docker push` loop of the 28
//     platform images (which makes no index);
//   - Promote of 14 indexes × 4 tags against a `crane copy` loop.
//
// The matrix's base is a busybox base with Debian's busybox-static for
// each platform (bases[].platforms); the arm64 binary comes from
// `apt-get download busybox-static:arm64` unless -arm64-busybox names one.
// The engine's docker driver cannot build one multi-platform target on
// the classic image store (its exporter holds one platform per name), so
// bake gets one target per platform, each loaded into the engine as Images
// keeps them, the arm64 one FROM the arm64 base (Images reads it through a
// named context; the engine's own Dockerfile frontend has none).
//
// Run from the repository root: go run ./internal/bench/platforms [-rounds 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/images"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/registry"
)

const arm64 = "linux/arm64"

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each measurement; the median is reported")
	parallel := flag.Int("parallel", 2*runtime.NumCPU(), "Images' concurrent solves")
	bb := flag.String("arm64-busybox", "", "a static arm64 busybox (default: Debian's busybox-static:arm64, downloaded)")
	flag.Parse()
	if err := run(context.Background(), *rounds, *parallel, *bb); err != nil {
		fmt.Fprintln(os.Stderr, "bench platforms:", err)
		os.Exit(1)
	}
}

type bench struct {
	e        *engine.Engine
	b        *engine.Builder
	tmp      string
	cfg      *config.Config
	p        *plan.Plan
	host     string
	lock     string
	parallel int
	docker   string // DOCKER_CONFIG holding buildx
}

func run(ctx context.Context, rounds, parallel int, bb string) error {
	tmp, err := os.MkdirTemp("", "hoist-bench-platforms-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bb == "" {
		if bb, err = downloadBusybox(ctx, tmp); err != nil {
			return err
		}
	}
	dockerConfig, err := benchutil.Buildx(ctx, tmp)
	if err != nil {
		return err
	}
	craneBin, err := benchutil.Crane(ctx, tmp)
	if err != nil {
		return err
	}
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return fmt.Errorf("%w (bash scripts/engine-up.sh --for-tests starts one and registers arm64 emulation)", err)
	}
	defer e.Close()
	bld, err := e.Builder(ctx, engine.Remote{})
	if err != nil {
		return err
	}
	defer bld.Close()
	host, err := e.Platform(ctx)
	if err != nil {
		return err
	}
	if host != "linux/amd64" {
		return fmt.Errorf("the engine runs %s: this benchmark's base is amd64's /bin/busybox plus an arm64 one", host)
	}
	ben := &bench{e: e, b: bld, tmp: tmp, host: host, parallel: parallel, docker: dockerConfig}
	if err := ben.matrix(bb); err != nil {
		return err
	}
	defer ben.cleanup()

	fmt.Printf("%d rounds (median), 14 images x 2 platforms (arm64 under emulation), Images parallel=%d, %d cores; anchors: docker buildx bake (buildx %s, docker driver), docker push loop, crane copy loop\n",
		rounds, parallel, runtime.NumCPU(), benchutil.BuildxVersion)
	if err := ben.writeBake(); err != nil {
		return err
	}
	// Warm up: bases exist, both tools' caches filled.
	if err := ben.images(ctx, false); err != nil {
		return err
	}
	if err := ben.bake(ctx, false); err != nil {
		return err
	}
	var hc, bc, hw, bw, pc, pa, dc, da, pr, cr []time.Duration
	type step struct {
		into *[]time.Duration
		fn   func() error
	}
	for i := 0; i < rounds; i++ {
		cold := []step{{&hc, func() error { return ben.images(ctx, true) }}, {&bc, func() error { return ben.bake(ctx, true) }}}
		warm := []step{{&hw, func() error { return ben.images(ctx, false) }}, {&bw, func() error { return ben.bake(ctx, false) }}}
		if i%2 == 1 {
			cold[0], cold[1] = cold[1], cold[0]
			warm[0], warm[1] = warm[1], warm[0]
		}
		for _, m := range append(cold, warm...) {
			d, err := benchutil.Time(m.fn)
			if err != nil {
				return err
			}
			*m.into = append(*m.into, d)
		}
		imgs, err := ben.tested()
		if err != nil {
			return err
		}
		c1, a1, err := ben.hoistPush(ctx, i, imgs)
		if err != nil {
			return err
		}
		c2, a2, err := ben.dockerPush(ctx, i, imgs)
		if err != nil {
			return err
		}
		p1, err := ben.promote(ctx, i, imgs)
		if err != nil {
			return err
		}
		p2, err := ben.craneCopy(ctx, i, imgs, craneBin)
		if err != nil {
			return err
		}
		pc, pa, dc, da, pr, cr = append(pc, c1), append(pa, a1), append(dc, c2), append(da, a2), append(pr, p1), append(cr, p2)
		fmt.Printf("  round %d: images cold %.3fs bake %.3fs; unchanged %.3fs bake %.3fs; push %.3fs / %.3fs, docker push %.3fs / %.3fs; promote %.3fs, crane copy %.3fs\n",
			i+1, hc[i].Seconds(), bc[i].Seconds(), hw[i].Seconds(), bw[i].Seconds(), c1.Seconds(), a1.Seconds(), c2.Seconds(), a2.Seconds(), p1.Seconds(), p2.Seconds())
	}
	m := benchutil.Median
	ok := benchutil.Report("images cold (no cache)", m(hc), m(bc), "buildx bake --no-cache", 1.0)
	ok = benchutil.Report("images nothing changed", m(hw), m(bw), "buildx bake", 0.05) && ok
	ok = benchutil.Report("push cold (index per image)", m(pc), m(dc), "docker push loop", 1.0) && ok
	ok = benchutil.Report("push nothing changed", m(pa), m(da), "docker push again", 0.3) && ok
	ok = benchutil.Report("promote 14 indexes x 4 tags", m(pr), m(cr), "crane copy loop", 0.2) && ok
	if !ok {
		os.Exit(2)
	}
	return nil
}

// downloadBusybox fetches Debian's busybox-static for arm64 into dir
// without installing it (the host's amd64 one stays).
func downloadBusybox(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "apt-get", "download", "busybox-static:arm64")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download busybox-static:arm64: %v: %s(run dpkg --add-architecture arm64 && apt-get update as root first, or pass -arm64-busybox PATH)", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "busybox-static_*_arm64.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download left %v in %s, want one busybox-static arm64 package", debs, dir)
	}
	root := filepath.Join(dir, "arm64")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", debs[0], err, out)
	}
	return filepath.Join(root, "bin", "busybox"), nil
}

// matrix writes the 14-entry matrix for both platforms, its base with the
// arm64 busybox.
func (b *bench) matrix(bb string) error {
	dir := filepath.Join(b.tmp, "repo")
	project := fmt.Sprintf("hoistbenchpl%d", os.Getpid())
	if _, err := benchutil.MatrixOf(dir, project, benchutil.Shape{Pythons: 7, Runtimes: 2, Payload: 4 << 20,
		Extra: "platforms: [linux/amd64, linux/arm64]\n"}); err != nil {
		return err
	}
	path := filepath.Join(dir, "hoist.yaml")
	y, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	with := strings.Replace(string(y), "    busybox: /bin/busybox\n", "    busybox: /bin/busybox\n    platforms:\n      linux/arm64: {busybox: "+bb+"}\n", 1)
	if with == string(y) {
		return fmt.Errorf("the matrix's hoist.yaml has no busybox base to give arm64 files")
	}
	if err := os.WriteFile(path, []byte(with), 0o644); err != nil {
		return err
	}
	if b.cfg, err = config.Load(path); err != nil {
		return err
	}
	if b.p, err = benchutil.Plan(b.cfg); err != nil {
		return err
	}
	b.lock = filepath.Join(b.cfg.Path(b.cfg.BuildDir), "lock.json")
	return nil
}

func (b *bench) images(ctx context.Context, rebuild bool) error {
	// What the Images target does: plan (renders Dockerfiles), then build.
	p, err := benchutil.Plan(b.cfg)
	if err != nil {
		return err
	}
	_, err = images.Build(ctx, b.e, b.b, p, b.lock, images.Options{Parallel: b.parallel, Rebuild: rebuild})
	return err
}

func (b *bench) bakeFile() string {
	return filepath.Join(b.cfg.Path(b.cfg.BuildDir), "docker-bake.json")
}

// writeBake writes one bake target per image and platform: the same
// context, Dockerfile, arguments, labels and network as Images gives it.
func (b *bench) writeBake() error {
	type target struct {
		Context    string            `json:"context"`
		Dockerfile string            `json:"dockerfile,omitempty"`
		Args       map[string]string `json:"args,omitempty"`
		Labels     map[string]string `json:"labels,omitempty"`
		Tags       []string          `json:"tags"`
		Network    string            `json:"network,omitempty"`
		Inline     string            `json:"dockerfile-inline,omitempty"`
		Platforms  []string          `json:"platforms"`
	}
	f := struct {
		Group  map[string]map[string][]string `json:"group"`
		Target map[string]target              `json:"target"`
	}{Group: map[string]map[string][]string{"default": {"targets": nil}}, Target: map[string]target{}}
	base := b.p.Bases[0].Ref
	for _, img := range b.p.Images {
		for _, pl := range []string{"linux/amd64", arm64} {
			name := strings.NewReplacer(".", "_").Replace(img.Name) + "_" + strings.ReplaceAll(pl, "/", "_")
			t := target{Context: img.ContextDir, Dockerfile: img.Dockerfile, Args: img.Args, Labels: img.Labels,
				Tags: []string{img.Ref + "-bake-" + plan.PlatformSuffix(pl)}, Network: config.NetworkNone, Platforms: []string{pl}}
			if pl != b.host {
				// The engine's own Dockerfile frontend (BuildKit 0.8 in
				// Docker 20.10) has no named contexts: the arm64 target
				// names the arm64 base in its FROM instead.
				df, err := os.ReadFile(img.Dockerfile)
				if err != nil {
					return err
				}
				from := "FROM " + base + "\n"
				if !strings.Contains(string(df), from) {
					return fmt.Errorf("%s has no line %q", img.Dockerfile, from)
				}
				// bake interpolates ${…} in its file: $$ is a literal $.
				inline := strings.Replace(string(df), from, "FROM "+base+"-"+plan.PlatformSuffix(pl)+"\n", 1)
				t.Dockerfile, t.Inline = "", strings.ReplaceAll(inline, "$", "$$")
			}
			f.Group["default"]["targets"] = append(f.Group["default"]["targets"], name)
			f.Target[name] = t
		}
	}
	j, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(b.bakeFile(), j, 0o644)
}

func (b *bench) bake(ctx context.Context, noCache bool) error {
	args := []string{"buildx", "bake", "-f", b.bakeFile(), "--load", "--progress", "quiet", "--allow", "fs.read=" + b.cfg.Dir}
	if noCache {
		args = append(args, "--no-cache")
	}
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+b.docker, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker %v: %v\n%s", args, err, out)
	}
	return nil
}

// tested is the lock's images, each platform marked tested, as Push wants.
func (b *bench) tested() ([]lock.Image, error) {
	l, err := lock.Read(b.lock)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var out []lock.Image
	for _, img := range l.Images {
		for i := range img.Platforms {
			img.Platforms[i].Test = &lock.Test{Passed: true, ImageID: img.Platforms[i].ImageID, At: now}
		}
		img.Test = img.PlatformsTest()
		out = append(out, img)
	}
	return out, nil
}

func (b *bench) registry(ctx context.Context, name string) (*localregistry.Server, error) {
	return localregistry.Start(ctx, localregistry.Options{Dir: filepath.Join(b.tmp, name)})
}

func client() (*registry.Client, error) { return registry.New(registry.Options{Keychain: noKeys{}}) }

// hoistPush times a cold Push into a fresh registry, then Push again.
func (b *bench) hoistPush(ctx context.Context, round int, imgs []lock.Image) (time.Duration, time.Duration, error) {
	reg, err := b.registry(ctx, fmt.Sprintf("hoist-%d", round))
	if err != nil {
		return 0, 0, err
	}
	defer reg.Close()
	work := filepath.Join(b.tmp, fmt.Sprintf("push-%d", round))
	os.MkdirAll(work, 0o755)
	if err := imagefix.WriteLock(filepath.Join(work, "lock.json"), "1.2.3", imgs...); err != nil {
		return 0, 0, err
	}
	o := publish.PushOptions{LockPath: filepath.Join(work, "lock.json"), Prefix: reg.Host + "/bench", WorkDir: work}
	var ds []time.Duration
	for i := 0; i < 2; i++ {
		c, err := client() // a new process starts with no connections
		if err != nil {
			return 0, 0, err
		}
		d, err := benchutil.Time(func() error { _, err := publish.Push(ctx, c, b.e, o); return err })
		if err != nil {
			return 0, 0, err
		}
		ds = append(ds, d)
	}
	return ds[0], ds[1], nil
}

// dockerPush times a `docker push` loop of every platform's image into a
// fresh registry, then again.
func (b *bench) dockerPush(ctx context.Context, round int, imgs []lock.Image) (time.Duration, time.Duration, error) {
	reg, err := b.registry(ctx, fmt.Sprintf("docker-%d", round))
	if err != nil {
		return 0, 0, err
	}
	defer reg.Close()
	var refs []string
	for _, img := range imgs {
		for _, p := range img.Platforms {
			ref := fmt.Sprintf("%s/bench/%s:1.2.3-%s", reg.Host, img.Name, plan.PlatformSuffix(p.Platform))
			if err := benchutil.Run(ctx, "docker", "tag", p.ImageID, ref); err != nil {
				return 0, 0, err
			}
			refs = append(refs, ref)
		}
	}
	defer func() {
		for _, r := range refs {
			benchutil.Run(context.Background(), "docker", "rmi", r)
		}
	}()
	loop := func() error {
		for _, r := range refs {
			if err := benchutil.Run(ctx, "docker", "push", r); err != nil {
				return err
			}
		}
		return nil
	}
	cold, err := benchutil.Time(loop)
	if err != nil {
		return 0, 0, err
	}
	again, err := benchutil.Time(loop)
	return cold, again, err
}

// seedStaging pushes the images as 1.2.3-staging.1 into a fresh registry.
func (b *bench) seedStaging(ctx context.Context, name string, imgs []lock.Image) (*localregistry.Server, error) {
	reg, err := b.registry(ctx, name)
	if err != nil {
		return nil, err
	}
	work := filepath.Join(b.tmp, name+"-work")
	os.MkdirAll(work, 0o755)
	if err := imagefix.WriteLock(filepath.Join(work, "lock.json"), "1.2.3-staging.1", imgs...); err != nil {
		reg.Close()
		return nil, err
	}
	c, err := client()
	if err == nil {
		_, err = publish.Push(ctx, c, b.e, publish.PushOptions{LockPath: filepath.Join(work, "lock.json"), Prefix: reg.Host + "/bench", WorkDir: work, Version: semver.MustParse("1.2.3-staging.1")})
	}
	if err != nil {
		reg.Close()
		return nil, err
	}
	return reg, nil
}

func (b *bench) promote(ctx context.Context, round int, imgs []lock.Image) (time.Duration, error) {
	reg, err := b.seedStaging(ctx, fmt.Sprintf("promote-%d", round), imgs)
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	c, err := client()
	if err != nil {
		return 0, err
	}
	o := publish.PromoteOptions{From: reg.Host + "/bench", Base: "1.2.3"}
	for _, img := range imgs {
		o.Images = append(o.Images, img.Name)
	}
	var pp *publish.PromotePlan
	d, err := benchutil.Time(func() error { var err error; pp, err = publish.Promote(ctx, c, o); return err })
	if err != nil {
		return 0, err
	}
	if len(pp.Steps) != len(imgs) || len(pp.Steps[0].Tags) != 4 {
		return 0, fmt.Errorf("promotion plan %v: want %d images x 4 tags", pp, len(imgs))
	}
	return d, nil
}

func (b *bench) craneCopy(ctx context.Context, round int, imgs []lock.Image, crane string) (time.Duration, error) {
	reg, err := b.seedStaging(ctx, fmt.Sprintf("crane-%d", round), imgs)
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	return benchutil.Time(func() error {
		for _, img := range imgs {
			src := fmt.Sprintf("%s/bench/%s:1.2.3-staging.1", reg.Host, img.Name)
			for _, tag := range []string{"1.2.3", "1.2", "1", "latest"} {
				cmd := exec.CommandContext(ctx, crane, "copy", "--insecure", src, fmt.Sprintf("%s/bench/%s:%s", reg.Host, img.Name, tag))
				cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+b.tmp)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("crane copy: %v\n%s", err, out)
				}
			}
		}
		return nil
	})
}

func (b *bench) cleanup() {
	ctx := context.Background()
	for _, img := range b.p.Images {
		for _, pl := range []string{"linux/amd64", arm64} {
			b.e.Remove(ctx, img.PlatformRef(pl, b.host))
			b.e.Remove(ctx, img.Ref+"-bake-"+plan.PlatformSuffix(pl))
		}
	}
	for _, base := range b.p.Bases {
		b.e.Remove(ctx, base.Ref)
		b.e.Remove(ctx, base.Ref+"-"+plan.PlatformSuffix(arm64))
	}
}

// noKeys keeps the machine's Docker config out of the measurement.
type noKeys struct{}

func (noKeys) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// Package images builds a plan's images with BuildKit, never pushing:
// local bases first, then every entry, several at once, skipping any entry
// whose inputs are unchanged and whose image the engine already has. The
// results are written to the run's lock file in one atomic step.
package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"golang.org/x/sync/errgroup"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// Engine is what Images needs of the Docker Engine.
type Engine interface {
	Inspect(ctx context.Context, ref string) (engine.Image, error)
	// ConfigDigest is asked only where inspecting does not tell it (the
	// containerd store) and neither the build nor the lock does.
	ConfigDigest(ctx context.Context, ref string) (string, error)
	ImportRootfs(ctx context.Context, ref string, r engine.Rootfs) (string, error)
	HasDefaultBridge(ctx context.Context) (bool, error)
	// Platform is the engine's own platform, asked only when an image
	// has platforms (it decides which one keeps the image's Ref).
	Platform(ctx context.Context) (string, error)
}

// Builder builds one image and leaves it in the engine under the request's
// tags, where Build reads it back with Inspect (the BuildResult is not
// used). *engine.Builder does it with one BuildKit build whose Dockerfile
// frontend runs in this process.
type Builder interface {
	Build(ctx context.Context, r engine.BuildRequest, progress io.Writer) (engine.BuildResult, error)
}

// Options tune a build.
type Options struct {
	// Parallel bounds concurrent solves (at least 1).
	Parallel int
	// Rebuild ignores the cache and re-makes local bases; remote bases are
	// pulled again (the write-ups' REBUILD_BASE).
	Rebuild bool
	// PR marks fork/pull-request mode: no cache is exported. Hoist never
	// exports cache to a registry from Images, so this only records intent.
	PR bool
	// RemoteBuildKit says the builder is a buildkitd of its own, not the
	// engine's BuildKit. The engine's BuildKit gives RUN steps the engine's
	// bridge as their default network, so without this Build checks that
	// the bridge exists before an image with network default is built.
	RemoteBuildKit bool
	// Cache, when set, keeps each image's build cache in the registry.
	Cache *Cache
	// Secrets are the build secrets by id, as hoist.yaml defines them.
	Secrets map[string]Secret
	// SSH are the SSH agents by id, as hoist.yaml defines them.
	SSH map[string]SSH
	// Progress receives one line per image with its state and time; nil is silent.
	Progress io.Writer
	// BuildLog, when set, also receives BuildKit's full progress for every
	// image (interleaved); per-image logs are always written under LogDir.
	BuildLog io.Writer
	// LogDir holds build-NAME.log files (default BuildDir/logs).
	LogDir string
	// Only limits the build to these image names (all when empty).
	Only []string
	// GoArch is the engine's GOARCH, for the Go binaries of local bases
	// (engine.Arch); GoEnv is the go command's environment.
	GoArch string
	GoEnv  []string
}

// Secret is one build secret as the caller resolved it. Its value never
// reaches a log, a layer, the lock or the inputs hash.
type Secret struct {
	Value []byte // from an environment variable the caller read
	File  string // or read from this file when the build asks
	// From says where it comes from, for messages: "environment variable
	// NPM_TOKEN", "file .npmrc".
	From string
	// Withheld, when set, says why the build may not have it and what to
	// do (e.g. fork/PR mode); a mount that requires it then fails early.
	Withheld string
	// Where is its place in the config, e.g. hoist.yaml:7.
	Where string
}

// SSH is one SSH agent as the caller resolved it: an agent socket, or key
// files (absolute paths).
type SSH struct {
	Socket string
	Keys   []string
	// From says where the socket came from, e.g. "SSH_AUTH_SOCK" (empty
	// when it was not set).
	From  string
	Where string
}

// State is what happened to one image.
type State string

// States of an image after Build.
const (
	Built     State = "built"
	Unchanged State = "unchanged"
	Failed    State = "FAILED"
)

// Result is one image's outcome; for an image with platforms, the outcome
// over all of them (Failed when one failed, Built when one was built).
type Result struct {
	Image    plan.Image
	State    State
	Duration time.Duration
	Locked   lock.Image
	Err      error
	// Log is the build log to read: of the image, or of its first failed
	// platform.
	Log string
	// Platform is set on one platform's outcome (while building, and in
	// progress lines).
	Platform string
	// imageSum is the image's inputs hash (Locked.InputsHash is the
	// platform's own on a platform's outcome).
	imageSum string
}

// BuildError is returned when one or more images failed; it names the first
// failure and its log, and carries them all.
type BuildError struct {
	Failed []Result
	Total  int
	LogDir string
}

func (e *BuildError) Error() string {
	f := e.Failed[0]
	log := f.Log
	if log == "" {
		log = logPath(e.LogDir, f.Image.Name, "")
	}
	return fmt.Sprintf("%d of %d images failed to build; first: %s: %v (log: %s)",
		len(e.Failed), e.Total, f.Image.Name, f.Err, log)
}

// logPath is the build log of an image, or of one of its platforms
// (build-NAME-linux-arm64.log).
func logPath(dir, name, platform string) string {
	if platform != "" {
		name += "-" + plan.PlatformSuffix(platform)
	}
	return filepath.Join(dir, "build-"+name+".log")
}

// Build builds p's images and, when all succeed, writes them to the lock at
// lockPath. A failure leaves the lock as it was.
func Build(ctx context.Context, e Engine, b Builder, p *plan.Plan, lockPath string, o Options) ([]Result, error) {
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	if o.LogDir == "" {
		o.LogDir = filepath.Join(p.BuildDir, "logs")
	}
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log folder: %w", err)
	}
	pr := &printer{w: o.Progress}
	rec, err := readBuilt(builtPath(lockPath))
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	localBases := map[string]bool{}
	for _, base := range p.Bases {
		localBases[base.Ref] = true
		base, err := compileGo(ctx, base, p.BuildDir, o)
		if err != nil {
			return nil, err
		}
		used[base.Hash] = true
		if err := makeBase(ctx, e, rec, base, o.Rebuild, pr); err != nil {
			// Bases made before this one stay recorded.
			return nil, errors.Join(err, rec.write())
		}
	}
	h := &plan.Hasher{Resolve: func(ctx context.Context, ref string) (string, error) {
		img, err := e.Inspect(ctx, ref)
		if errors.Is(err, engine.ErrNotFound) {
			return "", nil
		}
		return img.ID, err
	}}
	todo := p.Images
	if len(o.Only) > 0 {
		todo = nil
		want := map[string]bool{}
		for _, n := range o.Only {
			want[n] = true
		}
		for _, img := range p.Images {
			if want[img.Name] {
				todo = append(todo, img)
				delete(want, img.Name)
			}
		}
		for n := range want {
			return nil, fmt.Errorf("image %q is not in the plan: run `mage -l`/see hoist.yaml for the names", n)
		}
	}

	net := &networks{e: e, check: !o.RemoteBuildKit, pr: pr}
	// What the lock already knows: an unchanged image keeps its config
	// digest from there, with no export to learn it again.
	known := map[string]lock.Image{}
	if l, err := lock.Read(lockPath); err == nil {
		for _, li := range l.Images {
			known[li.Name] = li
		}
	}
	us, host, err := units(ctx, e, todo)
	if err != nil {
		return nil, err
	}
	done := make([]Result, len(us))
	g, gctx := errgroup.WithContext(ctx)
	// Every platform of every image is one solve under the same bound.
	g.SetLimit(o.Parallel)
	for k, u := range us {
		g.Go(func() error {
			prev := known[u.img.Name]
			if u.platform != "" {
				prev = prevPlatform(prev, u.platform)
			}
			done[k] = buildOne(gctx, e, b, h, rec, net, p.Dir, u.img, u.platform, prev, localBases, o, pr)
			// One image failing does not stop the others: a maintainer sees
			// every broken entry in one run. Only cancellation stops them.
			return ctx.Err()
		})
	}
	werr := g.Wait()
	for _, r := range done {
		used[r.Locked.InputsHash] = true
	}
	results := gather(todo, us, done, host, known)
	if len(o.Only) == 0 {
		// What no entry or base of the plan uses any more is forgotten, so
		// the record stays the size of the plan.
		rec.keep(used)
	}
	if err := rec.write(); err != nil {
		return results, err
	}
	if werr != nil {
		return results, fmt.Errorf("building images: %w", werr)
	}
	var failed []Result
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		for _, r := range failed {
			pr.tail(r.Image.Name, r.Log)
		}
		return results, &BuildError{Failed: failed, Total: len(results), LogDir: o.LogDir}
	}
	if err := lock.Update(lockPath, func(l *lock.Lock) error {
		l.Project, l.Version, l.Revision = p.Project, p.Version.Plain(), p.Revision
		l.Created = time.Now().UTC()
		for _, r := range results {
			img := r.Locked
			if prev, ok := l.Find(img.Name); ok {
				if prev.ImageID == img.ImageID && samePlatforms(*prev, img) {
					// Same bytes as before: what was learned about them still holds.
					img.Test, img.Cluster, img.Scan, img.Pushed = prev.Test, prev.Cluster, prev.Scan, prev.Pushed
				}
				keepPlatformResults(*prev, &img)
			}
			l.Put(img)
		}
		if len(o.Only) == 0 {
			// Drop images that left the plan.
			keep := l.Images[:0]
			for _, li := range l.Images {
				for _, r := range results {
					if r.Image.Name == li.Name {
						keep = append(keep, li)
						break
					}
				}
			}
			l.Images = keep
		}
		return nil
	}); err != nil {
		return results, err
	}
	return results, nil
}

// buildOne builds img, or with platform set img's image for that platform
// (img.Ref then being the platform's reference, plan.PlatformRef).
func buildOne(ctx context.Context, e Engine, b Builder, h *plan.Hasher, rec *builtRecord, net *networks, root string, img plan.Image, platform string, prev lock.Image, localBases map[string]bool, o Options, pr *printer) Result {
	start := time.Now()
	logFile := logPath(o.LogDir, img.Name, platform)
	r := Result{Image: img, Platform: platform, Log: logFile}
	fail := func(err error) Result {
		r.State, r.Err, r.Duration = Failed, err, time.Since(start)
		pr.line(r)
		return r
	}
	sum, err := h.Inputs(ctx, img)
	if err != nil {
		return fail(err)
	}
	r.imageSum = sum
	if platform != "" {
		sum = plan.PlatformInputs(sum, platform)
	}
	if !o.Rebuild {
		// Unchanged only when Hoist itself built the image now at the
		// reference for these inputs: the label alone can be inherited by
		// anyone's image built FROM this one.
		cur, err := e.Inspect(ctx, img.Ref)
		if mine, ok := rec.made(sum, cur.ID); err == nil && ok && cur.Labels[plan.LabelInputs] == sum {
			if cur.Config == "" {
				cur.Config = mine.ConfigDigest
			}
			if cur.Config == "" && prev.ImageID == cur.ID {
				cur.Config = prev.ConfigDigest
			}
			if err := configDigest(ctx, e, img.Ref, &cur); err != nil {
				return fail(err)
			}
			r.State, r.Duration = Unchanged, time.Since(start)
			r.Locked = locked(img, cur, sum, true)
			if prev.InputsHash == sum {
				r.Locked.BuildMillis = prev.BuildMillis
			}
			pr.line(r)
			return r
		}
	}
	df, err := os.ReadFile(img.Dockerfile)
	if err != nil {
		return fail(fmt.Errorf("reading Dockerfile: %w", err))
	}
	uses, err := plan.ReadDockerfile(df, img.Args)
	if err != nil {
		return fail(fmt.Errorf("reading %s: %w", img.Dockerfile, err))
	}
	if platform != "" {
		if err := foreignSources(ctx, e, img, uses, platform, localBases); err != nil {
			return fail(err)
		}
	}
	req, err := session(ctx, e, root, img, uses, o)
	if err != nil {
		return fail(err)
	}
	if req.Network, err = net.resolve(ctx, img.Network); err != nil {
		return fail(err)
	}
	labels := make(map[string]string, len(img.Labels)+1)
	for k, v := range img.Labels {
		labels[k] = v
	}
	labels[plan.LabelInputs] = sum
	pull := o.Rebuild
	if pull {
		for _, u := range uses.Sources {
			if localBases[u.Name] {
				// A base made on this machine cannot be pulled; it was re-made instead.
				pull = false
			} else if cur, err := e.Inspect(ctx, u.Name); err == nil && len(cur.RepoDigests) == 0 {
				// Neither can an image that never came from a registry.
				pull = false
			}
		}
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return fail(fmt.Errorf("creating build log: %w", err))
	}
	var w io.Writer = lf
	if o.BuildLog != nil {
		w = io.MultiWriter(lf, &prefixWriter{w: o.BuildLog, prefix: img.Name + " | "})
	}
	req.ContextDir, req.Dockerfile, req.Tags = img.ContextDir, img.Dockerfile, []string{img.Ref}
	req.Args, req.Labels, req.Target = img.Args, labels, img.Target
	req.NoCache, req.Pull, req.Platform = o.Rebuild, pull, platform
	if o.Cache != nil {
		req.Cache = &engine.RegistryCache{Ref: o.Cache.Prefix + "/" + img.Name + ":" + CacheTag, Import: true, Export: o.Cache.Write, Insecure: o.Cache.Insecure}
	}
	built, err := b.Build(ctx, req, w)
	lf.Close()
	if err != nil {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("interrupted: %w", ctx.Err()))
		}
		return fail(pullRefused(err, uses))
	}
	cur, err := e.Inspect(ctx, img.Ref)
	if err != nil {
		return fail(fmt.Errorf("reading the built image: %w", err))
	}
	if cur.Config == "" {
		cur.Config = built.ConfigDigest
	}
	if err := configDigest(ctx, e, img.Ref, &cur); err != nil {
		return fail(err)
	}
	if platform != "" && !samePlatform(cur.Platform, platform) {
		return fail(fmt.Errorf("built for %s, but the engine holds a %s image at %s: is its builder able to build for other platforms?", platform, cur.Platform, img.Ref))
	}
	rec.put(sum, builtImage{ImageID: cur.ID, ConfigDigest: cur.Config})
	r.State, r.Duration = Built, time.Since(start)
	r.Locked = locked(img, cur, sum, false)
	r.Locked.BuildMillis = max(1, r.Duration.Milliseconds())
	pr.line(r)
	return r
}

// Cache is where images keep their build cache: PREFIX/NAME:buildcache.
type Cache struct {
	Prefix   string // HOST/REPOSITORY
	Write    bool   // export too (not in fork/PR mode)
	Insecure bool
}

// CacheTag is the tag of an image's build cache in the registry.
const CacheTag = "buildcache"

// pullRefused turns a registry's 401 during the build into what to do.
// BuildKit's answer crosses gRPC as text, so the status is all there is
// to go on.
func pullRefused(err error, uses plan.Uses) error {
	msg := err.Error()
	if !strings.Contains(msg, "401 Unauthorized") && !strings.Contains(msg, "authorization failed") {
		return err
	}
	var hosts []string
	seen := map[string]bool{}
	for _, u := range uses.Sources {
		if n, perr := reference.ParseNormalizedNamed(u.Name); perr == nil && !seen[reference.Domain(n)] {
			seen[reference.Domain(n)] = true
			hosts = append(hosts, reference.Domain(n))
		}
	}
	return fmt.Errorf("pulling a base image from %s was refused (401 Unauthorized): run docker login %s, or, for hoist.yaml's registry, set HOIST_REGISTRY_USERNAME and HOIST_REGISTRY_PASSWORD",
		strings.Join(hosts, ", "), strings.Join(hosts, " / "))
}

func locked(img plan.Image, cur engine.Image, sum string, skipped bool) lock.Image {
	return lock.Image{
		Name:         img.Name,
		Ref:          img.Ref,
		Entry:        img.Entry,
		ImageID:      cur.ID,
		ConfigDigest: cur.Config,
		DiffIDs:      cur.DiffIDs,
		Store:        string(cur.Store),
		Labels:       cur.Labels,
		InputsHash:   sum,
		Built:        time.Now().UTC(),
		Skipped:      skipped,
	}
}

// configDigest asks the engine for cur's config digest when nothing else
// told it.
func configDigest(ctx context.Context, e Engine, ref string, cur *engine.Image) error {
	if cur.Config != "" {
		return nil
	}
	d, err := e.ConfigDigest(ctx, ref)
	if err != nil {
		return fmt.Errorf("reading the config digest of %s: %w", ref, err)
	}
	cur.Config = d
	return nil
}

// makeBase imports a local base unless the engine has, at its reference,
// the very image Hoist made for the same hash (a label alone proves
// nothing: an image built FROM the base inherits it).
func makeBase(ctx context.Context, e Engine, rec *builtRecord, b plan.Base, rebuild bool, pr *printer) error {
	start := time.Now()
	if !rebuild {
		cur, err := e.Inspect(ctx, b.Ref)
		if _, ok := rec.made(b.Hash, cur.ID); err == nil && ok && cur.Labels[plan.LabelInputs] == b.Hash {
			return nil
		}
	}
	rf := b.Rootfs
	rf.Labels = map[string]string{plan.LabelInputs: b.Hash}
	if _, err := e.ImportRootfs(ctx, b.Ref, rf); err != nil {
		return fmt.Errorf("making base %s: %w", b.Ref, err)
	}
	cur, err := e.Inspect(ctx, b.Ref)
	if err != nil {
		return fmt.Errorf("reading base %s after making it: %w", b.Ref, err)
	}
	rec.put(b.Hash, builtImage{ImageID: cur.ID, ConfigDigest: cur.Config})
	pr.printf("  %-9s %-40s %6.2fs\n", "base", b.Ref, time.Since(start).Seconds())
	return nil
}

type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(f string, a ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, f, a...)
}

func (p *printer) line(r Result) {
	name := r.Image.Name
	if r.Platform != "" {
		name += " " + r.Platform
	}
	p.printf("  %-9s %-40s %6.2fs\n", r.State, name, r.Duration.Seconds())
}

// tail shows the last lines of a failed image's build log.
func (p *printer) tail(name, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	p.printf("--- %s: last lines of %s\n", name, path)
	for _, l := range lines {
		p.printf("    %s\n", l)
	}
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Write(b)
	for {
		i := bytes.IndexByte(p.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := p.buf.Next(i + 1)
		if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, line); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

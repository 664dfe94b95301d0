package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	dockercfg "github.com/docker/cli/cli/config"
	"github.com/hoistci/hoist/pkg/readlimit"

	"github.com/docker/cli/cli/config/configfile"
	dockertypes "github.com/docker/cli/cli/config/types"
	bk "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BuildRequest is one image build.
type BuildRequest struct {
	ContextDir string            // build context folder
	Dockerfile string            // path of the Dockerfile to use
	Tags       []string          // names given to the result in the engine
	Args       map[string]string // --build-arg
	Labels     map[string]string // --label
	NoCache    bool              // ignore the build cache
	Pull       bool              // always resolve base images from their registry
	Target     string            // multi-stage target, optional
	// Network is the network RUN steps get: "default" (BuildKit's own,
	// the engine's default network, as docker build gives), "none" or
	// "host". Empty means none.
	Network string
	// Contexts are named build contexts: name -> folder, or
	// docker-image://REF (docker buildx build --build-context).
	Contexts map[string]string
	// Secrets are what RUN --mount=type=secret may read, by id.
	Secrets map[string]Secret
	// SSH are agents for RUN --mount=type=ssh, by id: one agent socket,
	// or private key files.
	SSH map[string][]string
	// EngineImages are images of the engine the Dockerfile names (FROM,
	// COPY --from, RUN --mount=from, docker-image:// contexts). The
	// engine's BuildKit finds them itself; a remote builder is given these
	// very bytes (the ones the inputs hash named) as OCI layouts instead of
	// pulling whatever the name means elsewhere.
	EngineImages []string
	// Cache, when set, is the image's build cache in a registry.
	Cache *RegistryCache
	// Platform is what to build for, e.g. linux/arm64 (RUN steps of
	// another architecture than the builder's run under emulation). Empty:
	// the builder's own.
	Platform string
}

// RegistryCache is one image's build cache in a registry, as buildx's
// --cache-from/--cache-to type=registry keep it.
type RegistryCache struct {
	Ref      string // e.g. ghcr.io/org/app/demo:buildcache
	Import   bool   // read it (not with NoCache: a rebuild refreshes it)
	Export   bool   // write it (never in fork/PR mode)
	Insecure bool   // plain HTTP (a loopback registry)
}

// Secret is one build secret: its value, or a file read when the build
// asks for it. It travels in the BuildKit session only.
type Secret struct {
	Value []byte
	File  string
}

// BuildResult is what the solve reported.
type BuildResult struct {
	// ConfigDigest is the config digest of the image exported to the
	// engine (both stores report it); empty if the exporter did not say.
	ConfigDigest string
}

// Builder dials BuildKit.
type Builder struct {
	c    *bk.Client
	auth session.Attachable // registry credentials; nil: anonymous pulls
	// remote: a standalone buildkitd, which cannot see the engine's images:
	// results come back through a docker-format export loaded into the
	// engine, and the engine's images a build uses go to it as OCI layouts.
	remote bool
	addr   string // the remote daemon's address, for messages
	e      *Engine
	local  *localImages
}

// Remote is a standalone buildkitd to build with. The zero Remote is the
// engine's own BuildKit.
type Remote struct {
	// Addr is the daemon's address as BUILDKIT_HOST takes it:
	// tcp://HOST:PORT or unix:///PATH.
	Addr string
	// CA, Cert and Key are PEM files for mutual TLS over tcp://.
	CA, Cert, Key string
	// ServerName is the name the daemon's certificate must carry
	// (default: Addr's host).
	ServerName string
}

// Builder returns a BuildKit client. With the zero Remote it uses the
// BuildKit inside the engine, through the engine's /grpc and /session
// endpoints, so no buildx plugin is needed. Otherwise it dials the
// buildkitd r names and asks it who it is, so an unreachable daemon or a
// refused certificate is one error here rather than one per image.
func (e *Engine) Builder(ctx context.Context, r Remote) (*Builder, error) {
	var opts []bk.ClientOpt
	if r.Addr == "" {
		opts = append(opts,
			bk.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return e.API.DialHijack(ctx, "/grpc", "h2c", nil)
			}),
			bk.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
				return e.API.DialHijack(ctx, "/session", proto, meta)
			}),
		)
		c, err := bk.New(ctx, "", opts...)
		if err != nil {
			return nil, fmt.Errorf("connecting to BuildKit: %w", err)
		}
		return &Builder{c: c, e: e}, nil
	}
	if r.CA != "" {
		name := r.ServerName
		if name == "" {
			if u, err := url.Parse(r.Addr); err == nil {
				name = u.Hostname()
			}
		}
		opts = append(opts, bk.WithServerConfig(name, r.CA), bk.WithCredentials(r.Cert, r.Key))
	}
	c, err := bk.New(ctx, r.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w: check builder's ca, cert and key in hoist.yaml", r.Addr, err)
	}
	if _, err := c.Info(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("builder %s does not answer: %s: %s", r.Addr, rpcMessage(err), remoteHint(err))
	}
	return &Builder{c: c, e: e, remote: true, addr: r.Addr, local: &localImages{e: e}}, nil
}

// rpcMessage is a gRPC error's text without the status wrapping
// ("rpc error: code = Unavailable desc = ").
func rpcMessage(err error) string {
	return rpcWrap.ReplaceAllString(err.Error(), "")
}

var rpcWrap = regexp.MustCompile(`rpc error: code = \w+ desc = `)

// cacheExport is the cache export this builder can do for a registry
// cache at attrs' ref: every layer as a cache manifest of its own
// (mode=max) from a standalone buildkitd or an engine keeping images in
// containerd; an engine with the classic store exports only inline (the
// cache travels in the image's config, and is read back from the
// buildcache tag when that names such an image).
func (b *Builder) cacheExport(attrs map[string]string) bk.CacheOptionsEntry {
	if b.remote || b.e.Store == StoreContainerd {
		ex := map[string]string{"mode": "max"}
		for k, v := range attrs {
			ex[k] = v
		}
		return bk.CacheOptionsEntry{Type: "registry", Attrs: ex}
	}
	return bk.CacheOptionsEntry{Type: "inline", Attrs: map[string]string{}}
}

// dropped reports whether a solve failed because the daemon went away
// rather than because a step failed.
func dropped(err error) bool {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	m := err.Error()
	for _, s := range []string{"error reading from server", "connection reset by peer", "transport is closing", "connection refused", "broken pipe"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// remoteHint says what to do about a failed first call to a buildkitd.
func remoteHint(err error) string {
	m := strings.ToLower(err.Error())
	switch {
	case strings.Contains(m, "certificate") || strings.Contains(m, "tls") || strings.Contains(m, "x509"):
		return "the daemon and Hoist do not trust each other: check builder's ca, cert, key and server_name in hoist.yaml (or HOIST_BUILDKIT_CA, _CERT, _KEY)"
	case strings.Contains(m, "connection refused") || strings.Contains(m, "no such file") || strings.Contains(m, "deadline") || strings.Contains(m, "unavailable"):
		return "start buildkitd there (buildkitd --addr ...), or fix builder.host / BUILDKIT_HOST"
	}
	return "check that BUILDKIT_HOST or builder.host names a running buildkitd"
}

// Credentials are a user name and password (or token) for one registry.
type Credentials struct {
	Username, Password string
}

// UseRegistryAuth lets builds pull with the credentials of the Docker
// config folder dockerConfig (config.json with its credential helpers, as
// docker build uses them; empty: none) plus registries, which take
// precedence for their hosts. Credentials stay in the BuildKit session:
// they reach no log, image or label.
func (b *Builder) UseRegistryAuth(dockerConfig string, registries map[string]Credentials) error {
	cf := configfile.New("")
	if dockerConfig != "" {
		var err error
		if cf, err = dockercfg.Load(dockerConfig); err != nil {
			return fmt.Errorf("reading Docker credentials in %s: %w", dockerConfig, err)
		}
	}
	for host, c := range registries {
		if cf.AuthConfigs == nil {
			cf.AuthConfigs = map[string]dockertypes.AuthConfig{}
		}
		cf.AuthConfigs[host] = dockertypes.AuthConfig{Username: c.Username, Password: c.Password, ServerAddress: host}
		if cf.CredentialHelpers == nil {
			cf.CredentialHelpers = map[string]string{}
		}
		// An empty helper sends this host to the file store, where the
		// credentials above are, even when a credsStore is configured.
		cf.CredentialHelpers[host] = ""
	}
	b.auth = authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{ConfigFile: cf})
	return nil
}

// Close releases the BuildKit connection.
func (b *Builder) Close() error {
	err := b.c.Close()
	if b.local != nil {
		b.local.remove()
	}
	return err
}

// Build runs one build, its Dockerfile frontend in this process, and
// exports the image into the engine's image store.
// Progress goes to w as plain lines (nil discards it).
func (b *Builder) Build(ctx context.Context, r BuildRequest, w io.Writer) (BuildResult, error) {
	ctxFS, err := fsutil.NewFS(r.ContextDir)
	if err != nil {
		return BuildResult{}, fmt.Errorf("opening build context %s: %w", r.ContextDir, err)
	}
	dfDir, dfName := filepath.Split(r.Dockerfile)
	if dfDir == "" {
		dfDir = "."
	}
	dfFS, err := fsutil.NewFS(dfDir)
	if err != nil {
		return BuildResult{}, fmt.Errorf("opening Dockerfile folder %s: %w", dfDir, err)
	}
	// The Dockerfile's folder goes to the engine under a name of its own
	// (and so under its own key in the engine's cache of synced files).
	// Under the default name every build's Dockerfile shared one cached
	// copy, and an engine whose BuildKit compares files by size and time
	// (20.10's does) kept the previous build's Dockerfile when the next
	// one had the same size and time: a matrix's rendered templates, a
	// fresh clone's Dockerfiles.
	dfKey := dockerfileKey(dfDir)
	attrs := map[string]string{"filename": dfName, "dockerfilekey": dfKey}
	if df, err := os.ReadFile(r.Dockerfile); err == nil && builtinSyntax(df) {
		// "# syntax=docker/dockerfile:1" asks for the stable Dockerfile
		// frontend, which is the one running here: pulling it would only
		// add a round trip, and fail on a machine that cannot pull. A
		// cmdline attribute tells the frontend it was already chosen.
		attrs["cmdline"] = "docker/dockerfile"
	}
	for k, v := range r.Args {
		attrs["build-arg:"+k] = v
	}
	for k, v := range r.Labels {
		attrs["label:"+k] = v
	}
	if r.NoCache {
		attrs["no-cache"] = ""
	}
	if r.Pull {
		attrs["image-resolve-mode"] = "pull"
	}
	switch r.Network {
	case "default":
		// BuildKit's sandbox network: the engine's default, as docker build.
	case "":
		attrs["force-network-mode"] = "none"
	default:
		attrs["force-network-mode"] = r.Network
	}
	mounts := map[string]fsutil.FS{"context": ctxFS, dfKey: dfFS}
	for name, src := range r.Contexts {
		if strings.HasPrefix(src, "docker-image://") {
			attrs["context:"+name] = src
			continue
		}
		fs, err := fsutil.NewFS(src)
		if err != nil {
			return BuildResult{}, fmt.Errorf("opening build context %s (%s): %w", name, src, err)
		}
		mounts["named-"+name] = fs
		attrs["context:"+name] = "local:named-" + name
	}
	if r.Platform != "" {
		attrs["platform"] = r.Platform
	}
	if r.Target != "" {
		attrs["target"] = r.Target
	}
	name := ""
	for i, t := range r.Tags {
		if i > 0 {
			name += ","
		}
		name += t
	}
	var attach []session.Attachable
	if b.auth != nil {
		attach = append(attach, b.auth)
	}
	if len(r.Secrets) > 0 {
		attach = append(attach, secretsprovider.NewSecretProvider(secretStore(r.Secrets)))
	}
	if len(r.SSH) > 0 {
		var confs []sshprovider.AgentConfig
		for id, paths := range r.SSH {
			confs = append(confs, sshprovider.AgentConfig{ID: id, Paths: paths})
		}
		p, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return BuildResult{}, fmt.Errorf("forwarding SSH: %w", err)
		}
		attach = append(attach, p)
	}
	opt := bk.SolveOpt{
		FrontendAttrs: attrs,
		LocalMounts:   mounts,
		// The engine keeps what each build's folders synced, by this key
		// and each folder's name, and reuses it at the next build with
		// the same key, comparing files by size and time: builds from
		// other folders must not share it (the Docker CLI keys it by its
		// context folder too).
		SharedKey: sharedKey(r),
		Exports:   []bk.ExportEntry{{Type: "moby", Attrs: map[string]string{"name": name}}},
		Session:   attach,
	}
	if c := r.Cache; c != nil {
		attrs := map[string]string{"ref": c.Ref}
		if c.Insecure {
			attrs["registry.insecure"] = "true"
		}
		if c.Import && !r.NoCache {
			opt.CacheImports = append(opt.CacheImports, bk.CacheOptionsEntry{Type: "registry", Attrs: attrs})
		}
		if c.Export {
			opt.CacheExports = append(opt.CacheExports, b.cacheExport(attrs))
		}
	}
	var load *loader
	if b.remote {
		if err := b.local.provide(ctx, r, &opt); err != nil {
			return BuildResult{}, err
		}
		load = &loader{e: b.e}
		opt.Exports = []bk.ExportEntry{{Type: "docker", Attrs: map[string]string{"name": name}, Output: load.output(ctx)}}
	}
	if r.Network == "host" {
		// BuildKit runs a step on the host's network only when the client
		// grants it, as docker build --network host does.
		opt.AllowedEntitlements = []string{"network.host"}
	}

	ch := make(chan *bk.SolveStatus)
	var res *bk.SolveResponse
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		// The Dockerfile frontend runs here, in this process, rather than
		// the one built into the engine: an engine's built-in frontend can
		// be years old (20.10's has no named contexts), while this one is
		// the BuildKit version Hoist is built with, the same everywhere.
		res, err = b.c.Build(gctx, opt, "", builder.Build, ch)
		return err
	})
	g.Go(func() error {
		out := w
		if out == nil {
			out = io.Discard
		}
		d, err := progressui.NewDisplay(out, progressui.PlainMode)
		if err != nil {
			for range ch {
			}
			return err
		}
		_, err = d.UpdateFrom(context.Background(), ch)
		return err
	})
	werr := g.Wait()
	if load != nil {
		// A failed load is the cause when the export broke off too.
		if lerr := load.wait(); lerr != nil {
			werr = lerr
		}
	}
	if werr != nil {
		if b.remote && ctx.Err() == nil && dropped(werr) {
			return BuildResult{}, fmt.Errorf("builder %s dropped the connection mid-build (%s): check that it is running and run again; nothing was loaded or tagged", b.addr, rpcMessage(werr))
		}
		return BuildResult{}, werr
	}
	br := BuildResult{}
	if res != nil {
		br.ConfigDigest = res.ExporterResponse["containerimage.config.digest"]
	}
	return br, nil
}

// builtinSyntax reports whether a Dockerfile's syntax directive names the
// stable Dockerfile frontend (docker/dockerfile:1, :1.N or :1.N.M), which
// is the one linked into Hoist. Labs and other frontends are pulled as
// BuildKit does.
func builtinSyntax(df []byte) bool {
	ref, _, _, ok := parser.DetectSyntax(df)
	if !ok {
		return false
	}
	name, tag, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(ref, "docker.io/"), "library/"), ":")
	if name != "docker/dockerfile" {
		return false
	}
	return stableTag.MatchString(tag)
}

var stableTag = regexp.MustCompile(`^1(\.[0-9]+){0,2}$`)

// secretStore answers BuildKit's requests for secrets, reading a file
// secret only when a build asks for it.
type secretStore map[string]Secret

func (s secretStore) GetSecret(_ context.Context, id string) ([]byte, error) {
	sec, ok := s[id]
	if !ok {
		return nil, secrets.ErrNotFound
	}
	if sec.File != "" {
		b, err := readlimit.ReadFile(sec.File, "secret file", readlimit.Secret)
		if err != nil {
			return nil, fmt.Errorf("reading secret %s: %w", id, err)
		}
		return b, nil
	}
	return sec.Value, nil
}

// sharedKey is one key per set of folders a build sends: its context and
// its named contexts.
func sharedKey(r BuildRequest) string {
	h := sha256.New()
	fmt.Fprintf(h, "context=%s\x00", absDir(r.ContextDir))
	for _, name := range slices.Sorted(maps.Keys(r.Contexts)) {
		fmt.Fprintf(h, "%s=%s\x00", name, absDir(r.Contexts[name]))
	}
	return "hoist-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// dockerfileKey names a Dockerfile folder for the engine: the same folder
// always gets the same name, so its synced copy is reused.
func dockerfileKey(dir string) string {
	sum := sha256.Sum256([]byte(absDir(dir)))
	return "dockerfile-" + hex.EncodeToString(sum[:8])
}

// absDir is dir made absolute, or dir when it cannot be.
func absDir(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

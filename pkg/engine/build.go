package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"

	bk "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
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
	// Network is the network RUN steps get: "none" (the default; the engines
	// Hoist targets run without a bridge) or "host".
	Network string
}

// BuildResult is what the solve reported.
type BuildResult struct {
	// ConfigDigest is the config digest of the image exported to the
	// engine (both stores report it); empty if the exporter did not say.
	ConfigDigest string
}

// Builder dials BuildKit.
type Builder struct {
	c *bk.Client
}

// Builder returns a BuildKit client. With addr empty it uses the BuildKit
// inside the engine, through the engine's /grpc and /session endpoints, so no
// buildx plugin is needed. Otherwise addr is a buildkitd address
// (unix://, tcp://, docker-container://…) as BUILDKIT_HOST takes.
func (e *Engine) Builder(ctx context.Context, addr string) (*Builder, error) {
	var opts []bk.ClientOpt
	if addr == "" {
		opts = append(opts,
			bk.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return e.API.DialHijack(ctx, "/grpc", "h2c", nil)
			}),
			bk.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
				return e.API.DialHijack(ctx, "/session", proto, meta)
			}),
		)
	}
	c, err := bk.New(ctx, addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to BuildKit: %w", err)
	}
	return &Builder{c: c}, nil
}

// Close releases the BuildKit connection.
func (b *Builder) Close() error { return b.c.Close() }

// Build runs one solve and exports the image into the engine's image store.
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
	attrs := map[string]string{"filename": dfName}
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
	network := r.Network
	if network == "" {
		network = "none"
	}
	attrs["force-network-mode"] = network
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
	opt := bk.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports:       []bk.ExportEntry{{Type: "moby", Attrs: map[string]string{"name": name}}},
	}

	ch := make(chan *bk.SolveStatus)
	var res *bk.SolveResponse
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		res, err = b.c.Solve(gctx, nil, opt, ch)
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
	if err := g.Wait(); err != nil {
		return BuildResult{}, err
	}
	br := BuildResult{}
	if res != nil {
		br.ConfigDigest = res.ExporterResponse["containerimage.config.digest"]
	}
	return br, nil
}

package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/distribution/reference"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	bk "github.com/moby/buildkit/client"

	"github.com/hoistci/hoist/pkg/dockersave"
)

// localImages gives a remote builder the engine's images a build names:
// each is exported once per Builder into an OCI layout of its own, and the
// build's named context for it points at that layout by manifest digest.
type localImages struct {
	e *Engine

	mu   sync.Mutex
	dir  string
	byID map[string]layoutRef // image ID -> its layout
}

type layoutRef struct {
	store  string // the OCIStores key
	digest string // the manifest's digest in it
	cs     content.Store
}

// provide exports what r.EngineImages names (once per image) and points
// the build's contexts at it: FROM NAME through the named context BuildKit
// looks up for NAME, a docker-image:// context of hoist.yaml through its own.
func (l *localImages) provide(ctx context.Context, r BuildRequest, opt *bk.SolveOpt) error {
	for _, ref := range r.EngineImages {
		lr, err := l.layout(ctx, ref)
		if err != nil {
			return err
		}
		if opt.OCIStores == nil {
			opt.OCIStores = map[string]content.Store{}
		}
		opt.OCIStores[lr.store] = lr.cs
		src := "oci-layout://" + lr.store + "@" + lr.digest
		matched := false
		for name, c := range r.Contexts {
			if strings.TrimPrefix(c, "docker-image://") == ref && c != ref {
				opt.FrontendAttrs["context:"+name] = src
				matched = true
			}
		}
		if !matched {
			opt.FrontendAttrs["context:"+contextKey(ref)] = src
		}
	}
	return nil
}

// contextKey is the named-context name BuildKit's Dockerfile frontend
// looks up for an image name in FROM: its familiar form without :latest.
func contextKey(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return strings.TrimSuffix(reference.FamiliarString(n), ":latest")
}

func (l *localImages) layout(ctx context.Context, ref string) (layoutRef, error) {
	img, err := l.e.Inspect(ctx, ref)
	if err != nil {
		return layoutRef{}, fmt.Errorf("giving %s to the remote builder: %w", ref, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lr, ok := l.byID[img.ID]; ok {
		return lr, nil
	}
	if l.dir == "" {
		if l.dir, err = os.MkdirTemp("", "hoist-remote-bases-"); err != nil {
			return layoutRef{}, fmt.Errorf("giving %s to the remote builder: %w", ref, err)
		}
		l.byID = map[string]layoutRef{}
	}
	cfg := img.Config
	if cfg == "" {
		if cfg, err = l.e.ConfigDigest(ctx, ref); err != nil {
			return layoutRef{}, fmt.Errorf("giving %s to the remote builder: %w", ref, err)
		}
	}
	store := fmt.Sprintf("hoist-engine-%d", len(l.byID)+1)
	dir := filepath.Join(l.dir, store)
	rc, err := l.e.Save(ctx, ref)
	if err != nil {
		return layoutRef{}, fmt.Errorf("giving %s to the remote builder: %w", ref, err)
	}
	digests, err := dockersave.WriteLayout(rc, []dockersave.LayoutImage{{Name: ref, Ref: ref, ConfigDigest: cfg}}, dir)
	rc.Close()
	if err != nil {
		return layoutRef{}, fmt.Errorf("giving %s to the remote builder: %w", ref, err)
	}
	cs, err := local.NewStore(dir)
	if err != nil {
		return layoutRef{}, fmt.Errorf("giving %s to the remote builder: %w", ref, err)
	}
	lr := layoutRef{store: store, digest: digests[ref], cs: cs}
	l.byID[img.ID] = lr
	return lr, nil
}

func (l *localImages) remove() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir != "" {
		os.RemoveAll(l.dir)
		l.dir = ""
	}
}

// loader streams a remote build's docker-format export into the engine as
// it arrives, so the image is in the engine when the solve returns.
type loader struct {
	e    *Engine
	done chan error
}

func (ld *loader) output(ctx context.Context) func(map[string]string) (io.WriteCloser, error) {
	return func(map[string]string) (io.WriteCloser, error) {
		pr, pw := io.Pipe()
		ld.done = make(chan error, 1)
		go func() {
			err := ld.load(ctx, pr)
			pr.CloseWithError(err) // unblocks the exporter if loading failed
			ld.done <- err
		}()
		return pw, nil
	}
}

func (ld *loader) load(ctx context.Context, r io.Reader) error {
	resp, err := ld.e.API.ImageLoad(ctx, r, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("loading the remote build into the engine: %w", err)
	}
	defer resp.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("loading the remote build into the engine: %w", err)
	}
	return nil
}

// wait returns the load's result once the export has ended (nil when the
// solve failed before exporting anything).
func (ld *loader) wait() error {
	if ld.done == nil {
		return nil
	}
	return <-ld.done
}

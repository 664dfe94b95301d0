// Package engine wraps the Docker Engine API: inspecting, importing, running
// and saving images, and building them with the BuildKit that lives inside
// the engine (dialled through its /grpc and /session endpoints).
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/hoistci/hoist/pkg/dockersave"
)

// ErrNoEngine means no Docker Engine answered.
var ErrNoEngine = errors.New("no Docker Engine answers")

// ErrNotFound means the engine has no image by that reference.
var ErrNotFound = errors.New("image not found in the engine")

// Engine is a connection to one Docker Engine.
type Engine struct {
	API *client.Client
	// Store is how the engine keeps images; Version is its server version.
	Store   Store
	Version string
}

// Options configure Connect.
type Options struct {
	// Host is the engine address (e.g. unix:///var/run/docker.sock). Empty:
	// the Docker client reads DOCKER_HOST from the environment itself
	// (client.WithHostFromEnv), else uses its default socket.
	Host string
}

// Connect opens a client, checks that the engine answers, and learns its
// store. An engine too old for Hoist, or with a store Hoist does not know,
// is refused with one line saying what to do.
func Connect(ctx context.Context, o Options) (*Engine, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if o.Host != "" {
		opts = append(opts, client.WithHost(o.Host))
	} else {
		opts = append(opts, client.WithHostFromEnv())
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Docker client: %w", err)
	}
	p, err := api.Ping(ctx)
	if err != nil {
		_ = api.Close()
		return nil, fmt.Errorf("%w at %s: %v", ErrNoEngine, api.DaemonHost(), err)
	}
	e := &Engine{API: api}
	if err := e.describe(ctx, p.APIVersion); err != nil {
		_ = api.Close()
		return nil, err
	}
	return e, nil
}

// Close releases the connection.
func (e *Engine) Close() error { return e.API.Close() }

// Image is what Hoist needs to know of an image in the engine.
type Image struct {
	// ID is the engine's image ID: the config digest on the classic store,
	// the manifest (or index) digest on the containerd store.
	ID string
	// Config is the config digest when inspecting tells it (the classic
	// store); empty on the containerd store, where ConfigDigest finds it.
	Config  string
	Store   Store
	DiffIDs []string          // uncompressed layer digests, bottom first
	Labels  map[string]string // config labels
	Tags    []string
	// RepoDigests are the registry references the image came from; none
	// for an image made or built on this machine, which cannot be pulled.
	RepoDigests []string
	Size        int64
	// Platform is what the image runs on, e.g. linux/amd64 or linux/arm/v7.
	Platform string
}

// Inspect returns the image known by ref (a tag or an ID).
func (e *Engine) Inspect(ctx context.Context, ref string) (Image, error) {
	ii, err := e.API.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Image{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		return Image{}, fmt.Errorf("inspecting %s: %w", ref, err)
	}
	img := Image{ID: ii.ID, Store: e.Store, Tags: ii.RepoTags, RepoDigests: ii.RepoDigests, Size: ii.Size}
	if ii.Os != "" && ii.Architecture != "" {
		img.Platform = ii.Os + "/" + ii.Architecture
		if ii.Variant != "" {
			img.Platform += "/" + ii.Variant
		}
	}
	if e.Store == StoreClassic {
		img.Config = ii.ID
	}
	if ii.RootFS.Layers != nil {
		img.DiffIDs = append([]string(nil), ii.RootFS.Layers...)
	}
	if ii.Config != nil {
		img.Labels = ii.Config.Labels
	}
	return img, nil
}

// Import creates an image from a root filesystem tarball (docker import), so
// bases can be made with no pull. It returns the new image's ID.
func (e *Engine) Import(ctx context.Context, rootfs io.Reader, ref string, changes []string) (string, error) {
	rc, err := e.API.ImageImport(ctx, image.ImportSource{Source: rootfs, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", ref, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return "", fmt.Errorf("importing %s: %w", ref, err)
	}
	img, err := e.Inspect(ctx, ref)
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// Tag points target at the image source.
func (e *Engine) Tag(ctx context.Context, source, target string) error {
	if err := e.API.ImageTag(ctx, source, target); err != nil {
		return fmt.Errorf("tagging %s as %s: %w", source, target, err)
	}
	return nil
}

// Remove deletes an image reference (untagging; the image goes when unused).
func (e *Engine) Remove(ctx context.Context, ref string) error {
	_, err := e.API.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing %s: %w", ref, err)
	}
	return nil
}

// Save streams `docker save` of refs.
func (e *Engine) Save(ctx context.Context, refs ...string) (io.ReadCloser, error) {
	rc, err := e.API.ImageSave(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("saving %s: %w", strings.Join(refs, ", "), err)
	}
	return rc, nil
}

// HasDefaultBridge reports whether the engine has its default bridge
// network, which BuildKit's default network for RUN steps needs. An engine
// started with --bridge=none has none, and such RUN steps fail.
func (e *Engine) HasDefaultBridge(ctx context.Context) (bool, error) {
	_, err := e.API.NetworkInspect(ctx, "bridge", network.InspectOptions{})
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("looking for the engine's bridge network: %w", err)
}

// ConfigDigest returns the config digest of the image ref names. The
// classic store tells it on inspection; the containerd store only names
// the manifest, so the image is saved and its manifest.json read (the
// layers stream past unread).
func (e *Engine) ConfigDigest(ctx context.Context, ref string) (string, error) {
	if e.Store != StoreContainerd {
		img, err := e.Inspect(ctx, ref)
		return img.Config, err
	}
	rc, err := e.Save(ctx, ref)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	sr := dockersave.NewReader(rc)
	defer sr.Close()
	for {
		ent, err := sr.Next()
		if err != nil {
			return "", fmt.Errorf("reading the config digest of %s from the engine's export: %w", ref, err)
		}
		if ent.Kind != dockersave.ManifestJSON {
			continue
		}
		m, err := dockersave.DecodeManifest(sr)
		if err != nil {
			return "", fmt.Errorf("reading the config digest of %s from the engine's export: %w", ref, err)
		}
		if len(m) != 1 {
			return "", fmt.Errorf("%s holds %d images for this engine's platforms: Hoist records single-platform images; build one image per platform", ref, len(m))
		}
		d := dockersave.DigestOf(m[0].Config)
		if d == "" {
			return "", fmt.Errorf("the engine's export of %s names its config %q, not a blob: is the engine's store intact?", ref, m[0].Config)
		}
		return d, nil
	}
}

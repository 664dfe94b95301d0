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
)

// ErrNoEngine means no Docker Engine answered.
var ErrNoEngine = errors.New("no Docker Engine answers")

// ErrNotFound means the engine has no image by that reference.
var ErrNotFound = errors.New("image not found in the engine")

// Engine is a connection to one Docker Engine.
type Engine struct {
	API *client.Client
}

// Options configure Connect.
type Options struct {
	// Host is the engine address (e.g. unix:///var/run/docker.sock). Empty:
	// the Docker client reads DOCKER_HOST from the environment itself
	// (client.WithHostFromEnv), else uses its default socket.
	Host string
}

// Connect opens a client and checks that the engine answers.
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
	if _, err := api.Ping(ctx); err != nil {
		_ = api.Close()
		return nil, fmt.Errorf("%w at %s: %v", ErrNoEngine, api.DaemonHost(), err)
	}
	return &Engine{API: api}, nil
}

// Close releases the connection.
func (e *Engine) Close() error { return e.API.Close() }

// Image is what Hoist needs to know of an image in the engine.
type Image struct {
	ID      string            // the image ID, which is the config digest
	DiffIDs []string          // uncompressed layer digests, bottom first
	Labels  map[string]string // config labels
	Tags    []string
	// RepoDigests are the registry references the image came from; none
	// for an image made or built on this machine, which cannot be pulled.
	RepoDigests []string
	Size        int64
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
	img := Image{ID: ii.ID, Tags: ii.RepoTags, RepoDigests: ii.RepoDigests, Size: ii.Size}
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

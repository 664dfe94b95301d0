package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/hoistci/hoist/pkg/engine"
	k3dclient "github.com/k3d-io/k3d/v5/pkg/client"
	k3dconfig "github.com/k3d-io/k3d/v5/pkg/config"
	"github.com/k3d-io/k3d/v5/pkg/config/v1alpha5"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	"github.com/spf13/viper"
)

// ErrCannotRun means this engine cannot run a k3s node.
var ErrCannotRun = errors.New("k3s nodes cannot run on this engine")

// ReadConfig reads a k3d config file (apiVersion k3d.io/v1alpha5, kind
// Simple), as `k3d cluster create --config` does, expanding $VARS with
// getenv as k3d does (nil expands none: the caller decides what it sees).
func ReadConfig(path string, getenv func(string) string) (v1alpha5.SimpleConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("reading the k3d config: %w: create it (see docs/cluster.md)", err)
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader([]byte(expand(string(data), getenv)))); err != nil {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if k := v.GetString("kind"); !strings.EqualFold(k, "simple") {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("%s: kind %q: Hoist reads k3d's kind Simple", path, k)
	}
	if err := k3dconfig.ValidateSchemaFile(path, []byte(v1alpha5.JSONSchema)); err != nil {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("%s: not a valid k3d config: %w", path, err)
	}
	cfg, err := k3dconfig.SimpleConfigFromViper(v)
	if err != nil {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Name == "" {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("%s: metadata.name is missing: name the cluster", path)
	}
	if cfg.Image == "" {
		return v1alpha5.SimpleConfig{}, fmt.Errorf("%s: image is missing: pin the k3s image, e.g. image: rancher/k3s:v1.31.5-k3s1", path)
	}
	if cfg.Servers == 0 {
		cfg.Servers = 1
	}
	return cfg, nil
}

// Probe tells whether this engine can run a k3s node, without any network
// traffic: k3s nodes run privileged, so Probe starts a privileged container
// from an empty image (it fails either way; how it fails tells). It returns
// nil or ErrCannotRun wrapped with the reason, in one line.
func Probe(ctx context.Context, e *engine.Engine) error {
	ref := fmt.Sprintf("hoist-probe/empty:%d", os.Getpid())
	if _, err := e.ImportRootfs(ctx, ref, engine.Rootfs{Dirs: []string{"/tmp"}}); err != nil {
		return fmt.Errorf("probing the engine: %w", err)
	}
	defer e.Remove(context.WithoutCancel(ctx), ref)
	c, err := e.API.ContainerCreate(ctx, &container.Config{Image: ref, Entrypoint: []string{"/hoist-probe"}},
		&container.HostConfig{Privileged: true, NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		return fmt.Errorf("%w: creating a privileged container failed: %v", ErrCannotRun, err)
	}
	defer func() {
		_ = e.API.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
	}()
	err = e.API.ContainerStart(ctx, c.ID, container.StartOptions{})
	if err == nil || strings.Contains(err.Error(), "no such file") {
		return nil // privilege granted; only the missing program stopped it
	}
	if strings.Contains(err.Error(), "caps") || strings.Contains(err.Error(), "not permitted") || cerrdefs.IsPermissionDenied(err) {
		return fmt.Errorf("%w: the engine refuses privileged containers, which k3s needs; the in-cluster stage runs in the GitHub workflow (docs/cluster.md)", ErrCannotRun)
	}
	return fmt.Errorf("probing the engine for privileged containers: %w", err)
}

// CreateOptions tune Create.
type CreateOptions struct {
	// Kubeconfig is the file the cluster's kubeconfig is written to; the
	// user's default kubeconfig is left alone.
	Kubeconfig string
	// Name, when set, must be the name the config file gives the cluster.
	Name string
	// Getenv expands $VARS in the config file (nil: none are expanded).
	Getenv func(string) string
}

func expand(s string, getenv func(string) string) string {
	if getenv == nil {
		return s
	}
	return os.Expand(s, getenv)
}

// Create creates the cluster described by the k3d config file at path
// through the k3d library, unless it exists already. It returns
// ErrCannotRun (wrapped, one line) when this engine cannot run k3s.
func Create(ctx context.Context, e *engine.Engine, rt runtimes.Runtime, path string, o CreateOptions) (created bool, err error) {
	simple, err := ReadConfig(path, o.Getenv)
	if err != nil {
		return false, err
	}
	if o.Name != "" && o.Name != simple.Name {
		return false, fmt.Errorf("%s names the cluster %q but hoist.yaml says %q: make them the same", path, simple.Name, o.Name)
	}
	if _, err := Nodes(ctx, rt, simple.Name); err == nil {
		return false, WriteKubeconfig(ctx, rt, simple.Name, o.Kubeconfig)
	} else if !errors.Is(err, ErrNoCluster) {
		return false, err
	}
	if err := Probe(ctx, e); err != nil {
		return false, err
	}
	if err := k3dconfig.ProcessSimpleConfig(&simple); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	cc, err := k3dconfig.TransformSimpleToClusterConfig(ctx, rt, simple, path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if cc, err = k3dconfig.ProcessClusterConfig(*cc); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if err := k3dconfig.ValidateClusterConfig(ctx, rt, *cc); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if err := k3dclient.ClusterRun(ctx, rt, cc); err != nil {
		return false, fmt.Errorf("creating k3d cluster %s: %w (k3d rolled it back)", simple.Name, err)
	}
	return true, WriteKubeconfig(ctx, rt, simple.Name, o.Kubeconfig)
}

// WriteKubeconfig writes the cluster's kubeconfig to path.
func WriteKubeconfig(ctx context.Context, rt runtimes.Runtime, name, path string) error {
	if path == "" {
		return nil
	}
	c, err := k3dclient.ClusterGet(ctx, rt, &k3d.Cluster{Name: name})
	if err != nil {
		return fmt.Errorf("k3d cluster %s: %w", name, err)
	}
	if _, err := k3dclient.KubeconfigGetWrite(ctx, rt, c, path, &k3dclient.WriteKubeConfigOptions{OverwriteExisting: true}); err != nil {
		return fmt.Errorf("writing the kubeconfig of %s to %s: %w", name, path, err)
	}
	return nil
}

// Delete deletes the named cluster; a missing cluster is not an error.
func Delete(ctx context.Context, rt runtimes.Runtime, name string) (deleted bool, err error) {
	if _, err := Nodes(ctx, rt, name); errors.Is(err, ErrNoCluster) {
		return false, nil
	}
	if err := k3dclient.ClusterDelete(ctx, rt, &k3d.Cluster{Name: name}, k3d.ClusterDeleteOpts{}); err != nil {
		return false, fmt.Errorf("deleting k3d cluster %s: %w", name, err)
	}
	return true, nil
}

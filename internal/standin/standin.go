// Package standin runs stand-in k3d nodes for tests and benchmarks: a
// FROM-scratch image holding Debian's containerd and ctr (with the libraries
// they link and the loader), labelled as k3d labels its nodes, so the
// cluster loader finds and feeds them as it would a real k3s node. A real
// k3s node needs privileged containers and a pulled image, neither of which
// this machine allows.
package standin

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// config starts containerd fast: no CRI (this is not a kubelet), no
// snapshotters that need devices; overlayfs on the tmpfs is what k3s uses.
const config = `version = 2
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "/run/containerd/containerd.sock"
`

// BuildImage imports the stand-in node image as ref from the host's
// containerd and ctr binaries.
func BuildImage(ctx context.Context, e *engine.Engine, ref string) error {
	return BuildImageFor(ctx, e, ref, "")
}

// BuildImageFor is BuildImage with the image recorded as made for platform
// (e.g. linux/arm64; empty: the host's). The binaries stay the host's, so
// the engine runs them natively: a node that says it runs platform, for
// what reads a node's platform from its image.
func BuildImageFor(ctx context.Context, e *engine.Engine, ref, platform string) error {
	files := map[string]string{}
	for _, bin := range []string{"containerd", "ctr"} {
		p, err := exec.LookPath(bin)
		if err != nil {
			return fmt.Errorf("stand-in node: %s is not installed: apt-get install containerd", bin)
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			return err
		}
		files["/usr/bin/"+bin] = p
		libs, err := Linked(ctx, p)
		if err != nil {
			return err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	dir, err := os.MkdirTemp("", "hoist-standin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return err
	}
	files["/etc/containerd/config.toml"] = cfg
	_, err = e.ImportRootfs(ctx, ref, engine.Rootfs{
		Files:    files,
		Dirs:     []string{"/tmp", "/run/containerd", "/var/lib/containerd"},
		Env:      []string{"PATH=/usr/bin", "CONTAINERD_NAMESPACE=k8s.io"},
		Platform: platform,
	})
	return err
}

// Linked lists the shared libraries and loader a binary needs, from ldd
// (none for a static binary).
func Linked(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) || isStatic(bin) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}

// isStatic tells whether bin is an ELF file with no program interpreter.
func isStatic(bin string) bool {
	f, err := elf.Open(bin)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }() // read-only
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// StartNode runs one stand-in node named name for cluster with role, and
// waits until its containerd answers.
func StartNode(ctx context.Context, e *engine.Engine, image, clusterName, role, name string) (cluster.Node, error) {
	_, err := e.API.ContainerCreate(ctx, &container.Config{
		Image: image,
		Cmd:   []string{"/usr/bin/containerd", "--config", "/etc/containerd/config.toml"},
		Labels: map[string]string{
			"app":         "k3d",
			"k3d.cluster": clusterName,
			"k3d.role":    role,
		},
	}, &container.HostConfig{
		NetworkMode: "none",
		CapAdd:      []string{"SYS_ADMIN"},
		Tmpfs:       map[string]string{"/var/lib/containerd": "", "/run/containerd": ""},
	}, nil, nil, name)
	if err != nil {
		return cluster.Node{}, fmt.Errorf("creating stand-in node %s: %w", name, err)
	}
	if err := e.API.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		_ = Remove(context.Background(), e, name)
		return cluster.Node{}, fmt.Errorf("starting stand-in node %s: %w", name, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := Ctr(ctx, e, name, "version")
		if err == nil {
			return cluster.Node{Name: name, Role: role}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = Remove(context.Background(), e, name)
			return cluster.Node{}, fmt.Errorf("stand-in node %s: containerd did not come up: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remove deletes a node container.
func Remove(ctx context.Context, e *engine.Engine, name string) error {
	return e.API.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
}

// Ctr runs ctr in the node (namespace k8s.io) and returns its output.
func Ctr(ctx context.Context, e *engine.Engine, node string, args ...string) (string, error) {
	return cluster.Exec(ctx, e.API, node, append([]string{"ctr", "-n", "k8s.io"}, args...)...)
}

// Images returns, for each image name on the node, its config digest.
func Images(ctx context.Context, e *engine.Engine, node string) (map[string]string, error) {
	return cluster.NodeImages(ctx, e.API, node)
}

// Containers lists the containers labelled for clusterName (running or not).
func Containers(ctx context.Context, e *engine.Engine, clusterName string) ([]string, error) {
	cs, err := e.API.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "k3d.cluster="+clusterName))})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range cs {
		names = append(names, strings.TrimPrefix(c.Names[0], "/"))
	}
	return names, nil
}

// Image builds the stand-in image under a unique tag, removed when t ends.
func Image(t testing.TB, e *engine.Engine) string {
	t.Helper()
	return ImageFor(t, e, "")
}

// ImageFor is Image recorded as made for platform (BuildImageFor).
func ImageFor(t testing.TB, e *engine.Engine, platform string) string {
	t.Helper()
	ref := testenv.Unique("hoist-standin/node:")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := BuildImageFor(ctx, e, ref, platform); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	return ref
}

// Cluster starts one node per role for a new uniquely named cluster and
// returns the cluster name and its nodes; they are removed when t ends.
func Cluster(t testing.TB, e *engine.Engine, image string, roles ...string) (string, []cluster.Node) {
	t.Helper()
	name := testenv.Unique("hoist-t-")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var nodes []cluster.Node
	for i, role := range roles {
		cname := fmt.Sprintf("k3d-%s-%s-%d", name, role, i)
		t.Cleanup(func() { _ = Remove(context.Background(), e, cname) })
		n, err := StartNode(ctx, e, image, name, role, cname)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	return name, nodes
}
